//! The history queries.

use async_graphql::Object;

/// The history queries.
#[derive(Debug, Default)]
pub(crate) struct HistoryQuery;

#[Object]
impl HistoryQuery {
    /// Placeholder until the history queries land.
    async fn history_placeholder(&self) -> bool {
        false
    }
}
