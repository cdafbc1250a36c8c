//! The audit queries: the trail as a Relay connection, one entry by event id, and a causal
//! chain by correlation id. Analysts are FORBIDDEN; every other viewer sees the entries about
//! what they may see (see `types::audit`).

use async_graphql::{Context, Object};
use uuid::Uuid;

use crate::types::audit::{self, AuditEntry, AuditEntryConnection, AuditFilterInput};

/// The audit queries.
#[derive(Debug, Default)]
pub(crate) struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Every recorded event matching `filter` that the viewer may see, in log order (cursors
    /// are positions). Admins see all; auditors and agents the entries about conversations and
    /// inboxes they see and those about neither; analysts are FORBIDDEN.
    #[graphql(complexity = "crate::types::page::complexity(first, last, child_complexity)")]
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<AuditEntryConnection> {
        Ok(audit::trail(ctx, filter.unwrap_or_default(), first, after, last, before).await?)
    }

    /// The entry of event `eventId`; NOT_FOUND if there is none or the viewer may not see it.
    async fn audit_entry(
        &self,
        ctx: &Context<'_>,
        event_id: Uuid,
    ) -> async_graphql::Result<Option<AuditEntry>> {
        Ok(Some(audit::by_event_id(ctx, event_id).await?))
    }

    /// The causal chain `correlationId`: the entries sharing it that the viewer may see, in log
    /// order. Each entry's `causationId` (and `cause`) names the step before it.
    async fn audit_by_correlation(
        &self,
        ctx: &Context<'_>,
        correlation_id: Uuid,
    ) -> async_graphql::Result<Vec<AuditEntry>> {
        Ok(audit::by_correlation(ctx, correlation_id).await?)
    }
}
