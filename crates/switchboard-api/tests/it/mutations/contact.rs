//! Contact mutations: creation, properties, identities, owner, merges.

use proto_events::event::Role;
use serde_json::{Value, json};
use switchboard_api::ids::{self, Kind};

use super::{Org, fail, head, read, refuse, succeed, user_id};
use crate::support::TestApi;

const CONTACT: &str =
    "contact { id name properties { name value } identities { kind value } owner { name } }";

fn identity(kind: &str, value: &str) -> Value {
    json!({"kind": kind, "value": value})
}

#[tokio::test]
async fn contacts_are_created_changed_and_merged() {
    let api = TestApi::start().await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let auditor = api.user("auditor@acme.test", Role::Auditor).await;

    let ada = succeed(
        &api,
        agent,
        "createContact",
        json!({
            "identities": [identity("EMAIL", "ada@customer.test")],
            "properties": [{"name": "name", "value": "Ada"}, {"name": "job_title", "value": "CTO"}],
        }),
        CONTACT,
    )
    .await;
    let contact = &ada["contact"];
    assert_eq!(contact["name"], "Ada");
    assert_eq!(
        contact["identities"],
        json!([identity("EMAIL", "ada@customer.test")])
    );
    let ada_id = contact["id"].clone();
    let version = ada["version"].as_u64().expect("a version");

    refuse(
        &api,
        agent,
        "createContact",
        json!({"identities": [identity("EMAIL", "ADA@customer.test")]}),
        Some("identities"),
        "TAKEN",
    )
    .await;
    refuse(
        &api,
        agent,
        "createContact",
        json!({"properties": [{"name": "Job Title", "value": "x"}]}),
        Some("properties"),
        "INVALID",
    )
    .await;
    fail(
        &api,
        auditor,
        "createContact",
        json!({"identities": [identity("EMAIL", "bo@customer.test")]}),
        "FORBIDDEN",
    )
    .await;

    let changed = succeed(
        &api,
        agent,
        "changeContactProperties",
        json!({
            "contactId": ada_id,
            "set": [{"name": "phone", "value": "+33 1 23 45 67 89"}],
            "unset": ["job_title"],
            "expectedVersion": version,
        }),
        CONTACT,
    )
    .await;
    assert_eq!(
        changed["contact"]["properties"],
        json!([{"name": "name", "value": "Ada"}, {"name": "phone", "value": "+33 1 23 45 67 89"}])
    );
    fail(
        &api,
        agent,
        "changeContactProperties",
        json!({"contactId": ada_id, "set": [{"name": "phone", "value": "0"}], "expectedVersion": version}),
        "CONFLICT",
    )
    .await;

    // A stale version refuses the link before its identity is reserved: the identity stays
    // free for the link that follows.
    fail(
        &api,
        agent,
        "linkContactIdentity",
        json!({"contactId": ada_id, "identity": identity("CHAT_VISITOR", "visitor-9"), "expectedVersion": version}),
        "CONFLICT",
    )
    .await;
    let linked = succeed(
        &api,
        agent,
        "linkContactIdentity",
        json!({"contactId": ada_id, "identity": identity("CHAT_VISITOR", "visitor-9")}),
        CONTACT,
    )
    .await;
    assert_eq!(
        linked["contact"]["identities"].as_array().map(Vec::len),
        Some(2)
    );
    refuse(
        &api,
        agent,
        "linkContactIdentity",
        json!({"contactId": ada_id, "identity": identity("CHAT_VISITOR", "visitor-9")}),
        Some("identity"),
        "ALREADY_LINKED",
    )
    .await;

    let owned = succeed(
        &api,
        agent,
        "changeContactOwner",
        json!({"contactId": ada_id, "ownerId": user_id(agent)}),
        CONTACT,
    )
    .await;
    assert_eq!(owned["contact"]["owner"]["name"], "agent");
    refuse(
        &api,
        agent,
        "changeContactOwner",
        json!({"contactId": ada_id, "ownerId": user_id(agent)}),
        Some("ownerId"),
        "UNCHANGED",
    )
    .await;
    let reply = fail(
        &api,
        agent,
        "changeContactOwner",
        json!({"contactId": user_id(agent)}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "contactId");

    let twin = succeed(
        &api,
        agent,
        "createContact",
        json!({
            "identities": [identity("MESSENGER", "psid-1")],
            "properties": [{"name": "name", "value": "Ada L."}, {"name": "city", "value": "London"}],
        }),
        "contact { id }",
    )
    .await["contact"]["id"]
        .clone();
    let merged = succeed(
        &api,
        agent,
        "mergeContacts",
        json!({"survivorId": ada_id, "mergedId": twin}),
        CONTACT,
    )
    .await;
    let survivor = &merged["contact"];
    assert_eq!(survivor["id"], ada_id);
    assert_eq!(survivor["name"], "Ada", "the survivor's own properties win");
    assert!(
        survivor["identities"]
            .as_array()
            .is_some_and(|ids| ids.contains(&identity("MESSENGER", "psid-1"))),
        "{survivor:#}"
    );
    assert!(
        survivor["properties"]
            .as_array()
            .is_some_and(|p| p.contains(&json!({"name": "city", "value": "London"}))),
        "{survivor:#}"
    );
    refuse(
        &api,
        agent,
        "mergeContacts",
        json!({"survivorId": ada_id, "mergedId": twin}),
        Some("mergedId"),
        "MERGED",
    )
    .await;
    refuse(
        &api,
        agent,
        "mergeContacts",
        json!({"survivorId": ada_id, "mergedId": ada_id}),
        Some("mergedId"),
        "INVALID",
    )
    .await;
}

#[tokio::test]
async fn a_visitor_becomes_a_contact_and_is_recognised() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let conversation = org.chat(&api, "visitor-7", "Hi").await["conversation"]["id"].clone();
    let created = succeed(
        &api,
        org.agent,
        "createContact",
        json!({
            "identities": [identity("CHAT_VISITOR", "visitor-7")],
            "properties": [{"name": "name", "value": "Vera"}],
            "fromConversationId": conversation,
        }),
        "contact { id name }",
    )
    .await;
    let contact = created["contact"]["id"].clone();
    refuse(
        &api,
        org.agent,
        "createContact",
        json!({"fromConversationId": conversation}),
        Some("identities"),
        "INVALID",
    )
    .await;
    let outsider = api.user("outsider@acme.test", Role::Agent).await;
    fail(
        &api,
        outsider,
        "createContact",
        json!({
            "identities": [identity("CHAT_VISITOR", "visitor-8")],
            "fromConversationId": conversation,
        }),
        "NOT_FOUND",
    )
    .await;
    let found = read(
        &api,
        org.agent,
        &created["consistencyToken"],
        "query($identity: IdentityInput!) { contactByIdentity(identity: $identity) { id } }",
        json!({"identity": identity("CHAT_VISITOR", "visitor-7")}),
    )
    .await;
    assert_eq!(found["contactByIdentity"]["id"], contact);
}

/// An identity value with a control character (a NUL, a bell) or too long to be reserved is
/// a business-rule failure naming the field, never INTERNAL, and writes nothing: it used to
/// reach the store as part of a reservation stream's name, which the store refuses.
#[tokio::test]
async fn identities_with_control_characters_are_refused_naming_the_field() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let contact = succeed(
        &api,
        org.agent,
        "createContact",
        json!({"identities": [identity("EMAIL", "ada@customer.test")]}),
        "contact { id }",
    )
    .await["contact"]["id"]
        .clone();
    let long = "v".repeat(250);
    let values = [
        ("CHAT_VISITOR", "visitor\u{0}1".to_owned()),
        ("CHAT_VISITOR", "visitor\u{7}1".to_owned()),
        ("MESSENGER", "\u{0}psid".to_owned()),
        ("MESSENGER", "ps\u{7}id".to_owned()),
        ("EMAIL", "bell\u{7}@customer.test".to_owned()),
        ("EMAIL", "nul@customer\u{0}.test".to_owned()),
        ("CHAT_VISITOR", long.clone()),
        ("EMAIL", format!("{long}@customer.test")),
    ];
    for (kind, value) in &values {
        let before = head(&api).await;
        refuse(
            &api,
            org.agent,
            "createContact",
            json!({"identities": [identity(kind, value)]}),
            Some("identities"),
            "INVALID",
        )
        .await;
        refuse(
            &api,
            org.agent,
            "linkContactIdentity",
            json!({"contactId": contact, "identity": identity(kind, value)}),
            Some("identity"),
            "INVALID",
        )
        .await;
        if *kind == "CHAT_VISITOR" {
            refuse(
                &api,
                api.admin,
                "receiveMessage",
                json!({"channelId": org.chat, "from": identity(kind, value), "bodyText": "hi"}),
                Some("from"),
                "INVALID",
            )
            .await;
        }
        assert_eq!(
            head(&api).await,
            before,
            "{kind} {value:?}: nothing written"
        );
    }
}

/// GDPR Art. 15: an admin gets everything recorded about a person as one document; an agent
/// may not; an unknown contact is null.
#[tokio::test]
async fn admins_get_a_persons_data_as_one_document() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let chatted = org
        .chat(&api, "visitor-zelda", "my unique order text 7f3a")
        .await;
    let conversation = chatted["conversation"]["id"].clone();
    let created = succeed(
        &api,
        org.agent,
        "createContact",
        json!({
            "identities": [identity("CHAT_VISITOR", "visitor-zelda")],
            "properties": [{"name": "name", "value": "Zelda Quibble"}],
            "fromConversationId": conversation,
        }),
        "contact { id }",
    )
    .await;
    let contact = created["contact"]["id"].clone();
    let query = "query($id: ID!) { contactData(contactId: $id) }";
    let document = read(
        &api,
        api.admin,
        &created["consistencyToken"],
        query,
        json!({"id": contact}),
    )
    .await["contactData"]
        .clone();
    assert_eq!(document["format"], "switchboard.subject-access/1");
    assert_eq!(document["contact"]["properties"]["name"], "Zelda Quibble");
    assert_eq!(document["erased"], false);
    let conversations = document["conversations"].as_array().expect("conversations");
    assert_eq!(conversations.len(), 1, "{document:#}");
    let said = conversations[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["type"] == "MessageReceived")
        .expect("the visitor's message");
    assert_eq!(said["payload"]["body_text"], "my unique order text 7f3a");

    let refused = api.gql(org.agent, query, json!({"id": contact})).await;
    assert_eq!(
        refused.error_code(),
        Some("FORBIDDEN"),
        "{:#}",
        refused.body
    );
    let nobody = ids::encode(Kind::Contact, uuid::Uuid::now_v7()).0;
    let none = api.gql(api.admin, query, json!({"id": nobody})).await;
    assert_eq!(none.data()["contactData"], Value::Null);
}

/// GDPR Art. 17: an admin erases a contact who chatted; the contact and the conversation are
/// gone from every answer, an agent may not do it, and an erased contact refuses changes.
#[tokio::test]
async fn admins_erase_a_contact_and_their_conversations_disappear() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let chatted = org
        .chat(&api, "visitor-zelda", "my unique order text 7f3a")
        .await;
    let conversation = chatted["conversation"]["id"].clone();
    let created = succeed(
        &api,
        org.agent,
        "createContact",
        json!({
            "identities": [identity("CHAT_VISITOR", "visitor-zelda")],
            "properties": [{"name": "name", "value": "Zelda Quibble"}],
            "fromConversationId": conversation,
        }),
        "contact { id }",
    )
    .await;
    let contact = created["contact"]["id"].clone();

    fail(
        &api,
        org.agent,
        "eraseContact",
        json!({"contactId": contact, "reason": "asked"}),
        "FORBIDDEN",
    )
    .await;
    refuse(
        &api,
        api.admin,
        "eraseContact",
        json!({"contactId": contact, "reason": "  "}),
        Some("reason"),
        "INVALID",
    )
    .await;
    let erased = succeed(
        &api,
        api.admin,
        "eraseContact",
        json!({"contactId": contact, "reason": "Art. 17 request, ticket 4711"}),
        "erasedContactId erasedConversationIds",
    )
    .await;
    assert_eq!(erased["erasedContactId"], contact);
    assert_eq!(erased["erasedConversationIds"], json!([conversation]));

    let after = read(
        &api,
        api.admin,
        &erased["consistencyToken"],
        "query($contact: ID!, $conversation: ID!, $identity: IdentityInput!) {
            contact(id: $contact) { id name }
            conversation(id: $conversation) { id }
            contactByIdentity(identity: $identity) { id }
        }",
        json!({
            "contact": contact,
            "conversation": conversation,
            "identity": identity("CHAT_VISITOR", "visitor-zelda"),
        }),
    )
    .await;
    assert_eq!(
        after,
        json!({"contact": null, "conversation": null, "contactByIdentity": null})
    );
    let text = after.to_string();
    assert!(!text.contains("Zelda") && !text.contains("7f3a"), "{text}");

    refuse(
        &api,
        org.agent,
        "changeContactProperties",
        json!({"contactId": contact, "set": [{"name": "name", "value": "Z"}]}),
        None,
        "ERASED",
    )
    .await;
}
