//! `[privacy] seal_personal_data`: a customer's message is stored sealed (the log's bytes do not
//! hold it), read back opened by the API and by a rebuild, and the chain verifies over the
//! sealed bytes.

use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::server::{Server, data_of, graphql, init_acme, support_channel, wait_for_200};
use crate::support::{run, text};

/// Whether any file of the embedded store (the database and its write-ahead log) holds `needle`.
fn log_holds(data_dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(data_dir.join("events"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("events.sqlite3"))
        })
        .any(|path| {
            std::fs::read(path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
}

/// A server on a new data directory with one organisation, sealing personal data.
struct Sealed {
    dir: TempDir,
    data_dir: std::path::PathBuf,
    /// The super admin's token.
    token: String,
    config: std::path::PathBuf,
    server: Server,
    client: reqwest::Client,
}

impl Sealed {
    async fn start() -> Sealed {
        let dir = TempDir::new().unwrap();
        let data_dir = dir.path().join("data");
        let init = init_acme(&data_dir);
        assert_eq!(init.status.code(), Some(0), "{:?}", text(&init));
        let token = text(&init).0.trim().to_owned();
        let config = dir.path().join("switchboard.toml");
        std::fs::write(&config, "[privacy]\nseal_personal_data = true\n").unwrap();
        let server = Server::start(&data_dir, &["--config", config.to_str().unwrap()]);
        let client = reqwest::Client::new();
        wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
        Sealed {
            dir,
            data_dir,
            token,
            config,
            server,
            client,
        }
    }
}

#[tokio::test]
async fn a_sealed_message_is_not_in_the_log_yet_reads_back_everywhere() {
    const BODY: &str = "Kiwi marmalade, order 7391";
    const SUBJECT: &str = "Marmalade subscription";
    let Sealed {
        dir: _dir,
        data_dir,
        token,
        config,
        server,
        client,
    } = Sealed::start().await;
    let channel = support_channel(&client, &server, &token).await;
    let (query, data) = receive_and_wait(
        &client,
        &server,
        &token,
        &channel,
        "hedy@customer.test",
        SUBJECT,
        BODY,
    )
    .await;
    assert_eq!(data["conversation"]["subject"], SUBJECT, "{data}");
    assert_eq!(server.terminate(), Some(0));

    assert!(
        !log_holds(&data_dir, BODY),
        "the body is in the log in the clear"
    );
    assert!(
        !log_holds(&data_dir, SUBJECT),
        "the subject is in the log in the clear"
    );
    assert!(
        log_holds(&data_dir, "\"$sb\":\"1~body_text~"),
        "no sealed body in the log"
    );
    let dir_arg = data_dir.to_str().unwrap();
    let verified = run(&["audit", "verify", "--data-dir", dir_arg], None);
    assert_eq!(verified.status.code(), Some(0), "{:?}", text(&verified));
    let rebuilt = run(&["projections", "rebuild", "--data-dir", dir_arg], None);
    assert_eq!(rebuilt.status.code(), Some(0), "{:?}", text(&rebuilt));
    let exported = run(&["export", "--data-dir", dir_arg], None);
    let exported = text(&exported).0;
    assert!(
        !exported.contains(BODY),
        "an export carries the sealed bytes"
    );
    // The commands that read the directory read the sealed log too.
    let again = init_acme(&data_dir);
    assert_eq!(again.status.code(), Some(2), "{:?}", text(&again));
    assert!(text(&again).1.contains("already holds an organisation"));
    let minted = run(
        &["token", "--data-dir", dir_arg, "--user", "root@acme.test"],
        None,
    );
    assert_eq!(minted.status.code(), Some(0), "{:?}", text(&minted));

    // Restarted on the rebuilt read models, the API still shows the message.
    let server = Server::start(&data_dir, &["--config", config.to_str().unwrap()]);
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let answer = graphql(&client, &server, Some(&token), &query).await;
    assert!(answer.to_string().contains(BODY), "{answer}");
    assert_eq!(server.terminate(), Some(0));
}

/// `switchboard contact export`: a person's data as one document (GDPR Art. 15), opened
/// through the keys from a sealed log, with the conversations found in the log; an unknown
/// contact is refused (exit 2).
#[tokio::test]
async fn a_contacts_data_is_exported_as_one_document() {
    const BODY: &str = "Quince jelly, order 4412";
    let Sealed {
        dir,
        data_dir,
        token,
        config: _config,
        server,
        client,
    } = Sealed::start().await;
    let gql = |query: String| data_of(&client, &server, &token, query);
    let channel = support_channel(&client, &server, &token).await;
    let contact = gql(
        r#"mutation { createContact(input: {identities: [{kind: EMAIL, value: "hedy@customer.test"}], properties: [{name: "name", value: "Hedy Lamarr"}]}) { contact { id } } }"#
            .to_owned(),
    )
    .await["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    gql(format!(
        r#"mutation {{ receiveMessage(input: {{channelId: "{channel}", from: {{kind: EMAIL, value: "hedy@customer.test"}}, subject: "Jelly", bodyText: "{BODY}", email: {{messageId: "q1@customer.test"}}}}) {{ conversation {{ id }} }} }}"#
    ))
    .await;
    assert_eq!(server.terminate(), Some(0));

    let dir_arg = data_dir.to_str().unwrap();
    let out = dir.path().join("hedy.json");
    let exported = run(
        &[
            "contact",
            "export",
            "--data-dir",
            dir_arg,
            "--contact",
            &contact,
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(exported.status.code(), Some(0), "{:?}", text(&exported));
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(document["format"], "switchboard.subject-access/1");
    assert_eq!(document["contact"]["properties"]["name"], "Hedy Lamarr");
    let conversations = document["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 1, "{document:#}");
    assert!(conversations[0].to_string().contains(BODY), "{document:#}");

    let unknown = run(
        &[
            "contact",
            "export",
            "--data-dir",
            dir_arg,
            "--contact",
            "0194f3a2-0000-7000-8000-000000000000",
        ],
        None,
    );
    assert_eq!(unknown.status.code(), Some(2), "{:?}", text(&unknown));
}

/// Erased while sealing was off: the log keeps what the person wrote (it cannot change), but
/// everything read through the keys shows it redacted: `export` marks the redacted lines (an
/// import then needs `--rechain`) and `contact export` holds none of it.
#[tokio::test]
async fn a_contact_erased_while_sealing_was_off_is_redacted_in_exports() {
    const BODY: &str = "Rhubarb crumble, order 5120";
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let init = init_acme(&data_dir);
    assert_eq!(init.status.code(), Some(0), "{:?}", text(&init));
    let token = text(&init).0.trim().to_owned();
    let server = Server::start(&data_dir, &[]);
    let client = reqwest::Client::new();
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let gql = |query: String| data_of(&client, &server, &token, query);
    let channel = support_channel(&client, &server, &token).await;
    let contact = gql(
        r#"mutation { createContact(input: {identities: [{kind: EMAIL, value: "ida@customer.test"}], properties: [{name: "name", value: "Ida Noddack"}]}) { contact { id } } }"#
            .to_owned(),
    )
    .await["createContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    gql(format!(
        r#"mutation {{ receiveMessage(input: {{channelId: "{channel}", from: {{kind: EMAIL, value: "ida@customer.test"}}, subject: "Crumble", bodyText: "{BODY}", email: {{messageId: "r1@customer.test"}}}}) {{ conversation {{ id }} }} }}"#
    ))
    .await;
    let erased = gql(format!(
        r#"mutation {{ eraseContact(input: {{contactId: "{contact}", reason: "Art. 17 request"}}) {{ erasedContactId erasedConversationIds userErrors {{ code }} }} }}"#
    ))
    .await;
    assert_eq!(
        erased["eraseContact"]["erasedConversationIds"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{erased}"
    );
    assert_eq!(server.terminate(), Some(0));
    assert!(
        log_holds(&data_dir, BODY),
        "written in the clear, the body stays in the log"
    );

    let dir_arg = data_dir.to_str().unwrap();
    let exported = run(&["export", "--data-dir", dir_arg], None);
    assert_eq!(exported.status.code(), Some(0), "{:?}", text(&exported));
    let exported = text(&exported).0;
    // Nor the address: the stream that keeps it unique is named by a keyed hash (ADR 0007).
    for needle in [BODY, "Ida Noddack", "ida@customer.test"] {
        assert!(!exported.contains(needle), "{needle} in the export");
    }
    assert!(exported.contains("\"redacted\":true"), "{exported}");
    // Without the master key too: which subjects were erased is readable without it.
    let key = data_dir.join("secret-key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let keyless = run(&["export", "--data-dir", dir_arg], None);
    assert_eq!(keyless.status.code(), Some(0), "{:?}", text(&keyless));
    let keyless = text(&keyless).0;
    assert!(
        !keyless.contains(BODY),
        "the body in an export without the key"
    );
    assert!(keyless.contains("\"redacted\":true"));
    std::fs::write(&key, saved).unwrap();
    let person = run(
        &[
            "contact",
            "export",
            "--data-dir",
            dir_arg,
            "--contact",
            &contact,
        ],
        None,
    );
    assert_eq!(person.status.code(), Some(0), "{:?}", text(&person));
    let person = text(&person).0;
    assert!(person.contains("\"erased\": true"), "{person}");
    for needle in [BODY, "Ida Noddack"] {
        assert!(!person.contains(needle), "{needle} in {person}");
    }
    let copy = dir.path().join("copy");
    let imported = run(
        &["import", "--in", "-", "--data-dir", copy.to_str().unwrap()],
        Some(exported.as_bytes()),
    );
    assert_eq!(imported.status.code(), Some(2), "{:?}", text(&imported));
    assert!(
        text(&imported).1.contains("redacted"),
        "{:?}",
        text(&imported)
    );
}

/// The message of a new sender `from` with `subject` and `body`, received on `channel`: the
/// query of its conversation, and the answer once the message shows in it.
async fn receive_and_wait(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    channel: &str,
    from: &str,
    subject: &str,
    body: &str,
) -> (String, serde_json::Value) {
    let gql = |query: String| data_of(client, server, token, query);
    let conversation = gql(format!(
        r#"mutation {{ receiveMessage(input: {{channelId: "{channel}", from: {{kind: EMAIL, value: "{from}"}}, subject: "{subject}", bodyText: "{body}", email: {{messageId: "{}.{from}"}}}}) {{ conversation {{ id }} }} }}"#,
        body.len()
    ))
    .await["receiveMessage"]["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let query = format!(
        r#"{{ conversation(id: "{conversation}") {{ subject timeline(first: 20) {{ nodes {{ kind bodyText }} }} }} }}"#
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = gql(query.clone()).await;
        let shown = data["conversation"]["timeline"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|node| node["bodyText"] == body);
        if shown {
            return (query, data);
        }
        assert!(Instant::now() < deadline, "{body} never showed: {data}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `migrate encrypt` on a log written in the clear: it records the subjects with fields in the
/// clear and turns sealing on for the store (a server without the configuration seals
/// afterwards), re-writes nothing, and a second run keeps the first sealing position.
#[tokio::test]
async fn migrate_encrypt_records_what_is_in_the_clear_and_seals_from_then_on() {
    const OLD: &str = "Gooseberry fool, order 4471";
    const NEW: &str = "Damson cheese, order 9902";
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let dir_arg = data_dir.to_str().unwrap().to_owned();
    let init = init_acme(&data_dir);
    assert_eq!(init.status.code(), Some(0), "{:?}", text(&init));
    let token = text(&init).0.trim().to_owned();
    let client = reqwest::Client::new();

    let server = Server::start(&data_dir, &[]);
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    let channel = support_channel(&client, &server, &token).await;
    receive_and_wait(
        &client,
        &server,
        &token,
        &channel,
        "lise@customer.test",
        "Jam",
        OLD,
    )
    .await;
    let outcome = |output: &std::process::Output| -> serde_json::Value {
        assert_eq!(output.status.code(), Some(0), "{:?}", text(output));
        serde_json::from_str(text(output).0.trim()).unwrap()
    };
    // Refused while the server holds the data directory; a dry run only reads, beside it.
    let busy = run(&["migrate", "encrypt", "--data-dir", &dir_arg], None);
    assert_eq!(busy.status.code(), Some(2), "{:?}", text(&busy));
    let dry = outcome(&run(
        &["migrate", "encrypt", "--dry-run", "--data-dir", &dir_arg],
        None,
    ));
    assert_eq!(server.terminate(), Some(0));
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["turned_on"], true, "{dry}");
    // A mistyped directory is refused, not made into a new store.
    let typo = dir.path().join("dta");
    let refused = run(
        &["migrate", "encrypt", "--data-dir", typo.to_str().unwrap()],
        None,
    );
    assert_eq!(refused.status.code(), Some(2), "{:?}", text(&refused));
    assert!(!typo.exists());
    // So is an empty store (an import of nothing makes one).
    let empty = dir.path().join("empty");
    let empty_arg = empty.to_str().unwrap();
    let made = run(&["import", "--in", "-", "--data-dir", empty_arg], Some(b""));
    assert_eq!(made.status.code(), Some(0), "{:?}", text(&made));
    let refused = run(&["migrate", "encrypt", "--data-dir", empty_arg], None);
    assert_eq!(refused.status.code(), Some(2), "{:?}", text(&refused));
    assert!(
        text(&refused).1.contains("holds no events"),
        "{:?}",
        text(&refused)
    );

    let first = outcome(&run(&["migrate", "encrypt", "--data-dir", &dir_arg], None));
    assert_eq!(first["turned_on"], true, "{first}");
    // Lise's message (her conversation's: she is no contact yet), and the channel's two
    // addresses as reserved (a reserved value is classed personal whoever holds it).
    assert_eq!(first["subjects_in_clear"], 3, "{first}");
    let in_clear = first["events_in_clear"].as_u64().unwrap();
    assert_eq!(in_clear, 3, "{first}");
    assert_eq!(first["found_events"], in_clear, "{first}");
    assert_eq!(first["without_subject"], 0, "{first}");
    assert_eq!(first["searched_from"], 0, "{first}");
    assert_eq!(
        dry["events_in_clear"], in_clear,
        "a dry run finds the same: {dry}"
    );
    let since = first["sealing_since"]["position"].as_u64().unwrap();
    assert_eq!(first["searched_through"], since, "{first}");

    // No configuration says seal; the store does.
    let server = Server::start(&data_dir, &[]);
    wait_for_200(&client, &server.url("/readyz"), Duration::from_secs(30)).await;
    receive_and_wait(
        &client,
        &server,
        &token,
        &channel,
        "mads@customer.test",
        "Jam",
        NEW,
    )
    .await;
    receive_and_wait(
        &client,
        &server,
        &token,
        &channel,
        "lise@customer.test",
        "Jam",
        "again",
    )
    .await;
    assert_eq!(server.terminate(), Some(0));
    assert!(
        !log_holds(&data_dir, NEW),
        "written after migrating, in the clear"
    );
    assert!(log_holds(&data_dir, OLD), "nothing is re-written");

    let second = outcome(&run(&["migrate", "encrypt", "--data-dir", &dir_arg], None));
    assert_eq!(second["turned_on"], false, "{second}");
    assert_eq!(second["sealing_since"], first["sealing_since"], "{second}");
    assert_eq!(second["searched_from"], since, "{second}");
    assert_eq!(
        second["found_events"], 0,
        "everything since was sealed: {second}"
    );
    assert_eq!(second["events_in_clear"], in_clear, "{second}");
    let verified = run(&["audit", "verify", "--data-dir", &dir_arg], None);
    assert_eq!(verified.status.code(), Some(0), "{:?}", text(&verified));
}
