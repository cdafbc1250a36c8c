//! Setup mutations: users, teams, inboxes, business hours, and who may change them.

use proto_events::event::Role;
use serde_json::json;

use super::{fail, read, refuse, succeed, uuid_of};
use crate::support::TestApi;

#[tokio::test]
async fn admins_build_the_organisation_and_objects_appear() {
    let api = TestApi::start().await;
    let admin = api.admin;
    let bo = succeed(
        &api,
        admin,
        "createUser",
        json!({"email": "bo@acme.test", "name": "Bo", "role": "AGENT"}),
        "user { id name role availability }",
    )
    .await;
    assert_eq!(bo["user"]["role"], "AGENT");
    assert_eq!(bo["user"]["availability"], "AWAY", "new users are away");
    let bo_id = bo["user"]["id"].clone();
    refuse(
        &api,
        admin,
        "createUser",
        json!({"email": "BO@acme.test", "name": "Bo again", "role": "AGENT"}),
        Some("email"),
        "TAKEN",
    )
    .await;

    let team = succeed(
        &api,
        admin,
        "createTeam",
        json!({"name": "Tier 2"}),
        "team { id }",
    )
    .await["team"]["id"]
        .clone();
    let added = succeed(
        &api,
        admin,
        "addTeamMember",
        json!({"teamId": team, "userId": bo_id}),
        "team { members { name } }",
    )
    .await;
    assert_eq!(added["team"]["members"], json!([{"name": "Bo"}]));

    let created = succeed(
        &api,
        admin,
        "createInbox",
        json!({"name": "Sales"}),
        "inbox { id name channels { kind fallback address } }",
    )
    .await;
    let inbox = created["inbox"]["id"].clone();
    let channels = &created["inbox"]["channels"];
    assert_eq!(channels[0]["fallback"], true, "{channels:#}");
    assert_eq!(channels[0]["kind"], "EMAIL");

    let member = succeed(
        &api,
        admin,
        "addInboxMember",
        json!({"inboxId": inbox, "memberId": team}),
        "inbox { memberTeams { name } }",
    )
    .await;
    assert_eq!(member["inbox"]["memberTeams"], json!([{"name": "Tier 2"}]));
    let again = refuse(
        &api,
        admin,
        "addInboxMember",
        json!({"inboxId": inbox, "memberId": team}),
        Some("memberId"),
        "ALREADY_MEMBER",
    )
    .await;
    assert!(again["inbox"].is_null());
    let restricted = succeed(
        &api,
        admin,
        "restrictInbox",
        json!({"inboxId": inbox, "teamIds": [team]}),
        "inbox { restricted restrictedToTeams { name } }",
    )
    .await;
    assert_eq!(restricted["inbox"]["restricted"], true);
    let lifted = succeed(
        &api,
        admin,
        "liftInboxRestriction",
        json!({"inboxId": inbox}),
        "inbox { restricted }",
    )
    .await;
    assert_eq!(lifted["inbox"]["restricted"], false);
    let renamed = succeed(
        &api,
        admin,
        "renameInbox",
        json!({"inboxId": inbox, "name": "Sales EMEA"}),
        "inbox { name }",
    )
    .await;
    assert_eq!(renamed["inbox"]["name"], "Sales EMEA");

    refuse(
        &api,
        admin,
        "setUserCapacity",
        json!({"userId": bo_id, "maxOpenConversations": 0}),
        Some("maxOpenConversations"),
        "INVALID",
    )
    .await;
    let capped = succeed(
        &api,
        admin,
        "setUserCapacity",
        json!({"userId": bo_id, "maxOpenConversations": 3}),
        "user { capacity }",
    )
    .await;
    assert_eq!(capped["user"]["capacity"], 3);
    let promoted = succeed(
        &api,
        admin,
        "changeUserRole",
        json!({"userId": bo_id, "role": "ADMIN"}),
        "user { role }",
    )
    .await;
    assert_eq!(promoted["user"]["role"], "ADMIN");

    // What was created is there for a later query too.
    let seen = read(
        &api,
        admin,
        &promoted["consistencyToken"],
        "query($id: ID!) { node(id: $id) { ... on User { name teams { name } } } }",
        json!({"id": bo_id}),
    )
    .await;
    assert_eq!(
        seen["node"],
        json!({"name": "Bo", "teams": [{"name": "Tier 2"}]})
    );
}

#[tokio::test]
async fn admins_set_how_long_an_inbox_keeps_closed_conversations() {
    let api = TestApi::start().await;
    let admin = api.admin;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let inbox = succeed(
        &api,
        admin,
        "createInbox",
        json!({"name": "Support"}),
        "inbox { id retentionDays }",
    )
    .await["inbox"]
        .clone();
    assert_eq!(
        inbox["retentionDays"],
        json!(null),
        "kept forever by default"
    );
    let inbox = inbox["id"].clone();
    let set = succeed(
        &api,
        admin,
        "setInboxRetention",
        json!({"inboxId": inbox, "closedDays": 30}),
        "inbox { id retentionDays }",
    )
    .await;
    assert_eq!(set["inbox"]["retentionDays"], 30);
    let read_back = read(
        &api,
        admin,
        &set["consistencyToken"],
        "query($id: ID!) { node(id: $id) { ... on Inbox { retentionDays } } }",
        json!({"id": inbox}),
    )
    .await;
    assert_eq!(read_back["node"]["retentionDays"], 30);

    refuse(
        &api,
        admin,
        "setInboxRetention",
        json!({"inboxId": inbox, "closedDays": 30}),
        Some("closedDays"),
        "UNCHANGED",
    )
    .await;
    for days in [0, 3651] {
        refuse(
            &api,
            admin,
            "setInboxRetention",
            json!({"inboxId": inbox, "closedDays": days}),
            Some("closedDays"),
            "INVALID",
        )
        .await;
    }
    fail(
        &api,
        agent,
        "setInboxRetention",
        json!({"inboxId": inbox, "closedDays": 7}),
        "FORBIDDEN",
    )
    .await;

    let cleared = succeed(
        &api,
        admin,
        "setInboxRetention",
        json!({"inboxId": inbox, "closedDays": null}),
        "inbox { retentionDays }",
    )
    .await;
    assert_eq!(cleared["inbox"]["retentionDays"], json!(null));
}

#[tokio::test]
async fn agents_change_only_their_own_settings() {
    let api = TestApi::start().await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let other = api.user("other@acme.test", Role::Agent).await;
    let available = succeed(
        &api,
        agent,
        "setUserAvailability",
        json!({"availability": "AVAILABLE"}),
        "user { id availability }",
    )
    .await;
    assert_eq!(available["user"]["availability"], "AVAILABLE");
    assert_eq!(
        uuid_of(&available["user"]["id"]),
        agent,
        "the viewer by default"
    );
    refuse(
        &api,
        agent,
        "setUserAvailability",
        json!({"availability": "AVAILABLE"}),
        Some("availability"),
        "UNCHANGED",
    )
    .await;
    let preferences = json!({
        "newConversationInMyInboxes": false,
        "assignedToMe": true,
        "newMessageOnMyConversations": true,
        "mentionedInComment": true,
    });
    succeed(
        &api,
        agent,
        "setNotificationPreferences",
        preferences.clone(),
        "user { name }",
    )
    .await;

    let mut for_other = preferences;
    for_other["userId"] = json!(super::user_id(other));
    fail(
        &api,
        agent,
        "setNotificationPreferences",
        for_other,
        "FORBIDDEN",
    )
    .await;
    fail(
        &api,
        agent,
        "changeUserRole",
        json!({"userId": super::user_id(agent), "role": "ADMIN"}),
        "FORBIDDEN",
    )
    .await;
    fail(
        &api,
        agent,
        "createInbox",
        json!({"name": "Mine"}),
        "FORBIDDEN",
    )
    .await;
    fail(
        &api,
        agent,
        "createTeam",
        json!({"name": "Mine"}),
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn ids_of_the_wrong_type_are_bad_input_naming_the_field() {
    let api = TestApi::start().await;
    let team = succeed(
        &api,
        api.admin,
        "createTeam",
        json!({"name": "Tier 1"}),
        "team { id }",
    )
    .await["team"]["id"]
        .clone();
    let reply = fail(
        &api,
        api.admin,
        "renameInbox",
        json!({"inboxId": team, "name": "x"}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "inboxId");
    let reply = fail(
        &api,
        api.admin,
        "addInboxMember",
        json!({"inboxId": "bm9wZQ", "memberId": team}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "inboxId");
    // A well-formed id of the right type that names nothing.
    let missing =
        switchboard_api::ids::encode(switchboard_api::ids::Kind::Inbox, uuid::Uuid::now_v7());
    fail(
        &api,
        api.admin,
        "renameInbox",
        json!({"inboxId": missing.0, "name": "x"}),
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn business_hours_and_time_zone_are_validated_and_saved() {
    let api = TestApi::start().await;
    let admin = api.admin;
    let saved = succeed(
        &api,
        admin,
        "setBusinessHours",
        json!({
            "timeZone": "Europe/Paris",
            "weekly": [
                {"day": "MONDAY", "opens": "09:00:00", "closes": "17:00:00"},
                {"day": "TUESDAY", "opens": "09:00:00", "closes": "12:00:00"},
            ],
            "holidays": [{"date": "2026-12-25", "name": "Christmas Day"}],
        }),
        "businessHours { timeZone weekly { day opens closes } holidays { date name } }",
    )
    .await;
    let hours = &saved["businessHours"];
    assert_eq!(hours["weekly"][1]["day"], "TUESDAY");
    assert_eq!(hours["holidays"][0]["date"], "2026-12-25");
    refuse(
        &api,
        admin,
        "setBusinessHours",
        json!({
            "timeZone": "Europe/Paris",
            "weekly": [{"day": "MONDAY", "opens": "17:00:00", "closes": "09:00:00"}],
        }),
        Some("weekly"),
        "INVALID",
    )
    .await;
    refuse(
        &api,
        admin,
        "setOrganisationTimeZone",
        json!({"timeZone": "Mars/Olympus_Mons"}),
        Some("timeZone"),
        "INVALID",
    )
    .await;
    let zone = succeed(
        &api,
        admin,
        "setOrganisationTimeZone",
        json!({"timeZone": "America/New_York"}),
        "timeZone",
    )
    .await;
    assert_eq!(zone["timeZone"], "America/New_York");
    let organisation = read(
        &api,
        admin,
        &zone["consistencyToken"],
        "{ organisation { timeZone businessHoursTimeZone } }",
        json!({}),
    )
    .await;
    assert_eq!(
        organisation["organisation"],
        json!({"timeZone": "America/New_York", "businessHoursTimeZone": "Europe/Paris"})
    );
}

#[tokio::test]
async fn admins_register_bots_that_then_exist() {
    let api = TestApi::start().await;
    let created = succeed(
        &api,
        api.admin,
        "createBot",
        json!({"name": "Greeter"}),
        "bot { id name }",
    )
    .await;
    assert_eq!(created["bot"]["name"], "Greeter");
    let bots = read(
        &api,
        api.admin,
        &created["consistencyToken"],
        "{ bots { id name } }",
        json!({}),
    )
    .await;
    assert_eq!(bots["bots"], json!([created["bot"]]));
    refuse(
        &api,
        api.admin,
        "createBot",
        json!({"name": "greeter"}),
        Some("name"),
        "TAKEN",
    )
    .await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    fail(
        &api,
        agent,
        "createBot",
        json!({"name": "Mine"}),
        "FORBIDDEN",
    )
    .await;
}
