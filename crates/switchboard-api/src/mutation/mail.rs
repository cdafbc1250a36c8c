//! Mutations of e-mail channels' outside servers: `updateEmailChannel` sets the IMAP mailbox a
//! channel's mail is fetched from, the SMTP server its replies go through and the secret of its
//! HTTP ingest route; `testEmailChannel` logs in to those servers and says what failed.
//!
//! Passwords and the ingest secret are write-only. Each value given is sealed into the store's
//! secrets under a fresh id *before* the command that names the id runs (see
//! `switchboard_store::secret`); the event records the id, never the value. After the command:
//! the values it replaced are deleted; if it was refused or was a repeat, the values sealed for
//! it are deleted instead. The idempotency fingerprint leaves secret fields out (a hash of a
//! password would be guessable), so a repeat with another password is a repeat.
//!
//! Who: admins for shared addresses, the owner (or an admin) for a private account, as the write
//! side decides; `testEmailChannel` checks the same before connecting anywhere.

use std::time::Duration;

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use proto_events::event::{ImapServer, SmtpServer};
use switchboard_domain::channel::{self, ChannelCommand, Setting};
use switchboard_domain::directory::{self as dir};
use switchboard_service::Command;
use switchboard_store::secret::{SecretId, SecretValue};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, UserError};
use crate::ids::{self, Kind};
use crate::mutation::common::{MutationResult, RunOptions, payload, run};
use crate::state::{Inner, access, state};
use crate::types::directory::Channel;

/// E-mail channel mutations.
#[derive(Debug, Default)]
pub(crate) struct MailMutation;

/// How a connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "proto_events::event::ServerSecurity")]
pub(crate) enum MailServerSecurity {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// STARTTLS, required (IMAP 143, SMTP 587).
    StartTls,
    /// None: only for a server on a trusted network.
    Plain,
}

/// An IMAP mailbox to fetch a channel's mail from.
#[derive(InputObject)]
pub(crate) struct ImapServerInput {
    /// Host name or IP address, without scheme or port.
    host: String,
    /// Port; when omitted, 993 with `TLS` and 143 otherwise.
    port: Option<i32>,
    /// How the connection is protected.
    #[graphql(default_with = "MailServerSecurity::Tls")]
    security: MailServerSecurity,
    /// The login.
    username: String,
    /// The password: write-only, never returned. Omitted: the current one is kept (required
    /// when the channel has none).
    password: Option<String>,
    /// The mailbox read; `INBOX` when omitted.
    mailbox: Option<String>,
}

/// An SMTP server to send a channel's replies through instead of the installation's relay.
#[derive(InputObject)]
pub(crate) struct SmtpServerInput {
    /// Host name or IP address, without scheme or port.
    host: String,
    /// Port; when omitted, 465 with `TLS`, 587 with `START_TLS`, 25 with `PLAIN`.
    port: Option<i32>,
    /// How the connection is protected.
    #[graphql(default_with = "MailServerSecurity::StartTls")]
    security: MailServerSecurity,
    /// The login for `AUTH`; omitted when the server takes mail without one.
    username: Option<String>,
    /// The password (with `username`): write-only, never returned. Omitted: the current one is
    /// kept (required when the channel has none).
    password: Option<String>,
}

/// Input of `updateEmailChannel`. A field left out keeps its setting; `null` removes it.
#[derive(InputObject)]
pub(crate) struct UpdateEmailChannelInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// The e-mail channel.
    channel_id: ID,
    /// The IMAP mailbox its mail is fetched from (a private account's, or a team address
    /// hosted elsewhere). Imported as soon as it is set; nothing is imported twice.
    imap: MaybeUndefined<ImapServerInput>,
    /// The SMTP server its replies are sent through; without one, the installation's relay.
    smtp: MaybeUndefined<SmtpServerInput>,
    /// The secret `POST /ingest/email/{channelId}` requires (`Authorization: Bearer
    /// <secret>`): 24 to 256 characters, write-only. Without one, that route refuses the
    /// channel.
    ingest_secret: MaybeUndefined<String>,
}

payload! {
    /// Result of `updateEmailChannel`.
    UpdateEmailChannelPayload {
        /// The channel, with its new settings.
        channel: Channel,
    }
}

/// Input of `testEmailChannel`.
#[derive(InputObject)]
pub(crate) struct TestEmailChannelInput {
    /// Echoed in the payload.
    client_mutation_id: Option<String>,
    /// The e-mail channel.
    channel_id: ID,
    /// IMAP settings to test instead of the saved ones (a password left out: the saved one).
    imap: Option<ImapServerInput>,
    /// SMTP settings to test instead of the saved ones (a password left out: the saved one).
    smtp: Option<SmtpServerInput>,
}

/// What one connection test found.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ServerCheck {
    /// Whether it connected, logged in and (IMAP) opened the mailbox.
    ok: bool,
    /// The server tested, `host:port`.
    server: String,
    /// What happened, for humans: the server's answer when it refused.
    message: String,
}

/// Result of `testEmailChannel`. Nothing is written.
#[derive(Debug, SimpleObject)]
pub(crate) struct TestEmailChannelPayload {
    /// The `clientMutationId` of the input, echoed.
    client_mutation_id: Option<String>,
    /// What failed: `IMAP_FAILED` (field `imap`), `SMTP_FAILED` (field `smtp`),
    /// `NOTHING_TO_TEST`. Empty when every test passed.
    user_errors: Vec<UserError>,
    /// The IMAP test; null when there is no mailbox to test.
    imap: Option<ServerCheck>,
    /// The SMTP test: the channel's own server, else the installation's relay; null when
    /// there is neither.
    smtp: Option<ServerCheck>,
}

/// The inputs print no password or secret.
macro_rules! redacted_debug {
    ($($name:ident { $($field:ident),* }),* $(,)?) => {$(
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    )*};
}

redacted_debug! {
    ImapServerInput { host, port, security, username, mailbox },
    SmtpServerInput { host, port, security, username },
    UpdateEmailChannelInput { client_mutation_id, channel_id, imap, smtp },
    TestEmailChannelInput { client_mutation_id, channel_id, imap, smtp },
}

/// The port a server listens on by default, by protocol and protection.
fn default_port(imap: bool, security: MailServerSecurity) -> u16 {
    match (imap, security) {
        (true, MailServerSecurity::Tls) => 993,
        (true, _) => 143,
        (false, MailServerSecurity::Tls) => 465,
        (false, MailServerSecurity::StartTls) => 587,
        (false, MailServerSecurity::Plain) => 25,
    }
}

/// A port as given; out of range becomes 0, which the write side refuses naming the field.
fn port(given: Option<i32>, imap: bool, security: MailServerSecurity) -> u16 {
    given.map_or(default_port(imap, security), |port| {
        u16::try_from(port).unwrap_or(0)
    })
}

/// The write side's IMAP settings from the input, the password sealed as `password_secret`.
fn imap_settings(input: &ImapServerInput, password_secret: Option<Uuid>) -> channel::ImapSettings {
    channel::ImapSettings {
        host: input.host.clone(),
        port: port(input.port, true, input.security),
        security: input.security.into(),
        username: input.username.clone(),
        password_secret,
        mailbox: input.mailbox.clone(),
    }
}

/// The write side's SMTP settings from the input, the password sealed as `password_secret`.
fn smtp_settings(input: &SmtpServerInput, password_secret: Option<Uuid>) -> channel::SmtpSettings {
    channel::SmtpSettings {
        host: input.host.clone(),
        port: port(input.port, false, input.security),
        security: input.security.into(),
        username: input.username.clone(),
        password_secret,
    }
}

/// A user error about `field` of the input.
pub(crate) fn input_error(field: &[&str], code: &str, message: impl Into<String>) -> UserError {
    UserError {
        field: Some(
            std::iter::once("input")
                .chain(field.iter().copied())
                .map(str::to_owned)
                .collect(),
        ),
        message: message.into(),
        code: code.to_owned(),
    }
}

/// A password as given: not empty, at most 1,024 bytes, no control characters.
fn password_error(section: &str, password: &str) -> Option<UserError> {
    (password.is_empty() || password.len() > 1_024 || password.chars().any(char::is_control)).then(
        || {
            input_error(
                &[section, "password"],
                "INVALID",
                "must be 1 to 1024 bytes without control characters",
            )
        },
    )
}

/// Why `host` may not be connected to, if it resolves to an address no mail server may be at
/// (link-local, where cloud metadata services answer; see
/// `channel::mail_server_address`). A name that does not resolve now is left to the connection
/// to report.
async fn forbidden_destination(host: &str, port: u16) -> Option<String> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let lookup = tokio::net::lookup_host((host, port));
    let addresses = tokio::time::timeout(Duration::from_secs(10), lookup)
        .await
        .ok()?
        .ok()?;
    addresses
        .map(|a| a.ip())
        .find(|ip| !channel::mail_server_address(*ip))
        .map(|ip| format!("{host} resolves to {ip}, where no mail server may be"))
}

/// What the caller sealed for one mutation, deleted again unless the command keeps it.
#[derive(Debug, Default)]
pub(crate) struct Sealed(Vec<SecretId>);

impl Sealed {
    pub(crate) async fn put(&mut self, inner: &Inner, value: &str) -> ApiResult<Uuid> {
        let id = inner
            .vault
            .put(&SecretValue::new(value))
            .await
            .map_err(ApiError::from)?;
        self.0.push(id);
        Ok(id.0)
    }

    /// Deletes everything sealed here (a refused or repeated command). A failure leaves an
    /// unreferenced row, which is logged and harmless.
    pub(crate) async fn discard(self, inner: &Inner) {
        for id in self.0 {
            if let Err(error) = inner.vault.delete(id).await {
                tracing::warn!(%error, secret = %id.name(), "an unused secret was not deleted");
            }
        }
    }
}

/// The secret ids a channel's settings name.
fn secret_ids(servers: &dir::EmailServers) -> Vec<Uuid> {
    servers
        .imap
        .as_ref()
        .map(|i| i.password_secret)
        .into_iter()
        .chain(servers.smtp.as_ref().and_then(|s| s.password_secret))
        .chain(servers.ingest_secret)
        .collect()
}

/// The channel `channel_id` if the viewer manages its servers: admins every e-mail channel,
/// an agent their own private account. Else the error to answer with.
async fn managed_channel(ctx: &Context<'_>, channel_id: Uuid) -> ApiResult<dir::Channel> {
    let access = access(ctx).await?;
    let view = state(ctx).directory().await?;
    let channel = view
        .directory
        .channels
        .get(&channel_id)
        .filter(|c| c.connected)
        .ok_or_else(|| ApiError::not_found("channel"))?;
    if !manages(&access, channel) {
        return Err(ApiError::Forbidden(
            "only admins, or the owner of a private account, manage its servers".to_owned(),
        ));
    }
    Ok(channel.clone())
}

/// Whether `access`'s viewer manages `channel`'s servers.
pub(crate) fn manages(access: &crate::access::Access, channel: &dir::Channel) -> bool {
    access.is_admin() || channel.private_owner() == Some(access.user_id)
}

#[Object]
impl MailMutation {
    /// Sets an e-mail channel's IMAP mailbox, its own SMTP server and its HTTP ingest secret
    /// (admins; the owner of a private account). Passwords and secrets are write-only.
    async fn update_email_channel(
        &self,
        ctx: &Context<'_>,
        input: UpdateEmailChannelInput,
    ) -> async_graphql::Result<UpdateEmailChannelPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let inner = state(ctx);
        let before = managed_channel(ctx, channel_id).await?;
        let refuse = |errors: Vec<UserError>| UpdateEmailChannelPayload {
            result: MutationResult {
                client_mutation_id: input.client_mutation_id.clone(),
                user_errors: errors,
                version: None,
                consistency_token: None,
                replayed: false,
            },
            channel: None,
        };
        let mut errors = Vec::new();
        if let MaybeUndefined::Value(imap) = &input.imap
            && let Some(password) = &imap.password
        {
            errors.extend(password_error("imap", password));
        }
        if let MaybeUndefined::Value(smtp) = &input.smtp
            && let Some(password) = &smtp.password
        {
            errors.extend(password_error("smtp", password));
        }
        if let MaybeUndefined::Value(secret) = &input.ingest_secret
            && (secret.chars().count() < 24
                || secret.len() > 256
                || secret.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            errors.push(input_error(
                &["ingestSecret"],
                "INVALID",
                "must be 24 to 256 characters without spaces or control characters",
            ));
        }
        if let MaybeUndefined::Value(imap) = &input.imap {
            let port = port(imap.port, true, imap.security);
            if let Some(why) = forbidden_destination(&imap.host, port).await {
                errors.push(input_error(&["imap", "host"], "INVALID", why));
            }
        }
        if let MaybeUndefined::Value(smtp) = &input.smtp {
            let port = port(smtp.port, false, smtp.security);
            if let Some(why) = forbidden_destination(&smtp.host, port).await {
                errors.push(input_error(&["smtp", "host"], "INVALID", why));
            }
        }
        if !errors.is_empty() {
            return Ok(refuse(errors));
        }

        let mut sealed = Sealed::default();
        let command = async {
            let imap = match &input.imap {
                MaybeUndefined::Undefined => Setting::Keep,
                MaybeUndefined::Null => Setting::Clear,
                MaybeUndefined::Value(imap) => {
                    let secret = match &imap.password {
                        Some(password) => Some(sealed.put(inner, password).await?),
                        None => None,
                    };
                    Setting::Set(imap_settings(imap, secret))
                }
            };
            let smtp = match &input.smtp {
                MaybeUndefined::Undefined => Setting::Keep,
                MaybeUndefined::Null => Setting::Clear,
                MaybeUndefined::Value(smtp) => {
                    let secret = match &smtp.password {
                        Some(password) => Some(sealed.put(inner, password).await?),
                        None => None,
                    };
                    Setting::Set(smtp_settings(smtp, secret))
                }
            };
            let ingest_secret = match &input.ingest_secret {
                MaybeUndefined::Undefined => Setting::Keep,
                MaybeUndefined::Null => Setting::Clear,
                MaybeUndefined::Value(secret) => Setting::Set(sealed.put(inner, secret).await?),
            };
            ApiResult::Ok(ChannelCommand::SetEmailServers {
                channel_id,
                imap,
                smtp,
                ingest_secret,
            })
        }
        .await;
        let command = match command {
            Ok(command) => command,
            Err(error) => {
                sealed.discard(inner).await;
                return Err(error.into());
            }
        };
        let executed = run(
            ctx,
            input.client_mutation_id.clone(),
            Command::Channel(command),
            RunOptions::default(),
        )
        .await;
        let executed = match executed {
            Ok(executed) if executed.ok() && !executed.result.replayed => executed,
            Err(error) => {
                // Perhaps written (a commit whose answer was lost): what was sealed may be named
                // by the log now, so it stays; at worst it is an unreferenced row.
                tracing::warn!(
                    sealed = sealed.0.len(),
                    "updateEmailChannel failed; the secrets sealed for it are kept"
                );
                return Err(error.into());
            }
            Ok(executed) => {
                // Refused, or a repeat answered from the first attempt: nothing names these.
                sealed.discard(inner).await;
                let channel = if executed.ok() {
                    let view = inner.directory().await?;
                    view.directory.channels.get(&channel_id).cloned().map(|c| {
                        let fallback = view.directory.is_fallback(channel_id);
                        Channel::new(c, fallback)
                    })
                } else {
                    None
                };
                return Ok(UpdateEmailChannelPayload {
                    result: executed.result,
                    channel,
                });
            }
        };
        let view = inner.directory().await?;
        let after = view.directory.channels.get(&channel_id).cloned();
        let fallback = view.directory.is_fallback(channel_id);
        drop(view);
        if let Some(after) = &after {
            let kept = secret_ids(&after.servers);
            for replaced in secret_ids(&before.servers)
                .into_iter()
                .filter(|id| !kept.contains(id))
            {
                if let Err(error) = inner.vault.delete(SecretId(replaced)).await {
                    tracing::warn!(%error, "a replaced secret was not deleted");
                }
            }
        }
        Ok(UpdateEmailChannelPayload {
            result: executed.result,
            channel: after.map(|c| Channel::new(c, fallback)),
        })
    }

    /// Logs in to an e-mail channel's IMAP mailbox and SMTP server (its own, else the
    /// installation's relay) with the saved settings or the ones given, and says what failed
    /// in `userErrors`. Writes nothing; sends no mail.
    async fn test_email_channel(
        &self,
        ctx: &Context<'_>,
        input: TestEmailChannelInput,
    ) -> async_graphql::Result<TestEmailChannelPayload> {
        let channel_id = ids::decode(&input.channel_id, Kind::Channel, "channelId")?;
        let inner = state(ctx);
        let channel = managed_channel(ctx, channel_id).await?;
        let saved = &channel.servers;
        let mut errors = Vec::new();

        let imap = match (&input.imap, &saved.imap) {
            (Some(given), saved) => {
                let settings = imap_settings(given, None);
                // A saved password is used with the same server and login only (see
                // `channel::imap_keeps_password`), never sent to a host the caller names.
                let saved_secret = saved
                    .as_ref()
                    .filter(|saved| channel::imap_keeps_password(&settings, saved))
                    .map(|saved| saved.password_secret);
                Some((
                    ImapServer {
                        host: settings.host.trim().to_owned(),
                        port: settings.port,
                        security: settings.security,
                        username: settings.username,
                        password_secret: Uuid::nil(),
                        mailbox: settings.mailbox.unwrap_or_else(|| "INBOX".to_owned()),
                    },
                    given.password.clone().map(SecretValue::new),
                    saved_secret,
                ))
            }
            (None, Some(saved)) => Some((saved.clone(), None, Some(saved.password_secret))),
            (None, None) => None,
        };
        let imap = match imap {
            None => None,
            Some((server, given, saved_secret)) => {
                let password = match given {
                    Some(password) => Some(password),
                    None => match saved_secret {
                        Some(id) => inner
                            .vault
                            .get(SecretId(id))
                            .await
                            .map_err(ApiError::from)?,
                        None => None,
                    },
                };
                let check = match password {
                    None => ServerCheck {
                        ok: false,
                        server: format!("{}:{}", server.host, server.port),
                        message: "no password: give one".to_owned(),
                    },
                    Some(password) => {
                        check_imap(channel_id, &server, password, inner.mail.check_timeout).await
                    }
                };
                if !check.ok {
                    errors.push(input_error(&["imap"], "IMAP_FAILED", check.message.clone()));
                }
                Some(check)
            }
        };

        let smtp = match (&input.smtp, &saved.smtp) {
            (Some(given), saved) => {
                let settings = smtp_settings(given, None);
                let saved_secret = saved
                    .as_ref()
                    .filter(|saved| channel::smtp_keeps_password(&settings, saved))
                    .and_then(|saved| saved.password_secret);
                let password = match (&given.password, saved_secret) {
                    (Some(password), _) => Some(SecretValue::new(password.clone())),
                    (None, Some(id)) => inner
                        .vault
                        .get(SecretId(id))
                        .await
                        .map_err(ApiError::from)?,
                    (None, None) => None,
                };
                let server = SmtpServer {
                    host: settings.host.trim().to_owned(),
                    port: settings.port,
                    security: settings.security,
                    username: settings.username,
                    password_secret: None,
                };
                Some(smtp_relay(&server, password))
            }
            (None, Some(saved)) => {
                let password = match saved.password_secret {
                    Some(id) => inner
                        .vault
                        .get(SecretId(id))
                        .await
                        .map_err(ApiError::from)?,
                    None => None,
                };
                Some(smtp_relay(saved, password))
            }
            (None, None) => inner.mail.relay.clone().map(Ok),
        };
        let smtp = match smtp {
            None => None,
            Some(Err(check)) => Some(check),
            Some(Ok(url)) => Some(check_smtp(&url, inner.mail.check_timeout).await),
        };
        if let Some(check) = &smtp
            && !check.ok
        {
            errors.push(input_error(&["smtp"], "SMTP_FAILED", check.message.clone()));
        }
        if imap.is_none() && smtp.is_none() {
            errors.push(input_error(
                &[],
                "NOTHING_TO_TEST",
                "the channel has no IMAP mailbox or SMTP server, and no relay is configured",
            ));
        }
        Ok(TestEmailChannelPayload {
            client_mutation_id: input.client_mutation_id,
            user_errors: errors,
            imap,
            smtp,
        })
    }
}

/// Logs in to `server` and opens its mailbox.
async fn check_imap(
    channel_id: Uuid,
    server: &ImapServer,
    password: SecretValue,
    timeout: Duration,
) -> ServerCheck {
    if let Some(why) = forbidden_destination(&server.host, server.port).await {
        return ServerCheck {
            ok: false,
            server: format!("{}:{}", server.host, server.port),
            message: why,
        };
    }
    use switchboard_email::imap::{self, ImapAccount, ImapSettings, Password};
    let account = ImapAccount::for_server(channel_id, server, Password::new(password.expose()));
    let settings = ImapSettings {
        command_timeout: timeout,
        ..ImapSettings::default()
    };
    let address = format!("{}:{}", server.host, server.port);
    match tokio::time::timeout(timeout * 3, imap::check(&account, &settings)).await {
        Ok(Ok(probe)) => ServerCheck {
            ok: true,
            server: address,
            message: format!(
                "logged in; {} holds {} messages{}",
                server.mailbox,
                probe.messages,
                if probe.idle_offered {
                    "; new mail arrives at once (IDLE)"
                } else {
                    "; the server offers no IDLE: checked every minute"
                }
            ),
        },
        Ok(Err(error)) => ServerCheck {
            ok: false,
            server: address,
            message: error.to_string(),
        },
        Err(_) => ServerCheck {
            ok: false,
            server: address,
            message: format!("no answer within {} s", (timeout * 3).as_secs()),
        },
    }
}

/// The relay URL of a channel's SMTP server, or the failed check that says why there is none.
fn smtp_relay(
    server: &SmtpServer,
    password: Option<SecretValue>,
) -> Result<switchboard_delivery::RelayUrl, ServerCheck> {
    let credentials = match (&server.username, password) {
        (Some(user), Some(password)) => Some((user.clone(), password.expose().to_owned())),
        (Some(_), None) => {
            return Err(ServerCheck {
                ok: false,
                server: format!("{}:{}", server.host, server.port),
                message: "a username without a password: give one".to_owned(),
            });
        }
        (None, _) => None,
    };
    Ok(switchboard_delivery::RelayUrl::for_server(
        server,
        credentials,
    ))
}

/// Connects to `url`, logs in and says `NOOP`.
async fn check_smtp(url: &switchboard_delivery::RelayUrl, timeout: Duration) -> ServerCheck {
    let server = format!("{}:{}", url.host, url.port);
    if let Some(why) = forbidden_destination(&url.host, url.port).await {
        return ServerCheck {
            ok: false,
            server,
            message: why,
        };
    }
    let relay = match switchboard_delivery::Relay::new(url, timeout) {
        Ok(relay) => relay,
        Err(error) => {
            return ServerCheck {
                ok: false,
                server,
                message: error.to_string(),
            };
        }
    };
    match tokio::time::timeout(timeout * 3, relay.check()).await {
        Ok(Ok(())) => ServerCheck {
            ok: true,
            server,
            message: match url.user() {
                Some(user) => format!("connected and logged in as {user}"),
                None => "connected".to_owned(),
            },
        },
        Ok(Err(failure)) => ServerCheck {
            ok: false,
            server,
            message: match failure.status {
                Some(status) => format!("{status}: {}", failure.reason),
                None => failure.reason,
            },
        },
        Err(_) => ServerCheck {
            ok: false,
            server,
            message: format!("no answer within {} s", (timeout * 3).as_secs()),
        },
    }
}
