//! Web forms through the API: `configureForm` and `Channel.form` (admins only), and
//! `POST /forms/{publicKey}`: the three body types, files to the blob store, refusals naming the
//! field and writing nothing, the honeypot, CORS per form and rate limits.

use proto_events::event::{Member, Role};
use serde_json::{Value, json};
use switchboard_api::ids::Kind;
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use uuid::Uuid;

use crate::audit::id;
use crate::support::TestApi;

const CONFIGURE: &str = "mutation($input: ConfigureFormInput!) { configureForm(input: $input) {
    userErrors { field code message }
    channel { form { publicKey allowedOrigins honeypotField
        fields { name label kind required options } } } } }";

/// The form's fields as `configureForm` takes them.
fn fields() -> Value {
    json!([
        {"name": "name", "label": "Your name"},
        {"name": "email", "label": "Your e-mail", "kind": "EMAIL", "required": true},
        {"name": "topic", "label": "Topic", "kind": "SELECT", "options": ["Sales", "Support"]},
        {"name": "phone", "label": "Phone", "kind": "PHONE"},
        {"name": "seats", "label": "Seats", "kind": "NUMBER"},
        {"name": "newsletter", "label": "Newsletter", "kind": "CHECKBOX"},
        {"name": "message", "label": "Message", "kind": "TEXTAREA", "required": true},
    ])
}

/// A form channel connected to `inbox`; returns its channel id.
pub(crate) async fn form_channel(api: &TestApi, inbox: Uuid) -> String {
    let connected = api
        .gql(
            api.admin,
            "mutation($inbox: ID!) { connectFormChannel(input: {inboxId: $inbox, name: \"Contact us\"}) { channel { id } } }",
            json!({ "inbox": id(Kind::Inbox, inbox) }),
        )
        .await;
    connected.data()["connectFormChannel"]["channel"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", connected.body))
        .to_owned()
}

#[tokio::test]
async fn admins_configure_a_form_and_only_they_read_it() {
    let api = TestApi::start().await;
    let agent = api.user("alice@acme.test", Role::Agent).await;
    let inbox = api.inbox("Website").await;
    api.run(Command::Setup(SetupCommand::AddInboxMember {
        inbox_id: inbox,
        member: Member::User { id: agent },
    }))
    .await;
    let channel = form_channel(&api, inbox).await;
    let input = json!({"input": {"channelId": channel, "fields": fields(),
        "allowedOrigins": ["HTTPS://www.acme.test/"], "honeypotField": "website"}});
    let set = api.gql(api.admin, CONFIGURE, input.clone()).await;
    let answer = &set.data()["configureForm"];
    assert_eq!(answer["userErrors"], json!([]), "{:?}", set.body);
    let form = &answer["channel"]["form"];
    let key = form["publicKey"].as_str().unwrap().to_owned();
    assert!(key.len() >= 22, "{key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{key}"
    );
    assert_eq!(form["allowedOrigins"], json!(["https://www.acme.test"]));
    assert_eq!(form["honeypotField"], "website");
    assert_eq!(
        form["fields"][2],
        json!({"name": "topic", "label": "Topic", "kind": "SELECT", "required": false, "options": ["Sales", "Support"]})
    );
    assert_eq!(form["fields"][0]["kind"], "TEXT");

    // Configured again: the key stays.
    let again = api.gql(api.admin, CONFIGURE, input.clone()).await;
    assert_eq!(
        again.data()["configureForm"]["channel"]["form"]["publicKey"],
        key
    );

    // An agent may neither configure nor read it.
    let refused = api.gql(agent, CONFIGURE, input).await;
    assert_eq!(
        refused.error_code(),
        Some("FORBIDDEN"),
        "{:?}",
        refused.body
    );
    let read = "query($id: ID!) { node(id: $id) { ... on Channel { form { publicKey } } } }";
    let agents = api.gql(agent, read, json!({"id": channel})).await;
    assert_eq!(
        agents.data()["node"],
        json!({"form": null}),
        "{:?}",
        agents.body
    );
    let admins = api.gql(api.admin, read, json!({"id": channel})).await;
    assert_eq!(admins.data()["node"]["form"]["publicKey"], key);

    // A bad field is named by its index.
    let bad = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": channel, "fields": [
                {"name": "email", "kind": "EMAIL"}, {"name": "bad name"}]}}),
        )
        .await;
    assert_eq!(
        bad.data()["configureForm"]["userErrors"][0]["field"],
        json!(["input", "fields", "1", "name"]),
        "{:?}",
        bad.body
    );
    let no_email = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": channel, "fields": [{"name": "name"}]}}),
        )
        .await;
    assert_eq!(
        no_email.data()["configureForm"]["userErrors"][0]["field"],
        json!(["input", "fields"])
    );
    // Another kind of channel is refused.
    let inbox = api.inbox("Chat").await;
    let chat = api.chat_channel(inbox).await;
    let not_form = api
        .gql(
            api.admin,
            CONFIGURE,
            json!({"input": {"channelId": id(Kind::Channel, chat), "fields": fields()}}),
        )
        .await;
    assert_eq!(
        not_form.data()["configureForm"]["userErrors"][0]["code"],
        "NOT_FORM"
    );
}
