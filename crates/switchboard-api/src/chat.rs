//! Website chat for visitors: the routes the widget (`/widget/v1.js`) talks to, under
//! `/chat/{publicKey}`, the key a chat channel's `ChatWidgetConfigured` recorded. Agents keep
//! using GraphQL (`setChatTyping`, the `chatTyping` subscription, replies as ever).
//!
//! - `GET /chat/{key}`: what the widget shows: team name, whether someone is available (see
//!   `switchboard_domain::chat::status`), the reply-time wording, and whether to ask for an
//!   e-mail address (nobody available).
//! - `POST /chat/{key}/visitors`: a new anonymous visitor: `{"visitorId", "token"}`. Nothing is
//!   written; the visitor exists once they write. The token (kept by the widget in
//!   `localStorage`) is the visitor id with an HMAC-SHA256 over the channel and the id, under a
//!   key derived from the server's `secret_key` ([`VisitorTokens`]): it names one visitor of one
//!   channel, and it cannot be forged or moved to another channel.
//! - `GET /chat/{key}/messages?after=<seq>` and `POST /chat/{key}/messages`
//!   (`{"text", "name"?, "clientId"?}`), with `Authorization: Bearer <token>`: the visitor's own
//!   conversation, which is derived from channel and visitor (the service's
//!   `chat_conversation_id`), so a visitor has no way to name anyone else's. A message is
//!   acknowledged (`201 {"id", "seq"}`) once its events are durable; `clientId` makes a resent
//!   message the same message (its id is derived from it), and is kept with it (as its provider
//!   message id), so the visitor's own messages come back naming it (`clientId`).
//! - `POST /chat/{key}/contact` (`{"email", "name"?}`): the visitor leaves an address (after
//!   their first message). Replies they do not see in the widget go out to it by e-mail (ADR
//!   0006). It is an unverified claim: kept on the conversation and as the `claimed_email` of
//!   the contact made for the visitor (never of one an agent linked them to), never an
//!   identity, and answered 202 whether or not someone is known by it or it changed anything.
//! - `POST /chat/{key}/seen` (`{"ids": [...]}`): the widget acknowledges replies the visitor
//!   saw (its panel open, the page visible; also a `seen` frame on the socket); only these are
//!   recorded seen, never replies merely read by `GET /messages` or pushed on the socket.
//! - `GET /chat/{key}/live?token=<token>&after=<seq>`: the visitor's WebSocket (see [`live`]).
//!
//! What a visitor reads of their conversation is only its messages: their own that came in
//! through this chat channel (`MessageReceived`) and the team's replies (`ReplySent`), each
//! with its `seq`, the version of its event in the conversation's stream. Messages that came in
//! otherwise (an e-mail answer to a reply e-mailed to the unverified address the visitor left,
//! an auto-reply), comments, assignments and everything else are never sent, whatever they say.
//!
//! Refusals: unknown (or disconnected, or unconfigured) widget 404; a request whose `Origin` is
//! not one of the widget's allowed origins 403 (without an `Origin`, a server or `curl`, it is
//! taken); a missing or bad token 401; over a rate limit 429 with `Retry-After` (per visitor and
//! per client address, counted before a body is read; the address is the connection's peer, or
//! behind a trusted proxy the client its `X-Forwarded-For` names, an IPv6 one by its /64); a
//! body over `max_body_bytes` 413; a bad field 422 `{"errors": [{"field", "message"}]}`. A
//! refused request writes nothing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, Utc};
use governor::DefaultKeyedRateLimiter;
use governor::clock::{Clock, DefaultClock};
use hmac::{Hmac, Mac};
use proto_events::event::{
    ChannelKind, ChatWidgetConfigured, Identity, InboundMessage, ReplyAuthor,
};
use proto_events::{Actor, DomainEvent, streams};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_domain::DomainError;
use switchboard_domain::conversation::ConversationCommand;
use switchboard_service::{Command, CommandMeta, ServiceError, bot, chat_conversation_id};
use switchboard_store::{Direction, StreamFrom};
use uuid::Uuid;

use crate::forms::{answer, error, origin, quota, too_many};
use crate::state::{ApiState, Inner};

mod live;
mod rooms;

pub(crate) use rooms::{Joined, Rooms};

/// Limits of the visitor routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLimits {
    /// Requests one visitor may make per minute (messages sent, reads of their conversation,
    /// addresses left, acknowledgements).
    pub per_visitor_per_minute: u32,
    /// How many of those may come at once.
    pub per_visitor_burst: u32,
    /// Requests one client address may make per minute to the visitor routes (new visitors,
    /// messages, reads of a conversation, contacts, acknowledgements, WebSocket upgrades),
    /// across visitors.
    pub per_address_per_minute: u32,
    /// How many of those may come at once.
    pub per_address_burst: u32,
    /// The largest request body or WebSocket message, in bytes.
    pub max_body_bytes: usize,
    /// The longest message, in characters.
    pub max_message_chars: usize,
    /// Live sockets one visitor may hold open at once (a page in several tabs); beyond them
    /// the upgrade is refused with 429.
    pub max_sockets_per_visitor: usize,
    /// Live sockets one client address (an IPv6 one by its /64) may hold open at once, across
    /// visitors. High by default: behind a reverse proxy or ingress not configured as trusted
    /// (`trusted_proxies`) every visitor has the proxy's address, and a low cap would refuse the
    /// whole site's visitors past it.
    pub max_sockets_per_address: usize,
    /// How often a live socket the visitor has been silent on is pinged.
    pub ping_interval: Duration,
    /// A live socket on which nothing (not even a pong) came for this long is closed.
    pub idle_timeout: Duration,
    /// A frame the visitor's connection has not taken within this long closes the socket, so
    /// a visitor who stopped reading holds no memory for long.
    pub send_timeout: Duration,
    /// Events and signals of its conversation a live socket may have waiting; one that falls
    /// further behind reads what it missed from the conversation's stream.
    pub live_buffer: usize,
}

impl Default for ChatLimits {
    /// 20 messages a minute per visitor (5 at once), 60 requests a minute per address (20 at
    /// once), 16 KiB bodies, messages of 4,000 characters; 5 live sockets per visitor and 10,000
    /// per address, pinged every 20 s and closed after 60 s without an answer or 10 s
    /// without taking a frame; 64 items waiting per socket.
    fn default() -> ChatLimits {
        ChatLimits {
            per_visitor_per_minute: 20,
            per_visitor_burst: 5,
            per_address_per_minute: 60,
            per_address_burst: 20,
            max_body_bytes: 16 * 1024,
            max_message_chars: 4_000,
            max_sockets_per_visitor: 5,
            max_sockets_per_address: 10_000,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(10),
            live_buffer: 64,
        }
    }
}

/// The one generation of the agents' typing rooms (nothing ends it: no feed stands behind it).
const TYPING_GENERATION: u64 = 0;

/// A visitor's typing signals a `chatTyping` subscription may have waiting; further ones are
/// skipped (they are only hints).
const TYPING_BUFFER: usize = 16;

/// Idle keys are forgotten every this many checks, so the limiters' memory stays bounded.
const FORGET_EVERY: u64 = 4_096;

/// The limits, rate limiters, visitor tokens, open sockets and live routing of website chat.
pub(crate) struct Chat {
    pub(crate) limits: ChatLimits,
    per_visitor: DefaultKeyedRateLimiter<Uuid>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    /// A visitor's typing signals forwarded to agents: one a second per conversation.
    typing_per_conversation: DefaultKeyedRateLimiter<Uuid>,
    /// The latest signal of each conversation held back within its second, sent when the
    /// second is over (so agents never keep seeing "typing" after a dropped stop).
    typing_held: Arc<Mutex<HashMap<Uuid, bool>>>,
    checks: AtomicU64,
    tokens: VisitorTokens,
    /// The live sockets open per visitor and per address.
    sockets: Sockets,
    /// The visitors' sockets, by conversation, with the one task that routes events and agents'
    /// typing signals to them.
    pub(crate) visitors: live::Visitors,
    /// The `chatTyping` subscriptions, by conversation: a visitor's typing signals.
    pub(crate) agents_typing: Rooms<bool>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Chat {
    pub(crate) fn new(
        limits: ChatLimits,
        secret_key: &switchboard_store::secret::MasterKey,
    ) -> Chat {
        Chat {
            per_visitor: DefaultKeyedRateLimiter::keyed(quota(
                limits.per_visitor_per_minute,
                limits.per_visitor_burst,
            )),
            per_address: DefaultKeyedRateLimiter::keyed(quota(
                limits.per_address_per_minute,
                limits.per_address_burst,
            )),
            limits,
            typing_per_conversation: DefaultKeyedRateLimiter::keyed(governor::Quota::per_second(
                std::num::NonZeroU32::MIN,
            )),
            typing_held: Arc::default(),
            checks: AtomicU64::new(0),
            tokens: VisitorTokens(secret_key.derive("chat visitor token")),
            sockets: Sockets::default(),
            visitors: live::Visitors::default(),
            agents_typing: Rooms::default(),
        }
    }

    /// A visitor is typing (or stopped) in `conversation`: told to the agents following it at
    /// once, unless one of the visitor's signals was forwarded less than a second ago; then the
    /// last one given within that second is told when it is over.
    pub(crate) fn visitor_typing(&self, conversation: Uuid, typing: bool) {
        let held = || {
            self.typing_held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        match self.typing_per_conversation.check_key(&conversation) {
            Ok(()) => {
                // This one is newer than any held back: the held one is not sent.
                held().remove(&conversation);
                self.agents_typing
                    .offer(conversation, TYPING_GENERATION, &typing);
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                if held().insert(conversation, typing).is_some() {
                    return; // A task already waits out this second.
                }
                let (held, rooms) = (self.typing_held.clone(), self.agents_typing.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let last = held
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&conversation);
                    if let Some(typing) = last {
                        rooms.offer(conversation, TYPING_GENERATION, &typing);
                    }
                });
            }
        }
    }

    /// A `chatTyping` subscription's signals from the visitor of `conversation`.
    pub(crate) fn follow_typing(&self, conversation: Uuid) -> Joined<bool> {
        self.agents_typing
            .join(conversation, TYPING_BUFFER, TYPING_GENERATION)
            .expect("the typing rooms' one generation never ends")
    }

    /// Counts a live socket of `visitor` from `address`, or refuses it (429) when either has
    /// as many open as the limits allow; the socket counts until the slot is dropped.
    pub(crate) fn open_socket(
        &self,
        visitor: Uuid,
        address: IpAddr,
    ) -> Result<SocketSlot, Refused> {
        self.sockets.open(
            visitor,
            address,
            self.limits.max_sockets_per_visitor,
            self.limits.max_sockets_per_address,
        )
    }

    /// `Err(wait)` when `address` (and `visitor`, when given) is over its limit.
    pub(crate) fn check(&self, address: IpAddr, visitor: Option<Uuid>) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.per_address.retain_recent();
            self.per_visitor.retain_recent();
            self.typing_per_conversation.retain_recent();
        }
        let now = DefaultClock::default().now();
        self.per_address
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(now))?;
        match visitor {
            Some(visitor) => self
                .per_visitor
                .check_key(&visitor)
                .map_err(|not_until| not_until.wait_time_from(now)),
            None => Ok(()),
        }
    }
}

/// What a live socket is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SocketOf {
    Visitor(Uuid),
    Address(IpAddr),
}

/// How many live sockets each visitor and address holds open.
#[derive(Debug, Default)]
struct Sockets(Arc<Mutex<HashMap<SocketOf, usize>>>);

impl Sockets {
    fn open(
        &self,
        visitor: Uuid,
        address: IpAddr,
        per_visitor: usize,
        per_address: usize,
    ) -> Result<SocketSlot, Refused> {
        let keys = [SocketOf::Visitor(visitor), SocketOf::Address(address)];
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = |key| open.get(&key).copied().unwrap_or(0);
        if count(keys[0]) >= per_visitor {
            return Err(Refused(
                StatusCode::TOO_MANY_REQUESTS,
                "this visitor has too many chat connections open; close one",
            ));
        }
        if count(keys[1]) >= per_address {
            return Err(Refused(
                StatusCode::TOO_MANY_REQUESTS,
                "too many chat connections from this address; close one",
            ));
        }
        for key in keys {
            *open.entry(key).or_default() += 1;
        }
        Ok(SocketSlot {
            sockets: self.0.clone(),
            keys,
        })
    }
}

/// An open live socket, counted until dropped.
#[derive(Debug)]
pub(crate) struct SocketSlot {
    sockets: Arc<Mutex<HashMap<SocketOf, usize>>>,
    keys: [SocketOf; 2],
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        for key in self.keys {
            if let Some(count) = open.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

/// Signs and checks visitor tokens. `Debug` never prints the key.
struct VisitorTokens([u8; 32]);

/// Bytes of a visitor token: the visitor id and the MAC.
const TOKEN_BYTES: usize = 16 + 32;

impl VisitorTokens {
    fn mac(&self, channel_id: Uuid, visitor: Uuid) -> Hmac<Sha256> {
        let mut mac = crate::consistency::mac(&self.0);
        mac.update(b"switchboard chat visitor v1");
        mac.update(channel_id.as_bytes());
        mac.update(visitor.as_bytes());
        mac
    }

    /// The token of `visitor` on `channel_id`.
    fn mint(&self, channel_id: Uuid, visitor: Uuid) -> String {
        let mut bytes = visitor.as_bytes().to_vec();
        bytes.extend_from_slice(&self.mac(channel_id, visitor).finalize().into_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The visitor `token` names on `channel_id`, if it was minted for that channel here.
    fn verify(&self, channel_id: Uuid, token: &str) -> Option<Uuid> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .ok()?;
        if bytes.len() != TOKEN_BYTES {
            return None;
        }
        let (id, tag) = bytes.split_at(16);
        let visitor = Uuid::from_slice(id).ok()?;
        // `verify_slice` compares in constant time.
        self.mac(channel_id, visitor).verify_slice(tag).ok()?;
        Some(visitor)
    }
}

/// The visitor routes, with their own body handling (see [`ChatLimits::max_body_bytes`]).
pub(crate) fn router<S>(state: ApiState) -> Router<S> {
    Router::new()
        .route("/widget/v1.js", get(script))
        .route("/chat/{key}", get(info).options(preflight))
        .route("/chat/{key}/visitors", post(new_visitor).options(preflight))
        .route(
            "/chat/{key}/messages",
            get(messages).post(send).options(preflight),
        )
        .route("/chat/{key}/contact", post(contact).options(preflight))
        .route("/chat/{key}/seen", post(seen).options(preflight))
        .route("/chat/{key}/live", get(live::upgrade))
        .with_state(state)
}

/// The widget's script.
pub(crate) const WIDGET_JS: &str = include_str!("chat/widget.js");

/// `GET /widget/v1.js`.
async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        WIDGET_JS,
    )
        .into_response()
}

/// A configured widget of a connected chat channel.
#[derive(Debug, Clone)]
pub(crate) struct Widget {
    pub(crate) inbox_id: Uuid,
    pub(crate) config: ChatWidgetConfigured,
}

impl Widget {
    pub(crate) fn channel_id(&self) -> Uuid {
        self.config.channel_id
    }
}

/// The widget behind `key`; 404 when none.
pub(crate) async fn widget(inner: &Inner, key: &str) -> Result<Widget, Response> {
    let view = inner
        .directory()
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, &e.message()))?;
    view.directory
        .chat_by_key(key)
        .and_then(|channel| {
            Some(Widget {
                inbox_id: channel.inbox_id,
                config: channel.chat_widget.clone()?,
            })
        })
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such chat"))
}

/// A request refused before anything is read or written: its status and what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused(StatusCode, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = error(self.0, self.1);
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
        response
    }
}

/// The CORS headers of an answer to a request with `headers`, or 403 when its `Origin` may not
/// use the widget.
pub(crate) fn cors(widget: &Widget, headers: &HeaderMap) -> Result<HeaderMap, Refused> {
    let mut out = HeaderMap::new();
    out.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin(headers) else {
        return Ok(out);
    };
    if !widget.config.allowed_origins.iter().any(|a| a == origin) {
        return Err(Refused(
            StatusCode::FORBIDDEN,
            "this site may not use this chat",
        ));
    }
    if let Ok(value) = HeaderValue::from_str(origin) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    Ok(out)
}

/// The client's address as the per-address limits count it: the connection's peer, or behind
/// a trusted proxy the client its `X-Forwarded-For` names ([`crate::client`]); an IPv6 one by
/// its /64 (one host is commonly given a whole /64, so counting single addresses would let it
/// take as many places as it likes).
fn peer(state: &ApiState, request: &Request) -> IpAddr {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    client_key(
        state
            .inner()
            .trusted_proxies
            .client(peer, request.headers()),
    )
}

/// `address` as the per-address limits key it: IPv4 (also IPv4-mapped IPv6) as it is, IPv6 by
/// its /64 prefix.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// The visitor a bearer token names, or 401.
fn visitor(inner: &Inner, widget: &Widget, headers: &HeaderMap) -> Result<Uuid, Refused> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer);
    let Some(token) = token else {
        return Err(Refused(
            StatusCode::UNAUTHORIZED,
            "send the visitor token as `Authorization: Bearer <token>`",
        ));
    };
    verified(inner, widget, token)
}

/// The visitor `token` names on the widget's channel, or 401.
pub(crate) fn verified(inner: &Inner, widget: &Widget, token: &str) -> Result<Uuid, Refused> {
    inner
        .chat
        .tokens
        .verify(widget.channel_id(), token)
        .ok_or(Refused(
            StatusCode::UNAUTHORIZED,
            "the visitor token is not valid for this chat",
        ))
}

/// Runs `f` on the widget behind `key`, after the CORS check, and adds the CORS headers to
/// whatever it answers.
async fn with_widget<F, Fut>(state: ApiState, key: &str, headers: &HeaderMap, f: F) -> Response
where
    F: FnOnce(ApiState, Widget) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let widget = match widget(state.inner(), key).await {
        Ok(widget) => widget,
        Err(response) => return response,
    };
    let cors = match cors(&widget, headers) {
        Ok(cors) => cors,
        Err(refused) => return refused.into_response(),
    };
    let mut response = f(state, widget).await;
    response.headers_mut().extend(cors);
    response
}

/// `OPTIONS /chat/{key}/...`: the CORS preflight.
async fn preflight(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_widget(state, &key, &headers, |_, _| async {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        response
    })
    .await
}

/// What the widget says about reply times when the team is available and configured nothing.
const DEFAULT_EXPECTED_REPLY: &str = "We usually reply in a few minutes";

/// What it says when nobody is available and the inbox has an address to send from: replies
/// the visitor does not see in the widget go out by e-mail to the address they leave (ADR
/// 0006).
const AWAY_EXPECTED_REPLY: &str =
    "Nobody is available right now. Leave your e-mail address and the answer will reach you there.";

/// What it says when nobody is available and the inbox has no address to send from (yet): no
/// promise of e-mail.
const AWAY_NO_EMAIL: &str =
    "Nobody is available right now. Leave your e-mail address so the team knows who you are.";

/// `GET /chat/{key}`.
async fn info(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_widget(state, &key, &headers, |state, widget| async move {
        let view = match state.inner().directory().await {
            Ok(view) => view,
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.message()),
        };
        let status = switchboard_domain::chat::status(&view.directory, widget.inbox_id, Utc::now());
        let expected = if status.available {
            widget
                .config
                .expected_reply
                .as_deref()
                .unwrap_or(DEFAULT_EXPECTED_REPLY)
        } else if view
            .directory
            .inbox_email_channel(widget.inbox_id)
            .is_some()
        {
            AWAY_EXPECTED_REPLY
        } else {
            AWAY_NO_EMAIL
        };
        answer(
            StatusCode::OK,
            json!({
                "teamName": widget.config.team_name,
                "open": status.open,
                "available": status.available,
                "expectedReply": expected,
                "askEmail": !status.available,
                "maxMessageChars": state.inner().chat.limits.max_message_chars,
            }),
        )
    })
    .await
}

/// `POST /chat/{key}/visitors`.
async fn new_visitor(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let address = peer(&state, &request);
    let headers = request.headers().clone();
    with_widget(state, &key, &headers, |state, widget| async move {
        let inner = state.inner();
        if let Err(wait) = inner.chat.check(address, None) {
            return too_many(wait, "too many requests; try again later");
        }
        let visitor = Uuid::new_v4();
        let token = inner.chat.tokens.mint(widget.channel_id(), visitor);
        answer(
            StatusCode::CREATED,
            json!({ "visitorId": visitor.to_string(), "token": token }),
        )
    })
    .await
}

/// A query's `after`.
#[derive(Debug, Deserialize)]
pub(crate) struct After {
    /// The `seq` of the last message the client has; messages after it are sent.
    #[serde(default)]
    pub(crate) after: u64,
}

/// Most events read from a conversation's stream at once.
const READ_CHUNK: usize = 256;

/// Whether a visitor sees anything of `event`: the events [`visible`] shows.
pub(crate) fn shown(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::MessageReceived(_) | DomainEvent::ReplySent(_)
    )
}

/// The event at `seq` of a visitor's conversation as the visitor sees it: a message of theirs
/// that came in through the widget's own chat channel (`channel_id`), or a reply of the team
/// (users' and bots'), nothing else (comments never); a visitor's message sent with a
/// `clientId` names it (`clientId`), so the widget knows its own echoes. A message that came in any other way,
/// such as an e-mail answer to a reply e-mailed to the address the visitor left, is for agents
/// only: that address is not verified, so whoever left it may not be whoever answers there
/// (ADR 0006).
pub(crate) fn visible(
    seq: u64,
    event: &DomainEvent,
    at: DateTime<Utc>,
    channel_id: Uuid,
    directory: &switchboard_domain::directory::Directory,
) -> Option<Value> {
    let (id, from, author, text, client_id) = match event {
        DomainEvent::MessageReceived(e)
            if e.message.channel_id == channel_id
                && e.message.channel_kind == ChannelKind::Chat =>
        {
            (
                e.message.message_id,
                "visitor",
                None,
                e.message.body_text.as_str(),
                e.message.provider_message_id.as_deref(),
            )
        }
        DomainEvent::ReplySent(e) => {
            let author = match &e.author {
                ReplyAuthor::User { id } => directory.users.get(id).map(|u| u.name.clone()),
                ReplyAuthor::Bot { id } => directory.bots.get(id).cloned(),
                ReplyAuthor::Automation { .. } => None,
            };
            (e.message_id, "team", author, e.body_text.as_str(), None)
        }
        _ => return None,
    };
    let mut message = json!({
        "type": "message",
        "id": id,
        "seq": seq,
        "from": from,
        "author": author,
        "text": text,
        "at": at,
    });
    if let Some(client_id) = client_id {
        message["clientId"] = json!(client_id);
    }
    Some(message)
}

/// The messages of `conversation_id` (of the chat channel `channel_id`) after `after` (a
/// `seq`), in order, up to `limit`, as [`visible`] shows them; the last `seq` read (messages or
/// not) comes with them.
pub(crate) async fn read_messages(
    inner: &Inner,
    channel_id: Uuid,
    conversation_id: Uuid,
    after: u64,
    limit: usize,
) -> Result<(Vec<Value>, u64), Response> {
    let stream = streams::conversation(conversation_id);
    let mut out = Vec::new();
    let mut last = after;
    loop {
        let events = inner
            .store
            .read_stream(
                &stream,
                Direction::Forwards,
                StreamFrom::Version(last.saturating_add(1)),
                READ_CHUNK,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, %conversation_id, "a chat conversation could not be read");
                error(StatusCode::SERVICE_UNAVAILABLE, "the conversation cannot be read now")
            })?;
        let read = events.len();
        // Held while the chunk is decoded (authors' names), never across a read of the store.
        let view = inner
            .directory()
            .await
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, &e.message()))?;
        for recorded in events {
            last = recorded.stream_version;
            let envelope = match switchboard_codec::decode(&recorded) {
                Ok(envelope) => envelope,
                Err(e) => {
                    tracing::error!(error = %e, position = recorded.position.0, "an event does not decode");
                    continue;
                }
            };
            if let Some(message) = visible(
                envelope.stream_version,
                &envelope.payload,
                envelope.metadata.occurred_at,
                channel_id,
                &view.directory,
            ) {
                out.push(message);
                if out.len() >= limit {
                    return Ok((out, last));
                }
            }
        }
        if read < READ_CHUNK {
            return Ok((out, last));
        }
    }
}

/// Most reply ids one acknowledgement (`seen`) may name.
pub(crate) const MAX_SEEN_IDS: usize = 100;

/// The reply ids of a `seen` acknowledgement (`{"ids": [...]}`), or what is wrong with them.
pub(crate) fn seen_ids(ids: &Value) -> Result<Vec<Uuid>, Refusal> {
    let refused = || {
        Refusal::Field(
            "ids",
            format!("must be a list of at most {MAX_SEEN_IDS} message ids"),
        )
    };
    let ids = ids.as_array().ok_or_else(refused)?;
    if ids.len() > MAX_SEEN_IDS {
        return Err(refused());
    }
    ids.iter()
        .map(|id| {
            id.as_str()
                .and_then(|id| id.parse().ok())
                .ok_or_else(refused)
        })
        .collect()
}

/// Records that the visitor saw the team's replies `message_ids`, as their widget acknowledged
/// (its panel open and the page visible), so that none of them goes out by e-mail (ADR 0006).
/// Ids that are not unseen replies of the conversation are left out by the domain.
pub(crate) async fn record_seen(
    inner: &Inner,
    channel_id: Uuid,
    conversation_id: Uuid,
    message_ids: Vec<Uuid>,
) -> Result<(), ServiceError> {
    if message_ids.is_empty() {
        return Ok(());
    }
    let command = Command::Conversation {
        conversation_id,
        command: Box::new(ConversationCommand::RecordRepliesSeen { message_ids }),
    };
    let meta = CommandMeta::by(Actor::Channel { id: channel_id });
    inner.service.execute(meta, command).await.map(|_| ())
}

/// Most messages `GET /chat/{key}/messages` answers at once.
const PAGE: usize = 500;

/// `GET /chat/{key}/messages?after=<seq>`: counted against the rate limits like every visitor
/// route, so polling cannot read the store as fast as a client likes.
async fn messages(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    Query(after): Query<After>,
    request: Request,
) -> Response {
    let address = peer(&state, &request);
    let headers = request.headers().clone();
    with_widget(state, &key, &headers.clone(), |state, widget| async move {
        let inner = state.inner();
        let visitor = match visitor(inner, &widget, &headers) {
            Ok(visitor) => visitor,
            Err(refused) => return refused.into_response(),
        };
        if let Err(wait) = inner.chat.check(address, Some(visitor)) {
            return too_many(wait, "too many requests; try again later");
        }
        let conversation = match visitors_conversation(inner, widget.channel_id(), visitor).await {
            Ok(conversation) => conversation,
            Err(response) => return response,
        };
        match read_messages(inner, widget.channel_id(), conversation, after.after, PAGE).await {
            Ok((messages, _)) => answer(StatusCode::OK, json!({ "messages": messages })),
            Err(response) => response,
        }
    })
    .await
}

/// A message a visitor sends, by HTTP or over the socket.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Outgoing {
    /// The text.
    #[serde(default)]
    pub(crate) text: Option<String>,
    /// The visitor's name, if they gave it.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// The client's id for the message: sending it again sends nothing new.
    #[serde(default)]
    pub(crate) client_id: Option<String>,
}

/// Why a message was not taken.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A field is at fault (422).
    Field(&'static str, String),
    /// Over a rate limit (429).
    TooMany(Duration),
    /// Not stored (503).
    Unavailable,
    /// The write side refused it (422).
    Refused(String),
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Field(field, message) => answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "errors": [{ "field": field, "message": message }] }),
            ),
            Refusal::TooMany(wait) => too_many(wait, "too many messages; try again later"),
            Refusal::Unavailable => {
                let mut response = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the message could not be stored for now; send it again",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            Refusal::Refused(message) => error(StatusCode::UNPROCESSABLE_ENTITY, &message),
        }
    }
}

/// The namespace of message ids derived from a visitor's `clientId`.
const MESSAGE_IDS: Uuid = Uuid::from_u128(0x0c4a_7e55_92d1_4b8f_a3c6_1f70_e2d9_5b14);

/// Longest `clientId`.
const MAX_CLIENT_ID: usize = 64;

/// Longest visitor name.
const MAX_NAME: usize = 100;

/// A name as given, kept as the domain keeps names ([`switchboard_domain::display_name`]: bidi
/// and control characters stripped, blanks collapsed, trimmed), at most [`MAX_NAME`]
/// characters; `None` when nothing is left.
fn checked_name(name: Option<&str>) -> Result<Option<String>, Refusal> {
    match name.and_then(switchboard_domain::display_name) {
        Some(name) if name.chars().count() > MAX_NAME => Err(Refusal::Field(
            "name",
            format!("must be at most {MAX_NAME} characters"),
        )),
        name => Ok(name),
    }
}

/// Records `outgoing` from `visitor` (the caller counted it against the rate limits):
/// `(message id, seq)`, the `seq` `None` when the message had been taken before.
pub(crate) async fn receive(
    inner: &Inner,
    widget: &Widget,
    visitor: Uuid,
    outgoing: Outgoing,
) -> Result<(Uuid, Option<u64>), Refusal> {
    let text = outgoing.text.unwrap_or_default();
    let max = inner.chat.limits.max_message_chars;
    if text.trim().is_empty() {
        return Err(Refusal::Field("text", "must not be empty".to_owned()));
    }
    if text.chars().count() > max {
        return Err(Refusal::Field(
            "text",
            format!("must be at most {max} characters"),
        ));
    }
    let name = checked_name(outgoing.name.as_deref())?;
    let client_id = outgoing.client_id.as_deref().map(str::trim);
    let message_id = match client_id {
        None | Some("") => Uuid::now_v7(),
        Some(id) if id.len() > MAX_CLIENT_ID => {
            return Err(Refusal::Field(
                "clientId",
                format!("must be at most {MAX_CLIENT_ID} bytes"),
            ));
        }
        Some(id) => {
            let mut seed = widget.channel_id().as_bytes().to_vec();
            seed.extend_from_slice(visitor.as_bytes());
            seed.extend_from_slice(id.as_bytes());
            Uuid::new_v5(&MESSAGE_IDS, &seed)
        }
    };
    let channel_id = widget.channel_id();
    let message = InboundMessage {
        message_id,
        channel_id,
        channel_kind: ChannelKind::Chat,
        // The `clientId` is kept with the message, so its echoes to the visitor name it.
        provider_message_id: client_id.filter(|id| !id.is_empty()).map(str::to_owned),
        from: Identity::ChatVisitor {
            visitor_id: visitor.to_string(),
        },
        from_name: name,
        // The service recognises the contact by the visitor id.
        contact_id: None,
        subject: None,
        body_text: text,
        body_html: None,
        email: None,
        form_fields: Vec::new(),
        attachments: Vec::new(),
        raw: None,
    };
    let outcome = inner
        .service
        .execute(
            CommandMeta::by(Actor::Channel { id: channel_id }),
            Command::ReceiveMessage {
                channel_id,
                message: Box::new(message),
                signals: None,
            },
        )
        .await;
    match outcome {
        Ok(outcome) => Ok((
            message_id,
            (outcome.written > 0).then_some(outcome.stream_version),
        )),
        Err(ServiceError::Domain(e)) => {
            tracing::warn!(error = %e, %channel_id, "a chat message was refused");
            Err(Refusal::Refused(e.to_string()))
        }
        Err(e) => {
            tracing::error!(error = %e, %channel_id, "a chat message could not be stored");
            Err(Refusal::Unavailable)
        }
    }
}

/// Reads a JSON body of at most `max_body_bytes`.
async fn json_body<T: serde::de::DeserializeOwned>(
    inner: &Inner,
    body: Body,
) -> Result<T, Response> {
    let max = inner.chat.limits.max_body_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is too large: at most {max} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the body must be a JSON object: {e}"),
        )
    })
}

/// Runs `f` on the widget behind `key`, the visitor the request's token names and the request's
/// JSON body, after the CORS check and the rate limits (counted before the body is read).
async fn with_visitor_body<T, F, Fut>(
    state: ApiState,
    key: &str,
    request: Request,
    f: F,
) -> Response
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(ApiState, Widget, Uuid, T) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let address = peer(&state, &request);
    let (parts, body) = request.into_parts();
    with_widget(
        state,
        key,
        &parts.headers.clone(),
        |state, widget| async move {
            let inner = state.inner();
            let visitor = match visitor(inner, &widget, &parts.headers) {
                Ok(visitor) => visitor,
                Err(refused) => return refused.into_response(),
            };
            if let Err(wait) = inner.chat.check(address, Some(visitor)) {
                return Refusal::TooMany(wait).into_response();
            }
            let value = match json_body(inner, body).await {
                Ok(value) => value,
                Err(response) => return response,
            };
            f(state, widget, visitor, value).await
        },
    )
    .await
}

/// `POST /chat/{key}/messages`.
async fn send(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    with_visitor_body(
        state,
        &key,
        request,
        |state, widget, visitor, outgoing: Outgoing| async move {
            match receive(state.inner(), &widget, visitor, outgoing).await {
                Ok((id, seq)) => answer(StatusCode::CREATED, json!({ "id": id, "seq": seq })),
                Err(refusal) => refusal.into_response(),
            }
        },
    )
    .await
}

/// What `POST /chat/{key}/contact` takes.
#[derive(Debug, Deserialize)]
struct ContactDetails {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /chat/{key}/contact`: the visitor leaves an address (409 before their first message:
/// it is kept with the conversation). Replies they do not acknowledge in the widget go out to
/// it by e-mail (ADR 0006). Nothing proves the address is theirs, so it never becomes an
/// identity (which would reserve it, and tell the visitor by a refusal whether someone holds
/// it): the contact made for the visitor from their conversation gets it as its
/// `claimed_email` property, for agents to judge (a contact an agent linked them to is left as
/// it is). The answer is the same whoever holds the address: `202 {"received": true}`; an
/// address the domain would not keep is a field error on `email`.
async fn contact(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    with_visitor_body(
        state,
        &key,
        request,
        |state, widget, visitor, details: ContactDetails| async move {
            let inner = state.inner();
            let email = details.email.unwrap_or_default().trim().to_lowercase();
            // The domain's own check (the one every address it keeps passes), before anything
            // else is looked at.
            if !switchboard_domain::contact::is_email_address(&email) {
                return Refusal::Field("email", "must be an e-mail address".to_owned())
                    .into_response();
            }
            let name = match checked_name(details.name.as_deref()) {
                Ok(name) => name,
                Err(refusal) => return refusal.into_response(),
            };
            let channel_id = widget.channel_id();
            let conversation = match visitors_conversation(inner, channel_id, visitor).await {
                Ok(conversation) => conversation,
                Err(response) => return response,
            };
            let started = match inner
                .store
                .stream_version(&streams::conversation(conversation))
                .await
            {
                Ok(version) => version.is_some(),
                Err(e) => {
                    tracing::error!(error = %e, %channel_id, "a chat visitor's conversation could not be read");
                    return Refusal::Unavailable.into_response();
                }
            };
            if !started {
                return error(
                    StatusCode::CONFLICT,
                    "write a message first: the address is kept with the conversation",
                );
            }
            // The address on the conversation first (replies the visitor does not see go out
            // to it): the domain's last word on the address, so a refused one writes nothing.
            let left = Command::Conversation {
                conversation_id: conversation,
                command: Box::new(ConversationCommand::RecordVisitorEmail {
                    address: email.clone(),
                }),
            };
            let meta = CommandMeta::by(Actor::Channel { id: channel_id });
            match inner.service.execute(meta, left).await {
                Ok(_) => {}
                Err(ServiceError::Domain(DomainError::Invalid { message, .. })) => {
                    return Refusal::Field("email", message).into_response();
                }
                Err(ServiceError::Domain(e)) => {
                    tracing::info!(error = %e, %channel_id, "a chat visitor's address was not kept on the conversation");
                }
                Err(e) => {
                    tracing::error!(error = %e, %channel_id, "a chat visitor's address could not be stored");
                    return Refusal::Unavailable.into_response();
                }
            }
            // Then the claim on the visitor's own contact. Any refusal (the same address
            // again, one the bot kept already, a contact that is no longer the visitor's) is
            // answered like a success: a different answer would tell the visitor something
            // about the address or its holder. A store failure leaves the address kept on the
            // conversation; the visitor's retry makes the claim.
            match claim(inner, channel_id, visitor, conversation, email, name).await {
                Ok(()) => {}
                Err(ServiceError::Domain(e)) => {
                    tracing::info!(error = %e, %channel_id, "a chat visitor's address changed no contact");
                }
                Err(e) => {
                    tracing::error!(error = %e, %channel_id, "a chat visitor's address could not be stored");
                    return Refusal::Unavailable.into_response();
                }
            }
            answer(StatusCode::ACCEPTED, json!({ "received": true }))
        },
    )
    .await
}

/// What `POST /chat/{key}/seen` takes.
#[derive(Debug, Deserialize)]
struct Seen {
    #[serde(default)]
    ids: Value,
}

/// `POST /chat/{key}/seen` (`{"ids": [...]}`): the widget acknowledges that the visitor saw
/// these replies (its panel open, the page visible); `204`. Also over the socket (`seen`).
async fn seen(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    with_visitor_body(state, &key, request, |state, widget, visitor, seen: Seen| async move {
        let inner = state.inner();
        let ids = match seen_ids(&seen.ids) {
            Ok(ids) => ids,
            Err(refusal) => return refusal.into_response(),
        };
        let channel_id = widget.channel_id();
        let conversation = match visitors_conversation(inner, channel_id, visitor).await {
            Ok(conversation) => conversation,
            Err(response) => return response,
        };
        match record_seen(inner, channel_id, conversation, ids).await {
            Ok(()) | Err(ServiceError::Domain(DomainError::NotFound { .. })) => {
                StatusCode::NO_CONTENT.into_response()
            }
            Err(ServiceError::Domain(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
            Err(e) => {
                tracing::warn!(error = %e, %conversation, "replies a chat visitor saw could not be recorded seen");
                Refusal::Unavailable.into_response()
            }
        }
    })
    .await
}

/// Keeps `email` as the `claimed_email` of the contact made for the visitor of `conversation`
/// (the id the chat bot gives it too, [`bot::contact_for`]): created (named `name`, if given)
/// when the visitor has no contact, changed when that one holds their visitor id (their name
/// left as it is). A contact an agent linked or merged the visitor into (perhaps a real
/// customer's) is never written: the claim is refused and only logged.
async fn claim(
    inner: &Inner,
    channel_id: Uuid,
    visitor: Uuid,
    conversation: Uuid,
    email: String,
    name: Option<String>,
) -> Result<(), ServiceError> {
    let identity = Identity::ChatVisitor {
        visitor_id: visitor.to_string(),
    };
    let claimed = ("claimed_email".to_owned(), email);
    let contact_id = bot::contact_for(conversation);
    let create = Command::CreateContact {
        contact_id,
        identities: vec![identity.clone()],
        properties: name
            .map(|name| ("name".to_owned(), name))
            .into_iter()
            .chain([claimed.clone()])
            .collect(),
        from_conversation: Some(conversation),
    };
    let by_channel = CommandMeta::by(Actor::Channel { id: channel_id });
    match inner.service.execute(by_channel, create).await {
        Ok(_) => Ok(()),
        // The visitor has a contact already: the claim goes onto it only if it is the one made
        // for them (by the bot or an earlier address).
        Err(ServiceError::Domain(refused)) => {
            if inner.service.contact_holding(&identity).await? != Some(contact_id) {
                return Err(ServiceError::Domain(refused));
            }
            let command = Command::Contact {
                contact_id,
                command: switchboard_domain::contact::ContactCommand::ChangeProperties {
                    set: [claimed].into_iter().collect(),
                    unset: Vec::new(),
                },
            };
            // Channels may only create contacts; the widget changes this one as a component of
            // the system, as the chat bot does, which the audit trail shows.
            let meta = CommandMeta::by(Actor::System {
                component: "chat-widget".into(),
            });
            inner.service.execute(meta, command).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// The conversation a visitor's messages on `channel_id` go to now: the one derived from the
/// visitor, or its successor when that was erased (`CommandService::current_conversation`).
pub(crate) async fn visitors_conversation(
    inner: &Inner,
    channel_id: Uuid,
    visitor: Uuid,
) -> Result<Uuid, Response> {
    inner
        .service
        .current_conversation(chat_conversation_id(channel_id, &visitor.to_string()))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, %channel_id, "a chat visitor's conversation could not be read");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the conversation cannot be read now",
            )
        })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::client_key;

    fn key(address: &str) -> IpAddr {
        client_key(address.parse().expect("an address"))
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_ipv4_as_they_are() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            key("2001:db8:1:2:abcd::9"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
