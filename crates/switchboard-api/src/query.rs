//! The query root, merged from one object per area so each area's fields live together.

use async_graphql::{Context, ID, MergedObject, Object};

use crate::state::{state, viewer};
use crate::types::directory::User;
use crate::types::node::{self, Node};

/// Everything a client can read.
#[derive(Debug, MergedObject, Default)]
pub struct Query(ViewerQuery);

/// The viewer and global ids.
#[derive(Debug, Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The signed-in user.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let me = viewer(ctx).await?;
        let view = state(ctx).directory().await?;
        Ok(User(view.directory.user(me.user_id).cloned().ok_or_else(
            || crate::error::ApiError::Unauthenticated("unknown user".to_owned()),
        )?))
    }

    /// The object with global id `id`, or null if it does not exist or the viewer may not see
    /// it.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let me = viewer(ctx).await?;
        Ok(node::load(state(ctx), me.user_id, &id).await?)
    }

    /// The objects with global ids `ids`, in order; null where one does not exist or is not
    /// visible. At most 100 ids.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> async_graphql::Result<Vec<Option<Node>>> {
        let me = viewer(ctx).await?;
        if ids.len() > 100 {
            return Err(crate::error::ApiError::bad_input("ids", "at most 100 ids").into());
        }
        let mut nodes = Vec::with_capacity(ids.len());
        for id in &ids {
            nodes.push(node::load(state(ctx), me.user_id, id).await?);
        }
        Ok(nodes)
    }
}
