//! `configureChatBot`: a chat channel's bot, its greeting, questions, answers and handoff.
//!
//! What the bot then does in conversations is the bot reactor's (`switchboard_service::bot`);
//! here only the configuration is checked and recorded (`ChatBotConfigured`).

use async_graphql::{Context, Enum, ID, InputObject, Object};
use proto_events::event::{BotAnswer, BotHandoffPolicy, BotQuestion};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::chatbot::ChatBotSettings;

use crate::ids::{self, Kind};
use crate::mutation::channel::{channel_after, channel_command};
use crate::mutation::common::payload;
use crate::types::directory::Channel;

/// Chat bot mutations.
#[derive(Debug, Default)]
pub(crate) struct ChatBotMutation;

/// What a chat bot's question collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::BotCollects")]
pub(crate) enum ChatBotCollects {
    /// The contact's name (its `name` property).
    Name,
    /// An e-mail address, linked to the contact (a malformed one is asked again); an address
    /// of another contact is kept as the visitor's `claimed_email`, unverified.
    Email,
}

/// A question the bot asks after its greeting.
#[derive(Debug, InputObject)]
pub(crate) struct ChatBotQuestionInput {
    /// What the bot asks.
    prompt: String,
    /// What the answer is collected as; each at most once.
    collects: ChatBotCollects,
}

/// An answer to visitors' messages containing one of its phrases.
#[derive(Debug, InputObject)]
pub(crate) struct ChatBotAnswerInput {
    /// Words or phrases, matched as whole words ignoring case and accents (`"price"` matches
    /// "The PRICE?", not "prices"); a phrase may appear once in the whole configuration.
    phrases: Vec<String>,
    /// What the bot answers.
    reply: String,
}

/// When the bot hands the conversation to a human (routing then picks one).
#[derive(Debug, InputObject)]
pub(crate) struct ChatBotHandoffInput {
    /// A visitor's message containing one of these hands off, e.g. `["human", "agent"]`.
    #[graphql(default)]
    phrases: Vec<String>,
    /// A message the bot has no answer for hands off at once.
    #[graphql(default)]
    on_no_match: bool,
    /// A message the bot has no answer for hands off after waiting this many seconds (1 to
    /// 86400) without the bot saying anything since. `onNoMatch` or this is required.
    timeout_seconds: Option<i32>,
    /// What the bot says before handing off.
    message: Option<String>,
}

/// Input of `configureChatBot`. Replaces the bot's whole configuration.
#[derive(Debug, InputObject)]
pub(crate) struct ConfigureChatBotInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The chat channel.
    channel_id: ID,
    /// The bot that speaks (see `createBot`). It speaks in the conversations assigned to it: give
    /// the channel (or its inbox) a `BOT_FIRST` routing rule naming it.
    bot_id: ID,
    /// Whether the bot speaks; a disabled bot stays silent.
    #[graphql(default = true)]
    enabled: bool,
    /// Its first message in a conversation.
    greeting: String,
    /// Asked in order after the greeting (at most 10).
    #[graphql(default)]
    questions: Vec<ChatBotQuestionInput>,
    /// Replies to keywords and phrases, the first match wins (at most 100).
    #[graphql(default)]
    answers: Vec<ChatBotAnswerInput>,
    /// When it hands off.
    handoff: ChatBotHandoffInput,
}

payload! {
    /// Result of `configureChatBot`.
    ConfigureChatBotPayload {
        /// The channel, with its bot's configuration.
        channel: Channel,
    }
}

#[Object]
impl ChatBotMutation {
    /// Configures a chat channel's bot (admins): its greeting, the questions that collect the
    /// visitor's name and e-mail address, its answers to keywords and phrases, and when it hands
    /// off to a human (on request, when it has no answer, after a timeout).
    async fn configure_chat_bot(
        &self,
        ctx: &Context<'_>,
        input: ConfigureChatBotInput,
    ) -> async_graphql::Result<ConfigureChatBotPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let bot_id = ids::decode(&input.bot_id, Kind::Bot, "botId")?;
        let handoff = input.handoff;
        let command = ChannelCommand::ConfigureChatBot {
            channel_id,
            settings: ChatBotSettings {
                bot_id,
                enabled: input.enabled,
                greeting: input.greeting,
                questions: input
                    .questions
                    .into_iter()
                    .map(|q| BotQuestion {
                        prompt: q.prompt,
                        collects: q.collects.into(),
                    })
                    .collect(),
                answers: input
                    .answers
                    .into_iter()
                    .map(|a| BotAnswer {
                        phrases: a.phrases,
                        reply: a.reply,
                    })
                    .collect(),
                handoff: BotHandoffPolicy {
                    phrases: handoff.phrases,
                    on_no_match: handoff.on_no_match,
                    // Out of range (negative) is refused by the write side, naming the field.
                    timeout_seconds: handoff
                        .timeout_seconds
                        .map(|s| u32::try_from(s).unwrap_or(0)),
                    message: handoff.message,
                },
            },
        };
        let executed = channel_command(ctx, input.client_mutation_id, command, &[]).await?;
        let channel = channel_after(ctx, &executed, Some(channel_id)).await?;
        Ok(ConfigureChatBotPayload {
            result: executed.result,
            channel,
        })
    }
}
