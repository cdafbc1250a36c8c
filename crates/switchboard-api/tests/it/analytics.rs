//! The analytics queries through GraphQL, on a store whose clock the tests set: exact response
//! times, access filtering before aggregation (an agent outside a restricted inbox gets nothing
//! of it), NOT_FOUND for an inbox or conversation the viewer may not see, breakdowns, live
//! figures, the drill-down list and per-conversation cycles, and the business-hours clock.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use proto_events::Actor;
use proto_events::clock::ManualClock;
use proto_events::event::{
    ChannelKind, Identity, InboundMessage, Member, OpeningInterval, Role, Weekday,
};
use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};
use switchboard_api::{ApiSettings, ApiState, router};
use switchboard_domain::channel::ChannelCommand;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_domain::setup::SetupCommand;
use switchboard_projector::ProjectionRuntime;
use switchboard_service::{Command, CommandMeta, CommandService, Outcome};
use switchboard_store::EventStore;
use switchboard_store_sqlite::{SqliteOptions, SqliteStore};
use tower::ServiceExt;
use uuid::Uuid;

use crate::support::{Reply, SECRET, TestApi};

/// An API whose command service runs on a [`ManualClock`], so response times are exact.
struct Clocked {
    router: Router,
    state: ApiState,
    service: Arc<CommandService>,
    projections: Arc<ProjectionRuntime>,
    clock: Arc<ManualClock>,
    admin: Uuid,
    _dir: tempfile::TempDir,
}

/// Monday 2 March 2026, 08:00 UTC (09:00 in Paris).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0)
        .single()
        .expect("valid instant")
}

impl Clocked {
    async fn start() -> Clocked {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn EventStore> = Arc::new(
            SqliteStore::open(dir.path().join("events"), SqliteOptions::default())
                .expect("open store"),
        );
        let clock = Arc::new(ManualClock::new(t0()));
        let service = Arc::new(
            CommandService::open(store.clone(), clock.clone())
                .await
                .expect("open service"),
        );
        let projections = Arc::new(
            ProjectionRuntime::start(
                store,
                dir.path().join("read-models"),
                switchboard_read_models::all(),
            )
            .expect("start projections"),
        );
        let state = ApiState::new(
            service.clone(),
            projections.clone(),
            ApiSettings::new(SECRET),
        );
        let api = Clocked {
            router: router(state.clone()),
            state,
            service,
            projections,
            clock,
            admin: Uuid::now_v7(),
            _dir: dir,
        };
        let system = Actor::System {
            component: "test".to_owned(),
        };
        api.run(
            system.clone(),
            Command::Setup(SetupCommand::CreateOrganisation {
                organisation_id: Uuid::now_v7(),
                name: "Acme".to_owned(),
                time_zone: "Europe/Paris".to_owned(),
            }),
        )
        .await;
        api.run(
            system,
            Command::Setup(SetupCommand::CreateUser {
                user_id: api.admin,
                email: "admin@acme.test".to_owned(),
                name: "Ada Admin".to_owned(),
                role: Role::SuperAdmin,
            }),
        )
        .await;
        api
    }

    /// Runs `command` as `actor` and waits until every read model includes it.
    async fn run(&self, actor: Actor, command: Command) -> Outcome {
        let name = command.name();
        let outcome = self
            .service
            .execute(CommandMeta::by(actor), command)
            .await
            .unwrap_or_else(|e| panic!("{name} failed: {e}"));
        self.projections
            .wait_for(
                outcome.last_position,
                tokio::time::Instant::now() + Duration::from_secs(10),
            )
            .await
            .expect("read models catch up");
        outcome
    }

    /// Runs a setup command as the admin.
    async fn setup(&self, command: SetupCommand) {
        self.run(Actor::User { id: self.admin }, Command::Setup(command))
            .await;
    }

    async fn user(&self, name: &str, role: Role) -> Uuid {
        let user_id = Uuid::now_v7();
        self.setup(SetupCommand::CreateUser {
            user_id,
            email: format!("{name}@acme.test"),
            name: name.to_owned(),
            role,
        })
        .await;
        user_id
    }

    /// A chat message from `visitor` on `channel`, at `at`; returns its conversation.
    async fn chat(&self, channel: Uuid, visitor: &str, at: DateTime<Utc>) -> Uuid {
        self.clock.set(at);
        let outcome = self
            .run(
                Actor::Channel { id: channel },
                Command::ReceiveMessage {
                    channel_id: channel,
                    message: Box::new(InboundMessage {
                        message_id: Uuid::now_v7(),
                        channel_id: channel,
                        channel_kind: ChannelKind::Chat,
                        provider_message_id: None,
                        from: Identity::ChatVisitor {
                            visitor_id: visitor.to_owned(),
                        },
                        from_name: None,
                        contact_id: None,
                        subject: None,
                        body_text: "Hello, anyone there?".to_owned(),
                        body_html: None,
                        email: None,
                        form_fields: vec![],
                        attachments: Vec::new(),
                        raw: None,
                    }),
                    signals: None,
                },
            )
            .await;
        outcome
            .stream
            .strip_prefix("conversation-")
            .and_then(|id| id.parse().ok())
            .expect("a conversation stream")
    }

    /// `user` acts on `conversation` at `at`.
    async fn act(
        &self,
        user: Uuid,
        conversation: Uuid,
        at: DateTime<Utc>,
        command: ConversationCommand,
    ) {
        self.clock.set(at);
        self.run(
            Actor::User { id: user },
            Command::Conversation {
                conversation_id: conversation,
                command: Box::new(command),
            },
        )
        .await;
    }

    async fn reply(&self, user: Uuid, conversation: Uuid, at: DateTime<Utc>) {
        self.act(
            user,
            conversation,
            at,
            ConversationCommand::SendReply {
                message_id: Uuid::now_v7(),
                body_text: "Here to help.".to_owned(),
                body_html: None,
                subject: None,
                attachments: Vec::new(),
            },
        )
        .await;
    }

    /// Sends a GraphQL request as `user`.
    async fn gql(&self, user: Uuid, query: &str, variables: Value) -> Reply {
        let token =
            self.state
                .keys()
                .mint(user, "someone@acme.test", Utc::now(), TimeDelta::hours(1));
        let request = Request::post("/graphql")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(
                json!({"query": query, "variables": variables}).to_string(),
            ))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).expect("a JSON body");
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// Two inboxes: Support (Alice and Carol are members) and VIP, restricted to team Tier 2 (Bob).
/// Conversation A in Support: the customer writes at 09:00, Alice replies 90 s later, closes at
/// 09:05. Conversation B in VIP: the customer writes at 09:10, Bob replies 30 s later.
struct World {
    api: Clocked,
    alice: Uuid,
    bob: Uuid,
    carol: Uuid,
    support: Uuid,
    vip: Uuid,
    support_chat: Uuid,
    a: Uuid,
    b: Uuid,
}

async fn world() -> World {
    let api = Clocked::start().await;
    let alice = api.user("alice", Role::Agent).await;
    let bob = api.user("bob", Role::Agent).await;
    let carol = api.user("carol", Role::Agent).await;
    let (support, vip, tier2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (support_chat, vip_chat) = (Uuid::now_v7(), Uuid::now_v7());
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
        api.setup(command).await;
    }
    for (channel_id, inbox_id, name) in [
        (support_chat, support, "Website"),
        (vip_chat, vip, "VIP chat"),
    ] {
        api.run(
            Actor::User { id: api.admin },
            Command::Channel(ChannelCommand::ConnectChat {
                channel_id,
                inbox_id,
                name: name.to_owned(),
            }),
        )
        .await;
    }
    let nine = t0() + TimeDelta::hours(1);
    let a = api.chat(support_chat, "visitor-a", nine).await;
    api.reply(alice, a, nine + TimeDelta::seconds(90)).await;
    api.act(
        alice,
        a,
        nine + TimeDelta::minutes(5),
        ConversationCommand::Close,
    )
    .await;
    let b = api
        .chat(vip_chat, "visitor-b", nine + TimeDelta::minutes(10))
        .await;
    api.reply(
        bob,
        b,
        nine + TimeDelta::minutes(10) + TimeDelta::seconds(30),
    )
    .await;
    World {
        api,
        alice,
        bob,
        carol,
        support,
        vip,
        support_chat,
        a,
        b,
    }
}

const STATS: &str = "count mean median p90 min max";

fn id(kind: Kind, uuid: Uuid) -> String {
    ids::encode(kind, uuid).0
}

#[tokio::test]
async fn response_times_are_exact_and_cover_only_what_the_viewer_sees() {
    let w = world().await;
    let analyst = w.api.user("ann", Role::Analyst).await;
    let query = format!(
        "query($filter: AnalyticsFilter) {{ analytics(filter: $filter) {{ timeBasis
            firstResponseTime {{ {STATS} }} timeToClose {{ {STATS} }} responseTime {{ count mean }}
            agentResponseTime {{ count }} botFirstResponseTime {{ count }} }} }}"
    );
    let admin = w.api.gql(w.api.admin, &query, json!({})).await;
    let all = &admin.data()["analytics"];
    assert_eq!(all["timeBasis"], "CALENDAR");
    assert_eq!(
        all["firstResponseTime"],
        json!({"count": 2, "mean": 60.0, "median": 60.0, "p90": 90.0, "min": 30.0, "max": 90.0}),
        "90 s in Support and 30 s in VIP"
    );
    assert_eq!(all["timeToClose"]["count"], 1);
    assert_eq!(all["timeToClose"]["mean"], 300.0);
    assert_eq!(all["responseTime"], json!({"count": 2, "mean": 60.0}));
    assert_eq!(all["agentResponseTime"]["count"], 0, "nobody was assigned");
    assert_eq!(all["botFirstResponseTime"]["count"], 0);

    let analyst = w.api.gql(analyst, &query, json!({})).await;
    assert_eq!(
        analyst.data()["analytics"]["firstResponseTime"]["count"],
        2,
        "analysts see every inbox's aggregates"
    );

    let support_only = w
        .api
        .gql(
            w.api.admin,
            &query,
            json!({"filter": {"inboxId": id(Kind::Inbox, w.support)}}),
        )
        .await;
    assert_eq!(
        support_only.data()["analytics"]["firstResponseTime"]["mean"],
        90.0
    );

    // Carol is in Support only: VIP's conversation is left out before aggregating.
    let carol = w.api.gql(w.carol, &query, json!({})).await;
    let mine = &carol.data()["analytics"];
    assert_eq!(
        mine["firstResponseTime"],
        json!({"count": 1, "mean": 90.0, "median": 90.0, "p90": 90.0, "min": 90.0, "max": 90.0})
    );
    assert_eq!(mine["responseTime"]["count"], 1);
    let bob = w.api.gql(w.bob, &query, json!({})).await;
    assert_eq!(
        bob.data()["analytics"]["firstResponseTime"]["mean"],
        30.0,
        "Bob sees VIP only"
    );
    // Asking for VIP explicitly is NOT_FOUND for her, as if it did not exist.
    let vip = w
        .api
        .gql(
            w.carol,
            &query,
            json!({"filter": {"inboxId": id(Kind::Inbox, w.vip)}}),
        )
        .await;
    assert_eq!(vip.error_code(), Some("NOT_FOUND"), "{:#}", vip.body);
    // Even filtering on Bob, her figures stay empty.
    let by_bob = w
        .api
        .gql(
            w.carol,
            &query,
            json!({"filter": {"agentId": id(Kind::User, w.bob)}}),
        )
        .await;
    assert_eq!(
        by_bob.data()["analytics"]["firstResponseTime"],
        json!({"count": 0, "mean": null, "median": null, "p90": null, "min": null, "max": null})
    );
}

#[tokio::test]
async fn filters_narrow_by_agent_channel_kind_and_period() {
    let w = world().await;
    let query = "query($filter: AnalyticsFilter) { analytics(filter: $filter) {
        firstResponseTime { count mean } } }";
    let frt = |reply: Reply| reply.data()["analytics"]["firstResponseTime"].clone();
    let by_alice = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"filter": {"agentId": id(Kind::User, w.alice)}}),
        )
        .await;
    assert_eq!(frt(by_alice), json!({"count": 1, "mean": 90.0}));
    let chats = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"filter": {"channelKind": "CHAT"}}),
        )
        .await;
    assert_eq!(frt(chats)["count"], 2);
    let mails = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"filter": {"channelKind": "EMAIL"}}),
        )
        .await;
    assert_eq!(frt(mails)["count"], 0);
    // The period is by the interval's start: B's customer wrote at 09:10.
    let later = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"filter": {"from": "2026-03-02T09:05:00Z", "until": "2026-03-03T00:00:00Z"}}),
        )
        .await;
    assert_eq!(frt(later), json!({"count": 1, "mean": 30.0}));
    let backwards = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"filter": {"from": "2026-03-03T00:00:00Z", "until": "2026-03-02T00:00:00Z"}}),
        )
        .await;
    assert_eq!(backwards.error_code(), Some("BAD_USER_INPUT"));
    let wrong_kind = w
        .api
        .gql(
            w.api.admin,
            query,
            json!({"filter": {"agentId": id(Kind::Inbox, w.support)}}),
        )
        .await;
    assert_eq!(wrong_kind.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn breakdowns_group_visible_measurements() {
    let w = world().await;
    let query = "query($by: Dimension!) { analytics {
        breakdown(metric: FIRST_RESPONSE, by: $by) { key label stats { count mean } } } }";
    let rows = |reply: Reply| reply.data()["analytics"]["breakdown"].clone();
    let by_inbox = w.api.gql(w.api.admin, query, json!({"by": "INBOX"})).await;
    assert_eq!(
        rows(by_inbox),
        json!([
            {"key": id(Kind::Inbox, w.support), "label": "Support", "stats": {"count": 1, "mean": 90.0}},
            {"key": id(Kind::Inbox, w.vip), "label": "VIP", "stats": {"count": 1, "mean": 30.0}},
        ])
    );
    let carol_by_inbox = w.api.gql(w.carol, query, json!({"by": "INBOX"})).await;
    assert_eq!(
        rows(carol_by_inbox),
        json!([{"key": id(Kind::Inbox, w.support), "label": "Support", "stats": {"count": 1, "mean": 90.0}}]),
        "no VIP row for Carol"
    );
    let by_agent = w.api.gql(w.api.admin, query, json!({"by": "AGENT"})).await;
    assert_eq!(
        rows(by_agent),
        json!([
            {"key": id(Kind::User, w.alice), "label": "alice", "stats": {"count": 1, "mean": 90.0}},
            {"key": id(Kind::User, w.bob), "label": "bob", "stats": {"count": 1, "mean": 30.0}},
        ])
    );
    let by_team = w.api.gql(w.api.admin, query, json!({"by": "TEAM"})).await;
    let by_team = rows(by_team);
    assert_eq!(by_team[0]["label"], "Tier 2", "{by_team}");
    assert_eq!(by_team[0]["stats"]["mean"], 30.0);
    assert_eq!(by_team[1]["key"], "none", "Alice is in no team");
    let by_week = w.api.gql(w.api.admin, query, json!({"by": "WEEK"})).await;
    assert_eq!(
        rows(by_week),
        json!([{"key": "2026-03-02", "label": "2026-W10", "stats": {"count": 2, "mean": 60.0}}])
    );
    let by_month = w.api.gql(w.api.admin, query, json!({"by": "MONTH"})).await;
    assert_eq!(rows(by_month)[0]["label"], "2026-03");
}

/// Without opening hours, periods are the organisation's own days (Europe/Paris here), not UTC's.
#[tokio::test]
async fn periods_are_the_organisations_days_without_opening_hours() {
    let w = world().await;
    // 23:30 UTC on Tuesday 3 March is 00:30 on Wednesday 4 March in Paris.
    let late = Utc
        .with_ymd_and_hms(2026, 3, 3, 23, 30, 0)
        .single()
        .expect("valid instant");
    let c = w.api.chat(w.support_chat, "visitor-late", late).await;
    w.api.reply(w.alice, c, late + TimeDelta::seconds(45)).await;
    let query =
        "{ analytics { breakdown(metric: FIRST_RESPONSE, by: DAY) { key stats { count mean } } } }";
    let by_day = w.api.gql(w.api.admin, query, json!({})).await;
    assert_eq!(
        by_day.data()["analytics"]["breakdown"],
        json!([
            {"key": "2026-03-02", "stats": {"count": 2, "mean": 60.0}},
            {"key": "2026-03-04", "stats": {"count": 1, "mean": 45.0}},
        ])
    );
}

#[tokio::test]
async fn replies_and_live_figures_follow_access() {
    let w = world().await;
    let query = "{ analytics {
        repliesPerAgent { agent { name } conversations replies }
        live { inbox { name } open unassigned awaitingFirstReply waitingLongestSince } } }";
    let admin = w.api.gql(w.api.admin, query, json!({})).await;
    let all = &admin.data()["analytics"];
    let mut names: Vec<&str> = all["repliesPerAgent"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["agent"]["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(all["repliesPerAgent"][0]["replies"], 1);
    let live = all["live"].as_array().expect("a list");
    let vip = live
        .iter()
        .find(|l| l["inbox"]["name"] == "VIP")
        .expect("VIP figures");
    assert_eq!(vip["open"], 1);
    assert_eq!(vip["unassigned"], 1);
    assert_eq!(vip["awaitingFirstReply"], 0, "Bob answered");
    let support = live
        .iter()
        .find(|l| l["inbox"]["name"] == "Support")
        .expect("Support figures");
    assert_eq!(support["open"], 0, "A is closed");

    let carol = w.api.gql(w.carol, query, json!({})).await;
    let mine = &carol.data()["analytics"];
    assert_eq!(
        mine["repliesPerAgent"],
        json!([{"agent": {"name": "alice"}, "conversations": 1, "replies": 1}])
    );
    let inboxes: Vec<&Value> = mine["live"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|l| &l["inbox"]["name"])
        .collect();
    assert_eq!(inboxes, [&json!("Support")]);
}

#[tokio::test]
async fn drill_down_lists_cycles_and_conversations_by_access() {
    let w = world().await;
    let list = "query($after: String) { analytics { conversations(first: 1, after: $after) {
        edges { cursor node { conversationId cycle firstResponseTime timeToClose
                              measurements { metric seconds agent { name } } } }
        pageInfo { hasNextPage hasPreviousPage endCursor } } } }";
    let first = w.api.gql(w.api.admin, list, json!({})).await;
    let page = &first.data()["analytics"]["conversations"];
    assert_eq!(
        page["edges"][0]["node"]["conversationId"],
        id(Kind::Conversation, w.a)
    );
    assert_eq!(page["edges"][0]["node"]["firstResponseTime"], 90);
    assert_eq!(page["edges"][0]["node"]["timeToClose"], 300);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let second = w
        .api
        .gql(
            w.api.admin,
            list,
            json!({"after": page["pageInfo"]["endCursor"]}),
        )
        .await;
    let next = &second.data()["analytics"]["conversations"];
    assert_eq!(
        next["edges"][0]["node"]["conversationId"],
        id(Kind::Conversation, w.b)
    );
    assert_eq!(next["pageInfo"]["hasNextPage"], false);
    assert_eq!(next["pageInfo"]["hasPreviousPage"], true);

    let carol = w.api.gql(w.carol, list, json!({})).await;
    let hers = &carol.data()["analytics"]["conversations"];
    assert_eq!(hers["edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        hers["pageInfo"]["hasNextPage"], false,
        "B is not hers to see"
    );

    let cycles = "query($id: ID!) { conversationMetrics(conversationId: $id) {
        conversationId open currentCycle
        cycles { cycle awaiting firstResponseSeconds firstResponseBusinessSeconds
                 timeToCloseSeconds humanReplies firstResponder { name } } } }";
    let a = w
        .api
        .gql(w.carol, cycles, json!({"id": id(Kind::Conversation, w.a)}))
        .await;
    assert_eq!(
        a.data()["conversationMetrics"]["cycles"],
        json!([{"cycle": 1, "awaiting": false, "firstResponseSeconds": 90,
                "firstResponseBusinessSeconds": 90, "timeToCloseSeconds": 300,
                "humanReplies": 1, "firstResponder": {"name": "alice"}}]),
        "without opening hours, business time is all time"
    );
    assert_eq!(a.data()["conversationMetrics"]["open"], false);
    let b = w
        .api
        .gql(w.carol, cycles, json!({"id": id(Kind::Conversation, w.b)}))
        .await;
    assert_eq!(b.error_code(), Some("NOT_FOUND"), "{:#}", b.body);
    let b = w
        .api
        .gql(
            w.api.admin,
            cycles,
            json!({"id": id(Kind::Conversation, w.b)}),
        )
        .await;
    assert_eq!(
        b.data()["conversationMetrics"]["cycles"][0]["firstResponseSeconds"],
        30
    );
}

#[tokio::test]
async fn business_hours_count_only_opening_time() {
    let w = world().await;
    let nine = NaiveTime::from_hms_opt(9, 0, 0).expect("time");
    let five = NaiveTime::from_hms_opt(17, 0, 0).expect("time");
    w.api
        .setup(SetupCommand::SetBusinessHours {
            time_zone: "Europe/Paris".to_owned(),
            weekly: [
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ]
            .into_iter()
            .map(|day| OpeningInterval {
                day,
                opens: nine,
                closes: five,
            })
            .collect(),
            holidays: vec![],
        })
        .await;
    // Written at 16:59 in Paris on Monday, answered at 09:01 on Tuesday: two business minutes.
    let support_chat = w.support_chat;
    let evening = Utc
        .with_ymd_and_hms(2026, 3, 2, 15, 59, 0)
        .single()
        .expect("instant");
    let late = w.api.chat(support_chat, "visitor-late", evening).await;
    let morning = Utc
        .with_ymd_and_hms(2026, 3, 3, 8, 1, 0)
        .single()
        .expect("instant");
    w.api.reply(w.alice, late, morning).await;

    let query = "query($filter: AnalyticsFilter) { analytics(filter: $filter) {
        timeBasis firstResponseTime { count max } } }";
    let filter = |business: bool| {
        json!({"filter": {"agentId": id(Kind::User, w.alice), "from": "2026-03-02T15:00:00Z",
                          "businessHours": business}})
    };
    let calendar = w.api.gql(w.api.admin, query, filter(false)).await;
    assert_eq!(
        calendar.data()["analytics"]["firstResponseTime"],
        json!({"count": 1, "max": f64::from(16 * 3600 + 120)})
    );
    let business = w.api.gql(w.api.admin, query, filter(true)).await;
    assert_eq!(business.data()["analytics"]["timeBasis"], "BUSINESS");
    assert_eq!(
        business.data()["analytics"]["firstResponseTime"],
        json!({"count": 1, "max": 120.0})
    );
    let cycles = w
        .api
        .gql(
            w.carol,
            "query($id: ID!) { conversationMetrics(conversationId: $id) {
                cycles { firstResponseSeconds firstResponseBusinessSeconds } } }",
            json!({"id": id(Kind::Conversation, late)}),
        )
        .await;
    assert_eq!(
        cycles.data()["conversationMetrics"]["cycles"],
        json!([{"firstResponseSeconds": 16 * 3600 + 120, "firstResponseBusinessSeconds": 120}])
    );
}

/// Counts are a way of seeing: an agent's replies per agent, live figures and statistics leave
/// out another user's private conversation in an inbox the agent is in; its owner and admins
/// count it.
#[tokio::test]
async fn aggregates_leave_out_other_users_private_conversations() {
    let w = crate::audit::world().await;
    crate::audit::run(
        &w.api,
        Actor::User { id: w.alice },
        Command::Conversation {
            conversation_id: w.private,
            command: Box::new(ConversationCommand::SendReply {
                message_id: Uuid::now_v7(),
                body_text: "Thanks, friend".to_owned(),
                body_html: None,
                subject: None,
                attachments: Vec::new(),
            }),
        },
    )
    .await;
    let query = "{ analytics { firstResponseTime { count }
        repliesPerAgent { agentId replies } live { inbox { name } open } } }";
    let figures = |analytics: &Value| {
        let mut replies: Vec<(String, i64)> = analytics["repliesPerAgent"]
            .as_array()
            .expect("replies")
            .iter()
            .map(|r| {
                let agent = r["agentId"].as_str().expect("an id").to_owned();
                (agent, r["replies"].as_i64().expect("a count"))
            })
            .collect();
        replies.sort();
        let support = analytics["live"]
            .as_array()
            .expect("live figures")
            .iter()
            .find(|l| l["inbox"]["name"] == "Support")
            .map(|l| l["open"].as_i64().expect("a count"));
        let answered = analytics["firstResponseTime"]["count"].as_i64();
        (replies, support, answered)
    };
    let agent = |user: Uuid| ids::encode(Kind::User, user).0;
    let mut both = vec![(agent(w.alice), 1), (agent(w.carol), 1)];
    both.sort();

    let carols = w.api.gql(w.carol, query, json!({})).await;
    assert_eq!(
        figures(&carols.data()["analytics"]),
        (vec![(agent(w.carol), 1)], Some(1), Some(1)),
        "Carol's figures count Alice's private mail"
    );
    for user in [w.alice, w.api.admin] {
        let reply = w.api.gql(user, query, json!({})).await;
        assert_eq!(
            figures(&reply.data()["analytics"]),
            (both.clone(), Some(2), Some(2)),
            "the owner and admins count the private conversation"
        );
    }
}

/// Each analytics field that reads every measurement of a metric costs a scan in the query's
/// complexity: 30 aliases of one (within the alias limit) are refused before anything runs,
/// while a whole dashboard passes.
#[tokio::test]
async fn analytics_fields_are_priced_by_what_they_scan() {
    let api = TestApi::start().await;
    let reply = api
        .aliased(api.admin, 30, "analytics { firstResponseTime { count } }")
        .await;
    assert_eq!(
        reply.error_code(),
        Some("BAD_USER_INPUT"),
        "{:#}",
        reply.body
    );
    assert!(reply.error_says("complex"), "{:#}", reply.body);
    assert!(reply.body["data"].is_null(), "{:#}", reply.body);

    let dashboard = format!(
        "{{ analytics(filter: {{businessHours: true}}) {{ timeBasis
            firstResponseTime {{ {STATS} }} agentResponseTime {{ {STATS} }}
            responseTime {{ {STATS} }} timeToClose {{ {STATS} }} botFirstResponseTime {{ {STATS} }}
            repliesPerAgent {{ agentId conversations replies }}
            botPerformance {{ botId conversations handedOff closedWithoutHuman
                firstResponseTime {{ count mean }} }}
            live {{ inboxId open unassigned awaitingFirstReply waitingLongestSince }}
            breakdown(metric: FIRST_RESPONSE, by: DAY) {{ key label stats {{ count mean }} }}
            conversations(first: 20) {{ edges {{ node {{ conversationId firstResponseTime
                timeToClose }} }} }} }} }}"
    );
    let reply = api.gql(api.admin, &dashboard, json!({})).await;
    assert_eq!(reply.data()["analytics"]["timeBasis"], "BUSINESS");
}
