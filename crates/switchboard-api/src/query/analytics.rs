//! The analytics queries.

use async_graphql::Object;

/// The analytics queries.
#[derive(Debug, Default)]
pub(crate) struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Placeholder until the analytics queries land.
    async fn analytics_placeholder(&self) -> bool {
        false
    }
}
