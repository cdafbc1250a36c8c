//! The `Node` interface: every object with a global id, fetchable by `node(id:)`.

use async_graphql::{Context, ID, Interface};

use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::{access, state};
use crate::types::contact::Contact;
use crate::types::conversation::Conversation;
use crate::types::directory::{Bot, Channel, Team, User};
use crate::types::inbox::Inbox;

/// An object with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id."))]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Node {
    /// A user.
    User(User),
    /// A team.
    Team(Team),
    /// An inbox.
    Inbox(Inbox),
    /// A channel.
    Channel(Channel),
    /// A bot.
    Bot(Bot),
    /// A conversation.
    Conversation(Conversation),
    /// A contact.
    Contact(Contact),
}

/// The node `id` names, if it exists and the viewer may see it.
pub(crate) async fn load(ctx: &Context<'_>, id: &ID) -> ApiResult<Option<Node>> {
    let (kind, uuid) = ids::decode_any(id, "id")?;
    Ok(match kind {
        Kind::User | Kind::Team | Kind::Channel | Kind::Bot => {
            let access = access(ctx).await?;
            let view = state(ctx).directory().await?;
            let directory = &view.directory;
            match kind {
                Kind::User => directory.user(uuid).cloned().map(|u| Node::User(User(u))),
                Kind::Bot => directory.bots.get(&uuid).map(|name| {
                    Node::Bot(Bot {
                        bot_id: uuid,
                        name: name.clone(),
                    })
                }),
                Kind::Team => directory
                    .teams
                    .get(&uuid)
                    .cloned()
                    .map(|t| Node::Team(Team(t))),
                _ => directory
                    .channels
                    .get(&uuid)
                    .filter(|c| access.inbox(c.inbox_id))
                    .cloned()
                    .map(|c| {
                        let fallback = directory.is_fallback(c.id);
                        Node::Channel(Channel::new(c, fallback))
                    }),
            }
        }
        Kind::Inbox => Inbox::load(ctx, uuid).await?.map(Node::Inbox),
        Kind::Conversation => Conversation::load(ctx, uuid).await?.map(Node::Conversation),
        Kind::Contact => Contact::load(ctx, uuid).await?.map(Node::Contact),
        other => {
            return Err(ApiError::bad_input(
                "id",
                format!("{} ids are not fetchable by node(id:)", other.name()),
            ));
        }
    })
}
