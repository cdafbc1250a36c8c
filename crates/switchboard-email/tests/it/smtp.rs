//! The SMTP/LMTP listener on a loopback port, driven by swaks (Debian's `swaks`), an SMTP client
//! nobody here wrote.

use std::net::SocketAddr;
use std::process::Output;

use proto_events::DomainEvent;
use switchboard_email::smtp::{self, SmtpSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::{Mailroom, mailroom};

/// The listener of `room` on a free loopback port, until the returned sender is dropped.
async fn listen(room: &Mailroom, settings: SmtpSettings) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(smtp::serve(
        listener,
        room.ingester.clone(),
        settings,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Whether swaks can run. Without it the test is skipped, loudly, unless
/// `SWITCHBOARD_REQUIRE_TOOLS=1` (as `.ci/run` sets, after installing it) makes that a failure.
pub(crate) fn swaks_available() -> bool {
    let found = std::process::Command::new("swaks")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "swaks is required (SWITCHBOARD_REQUIRE_TOOLS=1) but cannot run: apt-get install swaks"
        );
        eprintln!("SKIPPED: swaks (Debian package `swaks`) is not installed");
    }
    found
}

/// Runs swaks against `addr` with `args`; its exit status and transcript.
async fn swaks(addr: SocketAddr, args: &[&str]) -> (Output, String) {
    let out = tokio::process::Command::new("swaks")
        .args(["--server", &addr.ip().to_string(), "--port"])
        .arg(addr.port().to_string())
        .args(["--timeout", "20", "--hide-informational"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("swaks runs (Debian package swaks; .ci/run installs it)");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, transcript)
}

fn received(events: &[proto_events::Envelope]) -> Vec<&proto_events::event::MessageReceived> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            DomainEvent::MessageReceived(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn swaks_delivers_to_a_team_address_and_the_message_is_durable_at_250() {
    if !swaks_available() {
        return;
    }
    let room = mailroom().await;
    let (addr, _stop) = listen(&room, SmtpSettings::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let attachment = dir.path().join("quote.pdf");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&attachment, &bytes).expect("write");
    let (out, transcript) = swaks(
        addr,
        &[
            "--from",
            "ada@customer.example",
            "--to",
            "Support@Acme.test",
            "--header",
            "Subject: Quote for 20 seats",
            "--header",
            "Message-ID: <swaks-1@customer.example>",
            "--body",
            "Please find the quote attached.",
            "--attach-type",
            "application/pdf",
            "--attach-name",
            "quote.pdf",
            "--attach",
            &format!("@{}", attachment.display()),
            "--pipeline",
        ],
    )
    .await;
    assert!(out.status.success(), "{transcript}");
    assert!(
        transcript.contains("250 2.0.0 Message accepted"),
        "{transcript}"
    );

    // Read right after the 250: the events are there.
    let events = room.events().await;
    let [message] = received(&events)[..] else {
        panic!("one message: {transcript}")
    };
    assert_eq!(
        message.message.subject.as_deref(),
        Some("Quote for 20 seats")
    );
    assert!(
        message
            .message
            .body_text
            .contains("Please find the quote attached.")
    );
    let [pdf] = &message.message.attachments[..] else {
        panic!("one attachment: {:?}", message.message.attachments)
    };
    assert_eq!(pdf.file_name.as_deref(), Some("quote.pdf"));
    let stored = room
        .store
        .blobs()
        .get(&pdf.blob.sha256)
        .await
        .expect("read");
    assert_eq!(stored, Some(bytes), "the attachment, byte for byte");
}

#[tokio::test]
async fn unknown_recipients_are_refused_at_rcpt_and_oversize_mail_at_data() {
    if !swaks_available() {
        return;
    }
    let room = mailroom().await;
    let settings = SmtpSettings {
        max_message_bytes: 20_000,
        ..SmtpSettings::default()
    };
    let (addr, _stop) = listen(&room, settings).await;

    let (out, transcript) = swaks(
        addr,
        &["--from", "ada@customer.example", "--to", "nobody@acme.test"],
    )
    .await;
    assert!(!out.status.success(), "{transcript}");
    assert!(transcript.contains("550 5.1.1"), "{transcript}");

    let big = "x".repeat(30_000);
    let (out, transcript) = swaks(
        addr,
        &[
            "--from",
            "ada@customer.example",
            "--to",
            "support@acme.test",
            "--body",
            &big,
        ],
    )
    .await;
    assert!(!out.status.success(), "{transcript}");
    assert!(transcript.contains("552 5.3.4"), "{transcript}");
    // The limit is advertised in the EHLO answer.
    assert!(
        transcript.contains("SIZE 20000"),
        "advertised: {transcript}"
    );
    assert!(
        received(&room.events().await).is_empty(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn lmtp_answers_each_recipient_and_a_repeat_is_one_message() {
    if !swaks_available() {
        return;
    }
    let room = mailroom().await;
    let (addr, _stop) = listen(&room, SmtpSettings::default()).await;
    let args = [
        "--protocol",
        "LMTP",
        "--from",
        "ada@customer.example",
        "--to",
        "support@acme.test,sales@acme.test",
        "--header",
        "Message-ID: <lmtp-1@customer.example>",
        "--body",
        "To both teams.",
    ];
    let (out, transcript) = swaks(addr, &args).await;
    assert!(out.status.success(), "{transcript}");
    assert!(
        transcript.contains("250 2.0.0 Delivered to support@acme.test")
            && transcript.contains("250 2.0.0 Delivered to sales@acme.test"),
        "{transcript}"
    );
    // The sending MTA retries (it lost our answer): still one message per channel.
    let (out, transcript) = swaks(addr, &args).await;
    assert!(out.status.success(), "{transcript}");
    assert_eq!(received(&room.events().await).len(), 2);
}

/// A self-signed certificate for `localhost` and its key, made by openssl, in `dir`.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

#[tokio::test]
async fn starttls_upgrades_the_session_when_a_certificate_is_configured() {
    if !swaks_available() {
        return;
    }
    let room = mailroom().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = certificate(dir.path());
    let settings = SmtpSettings {
        tls: Some(smtp::tls_acceptor(&cert, &key).expect("acceptor")),
        ..SmtpSettings::default()
    };
    let (addr, _stop) = listen(&room, settings).await;
    // `--tls` requires STARTTLS: swaks fails if it is not offered or does not succeed.
    let (out, transcript) = swaks(
        addr,
        &[
            "--tls",
            "--from",
            "ada@customer.example",
            "--to",
            "support@acme.test",
            "--header",
            "Subject: Over TLS",
        ],
    )
    .await;
    assert!(out.status.success(), "{transcript}");
    assert!(transcript.contains("STARTTLS"), "{transcript}");
    // swaks marks what it sent inside TLS with `~>`.
    assert!(transcript.contains("~> MAIL FROM"), "{transcript}");
    assert!(
        !transcript.contains("<~  250-STARTTLS"),
        "not offered again inside TLS: {transcript}"
    );
    let events = room.events().await;
    let [message] = received(&events)[..] else {
        panic!("one message: {transcript}")
    };
    assert_eq!(message.message.subject.as_deref(), Some("Over TLS"));

    // Without a certificate it is not offered (and a client that insists gets nowhere).
    let room = mailroom().await;
    let (addr, _stop) = listen(&room, SmtpSettings::default()).await;
    let (out, transcript) = swaks(
        addr,
        &[
            "--tls",
            "--from",
            "ada@customer.example",
            "--to",
            "support@acme.test",
        ],
    )
    .await;
    assert!(!out.status.success(), "{transcript}");
    assert!(
        !transcript.contains("250-STARTTLS"),
        "not offered: {transcript}"
    );
    assert!(
        transcript.contains("did not advertise STARTTLS"),
        "{transcript}"
    );
    assert!(received(&room.events().await).is_empty());
}
