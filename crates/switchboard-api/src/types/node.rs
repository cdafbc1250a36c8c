//! The `Node` interface: every object with a global id, fetchable by `node(id:)`.

use async_graphql::{ID, Interface};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::Inner;
use crate::types::directory::{Channel, Team, User};

/// An object with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id."))]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Node {
    /// A user.
    User(User),
    /// A team.
    Team(Team),
    /// A channel.
    Channel(Channel),
}

/// The node `id` names, if the viewer may see it.
pub(crate) async fn load(inner: &Inner, viewer: Uuid, id: &ID) -> ApiResult<Option<Node>> {
    let (kind, uuid) = ids::decode_any(id, "id")?;
    let view = inner.directory().await?;
    let directory = &view.directory;
    Ok(match kind {
        Kind::User => directory.user(uuid).cloned().map(|u| Node::User(User(u))),
        Kind::Team => directory.teams.get(&uuid).cloned().map(|t| Node::Team(Team(t))),
        Kind::Channel => directory
            .channels
            .get(&uuid)
            .filter(|c| directory.can_see_inbox(viewer, c.inbox_id))
            .cloned()
            .map(|c| {
                let fallback = directory.is_fallback(c.id);
                Node::Channel(Channel::new(c, fallback))
            }),
        other => {
            return Err(ApiError::bad_input(
                "id",
                format!("{} ids are not fetchable by node(id:)", other.name()),
            ));
        }
    })
}
