//! Reading raw e-mails: what a conversation shows, and bad input read as far as it goes.

use proptest::prelude::*;
use switchboard_email::parse::parse;

/// A realistic message: encoded headers, a Latin-1 quoted-printable text part, an HTML part with
/// a script and an inline image, and a PDF attachment.
fn rich_mail() -> Vec<u8> {
    b"From: =?iso-8859-1?Q?J=FCrgen_M=FCller?= <juergen@kunde.example>\r\n\
To: Support <support@acme.test>, sales@acme.test\r\n\
Cc: grace@kunde.example\r\n\
Subject: =?utf-8?B?UHJlaXNlIGbDvHIgMjAgUGzDpHR6ZQ==?=\r\n\
Message-ID: <second-2@kunde.example>\r\n\
In-Reply-To: <reply-1@acme.test>\r\n\
References: <first-1@kunde.example> <reply-1@acme.test>\r\n\
Auto-Submitted: no\r\n\
List-Unsubscribe: <mailto:leave@kunde.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/related; boundary=\"related\"\r\n\
\r\n\
--related\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=FC=DFe, was kosten 20 Pl=E4tze?\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p onclick=\"steal()\">Gr\xc3\xbc\xc3\x9fe<script>alert(1)</script><img src=\"cid:logo@kunde.example\"><a href=\"javascript:alert(2)\">x</a></p>\r\n\
--alt--\r\n\
--related\r\n\
Content-Type: image/png\r\n\
Content-ID: <logo@kunde.example>\r\n\
Content-Disposition: inline\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--related--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"angebot.pdf\"\r\n\
Content-Disposition: attachment; filename=\"angebot.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjcKJcOkw7zDtsOf\r\n\
--outer--\r\n"
        .to_vec()
}

#[test]
fn encoded_headers_charsets_bodies_and_attachments_are_read() {
    let mail = parse(&rich_mail());
    let from = mail.from.expect("a sender");
    assert_eq!(from.address, "juergen@kunde.example");
    assert_eq!(from.name.as_deref(), Some("Jürgen Müller"));
    assert_eq!(mail.subject.as_deref(), Some("Preise für 20 Plätze"));
    assert_eq!(mail.message_id.as_deref(), Some("second-2@kunde.example"));
    assert_eq!(mail.in_reply_to.as_deref(), Some("reply-1@acme.test"));
    assert_eq!(
        mail.references,
        ["first-1@kunde.example", "reply-1@acme.test"]
    );
    assert_eq!(mail.to, ["support@acme.test", "sales@acme.test"]);
    assert_eq!(mail.cc, ["grace@kunde.example"]);
    assert_eq!(mail.body_text.trim(), "Grüße, was kosten 20 Plätze?");

    let html = mail.body_html.expect("an HTML body");
    assert!(html.contains("Grüße"), "{html}");
    for gone in ["<script", "onclick", "javascript:"] {
        assert!(!html.contains(gone), "{gone} survived: {html}");
    }
    assert!(
        html.contains("cid:logo@kunde.example"),
        "inline image kept: {html}"
    );

    assert_eq!(mail.parts.len(), 2, "{:?}", mail.parts);
    let logo = &mail.parts[0];
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(logo.content_id.as_deref(), Some("logo@kunde.example"));
    assert!(logo.inline);
    assert_eq!(logo.bytes, b"\x89PNG\r\n\x1a\n");
    let pdf = &mail.parts[1];
    assert_eq!(pdf.file_name.as_deref(), Some("angebot.pdf"));
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(!pdf.inline);
    assert_eq!(pdf.bytes, "%PDF-1.7\n%äüöß".as_bytes());

    assert_eq!(mail.signals.from, "juergen@kunde.example");
    assert_eq!(mail.signals.auto_submitted.as_deref(), Some("no"));
    assert!(mail.signals.list_unsubscribe);
    assert!(mail.report.is_none());
    assert!(mail.warnings.is_empty(), "{:?}", mail.warnings);
}

#[test]
fn a_delivery_status_notification_names_the_reported_message_and_the_status() {
    let dsn = b"From: Mail Delivery System <MAILER-DAEMON@mx.kunde.example>\r\n\
To: support@acme.test\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message could not be delivered.\r\n\
--b\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.kunde.example\r\n\
\r\n\
Final-Recipient: rfc822; nobody@kunde.example\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <nobody@kunde.example>: Recipient address rejected\r\n\
--b\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: Support <support@acme.test>\r\n\
To: nobody@kunde.example\r\n\
Subject: Re: Pricing\r\n\
Message-ID: <0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@acme.test>\r\n\
--b--\r\n";
    let mail = parse(dsn);
    let report = mail.report.expect("a report");
    assert!(report.failed());
    assert_eq!(
        report.original_message_id.as_deref(),
        Some("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@acme.test")
    );
    assert_eq!(report.status.as_deref(), Some("550 5.1.1"));
    assert!(
        report
            .diagnostic
            .is_some_and(|d| d.contains("Recipient address rejected"))
    );
    assert_eq!(mail.signals.auto_submitted.as_deref(), Some("auto-replied"));
}

/// `depth` multiparts, each inside the last, around one text part.
fn nested(depth: usize) -> Vec<u8> {
    let mut mail = b"From: a@b.example\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n".to_vec();
    for level in 0..depth {
        mail.extend_from_slice(
            format!(
                "--b{level}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n",
                level + 1
            )
            .as_bytes(),
        );
    }
    mail.extend_from_slice(
        format!("--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep down\r\n").as_bytes(),
    );
    mail
}

#[test]
fn bad_input_is_read_as_far_as_it_goes_without_panicking() {
    // Not an e-mail at all.
    for garbage in [&b""[..], b"\0\0\0", b"\xff\xfe\xfd", b"\r\n\r\n\r\n"] {
        let mail = parse(garbage);
        assert!(mail.from.is_none());
        assert!(
            !mail.warnings.is_empty() || mail.body_text.trim().is_empty(),
            "{garbage:?}: {mail:?}"
        );
    }

    // 10,000-deep nesting: read, within a bounded stack.
    let deep = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| parse(&nested(10_000)))
        .expect("thread")
        .join()
        .expect("no stack overflow on a small stack");
    assert_eq!(deep.from.map(|f| f.address).as_deref(), Some("a@b.example"));

    // NUL bytes in a body are kept and reported.
    let nul = parse(b"From: a@b.example\r\nSubject: x\r\n\r\nbefore\0after\r\n");
    assert!(nul.body_text.contains("before"), "{nul:?}");
    assert!(nul.warnings.iter().any(|w| w.contains("NUL")), "{nul:?}");

    // A multipart whose closing boundary never comes, and a charset nobody knows.
    let broken = parse(
        b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n\
          Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nstill here\r\n",
    );
    assert!(broken.body_text.contains("still here"), "{broken:?}");

    // A header line of a megabyte: kept short.
    let mut long = b"From: a@b.example\r\nSubject: ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 1 << 20));
    long.extend_from_slice(b"\r\n\r\nbody\r\n");
    let long = parse(&long);
    assert!(long.subject.is_some_and(|s| s.chars().count() <= 2_000));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes: no panic.
    #[test]
    fn any_bytes_are_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }

    /// A real message with bytes overwritten anywhere: no panic, and what is read is bounded
    /// by what came in.
    #[test]
    fn a_damaged_message_is_read_without_panicking(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..64)
    ) {
        let mut bytes = rich_mail();
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        let mail = parse(&bytes);
        let parts: usize = mail.parts.iter().map(|p| p.bytes.len()).sum();
        prop_assert!(parts <= bytes.len());
        prop_assert!(mail.body_text.len() <= 4 * bytes.len());
    }
}
