//! `serve --demo`'s demo site at `/demo/`: a page of the demo company that embeds the chat
//! widget and its quote form, so both can be tried in a browser against the demo organisation.
//!
//! The demo's chat channel gets its bot (Sunny) configured on the first demo start. The demo's
//! chat widget and form get fixed public keys ([`CHAT_KEY`], [`FORM_KEY`]) and allow
//! the origins the server is reached at on this machine (`http://127.0.0.1:<port>` and
//! `http://localhost:<port>`). Those depend on the port, so every demo start configures them
//! again through the command service (as the system) when they changed: a different port adds a
//! `ChatWidgetConfigured` to the history, as an admin changing the origins would. A store that
//! does not hold the demo organisation gets nothing.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use proto_events::Actor;
use proto_events::event::{BotAnswer, BotHandoffPolicy, FormFieldKind, FormFieldSpec};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::chat::ChatWidgetSettings;
use switchboard_domain::chatbot::ChatBotSettings;
use switchboard_domain::form::FormSettings;
use switchboard_service::{Command, CommandMeta, CommandService};

use super::id;

/// The public key of the demo's chat widget.
pub const CHAT_KEY: &str = "northwind-demo-chat-widget";

/// The public key of the demo's quote form.
pub const FORM_KEY: &str = "northwind-demo-quote-form";

/// The page, with `{{CHAT_KEY}}` and `{{FORM_KEY}}` to fill in.
const PAGE: &str = include_str!("site/index.html");

/// The origins a browser on this machine sends for a server bound at `bound`.
pub fn origins(bound: SocketAddr) -> Vec<String> {
    let port = bound.port();
    vec![
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ]
}

/// Configures the demo's chat widget and form for `origins`, unless they already are, and its
/// chat bot once; nothing when the store holds no demo organisation.
pub async fn prepare(service: &CommandService, origins: Vec<String>) -> anyhow::Result<()> {
    let chat = id("channel:chat");
    let form = id("channel:form");
    let (chat_done, bot_done, form_done) = {
        let view = service.view().await?;
        let channels = &view.directory.channels;
        let (Some(chat_channel), Some(form_channel)) = (channels.get(&chat), channels.get(&form))
        else {
            return Ok(());
        };
        (
            chat_channel
                .chat_widget
                .as_ref()
                .is_some_and(|w| w.allowed_origins == origins),
            chat_channel.chat_bot.is_some(),
            form_channel
                .form
                .as_ref()
                .is_some_and(|f| f.allowed_origins == origins),
        )
    };
    let meta = || {
        CommandMeta::by(Actor::System {
            component: "demo".to_owned(),
        })
    };
    if !chat_done {
        let command = ChannelCommand::ConfigureChatWidget {
            channel_id: chat,
            new_public_key: CHAT_KEY.to_owned(),
            settings: ChatWidgetSettings {
                allowed_origins: origins.clone(),
                team_name: "Northwind Support".to_owned(),
                expected_reply: Some("We usually reply within a few minutes".to_owned()),
            },
        };
        service.execute(meta(), Command::Channel(command)).await?;
    }
    // Sunny, whom the demo's bot-first rule gives new chats, greets and answers two topics;
    // anything else, or asking for a person, hands off. Configured once: an admin's changes stay.
    if !bot_done {
        let phrases = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect();
        let command = ChannelCommand::ConfigureChatBot {
            channel_id: chat,
            settings: ChatBotSettings {
                bot_id: id("bot:sunny"),
                enabled: true,
                greeting: "Hi, I'm Sunny, Northwind's bot. Ask me about prices or delivery, \
                           or write \"person\" to talk to the team."
                    .to_owned(),
                questions: Vec::new(),
                answers: vec![
                    BotAnswer {
                        phrases: phrases(&["price", "prices", "cost", "how much"]),
                        reply: "Our tents start at 149 EUR; the team sends quotes for groups."
                            .to_owned(),
                    },
                    BotAnswer {
                        phrases: phrases(&["delivery", "shipping", "ship"]),
                        reply: "We deliver across Europe within five working days.".to_owned(),
                    },
                ],
                handoff: BotHandoffPolicy {
                    phrases: phrases(&["person", "human", "agent"]),
                    on_no_match: true,
                    timeout_seconds: None,
                    message: Some("Let me get someone from the team for you.".to_owned()),
                },
            },
        };
        service.execute(meta(), Command::Channel(command)).await?;
    }
    if !form_done {
        let field = |name: &str, label: &str, kind, required| FormFieldSpec {
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            required,
            options: Vec::new(),
        };
        let command = ChannelCommand::ConfigureForm {
            channel_id: form,
            new_public_key: FORM_KEY.to_owned(),
            settings: FormSettings {
                fields: vec![
                    field("name", "Your name", FormFieldKind::Text, false),
                    field("email", "Your e-mail address", FormFieldKind::Email, true),
                    field(
                        "message",
                        "What do you need?",
                        FormFieldKind::Textarea,
                        true,
                    ),
                ],
                allowed_origins: origins,
                honeypot_field: Some("website".to_owned()),
            },
        };
        service.execute(meta(), Command::Channel(command)).await?;
    }
    Ok(())
}

/// `GET /demo/` (and `/demo`, redirected).
pub fn router() -> Router {
    let page = PAGE
        .replace("{{CHAT_KEY}}", CHAT_KEY)
        .replace("{{FORM_KEY}}", FORM_KEY);
    Router::new()
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route(
            "/demo/",
            get(move || {
                let page = page.clone();
                async move { ([(header::CACHE_CONTROL, "no-cache")], Html(page)).into_response() }
            }),
        )
}
