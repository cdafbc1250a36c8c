//! `updateMessengerChannel`: a Messenger channel's page access token, with which the delivery
//! worker sends its replies through Meta's Send API, and whether the page has the human-agent
//! tag.
//!
//! The token is write-only, handled as `updateEmailChannel` handles passwords: sealed into the
//! store's secrets under a fresh id before the command that names the id runs; the event
//! records the id, never the token. After the command the token it replaced is deleted; if the
//! command was refused or was a repeat, the one sealed for it is deleted instead. Admins only.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use switchboard_domain::channel::{ChannelCommand, Setting};
use switchboard_store::secret::SecretId;

use crate::error::{ApiError, UserError};
use crate::ids::{self, Kind};
use crate::mutation::channel::{channel_after, channel_command};
use crate::mutation::common::{Executed, payload};
use crate::mutation::mail::{Sealed, input_error};
use crate::state::{access, state};
use crate::types::directory::Channel;

/// Messenger channel mutations.
#[derive(Debug, Default)]
pub(crate) struct MessengerMutation;

/// Input of `updateMessengerChannel`. A field left out keeps its setting.
#[derive(InputObject)]
pub(crate) struct UpdateMessengerChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The Messenger channel.
    channel_id: ID,
    /// The page access token replies are sent with (from the app's Messenger settings):
    /// write-only, never returned. `null` removes it; replies then fail until one is set.
    page_access_token: MaybeUndefined<String>,
    /// Whether Meta granted the page the human-agent tag: replies are then allowed up to 7
    /// days after the customer's last message instead of 24 hours.
    human_agent_tag: Option<bool>,
}

impl std::fmt::Debug for UpdateMessengerChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateMessengerChannelInput")
            .field("client_mutation_id", &self.client_mutation_id)
            .field("channel_id", &self.channel_id)
            .field("human_agent_tag", &self.human_agent_tag)
            .finish_non_exhaustive()
    }
}

payload! {
    /// Result of `updateMessengerChannel`.
    UpdateMessengerChannelPayload {
        /// The channel, with its new settings.
        channel: Channel,
    }
}

/// The longest page access token accepted, in bytes (Meta's are a few hundred).
const MAX_TOKEN: usize = 4_096;

/// Why `token` cannot be a page access token, if it cannot.
fn token_error(token: &str) -> Option<UserError> {
    (token.is_empty()
        || token.len() > MAX_TOKEN
        || token.chars().any(|c| c.is_control() || c.is_whitespace()))
    .then(|| {
        input_error(
            &["pageAccessToken"],
            "INVALID",
            "must be 1 to 4096 bytes without spaces or control characters",
        )
    })
}

#[Object]
impl MessengerMutation {
    /// Sets a Messenger channel's page access token and human-agent tag (admins). The token is
    /// write-only: `Channel.messengerPageToken` says only whether one is set.
    async fn update_messenger_channel(
        &self,
        ctx: &Context<'_>,
        input: UpdateMessengerChannelInput,
    ) -> async_graphql::Result<UpdateMessengerChannelPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let inner = state(ctx);
        if !access(ctx).await?.is_admin() {
            return Err(ApiError::Forbidden("only admins set a page's token".to_owned()).into());
        }
        let before = {
            let view = inner.directory().await?;
            view.directory
                .channels
                .get(&channel_id)
                .map(|c| c.messenger.page_token_secret)
                .ok_or_else(|| ApiError::not_found("channel"))?
        };
        if let MaybeUndefined::Value(token) = &input.page_access_token
            && let Some(error) = token_error(token)
        {
            let refused = Executed::refused(input.client_mutation_id.clone(), vec![error]);
            return Ok(UpdateMessengerChannelPayload {
                result: refused.result,
                channel: None,
            });
        }

        let mut sealed = Sealed::default();
        let page_token = match &input.page_access_token {
            MaybeUndefined::Undefined => Setting::Keep,
            MaybeUndefined::Null => Setting::Clear,
            MaybeUndefined::Value(token) => Setting::Set(sealed.put(inner, token).await?),
        };
        let command = ChannelCommand::SetMessengerPage {
            channel_id,
            page_token,
            human_agent_tag: input.human_agent_tag,
        };
        let executed = channel_command(ctx, input.client_mutation_id.clone(), command, &[]).await;
        let executed = match executed {
            Ok(executed) => executed,
            Err(error) => {
                // Perhaps written (a commit whose answer was lost): the token may be named by
                // the log now, so it stays; at worst it is an unreferenced row.
                tracing::warn!("updateMessengerChannel failed; the token sealed for it is kept");
                return Err(error.into());
            }
        };
        if executed.ok() && !executed.result.replayed {
            if let Some(replaced) =
                before.filter(|_| !matches!(input.page_access_token, MaybeUndefined::Undefined))
                && let Err(error) = inner.vault.delete(SecretId(replaced)).await
            {
                tracing::warn!(%error, "a replaced page token was not deleted");
            }
        } else {
            // Refused, or a repeat answered from the first attempt: nothing names this token.
            sealed.discard(inner).await;
        }
        let channel = channel_after(ctx, &executed, Some(channel_id)).await?;
        Ok(UpdateMessengerChannelPayload {
            result: executed.result,
            channel,
        })
    }
}
