//! Who follows which chat conversation: a map from conversation id to the bounded channels of
//! the sockets and subscriptions following it, so that something said in one conversation
//! wakes only its own followers (with 1,000 visitor sockets each filtering one global feed,
//! every event woke all of them: `switchboard-bench chat`, docs/benchmarks.md).
//!
//! A follower joins with a channel of its own size and gets a [`Joined`]: the receiving end,
//! a [`Notify`] that says it lagged, and the membership, which leaves the room when dropped.
//! Offering an item never waits: a follower whose channel is full is told it lagged (a permit
//! stays on its `Notify` until it looks) and the item is dropped for it, so one slow socket
//! cannot hold up the others. What a lagged follower does about it is its own business: a
//! visitor's socket reads its conversation's stream again from the last message it passed,
//! and typing signals, only hints, are simply missed.
//!
//! Every member belongs to a *generation* (the feed it was joined under): [`Rooms::end`] drops
//! the senders of one generation, and their receivers then end. An ended generation is
//! remembered under the same lock: joining it is refused (the follower must start a new one),
//! so no member waits on a feed that will never offer it anything. An item is offered under
//! one generation and reaches only its members.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

/// The followers of every conversation, for items of type `T`. Cloning shares them.
#[derive(Debug)]
pub(crate) struct Rooms<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> Clone for Rooms<T> {
    fn clone(&self) -> Rooms<T> {
        Rooms {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Default for Rooms<T> {
    fn default() -> Rooms<T> {
        Rooms {
            shared: Arc::new(Mutex::new(Shared {
                next: 0,
                rooms: HashMap::new(),
                ended: BTreeSet::new(),
            })),
        }
    }
}

#[derive(Debug)]
struct Shared<T> {
    /// The id of the next member.
    next: u64,
    /// The members following each conversation; a conversation nobody follows has no entry.
    rooms: HashMap<Uuid, Vec<Member<T>>>,
    /// The generations ended (a few: one per feed that gave up).
    ended: BTreeSet<u64>,
}

#[derive(Debug)]
struct Member<T> {
    id: u64,
    generation: u64,
    sender: mpsc::Sender<T>,
    lagged: Arc<Notify>,
}

/// What a follower holds: where its items arrive, and its membership (left when dropped).
#[derive(Debug)]
pub(crate) struct Joined<T> {
    /// The items offered to the conversation since joining, in order, less those dropped
    /// while the channel was full. `None` once the generation ended.
    pub(crate) items: mpsc::Receiver<T>,
    /// Notified (once, however many items were dropped) when an item was dropped for want of
    /// room.
    pub(crate) lagged: Arc<Notify>,
    _membership: Membership<T>,
}

impl<T> Joined<T> {
    /// Whether an item was dropped since the last look, taking the notice. An item is dropped
    /// (and the notice given) before any later item is queued, so a follower that asks after
    /// taking an item learns of every gap before it.
    pub(crate) fn lagged_now(&self) -> bool {
        futures::FutureExt::now_or_never(self.lagged.notified()).is_some()
    }
}

/// Leaves the room when dropped.
#[derive(Debug)]
struct Membership<T> {
    shared: Arc<Mutex<Shared<T>>>,
    conversation: Uuid,
    id: u64,
}

impl<T> Drop for Membership<T> {
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        if let Some(members) = shared.rooms.get_mut(&self.conversation) {
            members.retain(|m| m.id != self.id);
            if members.is_empty() {
                shared.rooms.remove(&self.conversation);
            }
        }
    }
}

/// What an offer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Offered {
    /// Members the item was queued for.
    pub(crate) sent: usize,
    /// Members that had no room, told they lagged.
    pub(crate) lagged: usize,
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> std::sync::MutexGuard<'_, Shared<T>> {
    // The map stays consistent whatever panicked while it was held: every change is one call.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Clone> Rooms<T> {
    /// Follows `conversation` from now on, with room for `capacity` items (at least one), as
    /// a member of `generation`; `None` when that generation has ended.
    pub(crate) fn join(
        &self,
        conversation: Uuid,
        capacity: usize,
        generation: u64,
    ) -> Option<Joined<T>> {
        let (sender, items) = mpsc::channel(capacity.max(1));
        let lagged = Arc::new(Notify::new());
        let mut shared = lock(&self.shared);
        if shared.ended.contains(&generation) {
            return None;
        }
        let id = shared.next;
        shared.next += 1;
        shared.rooms.entry(conversation).or_default().push(Member {
            id,
            generation,
            sender,
            lagged: lagged.clone(),
        });
        Some(Joined {
            items,
            lagged,
            _membership: Membership {
                shared: self.shared.clone(),
                conversation,
                id,
            },
        })
    }

    /// Queues `item` for every follower of `conversation` in `generation`, without waiting; a
    /// follower with no room is told it lagged.
    pub(crate) fn offer(&self, conversation: Uuid, generation: u64, item: &T) -> Offered {
        let mut offered = Offered::default();
        let shared = lock(&self.shared);
        let members = shared.rooms.get(&conversation).into_iter().flatten();
        for member in members.filter(|m| m.generation == generation) {
            match member.sender.try_send(item.clone()) {
                Ok(()) => offered.sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    member.lagged.notify_one();
                    offered.lagged += 1;
                }
                // Its receiver is being dropped; the membership leaves with it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        offered
    }

    /// Tells every member of `generation` it lagged (their feed skipped items).
    pub(crate) fn lag_all(&self, generation: u64) {
        let shared = lock(&self.shared);
        for member in shared.rooms.values().flatten() {
            if member.generation == generation {
                member.lagged.notify_one();
            }
        }
    }

    /// Ends every member of `generation`: their receivers end once drained.
    pub(crate) fn end(&self, generation: u64) {
        let mut shared = lock(&self.shared);
        shared.ended.insert(generation);
        shared.rooms.retain(|_, members| {
            members.retain(|m| m.generation != generation);
            !members.is_empty()
        });
    }

    /// How many members follow `conversation`.
    #[cfg(test)]
    fn following(&self, conversation: Uuid) -> usize {
        lock(&self.shared)
            .rooms
            .get(&conversation)
            .map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_item_reaches_only_the_followers_of_its_conversation() {
        let rooms = Rooms::<u32>::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut first = rooms.join(a, 4, 0).expect("joined");
        let mut second = rooms.join(a, 4, 0).expect("joined");
        let mut other = rooms.join(b, 4, 0).expect("joined");
        assert_eq!(rooms.offer(a, 0, &7), Offered { sent: 2, lagged: 0 });
        assert_eq!(first.items.recv().await, Some(7));
        assert_eq!(second.items.recv().await, Some(7));
        assert!(other.items.try_recv().is_err(), "b's follower got a's item");
        assert_eq!(rooms.offer(Uuid::from_u128(3), 0, &8), Offered::default());
    }

    #[tokio::test]
    async fn a_full_follower_is_told_it_lagged_and_holds_up_nobody() {
        let rooms = Rooms::<u32>::default();
        let a = Uuid::from_u128(1);
        let mut slow = rooms.join(a, 2, 0).expect("joined");
        let mut quick = rooms.join(a, 8, 0).expect("joined");
        for i in 0..5 {
            rooms.offer(a, 0, &i);
        }
        // The slow one has its first two and a notice saying it missed some, once.
        assert_eq!(slow.items.recv().await, Some(0));
        assert_eq!(slow.items.recv().await, Some(1));
        assert!(slow.items.try_recv().is_err());
        assert!(slow.lagged_now(), "told it lagged");
        assert!(!slow.lagged_now(), "told once");
        // An item queued after a dropped one comes with the notice.
        rooms.offer(a, 0, &5);
        rooms.offer(a, 0, &6);
        rooms.offer(a, 0, &7);
        assert_eq!(slow.items.recv().await, Some(5));
        assert!(slow.lagged_now(), "the gap after 6 is told");
        for i in 0..5 {
            assert_eq!(quick.items.recv().await, Some(i));
        }
    }

    #[tokio::test]
    async fn leaving_and_ending_a_generation_take_members_out() {
        let rooms = Rooms::<u32>::default();
        let a = Uuid::from_u128(1);
        let left = rooms.join(a, 1, 0).expect("joined");
        let mut old = rooms.join(a, 1, 0).expect("joined");
        let mut new = rooms.join(a, 1, 1).expect("joined");
        assert_eq!(rooms.following(a), 3);
        drop(left);
        assert_eq!(rooms.following(a), 2);
        rooms.end(0);
        assert_eq!(old.items.recv().await, None, "an ended member's items end");
        assert_eq!(rooms.offer(a, 1, &1).sent, 1);
        assert_eq!(new.items.recv().await, Some(1));
        drop((old, new));
        assert_eq!(rooms.following(a), 0);
        assert!(
            lock(&rooms.shared).rooms.is_empty(),
            "empty rooms are removed"
        );
    }

    #[tokio::test]
    async fn an_ended_generation_takes_no_members_and_items_reach_only_their_generation() {
        let rooms = Rooms::<u32>::default();
        let a = Uuid::from_u128(1);
        rooms.end(1);
        assert!(
            rooms.join(a, 1, 1).is_none(),
            "joined a generation whose feed has ended"
        );
        assert_eq!(rooms.following(a), 0);
        let mut old = rooms.join(a, 4, 2).expect("joined");
        let mut new = rooms.join(a, 4, 3).expect("joined");
        assert_eq!(rooms.offer(a, 3, &9), Offered { sent: 1, lagged: 0 });
        assert_eq!(new.items.recv().await, Some(9));
        assert!(old.items.try_recv().is_err(), "another generation's item");
    }
}
