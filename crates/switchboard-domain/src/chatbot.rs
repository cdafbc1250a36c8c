//! Chat bots: what a chat channel's bot may be configured with ([`configured`], behind
//! `ChannelCommand::ConfigureChatBot`) and what it says and does in a conversation it holds
//! ([`Dialogue`]), decided without IO so that the bot reactor replays it from the log alone.
//!
//! # When the bot speaks
//! A conversation is the bot's while it is assigned to the bot its channel is configured with
//! (a bot-first routing rule on the channel or its inbox gives it new conversations), and the
//! configuration is enabled. When it gets one it greets ([`Dialogue::start`]) and takes the
//! visitor's opening message; after that it answers each visitor message
//! ([`Dialogue::reply_to`]). Once it hands off, or a person takes the conversation, it never
//! speaks in that conversation again.
//!
//! # Decisions, in the order they are tried on a visitor's message
//! 1. A **handoff phrase** hands off (cause `requested`), also in the middle of the questions.
//! 2. While a **question** is open, the message answers it: a name is its first line with
//!    something in it, as [`display_name`](crate::display_name) keeps it (no bidi or control
//!    characters), 1 to [`MAX_NAME`] characters; an e-mail address is the message's first word with an `@`
//!    (without surrounding punctuation), and must be plausible (`local@domain.tld`).
//!    Something else is asked again (the same prompt), at most [`MAX_ATTEMPTS`] times in all;
//!    then the bot moves on without it.
//! 3. A message matching an **answer** gets its reply (the first configured answer that matches).
//! 4. A message with **no match** hands off at once when `on_no_match` is set; otherwise it is
//!    *unanswered*: the reactor hands off when it has waited `timeout_seconds` without the bot
//!    saying anything since (the timeout). A bot configured with neither is refused.
//!
//! Disabling the bot, or configuring another bot for the channel, hands off every conversation
//! the bot holds (cause `reconfigured`), silently.
//!
//! The opening message never counts as unmatched: the greeting answers it. When the last question
//! is answered (or there were none) and the bot has no answers configured, there is nothing left
//! for it to do, and it hands off (cause `questions_done`).
//!
//! # Matching
//! Messages and phrases are compared as sequences of words: lower-cased, accents removed
//! (Unicode canonical decomposition without combining marks, so `Créer` matches `creer`), split at
//! every character that is not a letter or a digit. A phrase matches when its words appear
//! consecutively in the message: `"price"` matches `"The PRICE?"` but not `"prices"` or
//! `"priceless"`; `"how much"` matches `"so, how much is it"`.

use proto_events::event::{
    BotAnswer, BotCollects, BotHandoffPolicy, BotQuestion, ChatBotConfigured,
};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use uuid::Uuid;

use crate::DomainError;

/// Most questions a bot asks.
pub const MAX_QUESTIONS: usize = 10;
/// Most answers a bot has.
pub const MAX_ANSWERS: usize = 100;
/// Most phrases of one answer, or of the handoff.
pub const MAX_PHRASES: usize = 20;
/// Longest phrase, in characters.
pub const MAX_PHRASE: usize = 100;
/// Longest greeting, prompt, reply or handoff message, in characters.
pub const MAX_MESSAGE: usize = 2_000;
/// Longest timeout: a day.
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;
/// Longest name collected, in characters.
pub const MAX_NAME: usize = 200;
/// How often a question is asked before the bot moves on without its answer.
pub const MAX_ATTEMPTS: u8 = 3;

/// What a chat bot is to be configured with, as `ChannelCommand::ConfigureChatBot` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatBotSettings {
    /// The bot that speaks.
    pub bot_id: Uuid,
    /// Whether it speaks.
    pub enabled: bool,
    /// Its first message.
    pub greeting: String,
    /// Its questions, in order.
    pub questions: Vec<BotQuestion>,
    /// Its answers, first match wins.
    pub answers: Vec<BotAnswer>,
    /// When it hands off.
    pub handoff: BotHandoffPolicy,
}

/// The event configuring `channel_id`'s bot with `settings`, checked and trimmed. Errors name
/// the input field, e.g. `greeting`, `questions.1.collects`, `answers.2.phrases.0` or
/// `handoff.timeoutSeconds`. Whether the bot exists is the caller's check.
pub fn configured(
    channel_id: Uuid,
    settings: &ChatBotSettings,
) -> Result<ChatBotConfigured, DomainError> {
    let greeting = message(&settings.greeting).map_err(|m| DomainError::invalid("greeting", m))?;
    if settings.questions.len() > MAX_QUESTIONS {
        return Err(DomainError::invalid(
            "questions",
            format!("at most {MAX_QUESTIONS} questions"),
        ));
    }
    let mut questions: Vec<BotQuestion> = Vec::with_capacity(settings.questions.len());
    for (i, question) in settings.questions.iter().enumerate() {
        let prompt = message(&question.prompt)
            .map_err(|m| DomainError::invalid(format!("questions.{i}.prompt"), m))?;
        if questions.iter().any(|q| q.collects == question.collects) {
            return Err(DomainError::invalid(
                format!("questions.{i}.collects"),
                "an earlier question collects this already",
            ));
        }
        questions.push(BotQuestion {
            prompt,
            collects: question.collects,
        });
    }
    if settings.answers.len() > MAX_ANSWERS {
        return Err(DomainError::invalid(
            "answers",
            format!("at most {MAX_ANSWERS} answers"),
        ));
    }
    // Every phrase, as words, with the field it was given in: a phrase may mean one thing only.
    let mut seen: Vec<(Vec<String>, String)> = Vec::new();
    let handoff_phrases = phrases(&settings.handoff.phrases, "handoff.phrases", &mut seen)?;
    let mut answers: Vec<BotAnswer> = Vec::with_capacity(settings.answers.len());
    for (i, answer) in settings.answers.iter().enumerate() {
        let field = format!("answers.{i}.phrases");
        if answer.phrases.is_empty() {
            return Err(DomainError::invalid(field, "an answer needs a phrase"));
        }
        let phrases = phrases(&answer.phrases, &field, &mut seen)?;
        let reply = message(&answer.reply)
            .map_err(|m| DomainError::invalid(format!("answers.{i}.reply"), m))?;
        answers.push(BotAnswer { phrases, reply });
    }
    let timeout_seconds = match settings.handoff.timeout_seconds {
        Some(seconds) if seconds == 0 || seconds > MAX_TIMEOUT_SECONDS => {
            return Err(DomainError::invalid(
                "handoff.timeoutSeconds",
                format!("must be 1 to {MAX_TIMEOUT_SECONDS} seconds"),
            ));
        }
        other => other,
    };
    if !settings.handoff.on_no_match && timeout_seconds.is_none() {
        return Err(DomainError::invalid(
            "handoff",
            "set onNoMatch or timeoutSeconds, so that visitors the bot cannot answer reach a \
             human",
        ));
    }
    let handoff_message = match settings.handoff.message.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(message(text).map_err(|m| DomainError::invalid("handoff.message", m))?),
    };
    Ok(ChatBotConfigured {
        channel_id,
        bot_id: settings.bot_id,
        enabled: settings.enabled,
        greeting,
        questions,
        answers,
        handoff: BotHandoffPolicy {
            phrases: handoff_phrases,
            on_no_match: settings.handoff.on_no_match,
            timeout_seconds,
            message: handoff_message,
        },
    })
}

/// A message the bot says: trimmed, 1 to [`MAX_MESSAGE`] characters, no control characters but
/// line breaks and tabs.
fn message(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.chars().count() > MAX_MESSAGE {
        return Err(format!("must be at most {MAX_MESSAGE} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(value.to_owned())
}

/// The phrases given in `field`, trimmed; each must have a word, fit [`MAX_PHRASE`] and not be
/// a phrase given before (compared as words, see [`words`]), which `seen` records.
fn phrases(
    given: &[String],
    field: &str,
    seen: &mut Vec<(Vec<String>, String)>,
) -> Result<Vec<String>, DomainError> {
    if given.len() > MAX_PHRASES {
        return Err(DomainError::invalid(
            field.to_owned(),
            format!("at most {MAX_PHRASES} phrases"),
        ));
    }
    let mut kept = Vec::with_capacity(given.len());
    for (j, phrase) in given.iter().enumerate() {
        let at = format!("{field}.{j}");
        let phrase = phrase.trim();
        if phrase.chars().count() > MAX_PHRASE || phrase.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                at,
                format!("must be at most {MAX_PHRASE} characters on one line"),
            ));
        }
        let as_words = words(phrase);
        if as_words.is_empty() {
            return Err(DomainError::invalid(at, "must contain a word"));
        }
        if let Some((_, earlier)) = seen.iter().find(|(w, _)| *w == as_words) {
            return Err(DomainError::invalid(
                at,
                format!("{phrase:?} is also given in {earlier}"),
            ));
        }
        seen.push((as_words, at));
        kept.push(phrase.to_owned());
    }
    Ok(kept)
}

/// The words of `text`: lower-cased, without accents, split at everything that is not a letter
/// or a digit.
pub fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether one of `phrases` appears, as consecutive whole words, in `message` (its [`words`]).
pub fn matches(message: &[String], phrases: &[String]) -> bool {
    phrases.iter().any(|phrase| {
        let phrase = words(phrase);
        !phrase.is_empty()
            && message
                .windows(phrase.len())
                .any(|w| w == phrase.as_slice())
    })
}

/// Why a bot hands off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandoffCause {
    /// The visitor asked for a human.
    Requested,
    /// The bot had no answer and is configured to hand off then.
    NoMatch,
    /// The questions are answered and the bot has nothing else to offer.
    QuestionsDone,
    /// A message waited `timeout_seconds` without an answer.
    Timeout,
    /// The channel's bot was disabled or replaced while it held the conversation.
    Reconfigured,
}

/// One thing the bot does, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Say this to the visitor (`ReplySent` by the bot).
    Say(String),
    /// Record the visitor's answer in their contact.
    Collect(BotCollects, String),
    /// Give the conversation to a human (`BotHandedOff`).
    HandOff(HandoffCause),
}

/// What the bot does about one message (or the start, or a timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaction {
    /// Its steps, in order; empty when it stays silent.
    pub steps: Vec<Step>,
    /// The message went unanswered: the timeout runs from it (unless one already runs).
    pub unanswered: bool,
}

/// Where a conversation with the bot stands, folded from what the bot decided before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialogue {
    /// The bot greeted.
    pub greeted: bool,
    /// The question asked and not answered yet, by index.
    pub asking: Option<usize>,
    /// How often the open question was asked.
    pub attempts: u8,
    /// The bot handed off: it says nothing more.
    pub handed_off: bool,
}

impl Dialogue {
    /// The bot got the conversation, whose visitor wrote `opening` so far: it greets, answers
    /// the opening if it can (or hands off if asked to), and asks its first question.
    pub fn start(&mut self, config: &ChatBotConfigured, opening: &str) -> Reaction {
        if self.handed_off {
            return Reaction::default();
        }
        if self.greeted {
            // Routed to the bot again (unassigned by hand meanwhile): it goes on where it was,
            // with what the visitor wrote in between, if anything.
            if opening.trim().is_empty() {
                return Reaction::default();
            }
            return self.reply_to(config, opening);
        }
        self.greeted = true;
        let mut steps = vec![Step::Say(config.greeting.clone())];
        let said = words(opening);
        if matches(&said, &config.handoff.phrases) {
            self.hand_off(config, HandoffCause::Requested, &mut steps);
            return Reaction {
                steps,
                unanswered: false,
            };
        }
        if let Some(answer) = config.answers.iter().find(|a| matches(&said, &a.phrases)) {
            steps.push(Step::Say(answer.reply.clone()));
        }
        self.ask_next(config, 0, &mut steps);
        Reaction {
            steps,
            unanswered: false,
        }
    }

    /// The visitor wrote `text` in a conversation the bot holds.
    pub fn reply_to(&mut self, config: &ChatBotConfigured, text: &str) -> Reaction {
        if self.handed_off {
            return Reaction::default();
        }
        if !self.greeted {
            return self.start(config, text);
        }
        let mut steps = Vec::new();
        let said = words(text);
        if matches(&said, &config.handoff.phrases) {
            self.hand_off(config, HandoffCause::Requested, &mut steps);
            return Reaction {
                steps,
                unanswered: false,
            };
        }
        if let Some(index) = self.asking {
            let Some(question) = config.questions.get(index) else {
                // The configuration changed under an open question: on without it.
                self.ask_next(config, index, &mut steps);
                return Reaction {
                    steps,
                    unanswered: false,
                };
            };
            match collected(question.collects, text) {
                Some(value) => {
                    steps.push(Step::Collect(question.collects, value));
                    self.ask_next(config, index + 1, &mut steps);
                }
                None if self.attempts < MAX_ATTEMPTS => {
                    self.attempts += 1;
                    steps.push(Step::Say(question.prompt.clone()));
                }
                None => self.ask_next(config, index + 1, &mut steps),
            }
            return Reaction {
                steps,
                unanswered: false,
            };
        }
        if let Some(answer) = config.answers.iter().find(|a| matches(&said, &a.phrases)) {
            steps.push(Step::Say(answer.reply.clone()));
            return Reaction {
                steps,
                unanswered: false,
            };
        }
        if config.handoff.on_no_match {
            self.hand_off(config, HandoffCause::NoMatch, &mut steps);
            return Reaction {
                steps,
                unanswered: false,
            };
        }
        Reaction {
            steps,
            unanswered: true,
        }
    }

    /// An unanswered message waited the configured timeout.
    pub fn time_out(&mut self, config: &ChatBotConfigured) -> Reaction {
        let mut steps = Vec::new();
        if !self.handed_off {
            self.hand_off(config, HandoffCause::Timeout, &mut steps);
        }
        Reaction {
            steps,
            unanswered: false,
        }
    }

    /// The bot was disabled or replaced: it hands off what it holds, without a word, so no visitor is left with a bot that no longer speaks.
    pub fn reconfigured(&mut self) -> Reaction {
        if self.handed_off {
            return Reaction::default();
        }
        self.handed_off = true;
        self.asking = None;
        Reaction {
            steps: vec![Step::HandOff(HandoffCause::Reconfigured)],
            unanswered: false,
        }
    }

    /// Asks question `from`, the next one; with none left and no answers configured, hands off.
    fn ask_next(&mut self, config: &ChatBotConfigured, from: usize, steps: &mut Vec<Step>) {
        match config.questions.get(from) {
            Some(question) => {
                self.asking = Some(from);
                self.attempts = 1;
                steps.push(Step::Say(question.prompt.clone()));
            }
            None => {
                self.asking = None;
                self.attempts = 0;
                if config.answers.is_empty() {
                    self.hand_off(config, HandoffCause::QuestionsDone, steps);
                }
            }
        }
    }

    fn hand_off(&mut self, config: &ChatBotConfigured, cause: HandoffCause, steps: &mut Vec<Step>) {
        self.handed_off = true;
        self.asking = None;
        if let Some(message) = &config.handoff.message {
            steps.push(Step::Say(message.clone()));
        }
        steps.push(Step::HandOff(cause));
    }
}

/// The answer to a question collecting `collects`, if `text` is one.
fn collected(collects: BotCollects, text: &str) -> Option<String> {
    match collects {
        BotCollects::Name => {
            let name = text.lines().find_map(crate::display_name)?;
            (name.chars().count() <= MAX_NAME).then_some(name)
        }
        BotCollects::Email => {
            let address = text
                .split_whitespace()
                .find(|word| word.contains('@'))?
                .trim_matches(|c: char| "<>()[],;:.!?\"'".contains(c));
            crate::form::plausible_email(address).then(|| address.to_owned())
        }
    }
}
