//! The query root, merged from one object per area so each area's fields live together.
//!
//! # Layout
//! - [`ViewerQuery`] (here): `viewer`, `node`, `nodes`.
//! - `inbox`: the organisation, users, teams, inboxes, conversations, contacts.
//! - `history`: the raw event history and a conversation as it stood at a past time or position.
//! - `analytics`: response-time metrics and live figures.
//! - `audit`: the audit trail.

mod analytics;
mod audit;
mod history;
mod inbox;

pub(crate) use history::HISTORY_READERS;

use async_graphql::{Context, ID, MergedObject, Object};

use crate::consistency::ReadFrom;
use crate::error::ApiError;
use crate::state::{state, viewer};
use crate::types::directory::User;
use crate::types::node::{self, Node};

/// Everything a client can read.
#[derive(Debug, MergedObject, Default)]
pub struct Query(
    ViewerQuery,
    inbox::InboxQuery,
    history::HistoryQuery,
    analytics::AnalyticsQuery,
    audit::AuditQuery,
);

/// The viewer and global ids.
#[derive(Debug, Default)]
pub(crate) struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The signed-in user.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let me = viewer(ctx).await?;
        let view = state(ctx).directory().await?;
        Ok(User(view.directory.user(me.user_id).cloned().ok_or_else(
            || ApiError::Unauthenticated("unknown user".to_owned()),
        )?))
    }

    /// A consistency token of what this request reads: every read model included its position
    /// when the request began. Pass it as a subscription's `after` to be sent every change
    /// after what you read (none is missed, some may repeat what you read), or as the
    /// `Switchboard-Consistency-Token` header.
    async fn consistency_token(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        viewer(ctx).await?;
        let inner = state(ctx);
        let position = ctx
            .data_opt::<ReadFrom>()
            .map_or_else(|| inner.projections.included(), |read| read.0);
        Ok(inner.tokens.sign(position))
    }

    /// The object with global id `id`, or null if it does not exist or the viewer may not see
    /// it.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        viewer(ctx).await?;
        Ok(node::load(ctx, &id).await?)
    }

    /// The objects with global ids `ids`, in order; null where one does not exist or is not
    /// visible. At most 100 ids. A malformed id makes its own entry null, with an error whose
    /// path names it (`["nodes", 1]`); the other entries are still returned.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<async_graphql::Result<Node>>>> {
        viewer(ctx).await?;
        if ids.len() > 100 {
            return Err(ApiError::bad_input("ids", "at most 100 ids").into());
        }
        let mut nodes = Vec::with_capacity(ids.len());
        for id in &ids {
            // Each entry's failure stays in its slot: async-graphql resolves a `Some(Err)` item
            // of a nullable list as null, with the item's path on the error.
            nodes.push(
                node::load(ctx, id)
                    .await
                    .transpose()
                    .map(|loaded| loaded.map_err(async_graphql::Error::from)),
            );
        }
        Ok(nodes)
    }
}
