//! `switchboard serve --demo`, as a newcomer meets it: GraphiQL, readiness, and the demo admin's
//! first query.

use serde_json::json;

use crate::client::{DEADLINE, Gql, eventually};
use crate::server::{self, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_graphiql_becomes_ready_and_answers_the_admin() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let srv = Server::start(
        &dir.path().join("data"),
        &server::fresh_secret(),
        &["--demo"],
    );
    let admin = srv
        .banner_token()
        .unwrap_or_else(|| panic!("no admin token in the banner:\n{}", srv.banner));
    // The banner names the store it runs on, as `serve --help` names both backends.
    let store_line = format!(
        "Store      {}",
        dir.path().join("data").join("events").display()
    );
    assert!(srv.banner.contains(&store_line), "{}", srv.banner);
    let help = std::process::Command::new(server::binary())
        .args(["serve", "--help"])
        .output()
        .expect("switchboard serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("PostgreSQL"), "{help}");
    let http = reqwest::Client::new();

    let page = http
        .get(srv.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("GET /graphql");
    assert!(page.status().is_success(), "{}", page.status());
    let html = page.text().await.expect("a body");
    assert!(
        html.to_ascii_lowercase().contains("graphiql"),
        "GraphiQL's page: {}",
        &html[..html.len().min(500)]
    );

    eventually("/readyz answers 200", DEADLINE * 3, || async {
        let response = http.get(srv.url("/readyz")).send().await.ok()?;
        (response.status() == reqwest::StatusCode::OK).then_some(())
    })
    .await;

    let gql = Gql::new(srv.url("/graphql"));
    let data = gql
        .query(
            &admin,
            "{ viewer { email role } inboxes(first: 10) { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["role"], json!("SUPER_ADMIN"), "{data:#}");
    assert_eq!(
        data["inboxes"]["edges"].as_array().map(Vec::len),
        Some(3),
        "{data:#}"
    );
    let conversations = gql
        .query(
            &admin,
            "{ conversations(first: 5) { edges { node { id } } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        conversations["conversations"]["pageInfo"]["hasNextPage"],
        json!(true),
        "the demo holds hundreds of conversations: {conversations:#}"
    );
    assert_eq!(srv.terminate(), Some(0), "a clean exit on SIGTERM");
}
