//! The subscription root.

use async_graphql::{Context, Subscription as SubscriptionObject};
use futures::Stream;

/// Live updates.
#[derive(Debug, Default)]
pub struct Subscription;

#[SubscriptionObject]
impl Subscription {
    /// The store's head position, now and whenever it moves.
    async fn head(&self, _ctx: &Context<'_>) -> impl Stream<Item = u64> {
        futures::stream::empty()
    }
}
