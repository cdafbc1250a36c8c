//! The audit trail through GraphQL: entries with their actor and causal links, filters, Relay
//! pagination in both directions without gaps or overlaps (also when access hides entries),
//! and access: admins see everything, agents nothing about inboxes or conversations they cannot
//! see (private ones included), auditors every inbox but not others' private conversations,
//! analysts are FORBIDDEN.

use std::collections::HashSet;
use std::time::Duration;

use proto_events::Actor;
use proto_events::event::{
    ChannelKind, EmailAccess, EmailHeaders, Identity, InboundMessage, Member, Role,
};
use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::{Command, CommandMeta, Outcome};
use uuid::Uuid;

use crate::support::TestApi;

/// Runs `command` as `actor` and waits until every read model includes it.
pub(crate) async fn run(api: &TestApi, actor: Actor, command: Command) -> Outcome {
    let name = command.name();
    let outcome = api
        .service
        .execute(CommandMeta::by(actor), command)
        .await
        .unwrap_or_else(|e| panic!("{name} failed: {e}"));
    api.projections
        .wait_for(
            outcome.last_position,
            tokio::time::Instant::now() + Duration::from_secs(30),
        )
        .await
        .expect("read models catch up");
    outcome
}

pub(crate) fn conversation_of(outcome: &Outcome) -> Uuid {
    outcome
        .stream
        .strip_prefix("conversation-")
        .and_then(|id| id.parse().ok())
        .expect("a conversation stream")
}

pub(crate) fn id(kind: Kind, uuid: Uuid) -> String {
    ids::encode(kind, uuid).0
}

pub(crate) fn message(channel_id: Uuid, kind: ChannelKind, from: Identity) -> Command {
    let email = matches!(kind, ChannelKind::Email).then(|| EmailHeaders {
        message_id: format!("{}@customer.test", Uuid::now_v7()),
        in_reply_to: None,
        references: vec![],
        to: vec!["alice@acme.test".to_owned()],
        cc: vec![],
    });
    Command::ReceiveMessage {
        channel_id,
        message: Box::new(InboundMessage {
            message_id: Uuid::now_v7(),
            channel_id,
            channel_kind: kind,
            provider_message_id: None,
            from,
            from_name: None,
            contact_id: None,
            subject: email.as_ref().map(|_| "Hello".to_owned()),
            body_text: "Hello, anyone there?".to_owned(),
            body_html: None,
            email,
            form_fields: vec![],
            attachments: Vec::new(),
            raw: None,
        }),
        signals: None,
    }
}

/// Support (Alice and Carol are members) with a chat and Alice's private mailbox; VIP,
/// restricted to team Tier 2 (Bob). One chat conversation in each inbox and one private e-mail
/// conversation of Alice's in Support; Carol replies in Support's chat.
pub(crate) struct World {
    pub(crate) api: TestApi,
    pub(crate) alice: Uuid,
    pub(crate) carol: Uuid,
    pub(crate) auditor: Uuid,
    pub(crate) analyst: Uuid,
    pub(crate) support: Uuid,
    pub(crate) vip: Uuid,
    pub(crate) chat: Uuid,
    pub(crate) mailbox: Uuid,
    pub(crate) shared: Uuid,
    pub(crate) restricted: Uuid,
    pub(crate) private: Uuid,
    restricted_correlation: Uuid,
}

pub(crate) async fn world() -> World {
    let api = TestApi::start().await;
    let admin = Actor::User { id: api.admin };
    let alice = api.user("alice@acme.test", Role::Agent).await;
    let bob = api.user("bob@acme.test", Role::Agent).await;
    let carol = api.user("carol@acme.test", Role::Agent).await;
    let auditor = api.user("audrey@acme.test", Role::Auditor).await;
    let analyst = api.user("ann@acme.test", Role::Analyst).await;
    let (support, vip, tier2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (chat, vip_chat, mailbox) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for command in [
        SetupCommand::CreateInbox {
            inbox_id: support,
            name: "Support".to_owned(),
        },
        SetupCommand::CreateInbox {
            inbox_id: vip,
            name: "VIP".to_owned(),
        },
        SetupCommand::CreateTeam {
            team_id: tier2,
            name: "Tier 2".to_owned(),
        },
        SetupCommand::AddTeamMember {
            team_id: tier2,
            user_id: bob,
        },
        SetupCommand::AddInboxMember {
            inbox_id: support,
            member: Member::User { id: alice },
        },
        SetupCommand::AddInboxMember {
            inbox_id: support,
            member: Member::User { id: carol },
        },
        SetupCommand::AddInboxMember {
            inbox_id: vip,
            member: Member::Team { id: tier2 },
        },
        SetupCommand::RestrictInbox {
            inbox_id: vip,
            team_ids: vec![tier2],
        },
    ] {
        run(&api, admin.clone(), Command::Setup(command)).await;
    }
    for command in [
        ChannelCommand::ConnectChat {
            channel_id: chat,
            inbox_id: support,
            name: "Website".to_owned(),
        },
        ChannelCommand::ConnectChat {
            channel_id: vip_chat,
            inbox_id: vip,
            name: "VIP chat".to_owned(),
        },
        ChannelCommand::ConnectEmail {
            channel_id: mailbox,
            inbox_id: support,
            address: "alice@acme.test".to_owned(),
            access: EmailAccess::Private {
                owner_user_id: alice,
            },
        },
    ] {
        run(&api, admin.clone(), Command::Channel(command)).await;
    }
    let shared = conversation_of(
        &run(
            &api,
            Actor::Channel { id: chat },
            message(
                chat,
                ChannelKind::Chat,
                Identity::ChatVisitor {
                    visitor_id: "v-1".to_owned(),
                },
            ),
        )
        .await,
    );
    run(
        &api,
        Actor::User { id: carol },
        Command::Conversation {
            conversation_id: shared,
            command: Box::new(ConversationCommand::SendReply {
                message_id: Uuid::now_v7(),
                body_text: "Hi!".to_owned(),
                body_html: None,
                subject: None,
                attachments: Vec::new(),
            }),
        },
    )
    .await;
    let restricted_correlation = Uuid::now_v7();
    let outcome = api
        .service
        .execute(
            CommandMeta {
                correlation_id: Some(restricted_correlation),
                ..CommandMeta::by(Actor::Channel { id: vip_chat })
            },
            message(
                vip_chat,
                ChannelKind::Chat,
                Identity::ChatVisitor {
                    visitor_id: "v-2".to_owned(),
                },
            ),
        )
        .await
        .expect("a VIP message");
    api.projections
        .wait_for(
            outcome.last_position,
            tokio::time::Instant::now() + Duration::from_secs(30),
        )
        .await
        .expect("read models catch up");
    let restricted = conversation_of(&outcome);
    let private = conversation_of(
        &run(
            &api,
            Actor::Channel { id: mailbox },
            message(
                mailbox,
                ChannelKind::Email,
                Identity::Email {
                    address: "friend@customer.test".to_owned(),
                },
            ),
        )
        .await,
    );
    World {
        api,
        alice,
        carol,
        auditor,
        analyst,
        support,
        vip,
        chat,
        mailbox,
        shared,
        restricted,
        private,
        restricted_correlation,
    }
}

const ENTRY: &str = "position eventId stream streamVersion eventType schemaVersion
    actor { kind id user { name } component } occurredAt recordedAt correlationId causationId
    conversationId inboxId contactId payload";

/// Every entry `user` sees with `filter`, read forward in pages of `size`, with the pages'
/// sizes.
async fn read_all(api: &TestApi, user: Uuid, filter: Value, size: i32) -> (Vec<Value>, Vec<usize>) {
    let query = format!(
        "query($filter: AuditFilter, $first: Int, $after: String) {{
            auditTrail(filter: $filter, first: $first, after: $after) {{
                edges {{ cursor node {{ {ENTRY} }} }}
                pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let mut entries = Vec::new();
    let mut sizes = Vec::new();
    let mut after = Value::Null;
    loop {
        let reply = api
            .gql(
                user,
                &query,
                json!({"filter": filter, "first": size, "after": after}),
            )
            .await;
        let page = &reply.data()["auditTrail"];
        let edges = page["edges"].as_array().expect("edges");
        sizes.push(edges.len());
        entries.extend(edges.iter().map(|e| e["node"].clone()));
        if page["pageInfo"]["hasNextPage"] != true {
            return (entries, sizes);
        }
        after = page["pageInfo"]["endCursor"].clone();
        assert!(sizes.len() < 200, "the trail does not end");
    }
}

fn positions(entries: &[Value]) -> Vec<u64> {
    entries
        .iter()
        .map(|e| e["position"].as_u64().expect("a position"))
        .collect()
}

fn about(entries: &[Value], field: &str, id: &str) -> usize {
    entries.iter().filter(|e| e[field] == id).count()
}

#[tokio::test]
async fn agents_see_no_entry_of_what_they_cannot_see() {
    let w = world().await;
    let restricted = id(Kind::Conversation, w.restricted);
    let private = id(Kind::Conversation, w.private);
    let shared = id(Kind::Conversation, w.shared);
    let vip = id(Kind::Inbox, w.vip);

    let (everything, _) = read_all(&w.api, w.api.admin, json!({}), 100).await;
    assert!(
        about(&everything, "conversationId", &restricted) >= 2,
        "started, received"
    );
    assert!(about(&everything, "conversationId", &private) >= 2);
    assert!(about(&everything, "inboxId", &vip) >= 4);
    let all_positions = positions(&everything);
    assert!(all_positions.windows(2).all(|p| p[0] < p[1]), "log order");

    let (carols, _) = read_all(&w.api, w.carol, json!({}), 100).await;
    assert_eq!(about(&carols, "conversationId", &restricted), 0);
    assert_eq!(
        about(&carols, "conversationId", &private),
        0,
        "Alice's private mail"
    );
    assert_eq!(about(&carols, "inboxId", &vip), 0, "not even VIP's setup");
    assert!(
        about(&carols, "conversationId", &shared) >= 3,
        "her own inbox's"
    );
    assert!(
        carols
            .iter()
            .any(|e| e["eventType"] == "UserCreated" && e["inboxId"].is_null()),
        "entries about no inbox are shown"
    );

    let (alices, _) = read_all(&w.api, w.alice, json!({}), 100).await;
    assert!(
        about(&alices, "conversationId", &private) >= 2,
        "her own private mail"
    );
    assert_eq!(about(&alices, "conversationId", &restricted), 0);

    let (auditors, _) = read_all(&w.api, w.auditor, json!({}), 100).await;
    assert!(
        about(&auditors, "conversationId", &restricted) >= 2,
        "every inbox"
    );
    assert_eq!(
        about(&auditors, "conversationId", &private),
        0,
        "private mail is its owner's and admins' only"
    );

    // Asking for what she cannot see is NOT_FOUND, as if it did not exist.
    let query = "query($filter: AuditFilter) { auditTrail(filter: $filter) { edges { node { position } } } }";
    for filter in [
        json!({"conversationId": restricted}),
        json!({"conversationId": private}),
        json!({"inboxId": vip}),
    ] {
        let reply = w.api.gql(w.carol, query, json!({"filter": filter})).await;
        assert_eq!(
            reply.error_code(),
            Some("NOT_FOUND"),
            "{filter}: {:#}",
            reply.body
        );
    }
    let reply = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"filter": {"conversationId": restricted}}),
        )
        .await;
    assert!(
        reply.data()["auditTrail"]["edges"]
            .as_array()
            .is_some_and(|e| e.len() >= 2)
    );

    // By event id and by correlation: the same rule.
    let hidden = everything
        .iter()
        .find(|e| e["conversationId"] == restricted)
        .expect("an entry of the restricted conversation");
    let by_id = "query($id: UUID!) { auditEntry(eventId: $id) { eventType conversationId } }";
    let carol_by_id = w
        .api
        .gql(w.carol, by_id, json!({"id": hidden["eventId"]}))
        .await;
    assert_eq!(carol_by_id.error_code(), Some("NOT_FOUND"));
    let admin_by_id = w
        .api
        .gql(w.api.admin, by_id, json!({"id": hidden["eventId"]}))
        .await;
    assert_eq!(
        admin_by_id.data()["auditEntry"]["conversationId"],
        restricted
    );
    let chain =
        "query($id: UUID!) { auditByCorrelation(correlationId: $id) { eventType correlationId } }";
    let variables = json!({"id": w.restricted_correlation.to_string()});
    let admin_chain = w.api.gql(w.api.admin, chain, variables.clone()).await;
    let types: Vec<&str> = admin_chain.data()["auditByCorrelation"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    assert!(
        types.contains(&"ConversationStarted") && types.contains(&"MessageReceived"),
        "{types:?}"
    );
    let carol_chain = w.api.gql(w.carol, chain, variables).await;
    assert_eq!(carol_chain.data()["auditByCorrelation"], json!([]));
}

#[tokio::test]
async fn analysts_are_forbidden_from_the_audit_trail() {
    let w = world().await;
    let (everything, _) = read_all(&w.api, w.api.admin, json!({}), 100).await;
    let event_id = everything[0]["eventId"].clone();
    for (query, variables) in [
        ("{ auditTrail { edges { node { position } } } }", json!({})),
        (
            "query($id: UUID!) { auditEntry(eventId: $id) { position } }",
            json!({"id": event_id}),
        ),
        (
            "query($id: UUID!) { auditByCorrelation(correlationId: $id) { position } }",
            json!({"id": w.restricted_correlation.to_string()}),
        ),
    ] {
        let reply = w.api.gql(w.analyst, query, variables).await;
        assert_eq!(
            reply.error_code(),
            Some("FORBIDDEN"),
            "{query}: {:#}",
            reply.body
        );
    }
}

#[tokio::test]
async fn pages_are_disjoint_and_consecutive_both_ways() {
    let w = world().await;
    let (everything, _) = read_all(&w.api, w.api.admin, json!({}), 100).await;
    let all = positions(&everything);
    assert!(all.len() > 20, "a trail worth paging: {}", all.len());

    let (paged, sizes) = read_all(&w.api, w.api.admin, json!({}), 7).await;
    assert_eq!(
        positions(&paged),
        all,
        "pages of 7 cover the trail once, in order"
    );
    assert!(
        sizes[..sizes.len() - 1].iter().all(|s| *s == 7),
        "{sizes:?}"
    );

    // Carol's pages: access hides entries, yet every page but the last is full.
    let (carols_whole, _) = read_all(&w.api, w.carol, json!({}), 100).await;
    let (carols, sizes) = read_all(&w.api, w.carol, json!({}), 5).await;
    assert_eq!(positions(&carols), positions(&carols_whole));
    assert!(
        sizes[..sizes.len() - 1].iter().all(|s| *s == 5),
        "{sizes:?}"
    );
    let unique: HashSet<u64> = positions(&carols).into_iter().collect();
    assert_eq!(unique.len(), carols.len(), "no entry twice");

    // Backward from the end: the last pages, each just before the previous one.
    let query = "query($last: Int, $before: String) { auditTrail(last: $last, before: $before) {
        edges { cursor node { position } } pageInfo { hasPreviousPage startCursor } } }";
    let tail = w.api.gql(w.api.admin, query, json!({"last": 4})).await;
    let tail = &tail.data()["auditTrail"];
    let tail_positions: Vec<u64> = tail["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["position"].as_u64())
        .collect();
    assert_eq!(tail_positions, all[all.len() - 4..]);
    assert_eq!(tail["pageInfo"]["hasPreviousPage"], true);
    let before = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"last": 4, "before": tail["pageInfo"]["startCursor"]}),
        )
        .await;
    let before_positions: Vec<u64> = before.data()["auditTrail"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["position"].as_u64())
        .collect();
    assert_eq!(before_positions, all[all.len() - 8..all.len() - 4]);

    // Carol backward: filled the same way, and just before each other.
    let carol_tail = w.api.gql(w.carol, query, json!({"last": 5})).await;
    let carol_tail = &carol_tail.data()["auditTrail"];
    let edge_positions = |page: &Value| -> Vec<u64> {
        page["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .filter_map(|e| e["node"]["position"].as_u64())
            .collect()
    };
    let hers = positions(&carols_whole);
    assert_eq!(edge_positions(carol_tail), hers[hers.len() - 5..]);
    let carol_before = w
        .api
        .gql(
            w.carol,
            query,
            json!({"last": 5, "before": carol_tail["pageInfo"]["startCursor"]}),
        )
        .await;
    assert_eq!(
        edge_positions(&carol_before.data()["auditTrail"]),
        hers[hers.len() - 10..hers.len() - 5]
    );

    let too_many = w
        .api
        .gql(
            w.api.admin,
            "{ auditTrail(first: 1000) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(too_many.error_code(), Some("BAD_USER_INPUT"));
    let bad_cursor = w
        .api
        .gql(
            w.api.admin,
            "{ auditTrail(first: 1, after: \"bm9wZQ\") { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(bad_cursor.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn entries_carry_actor_causation_and_filters_apply() {
    let w = world().await;
    // Carol's reply: filtered by actor and event type.
    let (replies, _) = read_all(
        &w.api,
        w.api.admin,
        json!({"actorId": id(Kind::User, w.carol), "eventType": "ReplySent"}),
        10,
    )
    .await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let reply = &replies[0];
    assert_eq!(reply["actor"]["kind"], "USER");
    assert_eq!(reply["actor"]["user"]["name"], "carol");
    assert_eq!(reply["conversationId"], id(Kind::Conversation, w.shared));
    assert!(
        reply["stream"]
            .as_str()
            .is_some_and(|s| s.starts_with("conversation-"))
    );
    // The payload comes from the store, at the entry's position.
    assert_eq!(reply["payload"]["body_text"], "Hi!", "{reply:#}");
    assert_eq!(reply["payload"]["conversation_id"], w.shared.to_string());

    // Everything the channels did, by kind; nothing by the system component "test" but setup.
    let (by_channels, _) = read_all(&w.api, w.api.admin, json!({"actorKind": "CHANNEL"}), 50).await;
    assert!(by_channels.iter().all(|e| e["actor"]["kind"] == "CHANNEL"));
    assert!(
        by_channels
            .iter()
            .any(|e| e["eventType"] == "MessageReceived")
    );
    let (by_test, _) = read_all(&w.api, w.api.admin, json!({"actorComponent": "test"}), 50).await;
    let kinds: HashSet<&str> = by_test
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    assert_eq!(kinds, HashSet::from(["OrganisationCreated", "UserCreated"]));

    // A period in the future holds nothing.
    let (future, _) = read_all(
        &w.api,
        w.api.admin,
        json!({"from": "2999-01-01T00:00:00Z"}),
        10,
    )
    .await;
    assert!(future.is_empty());
    let mismatch = w
        .api
        .gql(
            w.api.admin,
            "query($f: AuditFilter) { auditTrail(filter: $f) { edges { cursor } } }",
            json!({"f": {"actorKind": "BOT", "actorId": id(Kind::User, w.carol)}}),
        )
        .await;
    assert_eq!(mismatch.error_code(), Some("BAD_USER_INPUT"));

    // The correlation chain of the VIP message, each step naming its cause.
    let chain = w
        .api
        .gql(
            w.api.admin,
            "query($id: UUID!) { auditByCorrelation(correlationId: $id) {
                eventId causationId correlationId cause { eventId } } }",
            json!({"id": w.restricted_correlation.to_string()}),
        )
        .await;
    let chain = chain.data()["auditByCorrelation"]
        .as_array()
        .expect("a list")
        .clone();
    assert!(chain.len() >= 2);
    let correlation = w.restricted_correlation.to_string();
    assert!(
        chain
            .iter()
            .all(|e| e["correlationId"] == correlation.as_str())
    );
    // Events of one command share its causation (the command); a cause that is a command has
    // no entry.
    assert!(
        chain
            .iter()
            .all(|e| e["causationId"] == chain[0]["causationId"])
    );
    assert!(chain[0]["cause"].is_null());
}
