//! What every mutation shares: the payload's common fields, [`run`], which executes a command
//! as the viewer, and the small helpers every area uses to read inputs and build payloads.
//!
//! # Ids of created objects
//! The server mints the id of a new object. A repeated `clientMutationId` returns the first
//! call's outcome, whose stream names the object that call created; payloads therefore read a new
//! object's id from the outcome ([`created_id`]), never from the id minted for the repeat. Ids
//! that are not a stream's (a reply's or a comment's) are read back from the first call's events
//! ([`Executed::minted_id`]), so a repeat's payload has every field the first call's had.

use async_graphql::{Context, ID, SimpleObject};
use proto_events::event::Member;
use proto_events::{Actor, DomainEvent};
use switchboard_service::{Command, CommandMeta, Outcome};
use switchboard_store::Position;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, UserError, user_errors};
use crate::ids::{self, Kind};
use crate::state::{Inner, state, viewer};

/// The fields every mutation payload has.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct MutationResult {
    /// The `clientMutationId` of the input, echoed.
    pub(crate) client_mutation_id: Option<String>,
    /// Business-rule failures; empty when the mutation succeeded. Nothing was written when
    /// there are any.
    pub(crate) user_errors: Vec<UserError>,
    /// The version of the changed stream after the mutation: pass it as `expectedVersion` to
    /// refuse to act on a conversation that moved on.
    pub(crate) version: Option<u64>,
    /// Send this as the `Switchboard-Consistency-Token` header (or `consistencyToken` of a
    /// subscription's `connection_init`) to read this write's effects.
    pub(crate) consistency_token: Option<String>,
    /// True when `clientMutationId` repeated an earlier mutation: nothing new was written and
    /// this is the first one's result.
    pub(crate) replayed: bool,
}

/// What [`run`] did.
#[derive(Debug)]
pub(crate) struct Executed {
    /// The payload's common fields.
    pub(crate) result: MutationResult,
    /// The command's outcome, when it succeeded.
    pub(crate) outcome: Option<Outcome>,
}

impl Executed {
    /// A mutation refused before its command ran (nothing was written), with `errors`.
    pub(crate) fn refused(client_mutation_id: Option<String>, errors: Vec<UserError>) -> Executed {
        Executed {
            result: MutationResult {
                client_mutation_id,
                user_errors: errors,
                version: None,
                consistency_token: None,
                replayed: false,
            },
            outcome: None,
        }
    }

    /// Whether the command succeeded.
    pub(crate) fn ok(&self) -> bool {
        self.outcome.is_some()
    }
}

impl Executed {
    /// The id of the object the command created in a stream of `category` (`"team"`,
    /// `"contact"`...), also when the command was a repeat.
    pub(crate) fn created_id(&self, category: &str) -> Option<Uuid> {
        self.outcome
            .as_ref()
            .and_then(|outcome| created_id(outcome, category))
    }

    /// The id the command minted for what it recorded: `minted` when it wrote anything itself;
    /// for a repeat, the id the first call minted, read from its events with `pick`; `None` when
    /// it failed or wrote nothing.
    pub(crate) async fn minted_id(
        &self,
        ctx: &Context<'_>,
        minted: Uuid,
        pick: impl Fn(&DomainEvent) -> Option<Uuid>,
    ) -> ApiResult<Option<Uuid>> {
        let Some(outcome) = &self.outcome else {
            return Ok(None);
        };
        if !outcome.replayed {
            return Ok((outcome.written > 0).then_some(minted));
        }
        // A command's events are contiguous: the first call's span its outcome's positions.
        let count = outcome
            .last_position
            .0
            .saturating_sub(outcome.first_position.0)
            .saturating_add(1);
        let after = Position(outcome.first_position.0.saturating_sub(1));
        let events = state(ctx)
            .store
            .read_all(after, usize::try_from(count).unwrap_or(usize::MAX))
            .await?;
        for recorded in events
            .iter()
            .filter(|e| e.position <= outcome.last_position)
        {
            let envelope = switchboard_codec::decode(recorded).map_err(|e| {
                ApiError::internal(format!("decoding a replayed command's event: {e}"))
            })?;
            if let Some(id) = pick(&envelope.payload) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

/// The id of the aggregate whose stream `outcome` wrote to, if that stream is of `category`.
pub(crate) fn created_id(outcome: &Outcome, category: &str) -> Option<Uuid> {
    outcome
        .stream
        .strip_prefix(category)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// Optional arguments of [`run`].
#[derive(Debug, Default, Clone)]
pub(crate) struct RunOptions {
    /// The target stream's version the client decided on.
    pub(crate) expected_version: Option<u64>,
    /// Who the command is executed as, instead of the viewer. Only for commands the write side
    /// accepts from channels or the system alone (an inbound message, a delivery report); the
    /// resolver must check first that the viewer may stand in for them.
    pub(crate) actor: Option<Actor>,
    /// Input fields the write side names differently, as `(domain name, input name)` pairs:
    /// `userErrors` name the input's field, so a form can show the error beside it.
    pub(crate) renames: &'static [(&'static str, &'static str)],
    /// The SHA-256 of each uploaded file of the arguments, by its upload's index (see
    /// [`fingerprint`]).
    pub(crate) files: Vec<(usize, String)>,
}

/// Executes `command` as the viewer. Business-rule failures come back as `userErrors`;
/// everything else (auth, not found, conflicts, internal) as a top-level error.
pub(crate) async fn run(
    ctx: &Context<'_>,
    client_mutation_id: Option<String>,
    command: Command,
    options: RunOptions,
) -> ApiResult<Executed> {
    let me = viewer(ctx).await?;
    let inner: &Inner = state(ctx);
    let name = command.name();
    let meta = CommandMeta {
        actor: options
            .actor
            .clone()
            .unwrap_or(Actor::User { id: me.user_id }),
        correlation_id: None,
        causation_id: None,
        idempotency_key: client_mutation_id.clone(),
        fingerprint: client_mutation_id
            .as_ref()
            .map(|_| fingerprint(ctx, &options.files))
            .transpose()?,
        expected_version: options.expected_version,
    };
    match inner.service.execute(meta, command).await {
        Ok(outcome) => {
            inner.metrics.observe_command(name, "ok", outcome.written);
            Ok(Executed {
                result: MutationResult {
                    client_mutation_id,
                    user_errors: Vec::new(),
                    version: Some(outcome.stream_version),
                    consistency_token: Some(inner.tokens.sign(outcome.last_position)),
                    replayed: outcome.replayed,
                },
                outcome: Some(outcome),
            })
        }
        Err(error) => match user_errors(error) {
            Ok(mut errors) => {
                rename_fields(&mut errors, options.renames);
                inner.metrics.observe_command(name, "user_error", 0);
                Ok(Executed {
                    result: MutationResult {
                        client_mutation_id,
                        user_errors: errors,
                        version: None,
                        consistency_token: None,
                        replayed: false,
                    },
                    outcome: None,
                })
            }
            Err(error) => {
                inner.metrics.observe_command(name, "error", 0);
                Err(error)
            }
        },
    }
}

/// The namespace of the ids of objects created by mutations with a `clientMutationId`.
const MINTED_IDS: Uuid = Uuid::from_u128(0x71c4_0e5a_92b3_4d6f_8a17_c3e9_5b20_d864);

/// The id of what a mutation creates (a message, a contact, an inbox...). Without a
/// `clientMutationId`, a new UUIDv7. With one, derived from the viewer, the key, the request's
/// [`fingerprint`] and the salt of the key's use (`CommandService::key_salt`): a request that
/// takes over a use which stopped half-way creates the same object, in the same stream, where
/// the store writes the same events once; after the key expired, the same request creates a
/// new one.
pub(crate) async fn minted_id(
    ctx: &Context<'_>,
    client_mutation_id: Option<&str>,
) -> ApiResult<Uuid> {
    minted_id_with_files(ctx, client_mutation_id, &[]).await
}

/// [`minted_id`] for a mutation whose arguments carry uploaded files, `files` being their
/// SHA-256 by upload index (as [`RunOptions::files`]).
pub(crate) async fn minted_id_with_files(
    ctx: &Context<'_>,
    client_mutation_id: Option<&str>,
    files: &[(usize, String)],
) -> ApiResult<Uuid> {
    let me = viewer(ctx).await?;
    minted_id_for(
        ctx,
        &Actor::User { id: me.user_id },
        client_mutation_id,
        files,
    )
    .await
}

/// [`minted_id`] for a command sent as `actor` (an admin standing in for a channel: the key's
/// salt is that actor's).
pub(crate) async fn minted_id_by(
    ctx: &Context<'_>,
    actor: &Actor,
    client_mutation_id: Option<&str>,
) -> ApiResult<Uuid> {
    minted_id_for(ctx, actor, client_mutation_id, &[]).await
}

async fn minted_id_for(
    ctx: &Context<'_>,
    actor: &Actor,
    client_mutation_id: Option<&str>,
    files: &[(usize, String)],
) -> ApiResult<Uuid> {
    let Some(key) = client_mutation_id else {
        return Ok(Uuid::now_v7());
    };
    let me = viewer(ctx).await?;
    let salt = state(ctx).service.key_salt(actor, key).await?;
    let mut name = Vec::new();
    for part in [
        me.user_id.as_bytes().as_slice(),
        key.as_bytes(),
        fingerprint(ctx, files)?.as_bytes(),
    ] {
        name.extend_from_slice(&(part.len() as u64).to_le_bytes());
        name.extend_from_slice(part);
    }
    name.extend_from_slice(&salt.to_le_bytes());
    Ok(Uuid::new_v5(&MINTED_IDS, &name))
}

/// What a `clientMutationId` is bound to: SHA-256 of the mutation's name and its arguments
/// (variables substituted, object keys sorted, the key itself left out), so that the same
/// request sent again is a repeat and any other one a misuse of the key. An uploaded file stands
/// in the arguments as its upload's index; `files` replaces it with the file's SHA-256, so that
/// the same files make the same request wherever they are in the multipart body.
fn fingerprint(ctx: &Context<'_>, files: &[(usize, String)]) -> ApiResult<String> {
    use sha2::{Digest, Sha256};

    let field = ctx.field();
    let arguments = field
        .arguments()
        .map_err(|e| ApiError::internal(format!("arguments of {}: {}", field.name(), e.message)))?;
    let mut arguments: serde_json::Map<String, serde_json::Value> = arguments
        .into_iter()
        .map(|(name, value)| Ok((name.to_string(), value.into_json()?)))
        .collect::<Result<_, serde_json::Error>>()
        .map_err(ApiError::internal)?;
    for value in arguments.values_mut() {
        if let Some(input) = value.as_object_mut() {
            input.remove("clientMutationId");
        }
        redact_secrets(value);
        name_files(value, files);
    }
    let mut digest = Sha256::new();
    digest.update(field.name().as_bytes());
    digest.update([0]);
    digest.update(canonical(&serde_json::Value::Object(arguments)).as_bytes());
    Ok(hex::encode(digest.finalize()))
}

/// Input fields that hold secrets: left out of fingerprints, which are kept in the write index
/// (an unsalted hash of a password could be guessed).
const SECRET_FIELDS: [&str; 3] = ["password", "ingestSecret", "pageAccessToken"];

/// Replaces every secret field in `value`, at any depth, with a placeholder.
fn redact_secrets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            for (name, field) in object.iter_mut() {
                // A value becomes a placeholder; `null` (removing one) stays itself.
                if SECRET_FIELDS.contains(&name.as_str()) && field.is_string() {
                    *field = serde_json::Value::String("<secret>".to_owned());
                } else {
                    redact_secrets(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// Replaces the uploads in `value` (async-graphql's `#__graphql_file__:<index>` strings) with
/// `sha256:<hash>` of their files, by `files`.
fn name_files(value: &mut serde_json::Value, files: &[(usize, String)]) {
    match value {
        serde_json::Value::String(s) => {
            let hash = s
                .strip_prefix("#__graphql_file__:")
                .and_then(|index| index.parse::<usize>().ok())
                .and_then(|index| files.iter().find(|(i, _)| *i == index));
            if let Some((_, hash)) = hash {
                *s = format!("sha256:{hash}");
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| name_files(v, files)),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(|v| name_files(v, files));
        }
        _ => {}
    }
}

/// `value` as JSON text with the keys of every object sorted.
fn canonical(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Renames the input fields `errors` point at, by `(domain name, input name)` pairs.
fn rename_fields(errors: &mut [UserError], renames: &[(&str, &str)]) {
    for error in errors {
        if let Some(path) = &mut error.field
            && let Some(last) = path.last_mut()
            && let Some((_, to)) = renames.iter().find(|(from, _)| *from == last.as_str())
        {
            *last = (*to).to_owned();
        }
    }
}

/// The viewer, who must be an admin or super admin: for what the write side accepts only from
/// channels and the system, which admins may stand in for through the API.
pub(crate) async fn require_admin(ctx: &Context<'_>, what: &str) -> ApiResult<Uuid> {
    let me = viewer(ctx).await?;
    let view = state(ctx).directory().await?;
    match view.directory.user(me.user_id) {
        Some(user) if user.is_admin() => Ok(me.user_id),
        _ => Err(ApiError::Forbidden(format!("only admins {what}"))),
    }
}

/// The system actor an admin stands in for: its component names the admin, so the audit trail
/// shows who sent the command, and idempotency keys stay per admin.
pub(crate) fn acting_for(admin: Uuid) -> Actor {
    Actor::System {
        component: format!("api:user:{admin}"),
    }
}

/// The uuids of global ids of `kind`; `field` names the input field in errors.
pub(crate) fn decode_all(ids: &[ID], kind: Kind, field: &str) -> ApiResult<Vec<Uuid>> {
    ids.iter().map(|id| ids::decode(id, kind, field)).collect()
}

/// The uuid of an optional global id of `kind`.
pub(crate) fn decode_opt(id: Option<&ID>, kind: Kind, field: &str) -> ApiResult<Option<Uuid>> {
    id.map(|id| ids::decode(id, kind, field)).transpose()
}

/// A user or team, from its global id.
pub(crate) fn decode_member(id: &ID, field: &str) -> ApiResult<Member> {
    match ids::decode_any(id, field)? {
        (Kind::User, id) => Ok(Member::User { id }),
        (Kind::Team, id) => Ok(Member::Team { id }),
        (kind, _) => Err(ApiError::bad_input(
            field,
            format!("expected a User or Team id, got a {} id", kind.name()),
        )),
    }
}

/// Waits (bounded) until the read models include `outcome`, so that a payload's objects read
/// from them show the write.
pub(crate) async fn settle(ctx: &Context<'_>, outcome: &Outcome) -> ApiResult<()> {
    state(ctx).caught_up_to(outcome.last_position).await
}

/// Declares a mutation payload: the common fields ([`MutationResult`], flattened) and the
/// objects the mutation returns, each null when it failed.
macro_rules! payload {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$field_meta:meta])* $field:ident: $ty:ty ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(async_graphql::SimpleObject)]
        pub(crate) struct $name {
            #[graphql(flatten)]
            pub(crate) result: $crate::mutation::common::MutationResult,
            $( $(#[$field_meta])* pub(crate) $field: Option<$ty>, )*
        }
    };
}
pub(crate) use payload;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_left_out_of_fingerprints_at_any_depth() {
        let mut input = json!({
            "channelId": "Q2hhbm5lbDox",
            "pageAccessToken": "EAAG-page-token",
            "ingestSecret": "a-long-ingest-secret",
            "imap": {"host": "imap.example.com", "password": "hunter2"},
            "smtp": [{"password": null}],
        });
        redact_secrets(&mut input);
        let text = input.to_string();
        for secret in ["EAAG-page-token", "a-long-ingest-secret", "hunter2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(input["imap"]["host"], "imap.example.com");
        assert_eq!(input["smtp"][0]["password"], serde_json::Value::Null);
    }
}
