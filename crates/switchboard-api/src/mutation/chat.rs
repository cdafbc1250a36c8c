//! `configureChatWidget`: a chat channel's widget (the sites that may embed it, the team name
//! and reply-time wording it shows); `setChatTyping`: an agent's typing signal to the visitor.
//!
//! The first configuration gives the widget its public key (as a form's, see `form`);
//! configuring it again keeps the key, so pages that embed it keep working.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use proto_events::event::{ChannelKind, Role};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::chat::ChatWidgetSettings;

use crate::error::ApiError;
use crate::ids::{self, Kind};
use crate::mutation::channel::{channel_after, channel_command};
use crate::mutation::common::payload;
use crate::mutation::form::new_public_key;
use crate::state::{access, state};
use crate::types::directory::Channel;

/// Chat mutations.
#[derive(Debug, Default)]
pub(crate) struct ChatMutation;

/// Input of `configureChatWidget`. Replaces the widget's whole configuration.
#[derive(Debug, InputObject)]
pub(crate) struct ConfigureChatWidgetInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The chat channel.
    channel_id: ID,
    /// Origins (`https://host[:port]`; `http` for localhost only) whose pages may run the
    /// widget; others are refused (CORS, and the WebSocket's `Origin`). Empty: none may.
    #[graphql(default)]
    allowed_origins: Vec<String>,
    /// The name the widget shows visitors, e.g. "Acme Support".
    team_name: String,
    /// What the widget says about reply times while someone is available, e.g. "We usually
    /// reply within an hour"; omitted: its own wording.
    expected_reply: Option<String>,
}

payload! {
    /// Result of `configureChatWidget`.
    ConfigureChatWidgetPayload {
        /// The channel, with its widget settings.
        channel: Channel,
    }
}

/// Input of `setChatTyping`.
#[derive(Debug, InputObject)]
pub(crate) struct SetChatTypingInput {
    /// A chat conversation the viewer sees.
    conversation_id: ID,
    /// Whether the viewer is typing now.
    typing: bool,
}

/// Result of `setChatTyping`.
#[derive(Debug, SimpleObject)]
pub(crate) struct SetChatTypingPayload {
    /// The conversation.
    conversation_id: ID,
}

#[Object]
impl ChatMutation {
    /// Configures a chat channel's widget (admins): the origins whose pages may run it, the
    /// team name and reply-time wording it shows. Pages embed it with `/widget/v1.js` and the
    /// `publicKey` this returns.
    async fn configure_chat_widget(
        &self,
        ctx: &Context<'_>,
        input: ConfigureChatWidgetInput,
    ) -> async_graphql::Result<ConfigureChatWidgetPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let command = ChannelCommand::ConfigureChatWidget {
            channel_id,
            new_public_key: new_public_key(),
            settings: ChatWidgetSettings {
                allowed_origins: input.allowed_origins,
                team_name: input.team_name,
                expected_reply: input.expected_reply,
            },
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, Some(channel_id)).await?;
        Ok(ConfigureChatWidgetPayload {
            result: executed.result,
            channel,
        })
    }

    /// Tells the visitor of a chat conversation that the viewer started or stopped typing. A
    /// signal, not an event: nothing is recorded, and a visitor who is not connected misses it.
    async fn set_chat_typing(
        &self,
        ctx: &Context<'_>,
        input: SetChatTypingInput,
    ) -> async_graphql::Result<SetChatTypingPayload> {
        let conversation_id =
            ids::decode(&input.conversation_id, Kind::Conversation, "conversationId")?;
        let access = access(ctx).await?;
        access.require(
            &[Role::SuperAdmin, Role::Admin, Role::Agent],
            "typing in a conversation",
        )?;
        let inner = state(ctx);
        let header = inner
            .query("thread_view", move |conn| {
                thread_view::conversation(conn, conversation_id)
            })
            .await?
            .filter(|h| access.conversation(h.inbox_id, h.private_owner_id))
            .ok_or_else(|| ApiError::not_found("conversation"))?;
        if header.channel_kind != ChannelKind::Chat {
            return Err(ApiError::BadUserInput {
                field: "conversationId".to_owned(),
                message: "typing signals go to chat conversations only".to_owned(),
            }
            .into());
        }
        // Nobody listening is fine.
        inner
            .chat
            .visitors
            .agent_typing(conversation_id, input.typing);
        Ok(SetChatTypingPayload {
            conversation_id: input.conversation_id,
        })
    }
}
