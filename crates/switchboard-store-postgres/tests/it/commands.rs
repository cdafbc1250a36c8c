//! The command service on two nodes of one schema: repeats of a command with one idempotency
//! key, sent at once to both nodes, are written once (the keyed events' ids are derived from the
//! key, and the store answers the same ids at the same place with the first append's result).

use std::sync::Arc;

use proto_events::Actor;
use proto_events::clock::SystemClock;
use proto_events::event::{ChannelKind, Identity, InboundMessage, Role};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, CommandService};
use switchboard_store::{Direction, EventStore, StreamFrom};
use uuid::Uuid;

use crate::pg::{self, TestSchema};

async fn node(schema: &TestSchema) -> Arc<CommandService> {
    let store: Arc<dyn EventStore> = Arc::new(schema.connect(|_| {}).await);
    Arc::new(
        CommandService::open(store, Arc::new(SystemClock))
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_on_two_nodes_write_once() {
    let Some(url) = pg::server().await else {
        return;
    };
    let schema = TestSchema::new(&url);
    let a = node(&schema).await;
    let b = node(&schema).await;
    let admin = Uuid::now_v7();
    let (inbox, channel) = (Uuid::now_v7(), Uuid::now_v7());
    let system = CommandMeta::by(Actor::System {
        component: "test".to_owned(),
    });
    for command in [
        Command::Setup(SetupCommand::CreateOrganisation {
            organisation_id: Uuid::now_v7(),
            name: "Acme".to_owned(),
            time_zone: "Europe/Paris".to_owned(),
        }),
        Command::Setup(SetupCommand::CreateUser {
            user_id: admin,
            email: "admin@acme.test".to_owned(),
            name: "Ada".to_owned(),
            role: Role::Admin,
        }),
    ] {
        a.execute(system.clone(), command).await.unwrap();
    }
    let by_admin = CommandMeta::by(Actor::User { id: admin });
    a.execute(
        by_admin.clone(),
        Command::Setup(SetupCommand::CreateInbox {
            inbox_id: inbox,
            name: "Support".to_owned(),
        }),
    )
    .await
    .unwrap();
    a.execute(
        by_admin.clone(),
        Command::Channel(ChannelCommand::ConnectChat {
            channel_id: channel,
            inbox_id: inbox,
            name: "Website".to_owned(),
        }),
    )
    .await
    .unwrap();
    let received = a
        .execute(
            CommandMeta::by(Actor::Channel { id: channel }),
            Command::ReceiveMessage {
                channel_id: channel,
                message: Box::new(InboundMessage {
                    message_id: Uuid::now_v7(),
                    channel_id: channel,
                    channel_kind: ChannelKind::Chat,
                    provider_message_id: None,
                    from: Identity::ChatVisitor {
                        visitor_id: "v-1".to_owned(),
                    },
                    from_name: None,
                    contact_id: None,
                    subject: None,
                    body_text: "Hello?".to_owned(),
                    body_html: None,
                    email: None,
                    form_fields: vec![],
                    attachments: Vec::new(),
                    raw: None,
                }),
                signals: None,
            },
        )
        .await
        .unwrap();
    let stream = received.stream.clone();
    let conversation_id: Uuid = stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .unwrap();
    let mut expected = 0;
    for concurrent in [2usize, 4, 8] {
        for trial in 0..50 {
            let key = format!("reply-{concurrent}-{trial}");
            let requests = (0..concurrent).map(|n| {
                let service = if n % 2 == 0 { a.clone() } else { b.clone() };
                let meta = CommandMeta {
                    idempotency_key: Some(key.clone()),
                    fingerprint: Some(format!("fingerprint-{key}")),
                    ..by_admin.clone()
                };
                let command = Command::Conversation {
                    conversation_id,
                    // A message id of each request's own: only the key makes them one.
                    command: Box::new(ConversationCommand::SendReply {
                        message_id: Uuid::now_v7(),
                        body_text: format!("Reply {key}"),
                        body_html: None,
                        subject: None,
                        attachments: Vec::new(),
                    }),
                };
                tokio::spawn(async move { service.execute(meta, command).await })
            });
            let mut fresh = 0;
            for outcome in futures::future::join_all(requests).await {
                let outcome = outcome.unwrap().unwrap_or_else(|e| panic!("{key}: {e}"));
                if !outcome.replayed {
                    fresh += 1;
                }
            }
            expected += 1;
            assert_eq!(fresh, 1, "{key}: one request writes, the others repeat it");
            let replies = a
                .store()
                .read_stream(&stream, Direction::Forwards, StreamFrom::Start, 10_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.event_type == "ReplySent")
                .count();
            assert_eq!(replies, expected, "{key}: written once");
        }
    }
}
