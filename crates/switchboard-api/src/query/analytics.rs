//! The analytics queries: `analytics(filter:)` for aggregates, groupings, live figures and the
//! drill-down list, and `conversationMetrics(conversationId:)` for one conversation's cycles.
//! Every role may ask; each viewer gets figures over the conversations they see only.

use async_graphql::{Context, ID, Object};

use crate::ids::{self, Kind};
use crate::types::analytics::{Analytics, AnalyticsFilter, ConversationMetrics};

/// The analytics queries.
#[derive(Debug, Default)]
pub(crate) struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Response metrics (PRODUCT.md's definitions; durations in seconds) over the conversations
    /// the viewer sees: admins, auditors and analysts every inbox, agents their own. An
    /// `inboxId` the viewer does not see is NOT_FOUND.
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        filter: Option<AnalyticsFilter>,
    ) -> async_graphql::Result<Analytics> {
        Ok(Analytics::resolve(ctx, filter.unwrap_or_default()).await?)
    }

    /// Drill-down: one conversation's cycles with each metric on the calendar and business
    /// clocks. NOT_FOUND if analytics do not know it or the viewer may not see it.
    async fn conversation_metrics(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> async_graphql::Result<Option<ConversationMetrics>> {
        let id = ids::decode(&conversation_id, Kind::Conversation, "conversationId")?;
        Ok(Some(ConversationMetrics::load(ctx, id).await?))
    }
}
