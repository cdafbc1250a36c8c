//! What every mutation shares: the payload's common fields and [`run`], which executes a command
//! as the viewer.

use async_graphql::{Context, SimpleObject};
use proto_events::Actor;
use switchboard_service::{Command, CommandMeta, Outcome};

use crate::error::{ApiResult, UserError, user_errors};
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
    /// Whether the command succeeded.
    pub(crate) fn ok(&self) -> bool {
        self.outcome.is_some()
    }
}

/// Optional arguments of [`run`].
#[derive(Debug, Default, Clone)]
pub(crate) struct RunOptions {
    /// The target stream's version the client decided on.
    pub(crate) expected_version: Option<u64>,
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
        actor: Actor::User { id: me.user_id },
        correlation_id: None,
        causation_id: None,
        idempotency_key: client_mutation_id.clone(),
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
            Ok(errors) => {
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

/// Waits (bounded) until the read models include `outcome`, so that a payload's objects read
/// from them show the write.
pub(crate) async fn settle(ctx: &Context<'_>, outcome: &Outcome) -> ApiResult<()> {
    let inner = state(ctx);
    let deadline = tokio::time::Instant::now() + inner.limits.consistency_wait;
    inner
        .projections
        .wait_for(outcome.last_position, deadline)
        .await?;
    Ok(())
}
