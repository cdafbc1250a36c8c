//! Record mutations: companies, deals, tickets and associations.

use proto_events::event::Role;
use serde_json::json;

use super::{Org, fail, read, refuse, succeed, user_id};
use crate::support::TestApi;

const RECORD: &str = "record { id kind name }";

#[tokio::test]
async fn records_are_created_and_associated() {
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let agent = org.agent;
    let auditor = api.user("auditor@acme.test", Role::Auditor).await;

    let company = succeed(
        &api,
        agent,
        "createCompany",
        json!({"name": "Acme Corp", "domain": "Acme.example"}),
        RECORD,
    )
    .await["record"]
        .clone();
    assert_eq!(
        (&company["kind"], &company["name"]),
        (&json!("COMPANY"), &json!("Acme Corp"))
    );
    refuse(
        &api,
        agent,
        "createCompany",
        json!({"name": "Nope", "domain": "not a domain"}),
        Some("domain"),
        "INVALID",
    )
    .await;
    let deal = succeed(
        &api,
        agent,
        "createDeal",
        json!({"name": "Renewal", "stage": "proposal", "ownerId": user_id(agent)}),
        RECORD,
    )
    .await["record"]
        .clone();
    assert_eq!(deal["kind"], "DEAL");
    refuse(
        &api,
        agent,
        "createDeal",
        json!({"name": "Audit", "ownerId": user_id(auditor)}),
        Some("ownerId"),
        "NOT_AN_AGENT",
    )
    .await;
    let conversation =
        org.chat(&api, "visitor-5", "It is broken").await["conversation"]["id"].clone();
    let ticket = succeed(
        &api,
        agent,
        "createTicket",
        json!({"subject": "Broken widget", "conversationId": conversation}),
        RECORD,
    )
    .await["record"]
        .clone();
    assert_eq!(
        (&ticket["kind"], &ticket["name"]),
        (&json!("TICKET"), &json!("Broken widget"))
    );
    fail(
        &api,
        auditor,
        "createCompany",
        json!({"name": "Mine"}),
        "FORBIDDEN",
    )
    .await;

    let contact = succeed(
        &api,
        agent,
        "createContact",
        json!({"identities": [{"kind": "EMAIL", "value": "ada@customer.test"}]}),
        "contact { id }",
    )
    .await["contact"]["id"]
        .clone();
    // Either order names the same association.
    let associated = succeed(
        &api,
        agent,
        "associateRecords",
        json!({"fromId": company["id"], "toId": contact}),
        "fromId toId",
    )
    .await;
    assert_eq!(associated["fromId"], company["id"]);
    refuse(
        &api,
        agent,
        "associateRecords",
        json!({"fromId": contact, "toId": company["id"]}),
        Some("toId"),
        "ALREADY_ASSOCIATED",
    )
    .await;
    let with_deal = succeed(
        &api,
        agent,
        "associateRecords",
        json!({"fromId": contact, "toId": deal["id"]}),
        "",
    )
    .await;
    let sidebar = read(
        &api,
        agent,
        &with_deal["consistencyToken"],
        "query($id: ID!) { contact(id: $id) { records { id kind name } } }",
        json!({"id": contact}),
    )
    .await;
    let records = sidebar["contact"]["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(records.contains(&company), "{records:?}");
    assert!(records.contains(&deal), "{records:?}");

    succeed(
        &api,
        agent,
        "dissociateRecords",
        json!({"fromId": contact, "toId": company["id"]}),
        "fromId toId",
    )
    .await;
    refuse(
        &api,
        agent,
        "dissociateRecords",
        json!({"fromId": contact, "toId": company["id"]}),
        Some("toId"),
        "NOT_ASSOCIATED",
    )
    .await;
    let reply = fail(
        &api,
        agent,
        "associateRecords",
        json!({"fromId": org.inbox, "toId": contact}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "fromId");
}

#[tokio::test]
async fn a_merge_carries_over_associations_held_by_other_contacts() {
    // An association between two contacts lives in the stream of the one created first (the
    // lesser id); merging the other away must still give its survivor that association, whether
    // the survivor is older than that contact or younger.
    let api = TestApi::start().await;
    let org = Org::new(&api).await;
    let contact = |n: &str| {
        let api = &api;
        let email = format!("{n}@customer.test");
        async move {
            succeed(
                api,
                org.agent,
                "createContact",
                json!({"identities": [{"kind": "EMAIL", "value": email}]}),
                "contact { id }",
            )
            .await["contact"]["id"]
                .clone()
        }
    };
    let early = contact("early").await;
    let older_survivor = contact("older-survivor").await;
    let partner = contact("partner").await;
    let merged = contact("merged").await;
    let younger_survivor = contact("younger-survivor").await;
    let twin = contact("twin").await;
    let latest_survivor = contact("latest-survivor").await;
    // Held by the partner, going to the survivor's stream; held by the partner, staying in the
    // partner's; held by the merged contact itself, going to the partner's.
    for (survivor, gone) in [
        (&older_survivor, &merged),
        (&younger_survivor, &twin),
        (&latest_survivor, &early),
    ] {
        succeed(
            &api,
            org.agent,
            "associateRecords",
            json!({"fromId": gone, "toId": partner}),
            "",
        )
        .await;
        succeed(
            &api,
            org.agent,
            "mergeContacts",
            json!({"survivorId": survivor, "mergedId": gone}),
            "",
        )
        .await;
        // The survivor holds the association now: making it again is refused.
        refuse(
            &api,
            org.agent,
            "associateRecords",
            json!({"fromId": survivor, "toId": partner}),
            Some("toId"),
            "ALREADY_ASSOCIATED",
        )
        .await;
    }
}
