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
