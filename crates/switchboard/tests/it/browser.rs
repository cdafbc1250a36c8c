//! Website chat (and the demo's form) in a real browser: Debian's Chromium, headless and without
//! its sandbox (the tests run as root), driven over the DevTools protocol with chromiumoxide,
//! against the real binary serving its demo site (`serve --demo`, `/demo/`). The visitor opens
//! the widget with a mouse click and writes with the keyboard; an agent's GraphQL subscription is
//! told; the demo's bot greets and, asked for a person, hands off; the agent answers through GraphQL; the page shows the answer; a reload keeps the
//! conversation, and the socket follows it again. The page's quote form, sent in the browser,
//! opens a conversation. A screenshot is saved for people to look at. The widget's unsent
//! messages: one refused for now goes again by itself, once; one still pending is not taken for
//! the echo of another with the same text; ones refused for good keep their text to edit.
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
const DEADLINE: Duration = Duration::from_secs(60);

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
        if Instant::now() >= deadline {
            // What the widget's sockets did, where a test records it (`SOCKET_EVENTS`).
            let events: String = page
                .evaluate("JSON.stringify(window.sbEvents || [])")
                .await
                .ok()
                .and_then(|r| r.into_value().ok())
                .unwrap_or_default();
            panic!(
                "the page never had {expression}: {:?}; the widget's sockets: {events}",
                text_of_log(page).await
            );
        }
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
/// their body, once at least `least` have.
async fn recorded_times(server: &Server, token: &str, text: &str, least: usize) -> usize {
    until_answered(
        server,
        token,
        "{ conversations(first: 20) { nodes { timeline(first: 100) { nodes { bodyText } } } } }",
        &format!("{least} timeline entries {text:?}"),
        |found| {
            let times = found["data"]["conversations"]["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["timeline"]["nodes"].as_array().into_iter().flatten())
                .filter(|entry| entry["bodyText"] == text)
                .count();
            (times >= least).then_some(times)
        },
    )
    .await
}

/// A message the server refuses for now (the visitor's rate limit: one message, then one per
/// ten seconds) is not lost: the widget shows it as not sent with a Retry button and announces
/// the failure; pressing Retry too early is refused again; once the wait is over it goes by
/// itself, with the same `clientId`, and is recorded once. One written meanwhile waits behind
/// it and goes after it.
#[tokio::test]
async fn a_message_refused_for_now_is_kept_shown_as_not_sent_and_sent_again_once() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (server, _dirs, mut browser, driver, page) = chatting(
        chromium,
        "[chat]\nper_visitor_per_minute = 6\nper_visitor_burst = 1\n",
        DROP_MESSAGES,
    )
    .await;
    let admin = server.admin_token().expect("an admin token in the banner");

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
    // A third waits behind it, shown as sending, not sent.
    let third = "Or in blue?";
    page.execute(InsertTextParams::new(third)).await.unwrap();
    press_enter(&page).await;

    // Once the wait is over it goes by itself and is acknowledged, then the third.
    until(
        &page,
        &format!(
            "{ROOT}.querySelector('.log').innerText.includes({third:?}) && \
             !{ROOT}.querySelector('.sending, .failed, .note')"
        ),
    )
    .await;
    assert_eq!(recorded_times(&server, &admin, second, 1).await, 1);
    assert_eq!(recorded_times(&server, &admin, third, 1).await, 1);
    assert_eq!(text_of_log(&page).await.matches(second).count(), 1);
    // In order: the third went only once the second was taken, never past it.
    let sent: Vec<String> = page
        .evaluate(
            "window.sbSent.map(f => JSON.parse(f)).filter(f => f.type === 'message').map(f => f.text)",
        )
        .await
        .unwrap()
        .into_value()
        .unwrap();
    let last_second = sent.iter().rposition(|t| t == second).unwrap();
    let first_third = sent.iter().position(|t| t == third).unwrap();
    assert!(last_second < first_third, "{sent:?}");

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    assert_eq!(server.terminate(), Some(0));
}

/// Starts the demo server with `config` (a `switchboard.toml`), opens its page in Chromium,
/// runs `before` in the page (before the widget talks to the server), opens the widget and says
/// `Hello`.
async fn chatting(
    chromium: PathBuf,
    config: &str,
    before: &str,
) -> (
    Server,
    [TempDir; 3],
    Browser,
    tokio::task::JoinHandle<()>,
    Page,
) {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, config).unwrap();
    let data = TempDir::new().unwrap();
    let server = Server::start(data.path(), &["--demo", "--config", path.to_str().unwrap()]);
    wait_for_200(&reqwest::Client::new(), &server.url("/demo/"), DEADLINE).await;
    let profile = TempDir::new().unwrap();
    let (browser, driver) = launch(chromium, &profile).await;
    let page = browser.new_page(server.url("/demo/")).await.unwrap();
    until(&page, "!!document.querySelector('[data-switchboard-chat]')").await;
    page.evaluate(SOCKET_EVENTS).await.unwrap();
    page.evaluate(before).await.unwrap();
    page.evaluate(format!("{ROOT}.querySelector('.launcher').click()"))
        .await
        .unwrap();
    until(
        &page,
        &format!("{ROOT}.activeElement && {ROOT}.activeElement.id === 'sb-text'"),
    )
    .await;
    say(&page, "Hello").await;
    (server, [dir, data, profile], browser, driver, page)
}

/// In the page: the widget's socket (`window.sbSocket`, the last one that sent), the frames it
/// sent (`window.sbSent`), and its message frames dropped while `window.sbDrop` is true, as a
/// broken connection loses them; with [`SOCKET_EVENTS`].
const DROP_MESSAGES: &str = "(() => { const send = WebSocket.prototype.send; \
     WebSocket.prototype.send = function (data) { window.sbSocket = this; \
       (window.sbSent = window.sbSent || []).push(String(data)); \
       if (window.sbDrop && String(data).includes('\"type\":\"message\"')) return; \
       return send.call(this, data); }; })()";

/// In the page: what every WebSocket the widget opens does, with the milliseconds since the
/// page started (`window.sbEvents`: opened, closed with its code, each frame received in short,
/// each `close()` called), for a failing wait to print.
const SOCKET_EVENTS: &str = "(() => { const Real = window.WebSocket; let n = 0; \
     const note = (what) => (window.sbEvents = window.sbEvents || []) \
       .push(Math.round(performance.now()) + ' ' + what); \
     const close = Real.prototype.close; \
     Real.prototype.close = function () { note('#' + this.sbN + ' close() called'); \
       return close.apply(this, arguments); }; \
     window.WebSocket = function (url) { const socket = new Real(url); socket.sbN = ++n; \
       note('#' + socket.sbN + ' new ' + String(url).replace(/token=[^&]*/, 'token=..')); \
       socket.addEventListener('open', () => note('#' + socket.sbN + ' open')); \
       socket.addEventListener('close', (e) => note('#' + socket.sbN + ' closed ' + e.code)); \
       socket.addEventListener('message', (e) => note('#' + socket.sbN + ' got ' + \
         String(e.data).slice(0, 80))); \
       return socket; }; \
     window.WebSocket.prototype = Real.prototype; \
     Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 }); })()";

/// The visitor's bubbles whose text is `text`, in the page.
fn bubbles(text: &str) -> String {
    format!(
        "[...{ROOT}.querySelectorAll('.msg.visitor')].filter(li => li.firstChild.nodeValue === {text:?})"
    )
}

/// The review's case: "?" is pending (sent, its frame lost), and another "?" of the visitor's
/// (another tab) is recorded and echoed. The echo is not the pending one, whose text it shares:
/// it is shown on its own, the pending one stays pending, goes again when the socket opens, and
/// both are recorded.
#[tokio::test]
async fn an_echo_with_the_same_text_does_not_take_the_place_of_a_pending_message() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (server, _dirs, mut browser, driver, page) =
        chatting(chromium, "[chat]\nper_visitor_burst = 50\n", DROP_MESSAGES).await;
    let admin = server.admin_token().expect("an admin token in the banner");

    page.evaluate("window.sbDrop = true").await.unwrap();
    page.execute(InsertTextParams::new("?")).await.unwrap();
    press_enter(&page).await;
    until(&page, &format!("{}.length === 1", bubbles("?"))).await;
    // The visitor's other tab sends "?" too.
    let status: u16 = page
        .evaluate(
            "(async () => { \
               const script = document.querySelector('script[data-key]'); \
               const key = script.getAttribute('data-key'); \
               const saved = JSON.parse(localStorage.getItem('switchboard-chat:' + key)); \
               const r = await fetch(new URL(script.src).origin + '/chat/' + key + '/messages', { \
                 method: 'POST', headers: { 'Content-Type': 'application/json', \
                   Authorization: 'Bearer ' + saved.token }, \
                 body: JSON.stringify({ text: '?', clientId: 'other-tab' }) }); \
               return r.status; })()",
        )
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert_eq!(status, 201);
    // The connection breaks (the first "?" still unanswered) and opens again: the server
    // replays the other "?". Its echo is shown as a message of its own; the first "?" is still
    // pending (sent again on opening, and lost again).
    page.evaluate("window.sbSocket.close()").await.unwrap();
    until(
        &page,
        &format!(
            "{b}.length === 2 && {b}[1].dataset.id && !{b}[1].matches('.sending, .failed') && \
             {b}[0].matches('.sending, .failed') && \
             JSON.parse(localStorage.getItem('switchboard-chat:' + \
               document.querySelector('script[data-key]').getAttribute('data-key'))).pending.length === 1",
            b = bubbles("?")
        ),
    )
    .await;

    // The connection breaks again; once open again, the pending "?" goes and is acknowledged.
    page.evaluate("window.sbDrop = false; window.sbSocket.close()")
        .await
        .unwrap();
    until(
        &page,
        &format!(
            "{b}.length === 2 && !{ROOT}.querySelector('.sending, .failed')",
            b = bubbles("?")
        ),
    )
    .await;
    assert_eq!(recorded_times(&server, &admin, "?", 2).await, 2);

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    assert_eq!(server.terminate(), Some(0));
}

/// A message the server never answers (its frame lost on a connection that stays open) does
/// not hold up the conversation: after the widget's wait for an answer (20 s) the socket is
/// dropped and opened again, and the message sent again.
#[tokio::test]
async fn a_message_never_answered_is_sent_again_on_a_new_connection() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (server, _dirs, mut browser, driver, page) =
        chatting(chromium, "[chat]\nper_visitor_burst = 50\n", DROP_MESSAGES).await;
    let admin = server.admin_token().expect("an admin token in the banner");

    page.evaluate("window.sbDrop = true").await.unwrap();
    page.execute(InsertTextParams::new("Anyone there?"))
        .await
        .unwrap();
    press_enter(&page).await;
    let started = Instant::now();
    let sent = "(window.sbSent || []).filter(d => d.includes('Anyone there?')).length";
    until(&page, &format!("{sent} >= 2")).await;
    // Well before the server would drop an idle socket itself (60 s).
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "sent again after {:?}",
        started.elapsed()
    );
    // Once frames go through again, the message is recorded, once.
    page.evaluate("window.sbDrop = false; window.sbSocket.close()")
        .await
        .unwrap();
    until(
        &page,
        &format!(
            "{}.length === 1 && !{ROOT}.querySelector('.sending, .failed')",
            bubbles("Anyone there?")
        ),
    )
    .await;
    assert_eq!(recorded_times(&server, &admin, "Anyone there?", 1).await, 1);

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    assert_eq!(server.terminate(), Some(0));
}

/// Messages refused for good (here too long for the server, which the page was told allows
/// more) never lose their text, however many and whatever the visitor is typing: each bubble
/// stays, marked not sent, across a reload too, and its Edit button puts its text in the box
/// after what is there.
#[tokio::test]
async fn messages_refused_for_good_keep_their_text_for_the_visitor_to_edit() {
    let Some(chromium) = chromium() else {
        return;
    };
    // The page is told messages may be longer than the server takes.
    let lenient = "(() => { const get = window.fetch; window.fetch = (...args) => \
         get(...args).then(r => /\\/chat\\/[^/]+$/.test(new URL(r.url).pathname) \
           ? r.json().then(j => new Response(JSON.stringify(Object.assign(j, \
               { maxMessageChars: 4000 })), { status: r.status, headers: r.headers })) \
           : r); })()";
    let (server, _dirs, mut browser, driver, page) = chatting(
        chromium,
        "[chat]\nper_visitor_burst = 50\nmax_message_chars = 20\n",
        lenient,
    )
    .await;

    let first = "This first message is far too long.";
    let second = "And so is this second message of mine.";
    for text in [first, second] {
        page.execute(InsertTextParams::new(text)).await.unwrap();
        press_enter(&page).await;
    }
    page.execute(InsertTextParams::new("draft")).await.unwrap();
    let refused = |text: &str| {
        format!(
            "{b}.length === 1 && {b}[0].matches('.failed') && \
             {b}[0].querySelector('.note').textContent.includes('Not sent') && \
             {b}[0].querySelector('.note button').textContent === 'Edit'",
            b = bubbles(text)
        )
    };
    until(
        &page,
        &format!(
            "{} && {} && {ROOT}.querySelector('#sb-text').value === 'draft' && \
             {ROOT}.querySelector('[role=alert]').textContent.includes('Not sent')",
            refused(first),
            refused(second)
        ),
    )
    .await;

    // Edit: the text goes after what is in the box, and the bubble goes.
    page.evaluate(format!(
        "{}[0].querySelector('.note button').click()",
        bubbles(first)
    ))
    .await
    .unwrap();
    until(
        &page,
        &format!(
            "{}.length === 0 && {} && {ROOT}.querySelector('#sb-text').value === {:?} && \
             {ROOT}.activeElement.id === 'sb-text'",
            bubbles(first),
            refused(second),
            format!("draft\n{first}")
        ),
    )
    .await;

    // The other is still there after a reload.
    page.reload().await.unwrap();
    until(&page, "!!document.querySelector('[data-switchboard-chat]')").await;
    page.evaluate(format!("{ROOT}.querySelector('.launcher').click()"))
        .await
        .unwrap();
    until(
        &page,
        &format!("{} && {}.length === 0", refused(second), bubbles(first)),
    )
    .await;

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    assert_eq!(server.terminate(), Some(0));
}
