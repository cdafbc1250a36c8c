//! The SMTP relay: where it is ([`RelayUrl`], parsed from the configuration's
//! `smtp_relay_url`), the connection to it ([`Relay`], lettre's asynchronous transport), and what
//! its answers mean for a reply ([`Failure`]).
//!
//! The URL says everything about the connection, so one secret configures it:
//! `smtp://[user:password@]host[:port][?tls=starttls|none][&hello=name]` or
//! `smtps://[user:password@]host[:port][?hello=name]`.
//! - `smtp://` upgrades with STARTTLS and refuses to go on without it (port 587 by default);
//!   `tls=none` sends in the clear (port 25 by default), for a relay on the same host or network.
//! - `smtps://` is TLS from the first byte (implicit TLS, port 465 by default).
//! - User and password (percent-encoded) authenticate with `AUTH`; one without the other is
//!   refused.
//! - `hello` is the name given in `EHLO` (the host's name by default).
//!
//! Certificates are checked with the platform's verifier. Anything else in the URL is refused,
//! so that a typo does not silently send mail in the clear.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::{Response, Severity};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::DeliveryError;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS, required: the relay must offer it.
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// None (`tls=none`): for a relay on a trusted network only.
    None,
}

/// Where and how to reach the relay. Its `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayUrl {
    /// The relay's host name or IP address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// User and password for `AUTH`.
    credentials: Option<(String, String)>,
    /// The name given in `EHLO`, when not the host's.
    pub hello: Option<String>,
}

impl RelayUrl {
    /// A relay at `host:port`, authenticating with `credentials` (user, password) if given:
    /// for a channel's own SMTP server, whose settings are not a URL.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        security: Security,
        credentials: Option<(String, String)>,
    ) -> RelayUrl {
        RelayUrl {
            host: host.into(),
            port,
            security,
            credentials,
            hello: None,
        }
    }

    /// A channel's own SMTP server (`EmailServersSet.smtp`), logging in with `credentials`.
    pub fn for_server(
        server: &proto_events::event::SmtpServer,
        credentials: Option<(String, String)>,
    ) -> RelayUrl {
        use proto_events::event::ServerSecurity;
        RelayUrl::new(
            server.host.clone(),
            server.port,
            match server.security {
                ServerSecurity::Tls => Security::Implicit,
                ServerSecurity::StartTls => Security::StartTls,
                ServerSecurity::Plain => Security::None,
            },
            credentials,
        )
    }

    /// The user it authenticates as, if any.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }
}

impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user())
            .field("password", &self.credentials.as_ref().map(|_| "<redacted>"))
            .field("hello", &self.hello)
            .finish()
    }
}

/// Shows the relay for logs: scheme, user, host and port, never the password.
impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.security {
            Security::Implicit => "smtps",
            Security::StartTls | Security::None => "smtp",
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = self.user() {
            write!(f, "{user}@")?;
        }
        write!(f, "{}:{}", self.host, self.port)?;
        if self.security == Security::None {
            f.write_str("?tls=none")?;
        }
        Ok(())
    }
}

impl FromStr for RelayUrl {
    type Err = DeliveryError;

    fn from_str(text: &str) -> Result<RelayUrl, DeliveryError> {
        let invalid = |message: String| DeliveryError::RelayUrl { message };
        // The parser's own message could quote the password; say only what shape is expected.
        let url = url::Url::parse(text.trim()).map_err(|_| {
            invalid("is not a URL; write smtp://user:password@host:port or smtps://…".to_owned())
        })?;
        let mut security = match url.scheme() {
            "smtp" => Security::StartTls,
            "smtps" => Security::Implicit,
            other => {
                return Err(invalid(format!(
                    "has the scheme {other:?}; use smtp:// (STARTTLS, or ?tls=none) or smtps://"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| invalid("names no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(invalid(
                "has a path or fragment; the relay is host, port and query only".to_owned(),
            ));
        }
        let mut hello = None;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "starttls", Security::StartTls) => {}
                ("tls", "none", Security::StartTls) => security = Security::None,
                ("tls", "implicit", Security::Implicit) => {}
                ("tls", other, _) => {
                    return Err(invalid(format!(
                        "has tls={other:?}; smtp:// takes tls=starttls (the default) or \
                         tls=none, smtps:// is always TLS"
                    )));
                }
                ("hello", name, _) if !name.trim().is_empty() => {
                    hello = Some(name.trim().to_owned());
                }
                (other, _, _) => {
                    return Err(invalid(format!(
                        "has the parameter {other:?}; known are tls and hello"
                    )));
                }
            }
        }
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| invalid("has a user or password that is not UTF-8".to_owned()))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, Some(password)) if !user.is_empty() => Some((decode(user)?, decode(password)?)),
            _ => {
                return Err(invalid(
                    "has a user without a password, or a password without a user".to_owned(),
                ));
            }
        };
        let port = url.port().unwrap_or(match security {
            Security::StartTls => 587,
            Security::Implicit => 465,
            Security::None => 25,
        });
        Ok(RelayUrl {
            host,
            port,
            security,
            credentials,
            hello,
        })
    }
}

/// Why a reply was not accepted by the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What happened, for display.
    pub reason: String,
    /// The relay's reply code and enhanced status code (`550 5.1.1`), when it answered.
    pub status: Option<String>,
    /// Whether trying again cannot help: the relay answered 5xx (other than refusing our login),
    /// or the reply cannot be built. Everything else (4xx, a refused login, a connection refused
    /// or cut, a timeout, TLS) may pass later.
    pub permanent: bool,
}

impl Failure {
    /// A failure that no retry can mend.
    pub(crate) fn permanent(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            status: None,
            permanent: true,
        }
    }

    /// A failure that may pass.
    pub(crate) fn transient(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            status: None,
            permanent: false,
        }
    }

    fn from_smtp(error: &lettre::transport::smtp::Error) -> Failure {
        use std::error::Error as _;
        let text = error
            .source()
            .map(ToString::to_string)
            .unwrap_or_default()
            .trim()
            .to_owned();
        match error.status() {
            Some(code) => {
                let status = match text.split_whitespace().next() {
                    Some(enhanced) if is_enhanced_status(enhanced) => format!("{code} {enhanced}"),
                    _ => code.to_string(),
                };
                let reason = if text.is_empty() {
                    format!("the relay answered {code}")
                } else {
                    format!("the relay answered {code} {text}")
                };
                // A refused login (RFC 4954's 530, 534, 535, 538) is the relay's configuration,
                // not the reply: retried, so that fixing the password within the retry window
                // still delivers what piled up.
                let login_refused = matches!(u16::from(code), 530 | 534 | 535 | 538);
                Failure {
                    reason: bounded(reason),
                    permanent: code.severity == Severity::PermanentNegativeCompletion
                        && !login_refused,
                    status: Some(status),
                }
            }
            None => Failure::transient(bounded(format!("the relay could not be reached: {error}"))),
        }
    }
}

/// Whether `text` is an enhanced mail system status code (RFC 3463): `class.subject.detail`,
/// the class 2, 4 or 5, the others one to three digits.
fn is_enhanced_status(text: &str) -> bool {
    let mut parts = text.split('.');
    let class = parts.next();
    let rest: Vec<&str> = parts.collect();
    matches!(class, Some("2" | "4" | "5"))
        && rest.len() == 2
        && rest
            .iter()
            .all(|part| (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
}

/// What the relay says goes into events: enough to explain, never unbounded.
fn bounded(mut text: String) -> String {
    const MAX: usize = 500;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The connection to the relay (lettre's pool of SMTP connections).
#[derive(Clone)]
pub struct Relay {
    url: RelayUrl,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay").field("url", &self.url).finish()
    }
}

impl Relay {
    /// A relay at `url`; every SMTP command waits at most `timeout` for its answer. Connects
    /// only when the first reply is sent.
    pub fn new(url: &RelayUrl, timeout: Duration) -> Result<Relay, DeliveryError> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| DeliveryError::RelayUrl {
                message: format!("cannot set up TLS for {host}: {e}"),
            })
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host)
            .port(url.port)
            .timeout(Some(timeout));
        builder = match url.security {
            Security::StartTls => builder.tls(Tls::Required(tls(&url.host)?)),
            Security::Implicit => builder.tls(Tls::Wrapper(tls(&url.host)?)),
            Security::None => builder.tls(Tls::None),
        };
        if let Some((user, password)) = &url.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        if let Some(name) = &url.hello {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        Ok(Relay {
            url: url.clone(),
            transport: builder.build(),
        })
    }

    /// The relay's address, for logs.
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    /// Connects, greets, upgrades to TLS and logs in as configured, then checks the server
    /// answers `NOOP`: a connection test that sends nothing.
    pub async fn check(&self) -> Result<(), Failure> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::transient("the server did not answer NOOP")),
            Err(error) => Err(Failure::from_smtp(&error)),
        }
    }

    /// Hands `message` to the relay. `Ok` holds the relay's queue id when its answer names one
    /// (`250 2.0.0 Ok: queued as 4BCD`), else its answer's text.
    pub(crate) async fn send(&self, message: Message) -> Result<Option<String>, Failure> {
        match self.transport.send(message).await {
            Ok(response) => Ok(provider_id(&response)),
            Err(error) => Err(Failure::from_smtp(&error)),
        }
    }
}

/// The relay's id of an accepted message: what follows "queued as" in its answer, else the
/// answer's text (without the code), if any.
fn provider_id(response: &Response) -> Option<String> {
    let text = response.message().collect::<Vec<_>>().join(" ");
    let lower = text.to_ascii_lowercase();
    let id = match lower.find("queued as ") {
        Some(at) => text
            .get(at + "queued as ".len()..)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|id| {
                id.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_owned()
            }),
        None => None,
    };
    id.filter(|id| !id.is_empty())
        .or_else(|| Some(bounded(text.trim().to_owned())).filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RelayUrl, String> {
        text.parse::<RelayUrl>().map_err(|e| e.to_string())
    }

    #[test]
    fn relay_urls_say_security_port_and_credentials() {
        let plain = parse("smtp://127.0.0.1:2526?tls=none").expect("valid");
        assert_eq!((plain.security, plain.port), (Security::None, 2526));
        assert_eq!(plain.user(), None);
        let submission = parse("smtp://bob:p%40ss%2Bw%3Ard@mail.acme.test").expect("valid");
        assert_eq!(
            (submission.security, submission.port),
            (Security::StartTls, 587)
        );
        assert_eq!(
            submission.credentials,
            Some(("bob".to_owned(), "p@ss+w:rd".to_owned()))
        );
        let implicit = parse("smtps://mail.acme.test?hello=out.acme.test").expect("valid");
        assert_eq!(
            (implicit.security, implicit.port),
            (Security::Implicit, 465)
        );
        assert_eq!(implicit.hello.as_deref(), Some("out.acme.test"));
        assert_eq!(parse("smtp://[::1]?tls=none").expect("valid").host, "::1");
        for refused in [
            "mail.acme.test",
            "http://mail.acme.test",
            "smtp://",
            "smtp://mail.acme.test?tls=maybe",
            "smtps://mail.acme.test?tls=none",
            "smtp://mail.acme.test?pool=3",
            "smtp://bob@mail.acme.test",
            "smtp://mail.acme.test/path",
        ] {
            assert!(parse(refused).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let url = parse("smtp://bob:hunter2-secret@mail.acme.test").expect("valid");
        let shown = format!("{url:?} {url}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bob"), "{shown}");
        let refused = parse("smtp://bob:hunter2-secret@mail.acme.test?tls=x").expect_err("bad");
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn enhanced_status_codes_are_recognised() {
        assert!(is_enhanced_status("5.1.1"));
        assert!(is_enhanced_status("4.7.500"));
        assert!(!is_enhanced_status("5.1"));
        assert!(!is_enhanced_status("Mailbox"));
        assert!(!is_enhanced_status("3.1.1"));
        assert!(!is_enhanced_status("5.1.1234"));
    }
}
