//! The live feed of subscriptions: starting from what a client read (`after`), surviving a
//! failing store feed or ending with UNAVAILABLE, and what it costs per subscriber.
//!
//! The store's feed is made to fail for real: [`Faulty`] wraps the real SQLite store and, while
//! its switch is down, ends every catch-up subscription with an error (and refuses new ones).
//! The projections keep the unwrapped store, so only the API's feed sees the fault.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use proto_events::event::Role;
use serde_json::json;
use switchboard_api::Limits;
use switchboard_api::ids::{self, Kind};
use switchboard_store::{
    AppendResult, Direction, EventStore, EventStream, ExpectedVersion, NewEvent, Origin, Position,
    RecordedEvent, StoreError, StreamFrom,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::subscriptions::{Socket, connect, error_code, next, subscribe};
use crate::support::TestApi;

/// Turns a [`Faulty`] store's feed off and on, and counts the failures it caused.
#[derive(Debug)]
struct Switch {
    down: watch::Sender<bool>,
    failures: watch::Sender<usize>,
}

impl Switch {
    fn new() -> Arc<Switch> {
        Arc::new(Switch {
            down: watch::channel(false).0,
            failures: watch::channel(0).0,
        })
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// Waits until the feed has failed at least `count` times.
    async fn failed(&self, count: usize) {
        let mut failures = self.failures.subscribe();
        tokio::time::timeout(Duration::from_secs(10), failures.wait_for(|n| *n >= count))
            .await
            .expect("the feed fails within 10 s")
            .expect("the switch is alive");
    }

    fn fault(&self) -> StoreError {
        self.failures.send_modify(|n| *n += 1);
        StoreError::backend(std::io::Error::other("injected fault: the feed is down"))
    }
}

/// The real store, whose catch-up subscriptions fail while the switch is down.
#[derive(Debug)]
struct Faulty {
    store: Arc<dyn EventStore>,
    switch: Arc<Switch>,
}

#[async_trait]
impl EventStore for Faulty {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.store.append(stream, expected, events).await
    }

    async fn restore(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<(NewEvent, Origin)>,
    ) -> Result<AppendResult, StoreError> {
        self.store.restore(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        direction: Direction,
        from: StreamFrom,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream, direction, from, limit).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(after, limit).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        self.store.stream_version(stream).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.store.head().await
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        let switch = self.switch.clone();
        if *switch.down.borrow() {
            return futures::stream::iter([Err(switch.fault())]).boxed();
        }
        let mut down = switch.down.subscribe();
        let broken = async move {
            let _ = down.wait_for(|down| *down).await;
        };
        let failure = futures::stream::once(async move { Err(switch.fault()) });
        self.store
            .subscribe_all(after)
            .take_until(broken)
            .chain(failure)
            .boxed()
    }

    fn max_append_bytes(&self) -> usize {
        self.store.max_append_bytes()
    }
    fn write_index(&self) -> Arc<dyn switchboard_store::WriteIndex> {
        self.store.write_index()
    }

    fn blobs(&self) -> Arc<dyn switchboard_store::BlobStore> {
        self.store.blobs()
    }

    fn secrets(&self) -> Arc<dyn switchboard_store::SecretStore> {
        self.store.secrets()
    }
}

/// An API whose feed fails while `switch` is down.
async fn faulty_api(switch: &Arc<Switch>, feed_recovery: Duration) -> TestApi {
    let switch = switch.clone();
    let limits = Limits {
        feed_recovery,
        ..Limits::default()
    };
    TestApi::with_store(limits, move |store| Arc::new(Faulty { store, switch })).await
}

/// The consistency token of what `user` reads now.
async fn read_token(api: &TestApi, user: Uuid) -> String {
    let reply = api.gql(user, "{ consistencyToken }", json!({})).await;
    reply.data()["consistencyToken"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// A connection of `user`, acknowledged.
async fn connected(api: &TestApi, addr: std::net::SocketAddr, user: Uuid) -> Socket {
    let token = format!("Bearer {}", api.token(user));
    let mut socket = connect(addr, json!({"Authorization": token})).await;
    assert_eq!(
        next(&mut socket).await.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    socket
}

const INBOX_ACTIVITY: &str = "subscription($id: ID!, $after: String) {
    inboxActivity(inboxId: $id, after: $after) {
        eventType position conversation { lastMessagePreview } } }";

/// A new connection of the admin, subscribed (as "1") to `inbox`'s activity after `token`.
async fn inbox_activity(
    api: &TestApi,
    addr: std::net::SocketAddr,
    inbox: Uuid,
    token: &str,
) -> Socket {
    let mut socket = connected(api, addr, api.admin).await;
    let variables = json!({"id": ids::encode(Kind::Inbox, inbox).0, "after": token});
    subscribe(&mut socket, "1", INBOX_ACTIVITY, variables).await;
    socket
}

/// The next `inboxActivity` update with a message preview (other events of the
/// conversation are skipped): `(position, preview)`.
async fn next_message(socket: &mut Socket) -> (u64, String) {
    loop {
        let message = next(socket).await.expect("an update");
        assert_eq!(message["type"], "next", "{message}");
        let update = &message["payload"]["data"]["inboxActivity"];
        assert!(update.is_object(), "{message}");
        if update["eventType"] == "MessageReceived" {
            let preview = update["conversation"]["lastMessagePreview"].as_str();
            return (
                update["position"].as_u64().expect("a position"),
                preview.unwrap_or_default().to_owned(),
            );
        }
    }
}

#[tokio::test]
async fn a_change_between_a_query_and_the_subscription_is_delivered() {
    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let addr = api.serve().await;
    let inbox_id = ids::encode(Kind::Inbox, inbox).0;

    // The client reads, then a change is committed before it subscribes.
    let token = read_token(&api, api.admin).await;
    let between = api.chat(channel, "visitor-1", "Between").await;
    api.settle(&between).await;

    let mut socket = inbox_activity(&api, addr, inbox, &token).await;
    let (first, preview) = next_message(&mut socket).await;
    assert_eq!(first, between.last_position.0, "the change made in between");
    assert_eq!(preview, "Between");
    // Then live, with nothing skipped or repeated.
    let later = api.chat(channel, "visitor-1", "Later").await;
    let (second, preview) = next_message(&mut socket).await;
    assert_eq!((second, preview.as_str()), (later.last_position.0, "Later"));

    // Without `after` nothing from before is replayed; a token not from this server is
    // refused naming the argument.
    subscribe(
        &mut socket,
        "2",
        INBOX_ACTIVITY,
        json!({"id": inbox_id, "after": "c1.forged"}),
    )
    .await;
    loop {
        let message = next(&mut socket).await.expect("an answer");
        if message["id"] == "2" {
            assert_eq!(error_code(&message), Some("BAD_USER_INPUT"), "{message}");
            break;
        }
    }
}

#[tokio::test]
async fn the_live_feed_follows_the_store_again_after_its_feed_failed() {
    let switch = Switch::new();
    let api = faulty_api(&switch, Duration::from_secs(60)).await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let addr = api.serve().await;
    let token = read_token(&api, api.admin).await;
    let mut socket = inbox_activity(&api, addr, inbox, &token).await;
    let before = api.chat(channel, "visitor-1", "Before").await;
    assert_eq!(next_message(&mut socket).await.0, before.last_position.0);

    // The feed fails, and fails again when followed anew; meanwhile a message comes in.
    switch.set_down(true);
    switch.failed(2).await;
    let during = api.chat(channel, "visitor-1", "During").await;
    switch.set_down(false);
    let (position, preview) = next_message(&mut socket).await;
    assert_eq!(
        (position, preview.as_str()),
        (during.last_position.0, "During"),
        "the message committed while the feed was down arrives once it is back"
    );
    let after = api.chat(channel, "visitor-1", "After").await;
    assert_eq!(next_message(&mut socket).await.0, after.last_position.0);
}

#[tokio::test]
async fn subscriptions_end_with_unavailable_when_the_feed_does_not_recover() {
    let switch = Switch::new();
    let api = faulty_api(&switch, Duration::from_millis(300)).await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let addr = api.serve().await;
    let inbox_id = ids::encode(Kind::Inbox, inbox).0;
    let token = read_token(&api, api.admin).await;
    let mut socket = inbox_activity(&api, addr, inbox, &token).await;
    let before = api.chat(channel, "visitor-1", "Before").await;
    assert_eq!(next_message(&mut socket).await.0, before.last_position.0);

    switch.set_down(true);
    let ended = next(&mut socket).await.expect("an error, not silence");
    assert_eq!(error_code(&ended), Some("UNAVAILABLE"), "{ended}");
    let complete = next(&mut socket)
        .await
        .expect("the end of the subscription");
    assert_eq!(complete["type"], "complete", "{complete}");

    // Once the store's feed is back, a new subscription starts a new feed and misses nothing
    // after its token.
    switch.set_down(false);
    let token = read_token(&api, api.admin).await;
    let again = api.chat(channel, "visitor-1", "Again").await;
    subscribe(
        &mut socket,
        "2",
        INBOX_ACTIVITY,
        json!({"id": inbox_id, "after": token}),
    )
    .await;
    assert_eq!(next_message(&mut socket).await.0, again.last_position.0);
}

/// The `switchboard_subscription_reads_total` counter of `/metrics`.
async fn subscription_reads(api: &TestApi) -> u64 {
    api.counter("switchboard_subscription_reads_total").await
}

/// Comments on `conversation` mentioning `users`, and waits until every socket has it: once a
/// subscriber has it, it has judged every event before it (updates come in log order).
async fn mention_all(api: &TestApi, conversation: &str, users: &[Uuid], sockets: &mut [Socket]) {
    let mentions: Vec<String> = users
        .iter()
        .map(|&u| ids::encode(Kind::User, u).0)
        .collect();
    let comment = api
        .gql(
            api.admin,
            "mutation($input: AddCommentInput!) { addComment(input: $input) {
                userErrors { message } } }",
            json!({"input": {"conversationId": conversation, "bodyText": "Look",
                             "mentionIds": mentions}}),
        )
        .await;
    assert_eq!(
        comment.data()["addComment"]["userErrors"],
        json!([]),
        "{:#}",
        comment.body
    );
    for socket in sockets {
        let update = next(socket).await.expect("the mention");
        assert_eq!(
            update["payload"]["data"]["viewerEvents"]["reason"], "MENTIONED",
            "new messages of unassigned conversations are not sent: {update}"
        );
    }
}

/// Every inbound message concerns every `viewerEvents` subscriber until it is known to be
/// assigned to them; the conversation is read once per event however many subscribe.
#[tokio::test]
async fn viewer_events_read_each_event_once_whatever_the_number_of_subscribers() {
    let api = TestApi::start().await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let addr = api.serve().await;
    let mut admins = Vec::new();
    for n in 0..8 {
        admins.push(api.user(&format!("admin{n}@acme.test"), Role::Admin).await);
    }
    let mut reads = Vec::new();
    for subscribers in [1, 8] {
        let visitor = format!("visitor-{subscribers}");
        let started = api.chat(channel, &visitor, "Hello").await;
        let conversation = started
            .stream
            .strip_prefix("conversation-")
            .map(|id| ids::encode(Kind::Conversation, id.parse().expect("an id")).0)
            .expect("a conversation");
        let token = read_token(&api, api.admin).await;
        let users = &admins[..subscribers];
        let mut sockets = Vec::new();
        for &admin in users {
            let mut socket = connected(&api, addr, admin).await;
            subscribe(
                &mut socket,
                "v",
                "subscription($after: String) { viewerEvents(after: $after) { reason } }",
                json!({"after": token}),
            )
            .await;
            sockets.push(socket);
        }
        // Every subscription is past what it replays and on the live feed.
        mention_all(&api, &conversation, users, &mut sockets).await;
        let before = subscription_reads(&api).await;
        for n in 0..5 {
            api.chat(channel, &visitor, &format!("Message {n}")).await;
        }
        mention_all(&api, &conversation, users, &mut sockets).await;
        reads.push(subscription_reads(&api).await - before);
    }
    assert_eq!(reads[0], 6, "five messages and a comment, one read each");
    assert_eq!(
        reads[1], reads[0],
        "eight subscribers cost the read model what one does"
    );
}

/// A subscriber too slow for the live feed's buffer (here two events) reads what it missed from
/// the store and goes on: every change arrives, in order, none twice, and the subscription does
/// not end.
#[tokio::test]
async fn a_subscriber_too_slow_for_the_live_buffer_misses_nothing() {
    let api = TestApi::with_limits(Limits {
        live_buffer: 2,
        ..Limits::default()
    })
    .await;
    let inbox = api.inbox("Support").await;
    let channel = api.chat_channel(inbox).await;
    let addr = api.serve().await;
    let token = read_token(&api, api.admin).await;
    let mut socket = connected(&api, addr, api.admin).await;
    // Each update carries the whole thread, so a client that does not read fills the
    // connection's buffers within a few updates, and the server stops taking from the feed.
    subscribe(
        &mut socket,
        "1",
        "subscription($id: ID!, $after: String) { inboxActivity(inboxId: $id, after: $after) {
            position conversation { timeline(first: 100) { nodes { bodyText } } } } }",
        json!({"id": ids::encode(Kind::Inbox, inbox).0, "after": token}),
    )
    .await;
    let body = "x".repeat(32 * 1024);
    let mut written = Vec::new();
    for n in 0..40 {
        let sent = api.chat(channel, "visitor-1", &format!("{n} {body}")).await;
        written.extend(sent.first_position.0..=sent.last_position.0);
    }
    let last = *written.last().expect("events written");

    let mut received = Vec::new();
    while received.last().is_none_or(|&p| p < last) {
        let message = next(&mut socket).await.expect("an update");
        assert_eq!(message["type"], "next", "{:.300}", message.to_string());
        let update = &message["payload"]["data"]["inboxActivity"];
        assert!(update.is_object(), "{:.300}", message.to_string());
        received.push(update["position"].as_u64().expect("a position"));
    }
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice: {received:?}"
    );
    let missing: Vec<_> = written.iter().filter(|p| !received.contains(p)).collect();
    assert!(missing.is_empty(), "skipped: {missing:?}");
}
