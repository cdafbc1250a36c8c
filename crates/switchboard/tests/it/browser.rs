//! Website chat (and the demo's form) in a real browser: Debian's Chromium, headless and without
//! its sandbox (the tests run as root), driven over the DevTools protocol with chromiumoxide,
//! against the real binary serving its demo site (`serve --demo`, `/demo/`). The visitor opens
//! the widget with a mouse click and writes with the keyboard; an agent's GraphQL subscription is
//! told; the demo's bot greets and, asked for a person, hands off; the agent answers through GraphQL; the page shows the answer; a reload keeps the
//! conversation, and the socket follows it again. The page's quote form, sent in the browser,
//! opens a conversation. A screenshot is saved for people to look at.
//!
//! Chromium missing: the test skips saying so, or fails under `SWITCHBOARD_REQUIRE_TOOLS=1`
//! (`.ci/run` installs it). `SWITCHBOARD_CHROMIUM` names another binary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, InsertTextParams,
};
use chromiumoxide::layout::Point;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::server::{Server, wait_for_200};

/// How long the page may take to show something.
const DEADLINE: Duration = Duration::from_secs(30);

/// An agent's GraphQL WebSocket.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The widget's shadow root, in the page's scripts.
const ROOT: &str = "document.querySelector('[data-switchboard-chat]').shadowRoot";

/// The Chromium binary, if there is one.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("SWITCHBOARD_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("SWITCHBOARD_REQUIRE_TOOLS").as_deref() != Ok("1"),
        "Chromium is required (SWITCHBOARD_REQUIRE_TOOLS=1) but {} is missing: apt-get install \
         chromium",
        path.display()
    );
    eprintln!("SKIPPED: the browser test needs Chromium (Debian package `chromium`)");
    None
}

/// Waits until the page's `expression` is true.
async fn until(page: &Page, expression: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value: Option<bool> = match page.evaluate(expression).await {
            Ok(result) => result.into_value().ok(),
            // The page is navigating: ask again.
            Err(_) => None,
        };
        if value == Some(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never had {expression}: {:?}",
            text_of_log(page).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the widget's message list shows.
async fn text_of_log(page: &Page) -> String {
    page.evaluate(format!("{ROOT}.querySelector('.log').innerText"))
        .await
        .ok()
        .and_then(|r| r.into_value().ok())
        .unwrap_or_default()
}

/// Presses Enter in the focused element.
async fn press_enter(page: &Page) {
    for kind in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
        let mut key = DispatchKeyEventParams::builder()
            .r#type(kind.clone())
            .key("Enter")
            .code("Enter")
            .windows_virtual_key_code(13);
        if kind == DispatchKeyEventType::KeyDown {
            key = key.text("\r");
        }
        page.execute(key.build().unwrap()).await.unwrap();
    }
}

/// Types `text` into the focused message box and presses Enter; waits until the widget shows
/// it acknowledged (durable): nothing left sending or failed.
async fn say(page: &Page, text: &str) {
    page.execute(InsertTextParams::new(text)).await.unwrap();
    press_enter(page).await;
    until(
        page,
        &format!(
            "{ROOT}.querySelector('.log').innerText.includes({text:?}) && \
             !{ROOT}.querySelector('.sending, .failed')"
        ),
    )
    .await;
}

/// `POST /graphql` as `token` with `variables`; the JSON answer.
async fn graphql(server: &Server, token: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(server.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Asks `query` as the holder of `token` until `pick` finds what it wants in the answer (the
/// read models may not show it yet); fails after the deadline saying it found no `what`.
async fn until_answered<T>(
    server: &Server,
    token: &str,
    query: &str,
    what: &str,
    pick: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = graphql(server, token, query, json!({})).await;
        if let Some(picked) = pick(&found) {
            return picked;
        }
        assert!(Instant::now() < deadline, "no {what}: {found}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id of the conversation whose last message is `text`, once the read models show it.
async fn conversation_with(server: &Server, token: &str, text: &str) -> String {
    until_answered(
        server,
        token,
        "{ conversations(first: 10) { nodes { id lastMessagePreview } } }",
        &format!("conversation shows {text:?}"),
        |found| {
            found["data"]["conversations"]["nodes"]
                .as_array()
                .and_then(|nodes| nodes.iter().find(|n| n["lastMessagePreview"] == text))
                .and_then(|n| n["id"].as_str())
                .map(str::to_owned)
        },
    )
    .await
}

/// Replies `text` in `conversation` as the holder of `token`.
async fn reply(server: &Server, token: &str, conversation: &str, text: &str) {
    let sent = graphql(
        server,
        token,
        "mutation($id: ID!, $text: String!) { sendReply(input: {conversationId: $id, bodyText: $text}) {
            userErrors { message } } }",
        json!({ "id": conversation, "text": text }),
    )
    .await;
    assert_eq!(sent["data"]["sendReply"]["userErrors"], json!([]), "{sent}");
}

/// An agent's `graphql-transport-ws` connection, subscribed to the activity of the inbox named
/// `inbox` from what a query made before it covers (its `consistencyToken` as `after`): an
/// update made while the subscription is being set up is sent too.
async fn agent_following(server: &Server, token: &str, inbox: &str) -> Socket {
    let inboxes = graphql(
        server,
        token,
        "{ consistencyToken inboxes { nodes { id name } } }",
        json!({}),
    )
    .await;
    let after = inboxes["data"]["consistencyToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no consistency token: {inboxes}"))
        .to_owned();
    let id = inboxes["data"]["inboxes"]["nodes"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["name"] == inbox))
        .and_then(|i| i["id"].as_str())
        .unwrap_or_else(|| panic!("no inbox {inbox}: {inboxes}"))
        .to_owned();
    let url = server.url("/graphql/ws").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let frames = [
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
        json!({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($id: ID!, $after: String) {
                inboxActivity(inboxId: $id, after: $after) {
                eventType conversation { lastMessagePreview } } }",
            "variables": {"id": id, "after": after}}}),
    ];
    for frame in frames {
        socket.send(Message::text(frame.to_string())).await.unwrap();
    }
    socket
}

/// Waits for the agent's subscription to announce a customer's message: an update for it, or
/// one whose conversation shows `text` as its last message (nothing else writes to the demo
/// while the test runs; an update shows the conversation as it is when sent, so the bot may
/// have answered already). Fails with the frames it got.
async fn announced(socket: &mut Socket, text: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("the agent was never told of {text:?}; got {seen:#?}"));
        let Some(Ok(Message::Text(frame))) = frame else {
            seen.push(format!("{frame:?}"));
            continue;
        };
        let frame: Value = serde_json::from_str(&frame).unwrap();
        // Updates of one conversation may come together as the latest (`ConversationAssigned`
        // by routing, with the message as the preview).
        let update = &frame["payload"]["data"]["inboxActivity"];
        if update["eventType"] == "MessageReceived"
            || update["conversation"]["lastMessagePreview"] == text
        {
            return;
        }
        seen.push(frame.to_string());
    }
}

/// Headless Chromium with its profile in `profile`, and the task driving its DevTools
/// connection.
async fn launch(chromium: PathBuf, profile: &TempDir) -> (Browser, tokio::task::JoinHandle<()>) {
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .no_sandbox()
        .new_headless_mode()
        .user_data_dir(profile.path())
        .window_size(1000, 760)
        .arg("--disable-gpu")
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    let driver = tokio::spawn(async move {
        while let Some(event) = handler.next().await {
            if event.is_err() {
                break;
            }
        }
    });
    (browser, driver)
}

#[tokio::test]
async fn a_visitor_chats_in_a_real_browser_and_keeps_the_conversation_across_a_reload() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let server = Server::start(dir.path(), &["--demo"]);
    assert!(server.banner.contains("/demo/"), "{}", server.banner);
    let admin = server.admin_token().expect("an admin token in the banner");
    let client = reqwest::Client::new();
    let site = wait_for_200(&client, &server.url("/demo/"), DEADLINE).await;
    assert!(site.contains("/widget/v1.js"), "{site}");

    let profile = TempDir::new().unwrap();
    let (mut browser, driver) = launch(chromium, &profile).await;
    let page = browser.new_page(server.url("/demo/")).await.unwrap();

    // The visitor clicks the launcher: the panel opens with the team's name, focus in the box.
    until(&page, "!!document.querySelector('[data-switchboard-chat]')").await;
    let at: Value = page
        .evaluate(format!(
            "(() => {{ const r = {ROOT}.querySelector('.launcher').getBoundingClientRect();
                 return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"
        ))
        .await
        .unwrap()
        .into_value()
        .unwrap();
    let point = Point::new(at["x"].as_f64().unwrap(), at["y"].as_f64().unwrap());
    page.click(point).await.unwrap();
    until(
        &page,
        &format!("{ROOT}.activeElement && {ROOT}.activeElement.id === 'sb-text'"),
    )
    .await;
    until(
        &page,
        &format!("{ROOT}.querySelector('#sb-title').textContent === 'Northwind Support'"),
    )
    .await;
    until(
        &page,
        &format!("{ROOT}.querySelector('.launcher').getAttribute('aria-expanded') === 'true'"),
    )
    .await;

    // Types a question and presses Enter: shown, then acknowledged (durable); an agent
    // following the Support inbox is told.
    let mut agent = agent_following(&server, &admin, "Support").await;
    let question = "Do you ship tents to Norway?";
    say(&page, question).await;

    announced(&mut agent, question).await;

    // The demo's bot holds new chats: it greets, answers what it knows, and hands off when
    // asked for a person; its words reach the page.
    until(
        &page,
        &format!("{ROOT}.querySelector('.log').innerText.includes(\"I'm Sunny\")"),
    )
    .await;
    page.execute(InsertTextParams::new("Can I talk to a person?"))
        .await
        .unwrap();
    press_enter(&page).await;
    until(
        &page,
        &format!(
            "{ROOT}.querySelector('.log').innerText.includes('Let me get someone from the team')"
        ),
    )
    .await;

    // An agent answers through GraphQL (in the conversation the bot just handed off); the page
    // shows it.
    let conversation =
        conversation_with(&server, &admin, "Let me get someone from the team for you.").await;
    let answer = "Yes, within five working days.";
    reply(&server, &admin, &conversation, answer).await;
    until(
        &page,
        &format!("{ROOT}.querySelector('.log').innerText.includes({answer:?})"),
    )
    .await;

    // A reload keeps the conversation, and the socket follows it again.
    page.reload().await.unwrap();
    until(
        &page,
        &format!(
            "!!document.querySelector('[data-switchboard-chat]') && \
             {ROOT}.querySelector('.log').innerText.includes({question:?}) && \
             {ROOT}.querySelector('.log').innerText.includes({answer:?})"
        ),
    )
    .await;
    let later = "Anything else we can help with?";
    reply(&server, &admin, &conversation, later).await;
    until(
        &page,
        &format!("{ROOT}.querySelector('.log').innerText.includes({later:?})"),
    )
    .await;
    let shown = text_of_log(&page).await;
    assert_eq!(shown.matches(answer).count(), 1, "{shown}");

    // The demo site's quote form, filled in and sent in the browser, opens a conversation.
    page.evaluate(
        "document.querySelector('#quote [name=name]').value = 'Ada Lindqvist';
         document.querySelector('#quote [name=email]').value = 'ada@customer.example';
         document.querySelector('#quote [name=message]').value = 'A quote for 12 tents, please';
         document.querySelector('#quote button').click();",
    )
    .await
    .unwrap();
    until(
        &page,
        "document.querySelector('#form-result').textContent.startsWith('Thanks')",
    )
    .await;
    until_answered(
        &server,
        &admin,
        "{ conversations(first: 10) { nodes { lastMessagePreview } } }",
        "conversation from the form",
        |found| {
            found
                .to_string()
                .contains("A quote for 12 tents")
                .then_some(())
        },
    )
    .await;

    // Opened again for the picture.
    page.click(point).await.unwrap();
    until(&page, &format!("!{ROOT}.querySelector('.panel').hidden")).await;
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chat-widget.png");
    page.save_screenshot(ScreenshotParams::builder().build(), &screenshot)
        .await
        .unwrap();
    let size = std::fs::metadata(&screenshot).unwrap().len();
    assert!(size > 1_000, "{} is {size} bytes", screenshot.display());
    eprintln!("screenshot: {}", screenshot.display());

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    assert_eq!(server.terminate(), Some(0));
}

/// How many timeline entries of the conversations the holder of `token` sees have `text` as
/// their body, once at least one has.
async fn recorded_times(server: &Server, token: &str, text: &str) -> usize {
    until_answered(
        server,
        token,
        "{ conversations(first: 20) { nodes { timeline(first: 100) { nodes { bodyText } } } } }",
        &format!("timeline entry {text:?}"),
        |found| {
            let times = found["data"]["conversations"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["timeline"]["nodes"].as_array().into_iter().flatten())
                .filter(|entry| entry["bodyText"] == text)
                .count();
            (times > 0).then_some(times)
        },
    )
    .await
}

/// A message the server refuses for now (the visitor's rate limit: one message, then one per
/// ten seconds) is not lost: the widget shows it as not sent with a Retry button and announces
/// the failure; pressing Retry too early is refused again; once the wait is over it goes by
/// itself, with the same `clientId`, and is recorded once.
#[tokio::test]
async fn a_message_refused_for_now_is_kept_shown_as_not_sent_and_sent_again_once() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        "[chat]\nper_visitor_per_minute = 6\nper_visitor_burst = 1\n",
    )
    .unwrap();
    let data = TempDir::new().unwrap();
    let server = Server::start(
        data.path(),
        &["--demo", "--config", config.to_str().unwrap()],
    );
    let admin = server.admin_token().expect("an admin token in the banner");
    wait_for_200(&reqwest::Client::new(), &server.url("/demo/"), DEADLINE).await;
    let profile = TempDir::new().unwrap();
    let (mut browser, driver) = launch(chromium, &profile).await;
    let page = browser.new_page(server.url("/demo/")).await.unwrap();
    until(&page, "!!document.querySelector('[data-switchboard-chat]')").await;
    page.evaluate(format!("{ROOT}.querySelector('.launcher').click()"))
        .await
        .unwrap();
    until(
        &page,
        &format!("{ROOT}.activeElement && {ROOT}.activeElement.id === 'sb-text'"),
    )
    .await;

    say(&page, "Hello, a question about tents.").await;

    // The second comes within the visitor's ten seconds: refused for now, shown as not sent,
    // with a Retry button, and announced in the alert region.
    let second = "Do they come in green?";
    page.execute(InsertTextParams::new(second)).await.unwrap();
    press_enter(&page).await;
    until(
        &page,
        &format!(
            "{ROOT}.querySelector('.failed') && \
             {ROOT}.querySelector('.failed').innerText.includes({second:?}) && \
             {ROOT}.querySelector('.failed .note button').textContent === 'Retry' && \
             {ROOT}.querySelector('[role=alert]').textContent.includes('not sent')"
        ),
    )
    .await;
    // Retry at once: still too early, so refused again, and still kept.
    page.evaluate(format!(
        "{ROOT}.querySelector('.failed .note button').click()"
    ))
    .await
    .unwrap();

    // Once the wait is over it goes by itself and is acknowledged.
    until(
        &page,
        &format!(
            "{ROOT}.querySelector('.log').innerText.includes({second:?}) && \
             !{ROOT}.querySelector('.sending, .failed, .note')"
        ),
    )
    .await;
    assert_eq!(recorded_times(&server, &admin, second).await, 1);
    assert_eq!(text_of_log(&page).await.matches(second).count(), 1);

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    assert_eq!(server.terminate(), Some(0));
}
