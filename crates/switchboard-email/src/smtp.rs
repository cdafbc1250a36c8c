//! The SMTP and LMTP listener: where a domain's MX, or an MTA such as Postfix, delivers mail.
//!
//! Commands are parsed by smtp-proto (no parser of our own); this module keeps the session's
//! state and answers. It accepts mail for every connected shared e-mail channel's address (team
//! addresses, inboxes' fallback addresses) and refuses other recipients at `RCPT` (550 5.1.1):
//! a private account's mail comes from its own provider over IMAP, so that nobody who reaches
//! the listener can write into a user's private mailbox or learn which ones exist. Connections
//! are capped ([`SmtpSettings::max_connections`], `421` beyond), and each is closed after
//! [`SmtpSettings::max_session`], or [`SmtpSettings::idle_timeout`] without a command or
//! without reading its answers. A message larger than [`SmtpSettings::max_message_bytes`] is refused at
//! `MAIL` when the client declares its `SIZE`, else at the end of `DATA` (552 5.3.4), its bytes
//! discarded as they arrive. `250` is answered only once the message's events are durable
//! ([`Ingester::ingest`]); a storage failure answers `451` so the sender tries again (the
//! message's id is derived from its `Message-ID`, so a retry is not a second message).
//!
//! A client that greets with `LHLO` speaks LMTP (RFC 2033): after `DATA` it gets one answer per
//! accepted recipient. With a certificate ([`SmtpSettings::tls`]) the listener offers
//! `STARTTLS` (RFC 3207): what the client sent after the command is discarded, and the session
//! starts over, greeting included, inside TLS. Without one, `STARTTLS` is answered 454.

use std::future::Future;
use std::io::Write as _;
use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{
    EXT_8BIT_MIME, EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8,
    EXT_START_TLS, EhloResponse, Error as ProtoError, Request,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::ingest::{IngestError, Ingester};

/// How the listener behaves.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The name it greets with.
    pub hostname: String,
    /// The largest message accepted, in bytes (25 MiB unless configured).
    pub max_message_bytes: usize,
    /// Most recipients of one message.
    pub max_recipients: usize,
    /// A connection silent for this long (or not reading our answers) is closed.
    pub idle_timeout: Duration,
    /// The longest a connection may last, however busy.
    pub max_session: Duration,
    /// Most connections served at once; more are answered `421` and closed.
    pub max_connections: usize,
    /// The certificate `STARTTLS` upgrades with; `None`: not offered.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("hostname", &self.hostname)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_recipients", &self.max_recipients)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_session", &self.max_session)
            .field("max_connections", &self.max_connections)
            .field("starttls", &self.tls.is_some())
            .finish()
    }
}

/// A `STARTTLS` acceptor for the PEM certificate chain and private key in these files.
pub fn tls_acceptor(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("reading the certificate {}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", certificate.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading the private key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

impl Default for SmtpSettings {
    fn default() -> SmtpSettings {
        SmtpSettings {
            hostname: "switchboard".to_owned(),
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            idle_timeout: Duration::from_secs(300),
            max_session: Duration::from_secs(1800),
            max_connections: 256,
            tls: None,
        }
    }
}

/// The room a session makes for a message's bytes when `DATA` begins.
const MESSAGE_RESERVE: usize = 64 * 1024;

/// Accepts connections on `listener` until `shutdown` resolves; each is served on its own task.
pub async fn serve(
    listener: TcpListener,
    ingester: Ingester,
    settings: SmtpSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(settings.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((mut stream, peer)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tokio::spawn(async move {
                        let busy = b"421 4.3.2 Too many connections, try again later\r\n";
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), stream.write_all(busy))
                                .await;
                    });
                    continue;
                };
                let session = Session::new(ingester.clone(), settings.clone());
                let limit = settings.max_session;
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(limit, session.run(stream)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "SMTP session ended with an error");
                        }
                        Err(_) => tracing::debug!(%peer, "SMTP session lasted too long: closed"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting an SMTP connection failed");
                // Out of file descriptors, typically: give the others a moment to finish.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!("SMTP listener stopped");
}

/// A session's byte stream, plain or inside TLS, and the TCP connection under it.
trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
}

impl Connection for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Connection for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Acknowledges what the client sends when it is read, not when the kernel's delayed-ACK timer
/// fires (40 ms on Linux). A session answers every command, so the kernel delays its ACKs; a
/// client that writes a message's last bytes on their own (lettre writes the body, then
/// `<CRLF>.<CRLF>`) has them held back by Nagle's algorithm until the body is acknowledged, and
/// every such message waited the whole timer. Linux leaves this mode again as it sees fit (the
/// next answer), so it is asked for before every read; failing to is harmless.
fn acknowledge_promptly(tcp: &TcpStream) {
    #[cfg(target_os = "linux")]
    let _ = tcp.set_quickack(true);
    #[cfg(not(target_os = "linux"))]
    let _ = tcp;
}

/// One recipient accepted at `RCPT`.
#[derive(Debug, Clone)]
struct Recipient {
    address: String,
    channel_id: Uuid,
}

/// Where the session is in receiving a message body.
enum Body {
    /// Not in `DATA`.
    None,
    /// Collecting the message.
    Collecting(DataReceiver),
    /// Over the size limit: discarding the rest.
    Discarding(DummyDataReceiver),
}

struct Session {
    ingester: Ingester,
    settings: SmtpSettings,
    /// `LHLO` was used: LMTP.
    lmtp: bool,
    greeted: bool,
    /// `MAIL FROM`, once given (empty for a bounce's null sender).
    from: Option<String>,
    recipients: Vec<Recipient>,
    body: Body,
    message: Vec<u8>,
    replies: Vec<u8>,
    quit: bool,
    /// `STARTTLS` was accepted: the plain session ends, the TLS one begins.
    upgrade: bool,
    /// The session runs inside TLS.
    secured: bool,
}

impl Session {
    fn new(ingester: Ingester, settings: SmtpSettings) -> Session {
        Session {
            ingester,
            settings,
            lmtp: false,
            greeted: false,
            from: None,
            recipients: Vec::new(),
            body: Body::None,
            message: Vec::new(),
            replies: Vec::new(),
            quit: false,
            upgrade: false,
            secured: false,
        }
    }

    async fn run(mut self, stream: TcpStream) -> std::io::Result<()> {
        let mut stream = stream;
        self.serve(&mut stream).await?;
        if !self.upgrade {
            return Ok(());
        }
        let Some(acceptor) = self.settings.tls.clone() else {
            return Ok(());
        };
        // A client that asked for TLS and then stays silent is as idle as any other.
        let mut secured = tokio::time::timeout(self.settings.idle_timeout, acceptor.accept(stream))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        // RFC 3207: everything known before the handshake is forgotten.
        self.reset();
        self.greeted = false;
        self.lmtp = false;
        self.upgrade = false;
        self.secured = true;
        self.serve(&mut secured).await
    }

    /// Serves commands on `stream` until the client quits, goes silent, or starts TLS.
    async fn serve<S: Connection>(&mut self, stream: &mut S) -> std::io::Result<()> {
        let greeting = format!("220 {} Switchboard ESMTP ready\r\n", self.settings.hostname);
        let mut receiver = RequestReceiver::default();
        let mut chunk = vec![0u8; 64 * 1024];
        // After STARTTLS the client speaks first (EHLO again): no second greeting.
        if !self.secured {
            stream.write_all(greeting.as_bytes()).await?;
        }
        while !self.quit && !self.upgrade {
            acknowledge_promptly(stream.tcp());
            let read = tokio::time::timeout(self.settings.idle_timeout, stream.read(&mut chunk));
            let n = match read.await {
                Ok(read) => read?,
                Err(_) => {
                    stream
                        .write_all(b"421 4.4.2 Idle for too long, closing\r\n")
                        .await?;
                    break;
                }
            };
            if n == 0 {
                break;
            }
            let mut bytes = chunk[..n].iter();
            // Anything pipelined after STARTTLS is dropped unread: it came in the clear.
            while !self.quit && !self.upgrade && !bytes.as_slice().is_empty() {
                if !matches!(self.body, Body::None) {
                    if self.take_body(&mut bytes) {
                        self.finish_message().await;
                    }
                    continue;
                }
                match receiver.ingest(&mut bytes) {
                    Ok(request) => {
                        let request = request.into_owned();
                        self.handle(request).await;
                    }
                    Err(ProtoError::NeedsMoreData { .. }) => break,
                    Err(ProtoError::ResponseTooLong) => {
                        self.reply(500, [5, 5, 2], "Line too long");
                    }
                    Err(ProtoError::UnknownCommand) => {
                        self.reply(500, [5, 5, 1], "Unknown command");
                    }
                    Err(e) => self.reply(501, [5, 5, 4], &format!("Syntax error: {e:?}")),
                }
            }
            if !self.replies.is_empty() {
                // A client that does not read its answers does not hold the session forever.
                // Flushed: TLS may hold written bytes back until then.
                let sent = async {
                    stream.write_all(&self.replies).await?;
                    stream.flush().await
                };
                tokio::time::timeout(self.settings.idle_timeout, sent)
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                self.replies.clear();
            }
        }
        if self.upgrade {
            return Ok(());
        }
        stream.shutdown().await
    }

    fn reply(&mut self, code: u16, status: [u8; 3], text: &str) {
        let [a, b, c] = status;
        // Writing to a Vec cannot fail.
        let _ = write!(self.replies, "{code} {a}.{b}.{c} {text}\r\n");
    }

    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
        self.message = Vec::new();
        self.body = Body::None;
    }

    async fn handle(&mut self, request: Request<String>) {
        match request {
            Request::Ehlo { .. } => self.greet(false),
            Request::Lhlo { .. } => self.greet(true),
            Request::Helo { .. } => {
                self.reset();
                self.greeted = true;
                self.lmtp = false;
                let _ = write!(self.replies, "250 {}\r\n", self.settings.hostname);
            }
            Request::Mail { from } => {
                if !self.greeted {
                    return self.reply(503, [5, 5, 1], "Say hello first");
                }
                if self.from.is_some() {
                    return self.reply(503, [5, 5, 1], "Sender already given");
                }
                if from.size > self.settings.max_message_bytes {
                    return self.reply(
                        552,
                        [5, 3, 4],
                        &format!(
                            "Message too big: the limit is {} bytes",
                            self.settings.max_message_bytes
                        ),
                    );
                }
                self.from = Some(from.address);
                self.reply(250, [2, 1, 0], "Sender OK");
            }
            Request::Rcpt { to } => {
                if self.from.is_none() {
                    return self.reply(503, [5, 5, 1], "Give the sender first");
                }
                if self.recipients.len() >= self.settings.max_recipients {
                    return self.reply(452, [4, 5, 3], "Too many recipients");
                }
                match self.ingester.channel_for(&to.address).await {
                    Ok(Some(channel_id)) => {
                        self.recipients.push(Recipient {
                            address: to.address,
                            channel_id,
                        });
                        self.reply(250, [2, 1, 5], "Recipient OK");
                    }
                    Ok(None) => self.reply(
                        550,
                        [5, 1, 1],
                        &format!("No mailbox here by that name: {}", to.address),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "looking up an SMTP recipient failed");
                        self.reply(451, [4, 3, 0], "Try again later");
                    }
                }
            }
            Request::Data => {
                if self.from.is_none() || self.recipients.is_empty() {
                    return self.reply(503, [5, 5, 1], "No valid recipients");
                }
                self.body = Body::Collecting(DataReceiver::new());
                // Room for a typical message up front, rather than growing from nothing by
                // doubling (a copy and fresh pages each time).
                self.message
                    .reserve(MESSAGE_RESERVE.min(self.settings.max_message_bytes));
                let _ = write!(
                    self.replies,
                    "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
                );
            }
            Request::Rset => {
                self.reset();
                self.reply(250, [2, 0, 0], "OK");
            }
            Request::Noop { .. } => self.reply(250, [2, 0, 0], "OK"),
            Request::Quit => {
                self.reply(221, [2, 0, 0], "Bye");
                self.quit = true;
            }
            Request::Vrfy { .. } => self.reply(252, [2, 5, 2], "Cannot verify, send mail"),
            Request::Help { .. } => self.reply(214, [2, 0, 0], "See RFC 5321"),
            Request::StartTls if self.settings.tls.is_some() && !self.secured => {
                self.reply(220, [2, 0, 0], "Ready to start TLS");
                self.upgrade = true;
            }
            Request::StartTls if self.secured => self.reply(503, [5, 5, 1], "TLS already active"),
            Request::StartTls => self.reply(454, [4, 7, 0], "TLS not available"),
            _ => self.reply(502, [5, 5, 1], "Command not implemented"),
        }
    }

    /// Answers `EHLO` (or, for LMTP, `LHLO`) with the extensions offered.
    fn greet(&mut self, lmtp: bool) {
        self.reset();
        self.greeted = true;
        self.lmtp = lmtp;
        let mut ehlo = EhloResponse::new(self.settings.hostname.as_str());
        ehlo.capabilities =
            EXT_PIPELINING | EXT_8BIT_MIME | EXT_SIZE | EXT_ENHANCED_STATUS_CODES | EXT_SMTP_UTF8;
        if self.settings.tls.is_some() && !self.secured {
            ehlo.capabilities |= EXT_START_TLS;
        }
        ehlo.size = self.settings.max_message_bytes;
        let _ = ehlo.write(&mut self.replies);
    }

    /// Feeds body bytes; true once the terminating `<CRLF>.<CRLF>` was read.
    fn take_body(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> bool {
        match &mut self.body {
            Body::Collecting(receiver) => {
                let done = receiver.ingest(bytes, &mut self.message);
                if !done && self.message.len() > self.settings.max_message_bytes {
                    let discard = DummyDataReceiver::new_data(receiver);
                    self.message = Vec::new();
                    self.body = Body::Discarding(discard);
                }
                done
            }
            Body::Discarding(receiver) => receiver.ingest(bytes),
            Body::None => false,
        }
    }

    /// Answers the end of `DATA`: ingests the message once per channel, or refuses it.
    async fn finish_message(&mut self) {
        let body = std::mem::replace(&mut self.body, Body::None);
        let message = std::mem::take(&mut self.message);
        let recipients = std::mem::take(&mut self.recipients);
        let from = self.from.take();
        if matches!(body, Body::Discarding(_)) || message.len() > self.settings.max_message_bytes {
            let text = format!(
                "Message too big: the limit is {} bytes",
                self.settings.max_message_bytes
            );
            for _ in 0..self.answers(recipients.len()) {
                self.reply(552, [5, 3, 4], &text);
            }
            return;
        }
        let envelope_from = from.filter(|f| !f.is_empty());
        let mut channels: Vec<Uuid> = Vec::with_capacity(recipients.len());
        for recipient in &recipients {
            if !channels.contains(&recipient.channel_id) {
                channels.push(recipient.channel_id);
            }
        }
        let mut outcomes: Vec<(Uuid, Result<(), IngestError>)> = Vec::new();
        let mut message = Some(message);
        for (i, channel_id) in channels.iter().copied().enumerate() {
            // The last channel (usually the only one) takes the message, the others a copy.
            let bytes = if i + 1 == channels.len() {
                message.take().unwrap_or_default()
            } else {
                message.clone().unwrap_or_default()
            };
            let result = self
                .ingester
                .ingest(channel_id, envelope_from.as_deref(), bytes)
                .await
                .map(|ingested| {
                    tracing::info!(channel = %channel_id, message = %ingested.message_id,
                        duplicate = ingested.duplicate, "e-mail received over SMTP");
                });
            outcomes.push((channel_id, result));
        }
        let outcome_of = |channel_id: Uuid| {
            outcomes
                .iter()
                .find(|(c, _)| *c == channel_id)
                .map(|(_, r)| r)
        };
        if self.lmtp {
            for recipient in &recipients {
                match outcome_of(recipient.channel_id) {
                    Some(Ok(())) => self.reply(
                        250,
                        [2, 0, 0],
                        &format!("Delivered to {}", recipient.address),
                    ),
                    Some(Err(e)) => self.refusal(e),
                    None => self.reply(451, [4, 3, 0], "Try again later"),
                }
            }
            return;
        }
        // SMTP has one answer: the worst outcome, so that a temporary failure is retried.
        let worst = outcomes
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .max_by_key(|e| matches!(e, IngestError::Unavailable(_)));
        match worst {
            None => self.reply(250, [2, 0, 0], "Message accepted"),
            Some(e) => {
                let e = e.clone();
                self.refusal(&e);
            }
        }
    }

    /// How many answers the end of `DATA` gets: one, or one per recipient in LMTP.
    fn answers(&self, recipients: usize) -> usize {
        if self.lmtp { recipients.max(1) } else { 1 }
    }

    fn refusal(&mut self, error: &IngestError) {
        match error {
            IngestError::UnknownRecipient(address) => {
                self.reply(550, [5, 1, 1], &format!("No mailbox here: {address}"));
            }
            IngestError::NoSender => self.reply(550, [5, 1, 7], "The message names no sender"),
            IngestError::Refused(why) => {
                let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
                self.reply(554, [5, 6, 0], &format!("Message refused: {why}"));
            }
            IngestError::Unavailable(why) => {
                tracing::warn!(error = %why, "an e-mail could not be stored; answered 451");
                self.reply(
                    451,
                    [4, 3, 0],
                    "Could not store the message now; try again later",
                );
            }
        }
    }
}
