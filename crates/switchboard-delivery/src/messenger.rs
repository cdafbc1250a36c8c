//! Messenger replies through Meta's Send API: one `POST {graph_url}/{version}/me/messages` per
//! reply, authenticated with the page's access token, and what Graph's answer means for the
//! delivery.
//!
//! The token travels in the `Authorization` header, never in the URL: an HTTP client error
//! names the URL it failed on, and errors end up in logs and `DeliveryFailed` reasons.
//!
//! What an answer means:
//! - 200 with a `message_id`: delivered, that id recorded as the provider's.
//! - 429, 5xx, a timeout, a connection refused or cut, or a Graph error marked `is_transient` or
//!   with a rate-limit or "temporarily unavailable" code (1, 2, 4, 17, 32, 613): temporary,
//!   retried with the worker's backoff.
//! - Any other 4xx: permanent, with Graph's code (and subcode) as the status and its message as
//!   the reason (e.g. 10 / 2018278, the message was sent outside the allowed window; 551, the
//!   person is not available).
//!
//! The Send API has no idempotency key. A timeout or a connection cut after the request was
//! written leaves it unknown whether Meta took the message; it is retried like any temporary
//! failure, so the person may get that reply twice (as an e-mail sent but not yet recorded may
//! be sent again after a restart). A connection that was never made sends nothing twice.
//! Graph's answer is read up to [`MAX_ANSWER_BYTES`]; a longer one counts as unreadable.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::relay::Failure;

/// The Graph API version replies are sent with, unless configured.
pub const DEFAULT_GRAPH_VERSION: &str = "v21.0";

/// The most of Graph's answer that is read: its JSON is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where the Send API is, and the HTTP client that reaches it.
#[derive(Debug, Clone)]
pub struct GraphApi {
    /// `{base}/{version}/me/messages`.
    endpoint: Url,
    client: reqwest::Client,
}

/// Why a Graph API could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GraphSetupError {
    /// The base URL is not an absolute http(s) URL: fix the configuration.
    #[error("the Graph API URL {0:?} is not an http(s) URL")]
    BadUrl(String),
    /// The HTTP client could not be built (TLS set-up): a bug or a broken installation.
    #[error("the HTTP client for the Graph API could not be built: {0}")]
    Client(String),
}

impl GraphApi {
    /// The Send API under `base_url` (e.g. Meta's Graph host, or a test server), at API
    /// `version`, each request allowed `timeout`.
    pub fn new(
        base_url: &str,
        version: &str,
        timeout: Duration,
    ) -> Result<GraphApi, GraphSetupError> {
        let bad = || GraphSetupError::BadUrl(base_url.to_owned());
        let base = Url::parse(base_url).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad());
        }
        let path = format!(
            "{}/{}/me/messages",
            base.path().trim_end_matches('/'),
            version.trim_matches('/')
        );
        let mut endpoint = base;
        endpoint.set_path(&path);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GraphSetupError::Client(e.to_string()))?;
        Ok(GraphApi { endpoint, client })
    }

    /// The Send API's URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends `text` to the person `psid` as the page whose access token is `token`; Graph's
    /// id of the message when it took it.
    pub(crate) async fn send(
        &self,
        token: &str,
        psid: &str,
        text: &str,
        window: Window,
    ) -> Result<Option<String>, Failure> {
        let (messaging_type, tag) = match window {
            Window::Response => ("RESPONSE", None),
            Window::HumanAgent => ("MESSAGE_TAG", Some("HUMAN_AGENT")),
        };
        let request = SendRequest {
            recipient: Recipient { id: psid },
            messaging_type,
            tag,
            message: Text { text },
        };
        let answer = self
            .client
            .post(self.endpoint.clone())
            .bearer_auth(token)
            .json(&request)
            .send()
            .await
            .map_err(|e| Failure::transient(format!("the Graph API: {}", e.without_url())))?;
        let status = answer.status();
        // A body that does not read or parse says nothing more than the status does.
        let body: Answer = read_bounded(answer)
            .await
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(body.message_id);
        }
        Err(graph_failure(status.as_u16(), body.error))
    }
}

/// The host and port of the Graph API at `base_url`, if it is a URL with them.
pub fn origin_of(base_url: &str) -> Option<(String, u16)> {
    let url = Url::parse(base_url).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some((host.to_owned(), url.port_or_known_default()?))
}

/// Which of Messenger's windows a reply is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// Within 24 hours of the person's last message: a standard response.
    Response,
    /// Later, up to 7 days, for a page with the human-agent tag.
    HumanAgent,
}

/// The body of `answer` if it reads whole within [`MAX_ANSWER_BYTES`].
async fn read_bounded(mut answer: reqwest::Response) -> Option<Vec<u8>> {
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

#[derive(Serialize)]
struct SendRequest<'a> {
    recipient: Recipient<'a>,
    messaging_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    message: Text<'a>,
}

#[derive(Serialize)]
struct Recipient<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

/// Graph's answer, as much of it as is read.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    message_id: Option<String>,
    error: Option<GraphError>,
}

#[derive(Debug, Default, Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    code: Option<i64>,
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: bool,
}

/// Graph error codes that pass with time: unknown (1), service unavailable (2), and rate
/// limits (4, 17, 32, 613).
const TRANSIENT_CODES: [i64; 6] = [1, 2, 4, 17, 32, 613];

/// What an unsuccessful answer with HTTP `status` and Graph's `error` means.
fn graph_failure(status: u16, error: Option<GraphError>) -> Failure {
    let error = error.unwrap_or_default();
    let code = match (error.code, error.error_subcode) {
        (Some(code), Some(sub)) => Some(format!("{code}/{sub}")),
        (Some(code), None) => Some(code.to_string()),
        _ => None,
    };
    let message: String = error
        .message
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect();
    let reason = match &code {
        Some(code) => format!("the Graph API answered {status}: {message} (code {code})"),
        None => format!("the Graph API answered {status}"),
    };
    let transient = status == 429
        || !(400..500).contains(&status)
        || error.is_transient
        || error.code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
    Failure {
        reason,
        status: Some(code.unwrap_or_else(|| status.to_string())),
        permanent: !transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: i64, sub: Option<i64>, transient: bool) -> Option<GraphError> {
        Some(GraphError {
            message: "msg".into(),
            code: Some(code),
            error_subcode: sub,
            is_transient: transient,
        })
    }

    #[test]
    fn graph_answers_are_permanent_or_temporary_as_meta_documents_them() {
        let refused = graph_failure(400, error(10, Some(2_018_278), false));
        assert!(refused.permanent);
        assert_eq!(refused.status.as_deref(), Some("10/2018278"));
        assert!(refused.reason.contains("msg"), "{}", refused.reason);
        assert!(!graph_failure(400, error(613, None, false)).permanent);
        assert!(!graph_failure(400, error(100, None, true)).permanent);
        assert!(!graph_failure(429, None).permanent);
        assert!(!graph_failure(503, None).permanent);
        assert_eq!(graph_failure(503, None).status.as_deref(), Some("503"));
    }

    /// An answer that never ends is read only up to the bound, not until the request's
    /// timeout (nor into memory without end).
    #[tokio::test]
    async fn an_endless_answer_is_cut_off_at_the_bound() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
            // Until the client hangs up.
            while socket.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        let api = GraphApi::new(&base, "v21.0", Duration::from_secs(120)).unwrap();
        let sent = tokio::time::timeout(
            Duration::from_secs(20),
            api.send("token", "psid", "hello", Window::Response),
        )
        .await
        .expect("the answer was read past its bound");
        assert!(matches!(sent, Ok(None)), "{sent:?}");
    }

    #[test]
    fn the_endpoint_keeps_the_base_path_and_refuses_other_schemes() {
        let api =
            GraphApi::new("http://127.0.0.1:9/graph/", "v21.0", Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.endpoint().as_str(),
            "http://127.0.0.1:9/graph/v21.0/me/messages"
        );
        assert!(GraphApi::new("ftp://example.test", "v21.0", Duration::from_secs(1)).is_err());
        assert!(GraphApi::new("not a url", "v21.0", Duration::from_secs(1)).is_err());
    }
}
