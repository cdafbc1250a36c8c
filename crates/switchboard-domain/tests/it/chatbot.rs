//! The chat bot's decisions: greeting, questions, answers, handoffs, and whole-word matching
//! that ignores case and accents.

use proto_events::event::{
    BotAnswer, BotCollects, BotHandoffPolicy, BotQuestion, ChatBotConfigured,
};
use switchboard_domain::chatbot::{Dialogue, HandoffCause, Step, matches, words};
use uuid::Uuid;

/// A bot asking for name and e-mail, answering prices, handing off on request or after a minute.
pub(crate) fn config() -> ChatBotConfigured {
    ChatBotConfigured {
        channel_id: Uuid::from_u128(1),
        bot_id: Uuid::from_u128(2),
        enabled: true,
        greeting: "Hello!".into(),
        questions: vec![
            BotQuestion {
                prompt: "Your name?".into(),
                collects: BotCollects::Name,
            },
            BotQuestion {
                prompt: "Your e-mail?".into(),
                collects: BotCollects::Email,
            },
        ],
        answers: vec![BotAnswer {
            phrases: vec!["price".into(), "how much".into()],
            reply: "10 EUR".into(),
        }],
        handoff: BotHandoffPolicy {
            phrases: vec!["human".into(), "agent".into()],
            on_no_match: false,
            timeout_seconds: Some(60),
            message: Some("A person will answer.".into()),
        },
    }
}

fn say(text: &str) -> Step {
    Step::Say(text.into())
}

#[test]
fn matching_is_whole_words_ignoring_case_and_accents() {
    assert_eq!(
        words("Créer un  COMPTE, s'il-vous-plaît!"),
        ["creer", "un", "compte", "s", "il", "vous", "plait"]
    );
    let phrases = ["price".to_owned(), "how much".to_owned(), "Café".to_owned()];
    assert!(matches(&words("The PRICE?"), &phrases));
    assert!(matches(&words("so, how much is it"), &phrases));
    assert!(matches(&words("un cafe"), &phrases));
    assert!(!matches(&words("prices"), &phrases));
    assert!(!matches(&words("priceless"), &phrases));
    assert!(!matches(&words("how is it, much?"), &phrases));
    assert!(!matches(&[], &phrases));
}

#[test]
fn a_name_the_bot_collects_loses_bidi_and_control_characters() {
    let config = config();
    let mut d = Dialogue::default();
    d.start(&config, "hi");
    // The first line with something visible in it is the name.
    let r = d.reply_to(
        &config,
        "\u{202E}\u{200F}\n\u{2066}Ada\u{202E} Lovelace\u{2069}\u{1b}",
    );
    assert_eq!(
        r.steps,
        [
            Step::Collect(BotCollects::Name, "Ada Lovelace".into()),
            say("Your e-mail?")
        ]
    );
}

#[test]
fn the_bot_greets_asks_its_questions_in_order_and_then_answers_keywords() {
    let config = config();
    let mut d = Dialogue::default();
    let r = d.start(&config, "hi, what is the price?");
    assert_eq!(r.steps, [say("Hello!"), say("10 EUR"), say("Your name?")]);
    assert!(!r.unanswered);

    let r = d.reply_to(&config, "  Ada Lovelace \nsecond line");
    assert_eq!(
        r.steps,
        [
            Step::Collect(BotCollects::Name, "Ada Lovelace".into()),
            say("Your e-mail?")
        ]
    );
    // A malformed address is asked again.
    let r = d.reply_to(&config, "ada at example");
    assert_eq!(r.steps, [say("Your e-mail?")]);
    let r = d.reply_to(&config, "Sure: <ada@example.com>.");
    assert_eq!(
        r.steps,
        [Step::Collect(BotCollects::Email, "ada@example.com".into())]
    );

    let r = d.reply_to(&config, "How much?");
    assert_eq!(r.steps, [say("10 EUR")]);
    // No match, no handoff on no match: silent, and the timeout runs.
    let r = d.reply_to(&config, "tell me a joke");
    assert!(r.steps.is_empty());
    assert!(r.unanswered);
    let r = d.time_out(&config);
    assert_eq!(
        r.steps,
        [
            say("A person will answer."),
            Step::HandOff(HandoffCause::Timeout)
        ]
    );
    // Handed off: silent for good.
    assert_eq!(d.reply_to(&config, "price?").steps, []);
    assert_eq!(d.time_out(&config).steps, []);
    assert_eq!(d.start(&config, "price?").steps, []);
}

#[test]
fn a_question_asked_three_times_without_an_answer_is_skipped() {
    let config = config();
    let mut d = Dialogue::default();
    d.start(&config, "hello");
    d.reply_to(&config, "Ada");
    assert_eq!(d.reply_to(&config, "no").steps, [say("Your e-mail?")]);
    assert_eq!(d.reply_to(&config, "no").steps, [say("Your e-mail?")]);
    assert_eq!(d.reply_to(&config, "no").steps, []);
    assert_eq!(d.reply_to(&config, "price").steps, [say("10 EUR")]);
}

#[test]
fn asking_for_a_human_hands_off_at_any_point() {
    let config = config();
    let mut d = Dialogue::default();
    let r = d.start(&config, "I want a HUMAN");
    assert_eq!(
        r.steps,
        [
            say("Hello!"),
            say("A person will answer."),
            Step::HandOff(HandoffCause::Requested)
        ]
    );
    let mut d = Dialogue::default();
    d.start(&config, "hello");
    let r = d.reply_to(&config, "Agent please");
    assert_eq!(
        r.steps,
        [
            say("A person will answer."),
            Step::HandOff(HandoffCause::Requested)
        ]
    );
}

#[test]
fn no_match_hands_off_when_configured_but_never_on_the_opening() {
    let mut config = config();
    config.questions.clear();
    config.handoff.on_no_match = true;
    config.handoff.message = None;
    let mut d = Dialogue::default();
    assert_eq!(d.start(&config, "hello there").steps, [say("Hello!")]);
    assert_eq!(d.reply_to(&config, "price").steps, [say("10 EUR")]);
    assert_eq!(
        d.reply_to(&config, "something else").steps,
        [Step::HandOff(HandoffCause::NoMatch)]
    );
}

#[test]
fn with_nothing_but_questions_the_bot_hands_off_once_they_are_answered() {
    let mut config = config();
    config.answers.clear();
    config.handoff.message = None;
    let mut d = Dialogue::default();
    d.start(&config, "hello");
    d.reply_to(&config, "Ada");
    assert_eq!(
        d.reply_to(&config, "ada@example.com").steps,
        [
            Step::Collect(BotCollects::Email, "ada@example.com".into()),
            Step::HandOff(HandoffCause::QuestionsDone)
        ]
    );
    config.questions.clear();
    let mut d = Dialogue::default();
    assert_eq!(
        d.start(&config, "hello").steps,
        [say("Hello!"), Step::HandOff(HandoffCause::QuestionsDone)]
    );
}

#[test]
fn routed_to_the_bot_again_it_goes_on_where_it_was_and_disabled_it_hands_off() {
    let config = config();
    let mut d = Dialogue::default();
    d.start(&config, "hello");
    // Unassigned by hand and routed to the bot again: no second greeting.
    assert_eq!(d.start(&config, "").steps, []);
    assert_eq!(
        d.start(&config, "Ada").steps,
        [
            Step::Collect(BotCollects::Name, "Ada".into()),
            say("Your e-mail?")
        ]
    );
    assert_eq!(
        d.reconfigured().steps,
        [Step::HandOff(HandoffCause::Reconfigured)]
    );
    assert_eq!(d.reconfigured().steps, []);
    assert_eq!(d.reply_to(&config, "ada@example.com").steps, []);
}
