//! The audit queries.

use async_graphql::Object;

/// The audit queries.
#[derive(Debug, Default)]
pub(crate) struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Placeholder until the audit queries land.
    async fn audit_placeholder(&self) -> bool {
        false
    }
}
