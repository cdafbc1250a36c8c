//! Issue 21's "done when": a customer who wrote by e-mail with an attachment and chatted is
//! erased, and afterwards nothing of theirs is in any read model, export, file or GraphQL
//! answer (searched byte-wise for their name, address, message text and file), with the log
//! sealed and in the clear; `audit verify` passes; someone else's data is untouched.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tempfile::TempDir;

use crate::server::{
    Server, bytes_under, data_of, graphql, init_acme, support_channel, wait_for_200,
};
use crate::support::{run, text};

/// What Zelda left: her name, her address, what she wrote and her file's bytes.
const NAME: &str = "Zimmermann";
const ADDRESS: &str = "zelda@customer.test";
const MAIL_TEXT: &str = "Order tiles-99817 arrived cracked";
const CHAT_TEXT: &str = "Any news on tiles-99817? Zelda here";
const FILE: &str = "ZELDA-FILE-CRACKED-TILES-PHOTO";
const NEEDLES: [&str; 4] = [NAME, ADDRESS, "tiles-99817", FILE];
/// What Otto left, who stays.
const OTTO_TEXT: &str = "Otto's parcel otto-55120 is late";
const OTTO_FILE: &str = "OTTO-FILE-RECEIPT-SCAN";
const INGEST_SECRET: &str = "ingest-secret-7d1c0a95b2e84f36";

/// A mail with one attachment, as an MTA would post it.
fn mail(from: &str, message_id: &str, body: &str, file_name: &str, file: &str) -> String {
    let file = base64::engine::general_purpose::STANDARD.encode(file.repeat(4));
    format!(
        "From: {from}\r\nTo: support@acme.test\r\nSubject: Delivery\r\n\
         Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
         --b1\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"{file_name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{file}\r\n--b1--\r\n"
    )
}

/// Which of [`NEEDLES`] `haystack` holds.
fn found_in(haystack: &[u8]) -> Vec<&'static str> {
    NEEDLES
        .into_iter()
        .filter(|needle| {
            haystack
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .collect()
}

/// Whether `path` is one of the event log's files (the database and its write-ahead log).
fn is_log(data_dir: &Path, path: &Path) -> bool {
    path.parent() == Some(&data_dir.join("events"))
        && path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("events.sqlite3"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_customer_is_nowhere_with_the_log_sealed() {
    erased_everywhere(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_customer_is_nowhere_but_the_log_when_it_is_in_the_clear() {
    erased_everywhere(false).await;
}

async fn erased_everywhere(seal: bool) {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let init = init_acme(&data_dir);
    assert_eq!(init.status.code(), Some(0), "{:?}", text(&init));
    let token = text(&init).0.trim().to_owned();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, format!("[privacy]\nseal_personal_data = {seal}\n")).unwrap();
    let server = Server::start(&data_dir, &["--config", config.to_str().unwrap()]);
    let client = reqwest::Client::new();
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let gql = |query: String| data_of(&client, &server, &token, query);

    // Zelda is a contact; she and Otto write by e-mail, each with a file.
    let zelda = gql(format!(
        r#"mutation {{ createContact(input: {{identities: [{{kind: EMAIL, value: "{ADDRESS}"}}], properties: [{{name: "name", value: "Zelda {NAME}"}}]}}) {{ contact {{ id }} }} }}"#
    ))
    .await["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let channel = support_channel(&client, &server, &token).await;
    let updated = gql(format!(
        r#"mutation {{ updateEmailChannel(input: {{channelId: "{channel}", ingestSecret: "{INGEST_SECRET}"}}) {{ userErrors {{ message }} }} }}"#
    ))
    .await;
    assert_eq!(
        updated["updateEmailChannel"]["userErrors"],
        serde_json::json!([])
    );
    let post = |raw: String| {
        client
            .post(server.url(&format!("/ingest/email/{channel}")))
            .bearer_auth(INGEST_SECRET)
            .body(raw)
            .send()
    };
    let mut conversations = Vec::new();
    for raw in [
        mail(
            &format!("Zelda {NAME} <{ADDRESS}>"),
            "z1@customer.test",
            MAIL_TEXT,
            "tiles.jpg",
            FILE,
        ),
        mail(
            "Otto Ostermann <otto@customer.test>",
            "o1@customer.test",
            OTTO_TEXT,
            "receipt.jpg",
            OTTO_FILE,
        ),
    ] {
        let response = post(raw).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let answer: Value = response.json().await.unwrap();
        conversations.push(answer["conversationId"].as_str().unwrap().to_owned());
    }
    let [zelda_mail, otto_mail] = <[String; 2]>::try_from(conversations).unwrap();
    let thread = |id: &str| {
        format!(
            r#"{{ conversation(id: "{id}") {{ id subject contact {{ id name }} timeline(first: 50) {{ nodes {{ kind bodyText attachments {{ fileName downloadUrl }} originalMessage {{ downloadUrl }} }} }} }} }}"#
        )
    };
    let files_of = |answer: &Value| -> Vec<String> {
        let mut urls = Vec::new();
        for node in answer["conversation"]["timeline"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for file in node["attachments"].as_array().into_iter().flatten() {
                urls.push(file["downloadUrl"].as_str().unwrap().to_owned());
            }
            if let Some(url) = node["originalMessage"]["downloadUrl"].as_str() {
                urls.push(url.to_owned());
            }
        }
        urls
    };
    // A thread once its message and both its files (attachment, original) show.
    let with_files = |query: String| async move {
        let query = &query;
        eventually(|| async move {
            let answer = gql(query.clone()).await;
            if files_of(&answer).len() == 2 {
                Ok(answer)
            } else {
                Err(answer.to_string())
            }
        })
        .await
    };
    let shown = with_files(thread(&zelda_mail)).await;
    assert_eq!(
        shown["conversation"]["contact"]["id"],
        zelda.as_str(),
        "{shown}"
    );
    assert_eq!(
        found_in(shown.to_string().as_bytes()),
        [NAME, "tiles-99817"],
        "the searches find what is there: {shown}"
    );
    let zelda_files = files_of(&shown);
    let otto_shown = with_files(thread(&otto_mail)).await;
    let otto_files = files_of(&otto_shown);
    // A file as the admin downloads it.
    let download = |url: &str| client.get(server.url(url)).bearer_auth(&token).send();
    for url in zelda_files.iter().chain(&otto_files) {
        let response = download(url).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{url}");
    }
    // An agent answers her, by name.
    let replied = gql(format!(
        r#"mutation {{ sendReply(input: {{conversationId: "{zelda_mail}", bodyText: "Sorry, Ms {NAME}: new tiles-99817 are on their way."}}) {{ userErrors {{ message }} }} }}"#
    ))
    .await;
    assert_eq!(replied["sendReply"]["userErrors"], serde_json::json!([]));

    // She chats too, leaves her address, and the agent merges the visitor into her contact.
    let chat = gql(format!(
        r#"mutation {{ connectChatChannel(input: {{inboxId: "{}", name: "Chat"}}) {{ channel {{ id }} }} }}"#,
        gql(format!(r#"{{ conversation(id: "{zelda_mail}") {{ inbox {{ id }} }} }}"#))
            .await["conversation"]["inbox"]["id"]
            .as_str()
            .unwrap()
    ))
    .await["connectChatChannel"]["channel"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = gql(format!(
        r#"mutation {{ configureChatWidget(input: {{channelId: "{chat}", teamName: "Acme"}}) {{ channel {{ chatWidget {{ publicKey }} }} }} }}"#
    ))
    .await["configureChatWidget"]["channel"]["chatWidget"]["publicKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let visitor: Value = client
        .post(server.url(&format!("/chat/{key}/visitors")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let visitor_token = visitor["token"].as_str().unwrap().to_owned();
    let sent = client
        .post(server.url(&format!("/chat/{key}/messages")))
        .bearer_auth(&visitor_token)
        .json(&serde_json::json!({"text": CHAT_TEXT, "name": format!("Zelda {NAME}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), reqwest::StatusCode::CREATED);
    let left = client
        .post(server.url(&format!("/chat/{key}/contact")))
        .bearer_auth(&visitor_token)
        .json(&serde_json::json!({"email": ADDRESS}))
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), reqwest::StatusCode::ACCEPTED);
    let chat_query = format!(
        r#"{{ conversations(first: 10, filter: {{channelId: "{chat}"}}) {{ nodes {{ id }} }} }}"#
    );
    let chat_query = &chat_query;
    let chat_conversation = eventually(|| async move {
        let found = gql(chat_query.clone()).await;
        match found["conversations"]["nodes"][0]["id"].as_str() {
            Some(id) => Ok(id.to_owned()),
            None => Err(found.to_string()),
        }
    })
    .await;
    // The widget made a contact for the visitor, with the address she left; the agent
    // recognises her and merges it into Zelda.
    let visitor_id = visitor["visitorId"].as_str().unwrap().to_owned();
    let by_visitor = format!(
        r#"{{ contactByIdentity(identity: {{kind: CHAT_VISITOR, value: "{visitor_id}"}}) {{ id }} }}"#
    );
    let by_visitor = &by_visitor;
    let visitor_contact = eventually(|| async move {
        let found = gql(by_visitor.clone()).await;
        match found["contactByIdentity"]["id"].as_str() {
            Some(id) => Ok(id.to_owned()),
            None => Err(found.to_string()),
        }
    })
    .await;
    let merged = gql(format!(
        r#"mutation {{ mergeContacts(input: {{survivorId: "{zelda}", mergedId: "{visitor_contact}"}}) {{ userErrors {{ message }} }} }}"#
    ))
    .await;
    assert_eq!(merged["mergeContacts"]["userErrors"], serde_json::json!([]));

    // Erased.
    let erased = gql(format!(
        r#"mutation {{ eraseContact(input: {{contactId: "{zelda}", reason: "Art. 17 request of 2026-12-01"}}) {{ erasedContactId erasedConversationIds userErrors {{ message }} }} }}"#
    ))
    .await;
    let mut ids: Vec<String> = erased["eraseContact"]["erasedConversationIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected = vec![zelda_mail.clone(), chat_conversation.clone()];
    expected.sort();
    assert_eq!(ids, expected, "{erased}");

    // The API: her conversations are gone, past states and the log read redacted, her files
    // are not served; Otto's are all there.
    let asked = [
        thread(&zelda_mail),
        thread(&chat_conversation),
        "{ conversations(first: 100) { nodes { id subject contact { id name } } } }".to_owned(),
        format!(r#"{{ contact(id: "{zelda}") {{ id name }} }}"#),
        format!(r#"{{ contact(id: "{visitor_contact}") {{ id name }} }}"#),
        format!(
            r#"{{ contactByIdentity(identity: {{kind: EMAIL, value: "{ADDRESS}"}}) {{ id name }} }}"#
        ),
        by_visitor.clone(),
        format!(
            r#"{{ conversationAt(id: "{zelda_mail}", position: 1000000) {{ subject timeline(first: 50) {{ nodes {{ bodyText }} }} }} }}"#
        ),
        format!(r#"{{ contactData(contactId: "{zelda}") }}"#),
        "{ auditTrail(first: 100) { nodes { stream } pageInfo { hasNextPage } } }".to_owned(),
    ];
    let (asked, token_ref) = (&asked, &token);
    let (client_ref, server_ref) = (&client, &server);
    let answers = eventually(|| async move {
        let mut answers = Vec::new();
        for query in asked {
            answers.push(graphql(client_ref, server_ref, Some(token_ref), query).await);
        }
        match answers
            .iter()
            .find(|answer| !found_in(answer.to_string().as_bytes()).is_empty())
        {
            Some(answer) => Err(answer.to_string()),
            None => Ok(answers),
        }
    })
    .await;
    // The whole log, page by page.
    let mut after = 0;
    loop {
        let page = graphql(
            &client,
            &server,
            Some(&token),
            &format!(
                "{{ events(afterPosition: {after}, first: 100) {{ nodes {{ position stream payload }} }} }}"
            ),
        )
        .await;
        assert_eq!(
            found_in(page.to_string().as_bytes()),
            Vec::<&str>::new(),
            "{page}"
        );
        let nodes = page["data"]["events"]["nodes"].as_array().unwrap().clone();
        let Some(last) = nodes.last() else { break };
        after = last["position"].as_u64().unwrap();
    }
    assert!(
        answers[0]["data"]["conversation"].is_null(),
        "{}",
        answers[0]
    );
    let otto_now = gql(thread(&otto_mail)).await;
    assert!(otto_now.to_string().contains(OTTO_TEXT), "{otto_now}");
    for url in &zelda_files {
        let response = download(url).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND, "{url}");
    }
    for url in &otto_files {
        let response = download(url).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{url}");
        let body = response.bytes().await.unwrap();
        assert!(
            [OTTO_FILE, "otto-55120"]
                .iter()
                .any(|needle| body.windows(needle.len()).any(|w| w == needle.as_bytes())),
            "{url}"
        );
    }
    assert_eq!(server.terminate(), Some(0));

    // The files: nothing of hers in any read model, key store or blob; the log holds her
    // words only when they were written in the clear, and never her file.
    let mut in_log = Vec::new();
    for (path, bytes) in bytes_under(&data_dir) {
        let found = found_in(&bytes);
        if is_log(&data_dir, &path) {
            in_log.extend(found.iter().copied());
        }
        let allowed: &[&str] = if !seal && is_log(&data_dir, &path) {
            &[NAME, ADDRESS, "tiles-99817"]
        } else {
            &[]
        };
        let left: Vec<_> = found.iter().filter(|n| !allowed.contains(n)).collect();
        assert!(left.is_empty(), "{} holds {left:?}", path.display());
    }
    assert_eq!(
        in_log.contains(&"tiles-99817"),
        !seal,
        "her words are in the log exactly when it is in the clear"
    );
    let dir_arg = data_dir.to_str().unwrap();
    let exported = run(&["export", "--data-dir", dir_arg], None);
    assert_eq!(exported.status.code(), Some(0), "{:?}", text(&exported));
    assert_eq!(found_in(&exported.stdout), Vec::<&str>::new());
    assert!(
        String::from_utf8_lossy(&exported.stdout).contains("otto-55120") != seal,
        "Otto's text is in an export exactly when the log is in the clear"
    );
    let person = run(
        &[
            "contact",
            "export",
            "--data-dir",
            dir_arg,
            "--contact",
            &zelda,
        ],
        None,
    );
    assert_eq!(person.status.code(), Some(0), "{:?}", text(&person));
    assert_eq!(found_in(&person.stdout), Vec::<&str>::new());
    let verified = run(&["audit", "verify", "--data-dir", dir_arg], None);
    assert_eq!(verified.status.code(), Some(0), "{:?}", text(&verified));

    // A rebuild of every read model from the log yields the same: nothing of hers.
    let rebuilt = run(&["projections", "rebuild", "--data-dir", dir_arg], None);
    assert_eq!(rebuilt.status.code(), Some(0), "{:?}", text(&rebuilt));
    for (path, bytes) in bytes_under(&data_dir) {
        if !is_log(&data_dir, &path) {
            assert_eq!(found_in(&bytes), Vec::<&str>::new(), "{}", path.display());
        }
    }
}

/// Polls `probe` until it answers `Ok`, for up to 30 seconds; fails with its last `Err`.
async fn eventually<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(last) => assert!(Instant::now() < deadline, "never happened: {last}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
