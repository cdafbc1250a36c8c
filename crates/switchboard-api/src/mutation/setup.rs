//! Mutations of the organisation's setup: users, teams, inboxes.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use switchboard_domain::setup::SetupCommand;
use switchboard_service::Command;
use uuid::Uuid;

use crate::mutation::common::{MutationResult, RunOptions, run};
use crate::state::state;
use crate::types::directory::Team;

/// Setup mutations.
#[derive(Debug, Default)]
pub(crate) struct SetupMutation;

/// Input of `createTeam`.
#[derive(Debug, InputObject)]
pub(crate) struct CreateTeamInput {
    /// Idempotency key: repeating a mutation with the same key returns the first result.
    client_mutation_id: Option<String>,
    /// Display name.
    name: String,
}

/// Result of `createTeam`.
#[derive(Debug, SimpleObject)]
pub(crate) struct CreateTeamPayload {
    #[graphql(flatten)]
    result: MutationResult,
    /// The new team.
    team: Option<Team>,
}

#[Object]
impl SetupMutation {
    /// Creates a team (admins).
    async fn create_team(
        &self,
        ctx: &Context<'_>,
        input: CreateTeamInput,
    ) -> async_graphql::Result<CreateTeamPayload> {
        let team_id = Uuid::now_v7();
        let command = Command::Setup(SetupCommand::CreateTeam {
            team_id,
            name: input.name,
        });
        let executed = run(ctx, input.client_mutation_id, command, RunOptions::default()).await?;
        let team = if executed.ok() {
            let view = state(ctx).directory().await?;
            view.directory.teams.get(&team_id).cloned().map(Team)
        } else {
            None
        };
        Ok(CreateTeamPayload {
            result: executed.result,
            team,
        })
    }
}
