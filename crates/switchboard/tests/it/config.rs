//! The configuration's layering (defaults < file < environment < flags) and its error messages,
//! through the pure `Config::layered` with explicit environments.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard::config::{Config, ConfigError, Flags, LogFormat};

const FILE: &str = r#"
listen = "127.0.0.1:7001"
data_dir = "/from/file"
ready_max_lag = 10

[log]
format = "json"
level = "debug"

[limits]
max_page_size = 50
consistency_wait = "2s"

[smtp]
listen = "127.0.0.1:2526"
max_message_bytes = 1000000
"#;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file() -> Option<(&'static Path, &'static str)> {
    Some((Path::new("switchboard.toml"), FILE))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn nothing_given_means_the_defaults() {
    let config = Config::layered(None, &env(&[]), &Flags::default()).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.listen, addr("127.0.0.1:8080"));
    assert_eq!(config.data_dir, PathBuf::from("./switchboard-data"));
    assert_eq!(config.log.format, LogFormat::Text);
    assert!(config.jwt_secret.is_none());
}

#[test]
fn the_file_overrides_the_defaults() {
    let config = Config::layered(file(), &env(&[]), &Flags::default()).unwrap();
    assert_eq!(config.listen, addr("127.0.0.1:7001"));
    assert_eq!(config.data_dir, PathBuf::from("/from/file"));
    assert_eq!(config.ready_max_lag, 10);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.limits.max_page_size, 50);
    assert_eq!(config.limits.consistency_wait, Duration::from_secs(2));
    assert_eq!(config.smtp.listen, Some(addr("127.0.0.1:2526")));
    assert_eq!(config.smtp.max_message_bytes, 1_000_000);
    // Keys the file does not set keep their defaults.
    assert_eq!(config.limits.max_depth, Config::default().limits.max_depth);
    assert_eq!(config.smtp.hostname, Config::default().smtp.hostname);
}

#[test]
fn the_smtp_listener_is_configured_from_the_environment_and_checked() {
    let config = Config::layered(
        file(),
        &env(&[
            ("SWITCHBOARD_SMTP_LISTEN", "0.0.0.0:25"),
            ("SWITCHBOARD_SMTP_HOSTNAME", "mx.acme.test"),
        ]),
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(config.smtp.listen, Some(addr("0.0.0.0:25")));
    assert_eq!(config.smtp.hostname, "mx.acme.test");
    assert_eq!(Config::default().smtp.listen, None, "off unless configured");
    for (name, value, says) in [
        (
            "SWITCHBOARD_SMTP_LISTEN",
            "port 25",
            "SWITCHBOARD_SMTP_LISTEN",
        ),
        (
            "SWITCHBOARD_SMTP_MAX_MESSAGE_BYTES",
            "12",
            "smtp.max_message_bytes",
        ),
        (
            "SWITCHBOARD_SMTP_TLS_CERTIFICATE",
            "/etc/cert.pem",
            "give both, or neither",
        ),
    ] {
        let error = Config::layered(None, &env(&[(name, value)]), &Flags::default())
            .expect_err(name)
            .to_string();
        assert!(error.contains(says), "{error}");
    }
}

#[test]
fn the_environment_overrides_the_file() {
    let vars = env(&[
        ("SWITCHBOARD_LISTEN", "127.0.0.1:7002"),
        ("SWITCHBOARD_LOG_FORMAT", "text"),
        ("SWITCHBOARD_MAX_PAGE_SIZE", "70"),
        ("SWITCHBOARD_READY_MAX_LAG", "20"),
        ("SWITCHBOARD_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        // Other tools share the prefix: unknown variables are ignored.
        ("SWITCHBOARD_TEST_POSTGRES_URL", "postgres://nowhere"),
    ]);
    let config = Config::layered(file(), &vars, &Flags::default()).unwrap();
    assert_eq!(config.listen, addr("127.0.0.1:7002"));
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.limits.max_page_size, 70);
    assert_eq!(config.ready_max_lag, 20);
    assert_eq!(
        config.jwt_secret.as_ref().map(|s| s.expose()),
        Some("0123456789abcdef0123456789abcdef")
    );
    // What the environment does not set still comes from the file.
    assert_eq!(config.data_dir, PathBuf::from("/from/file"));
    assert_eq!(config.log.level, "debug");
}

#[test]
fn flags_override_the_environment() {
    let vars = env(&[
        ("SWITCHBOARD_LISTEN", "127.0.0.1:7002"),
        ("SWITCHBOARD_DATA_DIR", "/from/env"),
        ("SWITCHBOARD_LOG_FORMAT", "text"),
        ("SWITCHBOARD_LOG_LEVEL", "warn"),
    ]);
    let flags = Flags {
        listen: Some(addr("127.0.0.1:7003")),
        data_dir: Some(PathBuf::from("/from/flag")),
        log_format: Some(LogFormat::Json),
        demo: true,
        ..Flags::default()
    };
    let config = Config::layered(file(), &vars, &flags).unwrap();
    assert_eq!(config.listen, addr("127.0.0.1:7003"));
    assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(config.demo);
    // No --log-level: the environment's.
    assert_eq!(config.log.level, "warn");
}

#[test]
fn an_unknown_key_in_the_file_is_named() {
    let text = "listen = \"127.0.0.1:1\"\n[limits]\nmax_pagesize = 5\n";
    let error = Config::layered(
        Some((Path::new("x.toml"), text)),
        &env(&[]),
        &Flags::default(),
    )
    .unwrap_err();
    assert!(matches!(error, ConfigError::File { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("max_pagesize"), "{message}");
    assert!(message.contains("x.toml"), "{message}");
}

#[test]
fn invalid_values_name_their_origin() {
    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_LISTEN", "localhost")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("SWITCHBOARD_LISTEN"), "{error}");

    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_MAX_PAGE_SIZE", "lots")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("SWITCHBOARD_MAX_PAGE_SIZE"), "{error}");

    let error = Config::layered(
        Some((Path::new("x.toml"), "shutdown_timeout = \"soon\"")),
        &env(&[]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("shutdown_timeout in x.toml"), "{error}");

    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_DEFAULT_PAGE_SIZE", "500")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("default_page_size"), "{error}");

    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_JWT_SECRET", "short")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("jwt_secret"), "{error}");
    assert!(!error.contains("short"), "the secret was printed: {error}");

    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_SECRET_KEY", "c0ffee-not-a-key")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("SWITCHBOARD_SECRET_KEY"), "{error}");
    assert!(!error.contains("c0ffee"), "the key was printed: {error}");

    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_MESSENGER_APP_SECRET", "s3cret-app-0123456789")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("messenger.verify_token"), "{error}");
    assert!(
        !error.contains("s3cret-app"),
        "the secret was printed: {error}"
    );
}

#[test]
fn chat_socket_limits_come_from_the_file_and_the_environment_and_are_checked() {
    let file = r#"
[chat]
max_sockets_per_visitor = 3
max_sockets_per_address = 200
ping_interval = "15s"
idle_timeout = "45s"
"#;
    let config = Config::layered(
        Some((Path::new("x.toml"), file)),
        &env(&[("SWITCHBOARD_CHAT_SEND_TIMEOUT", "2s")]),
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(config.chat.max_sockets_per_visitor, 3);
    assert_eq!(config.chat.max_sockets_per_address, 200);
    assert_eq!(config.chat.ping_interval, Duration::from_secs(15));
    assert_eq!(config.chat.idle_timeout, Duration::from_secs(45));
    assert_eq!(config.chat.send_timeout, Duration::from_secs(2));
    // Behind the ingress every visitor has one address: the cap must not bite unless set.
    assert!(
        Config::default().chat.max_sockets_per_address >= 10_000,
        "the per-address socket cap is high unless configured"
    );

    for (key, value) in [
        ("SWITCHBOARD_CHAT_MAX_SOCKETS_PER_VISITOR", "0"),
        ("SWITCHBOARD_CHAT_IDLE_TIMEOUT", "5s"),
        // Under twice the ping interval (20 s by default): one late pong would close it.
        ("SWITCHBOARD_CHAT_IDLE_TIMEOUT", "39s"),
    ] {
        let error = Config::layered(None, &env(&[(key, value)]), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("chat."), "{key}={value}: {error}");
    }
}

#[test]
fn trusted_proxies_come_from_the_file_and_the_environment_and_are_checked() {
    assert!(Config::default().trusted_proxies.networks().is_empty());
    let file = "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n";
    let config = Config::layered(
        Some((Path::new("x.toml"), file)),
        &env(&[]),
        &Flags::default(),
    )
    .unwrap();
    let networks: Vec<String> = config
        .trusted_proxies
        .networks()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(networks, ["10.0.0.0/8", "::1/128"]);
    let vars = env(&[(
        "SWITCHBOARD_HTTP_TRUSTED_PROXIES",
        " 192.168.0.0/16 ,fd00::/8",
    )]);
    let config =
        Config::layered(Some((Path::new("x.toml"), file)), &vars, &Flags::default()).unwrap();
    assert_eq!(config.trusted_proxies.networks().len(), 2);
    assert!(config.trusted_proxies.networks()[0].contains("192.168.3.4".parse().unwrap()));

    let error = Config::layered(
        Some((
            Path::new("x.toml"),
            "[http]\ntrusted_proxies = [\"10.0.0.1/8\"]\n",
        )),
        &env(&[]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("http.trusted_proxies in x.toml"), "{error}");
    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_HTTP_TRUSTED_PROXIES", "the-ingress")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("SWITCHBOARD_HTTP_TRUSTED_PROXIES"),
        "{error}"
    );
}

#[test]
fn the_example_configuration_is_valid_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/switchboard.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Commented-out keys are documented; uncommenting them all must still be a valid file.
    let uncommented: String = text
        .lines()
        .map(|line| {
            line.strip_prefix("# ")
                .filter(|l| is_key_line(l))
                .unwrap_or(line)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::layered(Some((&path, &uncommented)), &env(&[]), &Flags::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.jwt_secret.is_some(), "jwt_secret is not documented");
    assert!(config.secret_key.is_some(), "secret_key is not documented");
    assert!(
        config.messenger.settings().is_some(),
        "[messenger] is not documented"
    );
    assert_eq!(config.imap.len(), 1, "[[imap]] is documented");
    assert!(
        config.delivery.relay_url().is_some_and(|url| url.is_ok()),
        "smtp_relay_url is not documented with a valid example"
    );
    assert_eq!(
        config.trusted_proxies.networks().len(),
        2,
        "[http] trusted_proxies is documented"
    );
    assert!(
        config.audit.anchor_signing_key.is_some() && config.audit.anchors_file.is_some(),
        "[audit] is not documented"
    );
    for key in [
        "listen",
        "data_dir",
        "jwt_secret",
        "demo",
        "ready_max_lag",
        "shutdown_timeout",
        "fallback_email_domain",
        "smtp_relay_url",
        "delivery_worker",
        "delivery_retry_for",
        "delivery_from_name",
        "format",
        "level",
        "max_depth",
        "max_complexity",
        "max_aliases",
        "max_body_bytes",
        "max_upload_file_bytes",
        "max_upload_bytes",
        "max_upload_files",
        "max_page_size",
        "default_page_size",
        "consistency_wait",
        "anchor_interval",
        "seal_personal_data",
    ] {
        assert!(
            uncommented
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} ="))),
            "{key} is missing from the example"
        );
    }
}

/// A commented-out `key = value` line (not prose).
fn is_key_line(line: &str) -> bool {
    // A commented-out array of tables (`# [[imap]]`) is documented like a key.
    let table = line
        .strip_prefix("[[")
        .and_then(|l| l.strip_suffix("]]"))
        .is_some_and(|name| name.chars().all(|c| c.is_ascii_lowercase()));
    table
        || line
            .split_once(" = ")
            .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

#[test]
fn imap_accounts_are_read_from_the_file_with_their_password_hidden() {
    let file = r#"
[[imap]]
address = "ada@acme.test"
host = "imap.acme.test"
username = "ada"
password = "hunter2-but-longer"

[[imap]]
address = "support@acme.test"
host = "127.0.0.1"
port = 1143
tls = "plain"
username = "support"
password = "s3cret"
mailbox = "Support"
"#;
    let config = Config::layered(
        Some((Path::new("switchboard.toml"), file)),
        &env(&[]),
        &Flags::default(),
    )
    .unwrap();
    let [ada, support] = &config.imap[..] else {
        panic!("two accounts: {:?}", config.imap)
    };
    assert_eq!((ada.port, ada.mailbox.as_str()), (993, "INBOX"));
    assert_eq!(ada.tls, switchboard_email::imap::TlsMode::Tls);
    assert_eq!(ada.password.expose(), "hunter2-but-longer");
    assert_eq!((support.port, support.mailbox.as_str()), (1143, "Support"));
    assert_eq!(support.tls, switchboard_email::imap::TlsMode::Plain);
    let printed = format!("{config:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("s3cret"),
        "{printed}"
    );

    let bad = file.replace("tls = \"plain\"", "tls = \"ssl\"");
    let error = Config::layered(
        Some((Path::new("switchboard.toml"), &bad)),
        &env(&[]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("imap[1].tls") && error.contains("\"ssl\""),
        "{error}"
    );
}

#[test]
fn unseen_chat_replies_are_emailed_after_two_minutes_unless_configured_or_off_never_under_ten_seconds()
 {
    let path = Path::new("switchboard.toml");
    let layered = |text: &str, vars: &[(&str, &str)]| {
        Config::layered(Some((path, text)), &env(vars), &Flags::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .delivery
            .chat_email_unseen_after
    };
    assert_eq!(layered("", &[]), Some(Duration::from_secs(120)));
    let file = "[chat]\nemail_unseen_after = \"30s\"\n";
    assert_eq!(layered(file, &[]), Some(Duration::from_secs(30)));
    let vars = [("SWITCHBOARD_CHAT_EMAIL_UNSEEN_AFTER", "5m")];
    assert_eq!(layered(file, &vars), Some(Duration::from_secs(300)));
    let off = [("SWITCHBOARD_CHAT_EMAIL_UNSEEN_AFTER", "off")];
    assert_eq!(layered(file, &off), None, "off disables");
    assert_eq!(layered("[chat]\nemail_unseen_after = \"off\"\n", &[]), None);
    for value in ["soon", "5s", "0s"] {
        let bad = Config::layered(
            Some((path, &format!("[chat]\nemail_unseen_after = \"{value}\"\n"))),
            &env(&[]),
            &Flags::default(),
        );
        assert!(bad.is_err(), "{value}");
    }
}

#[test]
fn anchoring_is_configured_from_the_file_and_the_environment() {
    let file = "[audit]\nanchor_signing_key = \"/keys/anchor.pem\"\nanchor_interval = \"10m\"\n";
    let config = Config::layered(
        Some((Path::new("switchboard.toml"), file)),
        &env(&[("SWITCHBOARD_AUDIT_ANCHORS_FILE", "/anchors/a.ndjson")]),
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(
        config.audit.anchor_signing_key.as_deref(),
        Some(Path::new("/keys/anchor.pem"))
    );
    assert_eq!(config.audit.anchor_interval, Duration::from_secs(600));
    assert_eq!(config.anchors_file(), Path::new("/anchors/a.ndjson"));
    let defaults = Config::layered(None, &env(&[]), &Flags::default()).unwrap();
    assert_eq!(
        defaults.anchors_file(),
        defaults.data_dir.join("anchors.ndjson")
    );
    let error = Config::layered(
        None,
        &env(&[("SWITCHBOARD_AUDIT_ANCHOR_INTERVAL", "500ms")]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("SWITCHBOARD_AUDIT_ANCHOR_INTERVAL"),
        "{error}"
    );
}
