//! Mutations through GraphQL, one module per area of the write side, with the helpers they
//! share: sending a mutation with its common payload fields, reading ids, and a small
//! organisation to work in.
//!
//! Payload objects are read from the read models after the write (the API waits for them), and
//! later queries carry the mutation's consistency token, so nothing here sleeps.

mod channel;
mod contact;
mod conversation;
mod record;
mod setup;

use async_graphql::ID;
use proto_events::event::Role;
use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};
use switchboard_store::Position;
use uuid::Uuid;

use crate::support::{Reply, TestApi};

/// The fields every payload has, selected by [`mutate`].
const COMMON: &str =
    "clientMutationId userErrors { field message code } version consistencyToken replayed";

/// The GraphQL input type of mutation `name`.
fn input_type(name: &str) -> String {
    match name {
        "addTeamMember" | "removeTeamMember" => "TeamMemberInput".to_owned(),
        "addInboxMember" | "removeInboxMember" => "InboxMemberInput".to_owned(),
        "unassignConversation"
        | "closeConversation"
        | "reopenConversation"
        | "shareConversation" => "ConversationActionInput".to_owned(),
        "associateRecords" | "dissociateRecords" => "RecordAssociationInput".to_owned(),
        _ => {
            let mut chars = name.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            format!("{}{}Input", first.unwrap_or_default(), chars.as_str())
        }
    }
}

/// Sends mutation `name` as `user` with `input`, selecting the common fields and `selection`.
pub(crate) async fn send(
    api: &TestApi,
    user: Uuid,
    name: &str,
    input: Value,
    selection: &str,
) -> Reply {
    let query = format!(
        "mutation($input: {}!) {{ {name}(input: $input) {{ {COMMON} {selection} }} }}",
        input_type(name)
    );
    api.gql(user, &query, json!({ "input": input })).await
}

/// [`send`], expecting no top-level errors: the payload.
pub(crate) async fn mutate(
    api: &TestApi,
    user: Uuid,
    name: &str,
    input: Value,
    selection: &str,
) -> Value {
    let reply = send(api, user, name, input, selection).await;
    reply.data()[name].clone()
}

/// [`mutate`], expecting success: the payload.
pub(crate) async fn succeed(
    api: &TestApi,
    user: Uuid,
    name: &str,
    input: Value,
    selection: &str,
) -> Value {
    let payload = mutate(api, user, name, input, selection).await;
    assert_eq!(payload["userErrors"], json!([]), "{name}: {payload:#}");
    assert!(
        payload["consistencyToken"].is_string(),
        "{name}: {payload:#}"
    );
    payload
}

/// [`mutate`], expecting exactly one business-rule failure with `code` on `field` (a path
/// under `input`, or none): the payload, after checking it carries no object and no token.
pub(crate) async fn refuse(
    api: &TestApi,
    user: Uuid,
    name: &str,
    input: Value,
    field: Option<&str>,
    code: &str,
) -> Value {
    let payload = mutate(api, user, name, input, "").await;
    let errors = &payload["userErrors"];
    assert_eq!(
        errors.as_array().map(Vec::len),
        Some(1),
        "{name}: {payload:#}"
    );
    assert_eq!(errors[0]["code"], code, "{name}: {payload:#}");
    let expected_field = field.map_or(Value::Null, |f| json!(["input", f]));
    assert_eq!(errors[0]["field"], expected_field, "{name}: {payload:#}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(payload["consistencyToken"].is_null(), "{name}: {payload:#}");
    assert!(payload["version"].is_null(), "{name}: {payload:#}");
    payload
}

/// [`send`], expecting a top-level error with `code`: the reply.
pub(crate) async fn fail(api: &TestApi, user: Uuid, name: &str, input: Value, code: &str) -> Reply {
    let reply = send(api, user, name, input, "").await;
    assert_eq!(reply.error_code(), Some(code), "{name}: {:#}", reply.body);
    assert!(reply.body["data"].is_null(), "{name}: {:#}", reply.body);
    reply
}

/// A query as `user` that waits for the write behind `token` first.
pub(crate) async fn read(
    api: &TestApi,
    user: Uuid,
    token: &Value,
    query: &str,
    variables: Value,
) -> Value {
    let token = token.as_str().expect("a consistency token");
    let reply = api
        .gql_with(
            Some(user),
            &[("switchboard-consistency-token", token)],
            query,
            variables,
        )
        .await;
    reply.data().clone()
}

/// The global id of a user.
pub(crate) fn user_id(user: Uuid) -> String {
    ids::encode(Kind::User, user).0
}

/// The uuid inside a global id.
pub(crate) fn uuid_of(id: &Value) -> Uuid {
    let id = ID(id.as_str().expect("an id").to_owned());
    ids::decode_any(&id, "id").expect("a Switchboard id").1
}

/// The store's head: unchanged when nothing was written.
pub(crate) async fn head(api: &TestApi) -> Position {
    api.service.store().head().await.expect("head")
}

/// An inbox with a member agent and a connected chat channel, set up through mutations.
pub(crate) struct Org {
    /// An agent, member of `inbox`.
    pub(crate) agent: Uuid,
    /// The inbox's global id.
    pub(crate) inbox: Value,
    /// The chat channel's global id.
    pub(crate) chat: Value,
}

impl Org {
    pub(crate) async fn new(api: &TestApi) -> Org {
        let agent = api.user("agent@acme.test", Role::Agent).await;
        let inbox = succeed(
            api,
            api.admin,
            "createInbox",
            json!({"name": "Support"}),
            "inbox { id }",
        )
        .await["inbox"]["id"]
            .clone();
        succeed(
            api,
            api.admin,
            "addInboxMember",
            json!({"inboxId": inbox, "memberId": user_id(agent)}),
            "",
        )
        .await;
        let chat = succeed(
            api,
            api.admin,
            "connectChatChannel",
            json!({"inboxId": inbox, "name": "Website"}),
            "channel { id }",
        )
        .await["channel"]["id"]
            .clone();
        Org { agent, inbox, chat }
    }

    /// A chat message from `visitor`, sent by the admin: the payload.
    pub(crate) async fn chat(&self, api: &TestApi, visitor: &str, text: &str) -> Value {
        succeed(
            api,
            api.admin,
            "receiveMessage",
            json!({
                "channelId": self.chat,
                "from": {"kind": "CHAT_VISITOR", "value": visitor},
                "bodyText": text,
            }),
            "conversation { id status } conversationId messageId",
        )
        .await
    }
}
