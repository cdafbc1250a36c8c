//! The GraphQL suite (`graphql`): read throughput and latency of the API on demo data, against
//! a bare axum handler serving the same rows from the same SQLite read model.
//!
//! The server is the real one, built in-process with `switchboard::Application` on a temporary
//! data directory seeded with the demo organisation (`serve --demo`'s data). The suite then adds
//! one chat conversation of exactly 20 messages through the API (the demo's are shorter), waits
//! (with the last mutation's consistency token) until every read model includes it, and drives
//! two workloads, each for a fixed time, with `wrk` ([`wrk`], when it is on `PATH`) or with the
//! in-process load generator ([`load`]); `--load` chooses:
//!
//! - `graphql_thread`: `POST /graphql`, the conversation with its timeline (the 20 messages and
//!   the routing entries), as the demo's super admin;
//! - `graphql_inbox_list`: `POST /graphql`, the first page (25) of the busiest inbox's list.
//!
//! Each workload's baseline ([`baseline`]) reads the same rows with the same `thread_view`
//! queries from the server's own database file and answers the same JSON shape, on another port
//! of the same process, driven by the same generator with the same connections. Each prints one
//! JSON line ([`Report`]).

mod baseline;
pub(crate) mod load;
mod wrk;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use switchboard::{Application, Config};
use switchboard_projector::ReadModel;
use uuid::Uuid;

use crate::args::{Args, UsageError};
use load::{Connection, Request};
use wrk::Wrk;

/// Messages in the measured conversation.
const THREAD_MESSAGES: usize = 20;

/// Conversations on the measured inbox page.
const LIST_PAGE: usize = 25;

/// The thread an agent opens: header and timeline.
const THREAD_QUERY: &str = "query Thread($id: ID!) { conversation(id: $id) {
    id status subject channelKind createdAt lastActivityAt inboundCount outboundCount
    commentCount unreadCount
    timeline(first: 50) { pageInfo { hasNextPage }
        nodes { position kind occurredAt subject bodyText messageId commentId author { kind } } } } }";

/// The first page of an inbox.
const LIST_QUERY: &str = "query Inbox($id: ID!, $first: Int!) { inbox(id: $id) {
    conversations(first: $first) { pageInfo { hasNextPage endCursor }
        edges { cursor node { id status subject channelKind createdAt lastActivityAt
            lastMessagePreview inboundCount outboundCount commentCount unreadCount } } } } }";

/// `wrk` threads unless `--threads` says otherwise: one leaves the other core to the server.
const DEFAULT_WRK_THREADS: u64 = 1;

/// Options of the GraphQL suite.
#[derive(Debug)]
pub(crate) struct Options {
    /// Measured seconds per workload (and per baseline).
    duration: Duration,
    /// Unmeasured warm-up before each measurement.
    warmup: Duration,
    /// Concurrent keep-alive connections.
    connections: usize,
    /// Run only this workload.
    only: Option<String>,
    /// What drives the requests.
    load: Load,
}

/// The load generator.
#[derive(Debug, Clone)]
enum Load {
    /// `wrk`, as a child process.
    Wrk(Wrk),
    /// The in-process generator ([`load`]).
    InProcess,
}

impl Load {
    fn name(&self) -> &'static str {
        match self {
            Load::Wrk(_) => "wrk",
            Load::InProcess => "inprocess",
        }
    }
}

/// One measured request, for either generator: `GET path`, or `POST path` with a JSON body.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl Call {
    fn get(path: String) -> Call {
        Call {
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    /// The request as bytes on the wire, for the in-process generator.
    fn wire(&self) -> Request {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        match &self.body {
            Some(body) => Request::post_json(&self.path, &headers, body),
            None => Request::get(&self.path),
        }
    }
}

/// What one run of a generator measured.
#[derive(Debug)]
struct Measured {
    requests: u64,
    elapsed: Duration,
    p50_ms: f64,
    p99_ms: f64,
}

impl Measured {
    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

impl Options {
    pub(crate) fn parse(mut args: Args) -> Result<Options, UsageError> {
        let quick = args.flag("--quick");
        let seconds = args.count("--seconds")?;
        let connections = args.count("--connections")?;
        let only: Option<String> = args.value("--only")?;
        let load: Option<String> = args.value("--load")?;
        let threads = args.count("--threads")?;
        args.finish()?;
        let wrk = |program| {
            Load::Wrk(Wrk {
                program,
                threads: usize::try_from(threads.unwrap_or(DEFAULT_WRK_THREADS)).unwrap_or(1),
            })
        };
        let load = match load.as_deref() {
            None => wrk::find_on_path().map_or(Load::InProcess, wrk),
            Some("wrk") => wrk(wrk::find_on_path()
                .ok_or_else(|| UsageError("--load wrk: no `wrk` on PATH".to_owned()))?),
            Some("inprocess") => Load::InProcess,
            Some(other) => {
                return Err(UsageError(format!(
                    "--load: `{other}` is neither `wrk` nor `inprocess`"
                )));
            }
        };
        if threads.is_some() && matches!(load, Load::InProcess) {
            return Err(UsageError(
                "--threads is for --load wrk (the in-process generator has one thread)".to_owned(),
            ));
        }
        if let Some(only) = &only
            && !["graphql_thread", "graphql_inbox_list"].contains(&only.as_str())
        {
            return Err(UsageError(format!("--only: unknown workload `{only}`")));
        }
        Ok(Options {
            duration: Duration::from_secs(seconds.unwrap_or(if quick { 3 } else { 10 })),
            warmup: Duration::from_millis(if quick { 500 } else { 1_000 }),
            connections: usize::try_from(connections.unwrap_or(32)).unwrap_or(32),
            only,
            load,
        })
    }

    fn runs(&self, workload: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == workload)
    }
}

/// One workload's result line.
#[derive(Debug, Serialize)]
struct Report {
    workload: &'static str,
    requests: u64,
    seconds: f64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    baseline_requests_per_sec: f64,
    baseline_p50_ms: f64,
    baseline_p99_ms: f64,
    /// `requests_per_sec / baseline_requests_per_sec`.
    ratio: f64,
    /// The load generator: `wrk` or `inprocess`.
    load: &'static str,
    /// `wrk` threads (absent for the in-process generator, which has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    connections: usize,
    /// Bytes of the API's answer (and of the baseline's).
    response_bytes: usize,
    baseline_response_bytes: usize,
    target: &'static str,
    target_met: bool,
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(suite(options))
}

async fn suite(options: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        demo: true,
        ..Config::default()
    };
    let read_models = config.read_models_dir();
    eprintln!("graphql: seeding the demo organisation...");
    let app = Application::build(config)
        .await
        .context("building the application")?;
    let addr = app.local_addr();
    let token = app
        .admin_token()
        .context("the demo seeded no admin token")?
        .to_owned();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));

    let mut admin = Client::connect(addr, &token).await?;
    let (conversation, inbox) = prepare(&mut admin).await?;
    eprintln!(
        "graphql: conversation {}, inbox {}",
        conversation.uuid, inbox.uuid
    );

    let model = ReadModel::new("thread_view", baseline::thread_view_file(&read_models)?);
    let baseline_addr = baseline::serve(model, LIST_PAGE).await?;
    match &options.load {
        Load::Wrk(wrk) => eprintln!(
            "graphql: load from {} ({} thread(s), {} connections)",
            wrk.program.display(),
            wrk.threads,
            options.connections
        ),
        Load::InProcess => eprintln!(
            "graphql: load from the in-process generator ({} connections)",
            options.connections
        ),
    }

    if options.runs("graphql_thread") {
        let body = json!({"query": THREAD_QUERY, "variables": {"id": conversation.global}});
        let request = admin.call(&body);
        let answer = admin.post(&body).await?;
        let entries = answer["data"]["conversation"]["timeline"]["nodes"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        if entries < THREAD_MESSAGES {
            bail!("the thread has {entries} timeline entries: {answer}");
        }
        let baseline = Call::get(format!("/thread/{}", conversation.uuid));
        measure(
            "graphql_thread",
            &options,
            (addr, request),
            (baseline_addr, baseline),
            "requests_per_sec >= 10000 and p99_ms < 10 and ratio >= 0.5",
            |r| r.requests_per_sec >= 10_000.0 && r.p99_ms < 10.0 && r.ratio >= 0.5,
        )
        .await?
        .emit()?;
    }
    if options.runs("graphql_inbox_list") {
        let body = json!({"query": LIST_QUERY,
            "variables": {"id": inbox.global, "first": LIST_PAGE}});
        let request = admin.call(&body);
        let answer = admin.post(&body).await?;
        let items = answer["data"]["inbox"]["conversations"]["edges"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        if items != LIST_PAGE {
            bail!("the inbox page has {items} conversations: {answer}");
        }
        let baseline = Call::get(format!("/inbox/{}", inbox.uuid));
        measure(
            "graphql_inbox_list",
            &options,
            (addr, request),
            (baseline_addr, baseline),
            "ratio >= 0.5",
            |r| r.ratio >= 0.5,
        )
        .await?
        .emit()?;
    }

    let _ = stop_tx.send(());
    server
        .await
        .context("the server task")?
        .context("the server")?;
    Ok(())
}

impl Report {
    fn emit(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let line = serde_json::to_string(self)?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        Ok(())
    }
}

/// Measures the API's request, then the baseline's, with the same generator settings.
async fn measure(
    workload: &'static str,
    options: &Options,
    (api_addr, api_request): (SocketAddr, Call),
    (baseline_addr, baseline_request): (SocketAddr, Call),
    target: &'static str,
    met: impl Fn(&Report) -> bool,
) -> anyhow::Result<Report> {
    let api_bytes = one(api_addr, &api_request.wire()).await?;
    let baseline_bytes = one(baseline_addr, &baseline_request.wire()).await?;
    let connections = options.connections;
    eprintln!(
        "graphql: {workload}: API for {:?} on {connections} connections...",
        options.duration
    );
    let api = drive(options, api_addr, api_request).await?;
    eprintln!("graphql: {workload}: baseline...");
    let base = drive(options, baseline_addr, baseline_request).await?;
    let mut report = Report {
        workload,
        requests: api.requests,
        seconds: round(api.elapsed.as_secs_f64(), 3),
        requests_per_sec: round(api.per_sec(), 0),
        p50_ms: round(api.p50_ms, 3),
        p99_ms: round(api.p99_ms, 3),
        baseline_requests_per_sec: round(base.per_sec(), 0),
        baseline_p50_ms: round(base.p50_ms, 3),
        baseline_p99_ms: round(base.p99_ms, 3),
        ratio: round(api.per_sec() / base.per_sec().max(f64::MIN_POSITIVE), 3),
        load: options.load.name(),
        threads: match &options.load {
            Load::Wrk(wrk) => Some(wrk.threads),
            Load::InProcess => None,
        },
        connections,
        response_bytes: api_bytes,
        baseline_response_bytes: baseline_bytes,
        target,
        target_met: false,
    };
    report.target_met = met(&report);
    Ok(report)
}

/// Warms `addr` up with `call`, then measures it, with the chosen generator.
async fn drive(options: &Options, addr: SocketAddr, call: Call) -> anyhow::Result<Measured> {
    let (connections, warmup, duration) = (options.connections, options.warmup, options.duration);
    match &options.load {
        Load::Wrk(wrk) => wrk.drive(addr, &call, connections, warmup, duration).await,
        Load::InProcess => {
            let request = call.wire();
            let outcome = tokio::task::spawn_blocking(move || {
                load::drive(addr, request, connections, warmup, duration)
            })
            .await??;
            Ok(Measured {
                requests: outcome.requests,
                elapsed: outcome.elapsed,
                p50_ms: outcome.quantile_ms(0.50),
                p99_ms: outcome.quantile_ms(0.99),
            })
        }
    }
}

/// The size of one answer, checking it is a 200 without GraphQL errors.
async fn one(addr: SocketAddr, request: &Request) -> anyhow::Result<usize> {
    let mut connection = Connection::open(addr).await?;
    let response = connection.send(request).await?;
    let body: Value = serde_json::from_slice(&response.body).context("a JSON answer")?;
    if response.status != 200 || body.get("errors").is_some() {
        bail!("HTTP {}: {body}", response.status);
    }
    Ok(response.body.len())
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A node's id both ways: the opaque global id for GraphQL, the UUID for the baseline.
#[derive(Debug)]
struct Id {
    global: String,
    uuid: Uuid,
}

/// A GraphQL client on one keep-alive connection, for the set-up requests.
struct Client {
    connection: Connection,
    token: String,
}

impl Client {
    async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Client> {
        Ok(Client {
            connection: Connection::open(addr).await?,
            token: token.to_owned(),
        })
    }

    /// `POST /graphql` with `body`, as this client.
    fn call(&self, body: &Value) -> Call {
        Call {
            path: "/graphql".to_owned(),
            headers: vec![("Authorization".to_owned(), format!("Bearer {}", self.token))],
            body: Some(body.to_string()),
        }
    }

    /// The answer to `body`; fails on HTTP errors, not on GraphQL ones.
    async fn post(&mut self, body: &Value) -> anyhow::Result<Value> {
        let request = self.call(body).wire();
        let response = self.connection.send(&request).await?;
        let value: Value = serde_json::from_slice(&response.body).context("a JSON answer")?;
        if response.status != 200 {
            bail!("HTTP {}: {value}", response.status);
        }
        Ok(value)
    }

    /// Runs a mutation and returns its payload, failing on errors and `userErrors`.
    async fn mutate(
        &mut self,
        name: &str,
        input_type: &str,
        input: Value,
        selection: &str,
    ) -> anyhow::Result<Value> {
        let query = format!(
            "mutation($input: {input_type}!) {{ {name}(input: $input) {{ \
             userErrors {{ message code }} consistencyToken {selection} }} }}"
        );
        let answer = self
            .post(&json!({"query": query, "variables": {"input": input}}))
            .await?;
        let payload = &answer["data"][name];
        if answer.get("errors").is_some() || payload["userErrors"] != json!([]) {
            bail!("{name} failed: {answer}");
        }
        Ok(payload.clone())
    }
}

/// Adds the measured 20-message chat conversation to the demo's busiest inbox that has a chat
/// channel, waits until every read model includes it, and returns it with that inbox.
async fn prepare(admin: &mut Client) -> anyhow::Result<(Id, Id)> {
    let inboxes = admin
        .post(&json!({"query": "{ inboxes(first: 20) { nodes {
            id name counts { open closed } channels { id kind } } } }"}))
        .await?;
    let nodes = inboxes["data"]["inboxes"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let busiest = |with_chat: bool| {
        nodes
            .iter()
            .filter(|n| {
                !with_chat
                    || n["channels"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["kind"] == "CHAT"))
            })
            .max_by_key(|n| {
                n["counts"]["open"].as_u64().unwrap_or(0)
                    + n["counts"]["closed"].as_u64().unwrap_or(0)
            })
            .cloned()
    };
    let list_inbox = busiest(false).context("the demo has no inbox")?;
    let chat_inbox = busiest(true).context("the demo has no inbox with a chat channel")?;
    let channel = chat_inbox["channels"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == "CHAT"))
        .and_then(|c| c["id"].as_str())
        .context("a chat channel")?
        .to_owned();

    let visitor = format!("bench-visitor-{}", Uuid::new_v4().simple());
    let mut conversation = None;
    let mut last_token = String::new();
    for i in 0..THREAD_MESSAGES / 2 {
        let received = admin
            .mutate(
                "receiveMessage",
                "ReceiveMessageInput",
                json!({
                    "channelId": channel,
                    "from": {"kind": "CHAT_VISITOR", "value": visitor},
                    "bodyText": format!("Question {i}: does the Trailblazer 2 tent fit two people \
                                         with their backpacks inside when it rains?"),
                }),
                "conversationId",
            )
            .await?;
        let id = received["conversationId"]
            .as_str()
            .context("receiveMessage returned no conversationId")?
            .to_owned();
        conversation = Some(id.clone());
        // A reply right after the customer's message may meet a routing decision being
        // written for the same conversation (CONFLICT): try again, a bounded number of times.
        let mut attempts = 0;
        let reply = loop {
            attempts += 1;
            let reply = admin
                .mutate(
                    "sendReply",
                    "SendReplyInput",
                    json!({"conversationId": id, "bodyText": format!(
                        "Answer {i}: yes, the Trailblazer 2 has two vestibules for the packs.")}),
                    "messageId",
                )
                .await;
            match reply {
                Ok(payload) => break payload,
                Err(error) if attempts < 20 && error.to_string().contains("CONFLICT") => {
                    eprintln!("graphql: reply {i} retried: {error:#}");
                    tokio::task::yield_now().await;
                }
                Err(error) => return Err(error),
            }
        };
        last_token = reply["consistencyToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    let conversation = conversation.context("no conversation")?;

    // Read-your-writes: this answers once every read model includes the last reply (and with
    // it the whole demo history before it).
    let check = Request::post_json(
        "/graphql",
        &[
            ("Authorization", &format!("Bearer {}", admin.token)),
            ("Switchboard-Consistency-Token", &last_token),
        ],
        &json!({"query": THREAD_QUERY, "variables": {"id": conversation}}).to_string(),
    );
    let answer = admin.connection.send(&check).await?;
    let answer: Value = serde_json::from_slice(&answer.body)?;
    let c = &answer["data"]["conversation"];
    let messages =
        c["inboundCount"].as_u64().unwrap_or(0) + c["outboundCount"].as_u64().unwrap_or(0);
    if messages != THREAD_MESSAGES as u64 {
        bail!("the seeded conversation has {messages} messages: {answer}");
    }
    let uuid_of = |global: &str, kind| -> anyhow::Result<Uuid> {
        switchboard_api::ids::decode(&async_graphql::ID::from(global), kind, "id")
            .map_err(|e| anyhow::anyhow!("decoding {global}: {e:?}"))
    };
    let list_global = list_inbox["id"].as_str().context("an inbox id")?.to_owned();
    Ok((
        Id {
            uuid: uuid_of(&conversation, switchboard_api::ids::Kind::Conversation)?,
            global: conversation,
        },
        Id {
            uuid: uuid_of(&list_global, switchboard_api::ids::Kind::Inbox)?,
            global: list_global,
        },
    ))
}
