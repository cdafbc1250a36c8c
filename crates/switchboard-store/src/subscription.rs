//! Catch-up subscriptions: read what is stored, then follow the head as it moves.
//!
//! A backend only has to tell when its head (last committed position) moves, through a
//! [`tokio::sync::watch`] channel published *after* each commit; [`catch_up`] turns that and
//! `read_all` into one gap-free, duplicate-free stream in commit order.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use tokio::sync::watch;

use async_trait::async_trait;

use crate::types::{Position, RecordedEvent};
use crate::{EventStore, StoreError};

/// A subscription: events in global order, or the error that ended it.
pub type EventStream = BoxStream<'static, Result<RecordedEvent, StoreError>>;

/// Reading the log in global order: all a subscription needs from a backend. Backends implement it
/// on a read-only handle, so that a live subscription does not keep their writer alive.
#[async_trait]
pub trait ReadAll: Send + Sync {
    /// Up to `limit` events with a position greater than `after`, in order.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
}

#[async_trait]
impl<S: EventStore + ?Sized> ReadAll for S {
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        EventStore::read_all(self, after, limit).await
    }
}

/// How many events a subscription reads at once while catching up.
const PAGE: usize = 1024;

struct State<S: ?Sized> {
    reader: Arc<S>,
    after: Position,
    buffered: VecDeque<RecordedEvent>,
    head: watch::Receiver<Position>,
}

/// Every event after `after`, then live ones as `head` announces them. Ends when the sender of
/// `head` is dropped (the store closed) and everything announced has been delivered.
pub fn catch_up<S>(reader: Arc<S>, after: Position, head: watch::Receiver<Position>) -> EventStream
where
    S: ReadAll + ?Sized + 'static,
{
    let state = State {
        reader,
        after,
        buffered: VecDeque::new(),
        head,
    };
    futures::stream::try_unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.buffered.pop_front() {
                st.after = event.position;
                return Ok(Some((event, st)));
            }
            // Marking the value seen before reading means a commit that lands after this line
            // wakes `changed()` below, so no announcement is missed.
            let head = *st.head.borrow_and_update();
            if head > st.after {
                let page = st.reader.read_all(st.after, PAGE).await?;
                if page.is_empty() {
                    return Err(StoreError::Corrupt {
                        position: st.after.next(),
                        reason: format!(
                            "head is at {head} but nothing is stored after {}",
                            st.after
                        ),
                    });
                }
                st.buffered.extend(page);
                continue;
            }
            if st.head.changed().await.is_err() && *st.head.borrow() <= st.after {
                // The store closed and everything it committed has been delivered.
                return Ok(None);
            }
        }
    })
    .boxed()
}
