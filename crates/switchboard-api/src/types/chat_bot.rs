//! A chat channel's bot configuration, as `Channel.chatBot` shows it to admins.

use async_graphql::{Context, ID, Object};
use proto_events::event::{
    BotAnswer, BotHandoffPolicy, BotQuestion, ChatBotConfigured, RoutingStrategy,
};

use crate::ids::{self, Kind};
use crate::mutation::ChatBotCollects;

/// A chat channel's bot, as configured with `configureChatBot`.
#[derive(Debug, Clone)]
pub(crate) struct ChatBotSettings(pub(crate) ChatBotConfigured);

#[Object]
impl ChatBotSettings {
    /// The bot that speaks.
    async fn bot_id(&self) -> ID {
        ids::encode(Kind::Bot, self.0.bot_id)
    }
    /// Whether it speaks.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Whether new conversations reach it: the routing rule of the channel (or, without one, of
    /// its inbox) is `BOT_FIRST` with this bot. Without that the bot gets no conversation and
    /// says nothing.
    async fn routed(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let view = crate::state::state(ctx).directory().await?;
        Ok(view
            .directory
            .rule_for(self.0.channel_id)
            .is_some_and(|rule| {
                rule.strategy == RoutingStrategy::BotFirst && rule.bot_id == Some(self.0.bot_id)
            }))
    }
    /// Its first message in a conversation.
    async fn greeting(&self) -> &str {
        &self.0.greeting
    }
    /// Its questions, in order.
    async fn questions(&self) -> Vec<ChatBotQuestion> {
        self.0
            .questions
            .iter()
            .cloned()
            .map(ChatBotQuestion)
            .collect()
    }
    /// Its answers, the first match wins.
    async fn answers(&self) -> Vec<ChatBotAnswer> {
        self.0.answers.iter().cloned().map(ChatBotAnswer).collect()
    }
    /// When it hands off to a human.
    async fn handoff(&self) -> ChatBotHandoff {
        ChatBotHandoff(self.0.handoff.clone())
    }
}

/// When a chat bot hands off to a human.
#[derive(Debug, Clone)]
pub(crate) struct ChatBotHandoff(BotHandoffPolicy);

#[Object]
impl ChatBotHandoff {
    /// Phrases that hand off.
    async fn phrases(&self) -> &[String] {
        &self.0.phrases
    }
    /// Whether a message without an answer hands off at once.
    async fn on_no_match(&self) -> bool {
        self.0.on_no_match
    }
    /// How long a message without an answer waits before the bot hands off; null: no timeout.
    async fn timeout_seconds(&self) -> Option<i64> {
        self.0.timeout_seconds.map(i64::from)
    }
    /// What the bot says before handing off.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
}

/// A question of a chat bot.
#[derive(Debug, Clone)]
pub(crate) struct ChatBotQuestion(BotQuestion);

#[Object]
impl ChatBotQuestion {
    /// What the bot asks.
    async fn prompt(&self) -> &str {
        &self.0.prompt
    }
    /// What the answer is collected as.
    async fn collects(&self) -> ChatBotCollects {
        self.0.collects.into()
    }
}

/// An answer of a chat bot.
#[derive(Debug, Clone)]
pub(crate) struct ChatBotAnswer(BotAnswer);

#[Object]
impl ChatBotAnswer {
    /// The phrases it answers.
    async fn phrases(&self) -> &[String] {
        &self.0.phrases
    }
    /// What the bot answers.
    async fn reply(&self) -> &str {
        &self.0.reply
    }
}
