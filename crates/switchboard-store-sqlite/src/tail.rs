//! Where the events not yet in the stream index are, per stream: kept in memory by the writer so
//! that a stream read finds its stream's recent events without scanning the log's tail.
//!
//! Without it, a read of a stream scans every event past `index_state.indexed_upto` (up to
//! `SqliteOptions::index_lag` rows of whole events) to find the few of its stream, and commands
//! read streams before every append. With it, the read takes its stream's positions from here and
//! looks each up by position.
//!
//! **Protocol.** The map promises: every committed event at a position past
//! [`TailState::covers_from`] is in it. The writer adds a batch's events *before* its `COMMIT`,
//! so a reader whose snapshot holds an event finds it here (the reader opens its snapshot, then
//! locks the map). It removes them again if the commit fails, before the positions are used
//! again. Once events are in the stream index (that transaction committed), it drops them and
//! moves `covers_from` up to where the index now reaches. A reader uses the map only when its
//! snapshot's `indexed_upto` is at or past `covers_from`; otherwise (the index moved on after its
//! snapshot began, or the writer could not index at start) it scans the tail as before. Entries
//! may name positions its snapshot does not hold (committed after it began, or about to be): the
//! lookup by position simply finds nothing there.
//!
//! **Bounded.** Should indexing keep failing, the map would grow with every append; past
//! [`MAX_ENTRIES`] it gives up instead (empty, covering nothing, so readers scan as before) and
//! starts again at the next successful indexing, which reaches the writer's tip.

use std::collections::HashMap;
use std::sync::Mutex;

/// The most events the map keeps (about 16 bytes each) before it gives up until the next
/// successful indexing.
pub(crate) const MAX_ENTRIES: usize = 1 << 20;

/// The map, shared by the writer and the read pool.
#[derive(Debug)]
pub(crate) struct Tail {
    state: Mutex<TailState>,
}

#[derive(Debug)]
struct TailState {
    /// Every committed event past this position is in `streams`.
    covers_from: u64,
    /// By stream id: `(stream version, position)` of its events past `covers_from`, in order.
    streams: HashMap<i64, Vec<(u64, u64)>>,
    /// How many events `streams` holds.
    entries: usize,
    /// Gave up after [`MAX_ENTRIES`]: nothing is added until the next indexing.
    overflowed: bool,
}

impl TailState {
    fn count(&mut self) {
        self.entries = self.streams.values().map(Vec::len).sum();
    }
}

/// One append's events, as the writer records them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub(crate) stream_id: i64,
    pub(crate) first_version: u64,
    pub(crate) first_position: u64,
    pub(crate) count: u64,
}

impl Tail {
    /// A map that covers nothing yet: readers scan until the writer says where it starts.
    pub(crate) fn new() -> Tail {
        Tail {
            state: Mutex::new(TailState {
                covers_from: u64::MAX,
                streams: HashMap::new(),
                entries: 0,
                overflowed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TailState> {
        // The state is consistent between statements; a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the map at `position`, the log's head, with nothing past it: called by the writer
    /// before its first append.
    pub(crate) fn start(&self, position: u64) {
        let mut state = self.lock();
        state.covers_from = position;
        state.streams.clear();
        state.entries = 0;
        state.overflowed = false;
    }

    /// Adds appends about to be committed.
    pub(crate) fn add(&self, appended: &[Appended]) {
        if appended.is_empty() {
            return;
        }
        let mut state = self.lock();
        if state.overflowed {
            return;
        }
        let adding: u64 = appended.iter().map(|a| a.count).sum();
        if state
            .entries
            .saturating_add(usize::try_from(adding).unwrap_or(usize::MAX))
            > MAX_ENTRIES
        {
            // Covering nothing, the map sends every reader to scan until indexing catches up.
            state.streams.clear();
            state.entries = 0;
            state.covers_from = u64::MAX;
            state.overflowed = true;
            return;
        }
        for a in appended {
            let events = state.streams.entry(a.stream_id).or_default();
            events.extend((0..a.count).map(|i| (a.first_version + i, a.first_position + i)));
        }
        state.entries += usize::try_from(adding).unwrap_or(usize::MAX);
    }

    /// Forgets everything past `position`: a commit that failed, whose positions will be used
    /// again (perhaps by other streams).
    pub(crate) fn forget_after(&self, position: u64) {
        let mut state = self.lock();
        state.streams.retain(|_, events| {
            events.retain(|&(_, p)| p <= position);
            !events.is_empty()
        });
        state.count();
    }

    /// The stream index now holds everything up to `position` (committed): drops those events.
    /// After an overflow, `position` must be the writer's tip (nothing committed past it), where
    /// the map starts again.
    pub(crate) fn indexed(&self, position: u64) {
        let mut state = self.lock();
        if state.overflowed {
            state.overflowed = false;
            state.streams.clear();
            state.covers_from = position;
        } else {
            state.streams.retain(|_, events| {
                events.retain(|&(_, p)| p > position);
                !events.is_empty()
            });
            state.covers_from = state.covers_from.max(position);
        }
        state.count();
    }

    /// The `(version, position)` of stream `stream_id`'s events past `indexed_upto` whose
    /// version `keep` admits, in order; `None` when the map cannot tell (see the module's
    /// protocol), and the caller must scan.
    pub(crate) fn events(
        &self,
        stream_id: i64,
        indexed_upto: u64,
        keep: impl Fn(u64) -> bool,
    ) -> Option<Vec<(u64, u64)>> {
        let state = self.lock();
        if indexed_upto < state.covers_from {
            return None;
        }
        Some(
            state
                .streams
                .get(&stream_id)
                .map(|events| {
                    events
                        .iter()
                        .copied()
                        .filter(|&(v, p)| p > indexed_upto && keep(v))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended(stream_id: i64, first_version: u64, first_position: u64, count: u64) -> Appended {
        Appended {
            stream_id,
            first_version,
            first_position,
            count,
        }
    }

    #[test]
    fn covers_nothing_until_started() {
        let tail = Tail::new();
        assert_eq!(tail.events(1, 0, |_| true), None);
        tail.start(10);
        assert_eq!(tail.events(1, 9, |_| true), None);
        assert_eq!(tail.events(1, 10, |_| true), Some(vec![]));
    }

    #[test]
    fn keeps_positions_until_indexed_and_refuses_older_snapshots_after() {
        let tail = Tail::new();
        tail.start(0);
        tail.add(&[
            appended(1, 0, 1, 2),
            appended(2, 0, 3, 1),
            appended(1, 2, 4, 1),
        ]);
        assert_eq!(
            tail.events(1, 0, |_| true),
            Some(vec![(0, 1), (1, 2), (2, 4)])
        );
        assert_eq!(tail.events(1, 0, |v| v >= 1), Some(vec![(1, 2), (2, 4)]));
        // A snapshot that saw the index reach 2 takes only what is past it.
        assert_eq!(tail.events(1, 2, |_| true), Some(vec![(2, 4)]));
        tail.indexed(3);
        assert_eq!(tail.events(1, 3, |_| true), Some(vec![(2, 4)]));
        assert_eq!(tail.events(2, 3, |_| true), Some(vec![]));
        // A snapshot from before the index moved must scan: its tail is gone from here.
        assert_eq!(tail.events(1, 0, |_| true), None);
    }

    #[test]
    fn a_failed_commit_is_forgotten() {
        let tail = Tail::new();
        tail.start(0);
        tail.add(&[appended(1, 0, 1, 1)]);
        tail.add(&[appended(1, 1, 2, 1), appended(2, 0, 3, 1)]);
        tail.forget_after(1);
        assert_eq!(tail.events(1, 0, |_| true), Some(vec![(0, 1)]));
        assert_eq!(tail.events(2, 0, |_| true), Some(vec![]));
    }

    #[test]
    fn gives_up_past_its_bound_until_indexing_reaches_the_tip() {
        let tail = Tail::new();
        tail.start(0);
        let full = MAX_ENTRIES as u64;
        tail.add(&[appended(1, 0, 1, full)]);
        assert_eq!(tail.events(1, 0, |v| v == 0), Some(vec![(0, 1)]));
        // One more: the map covers nothing, so readers scan; it adds nothing meanwhile.
        tail.add(&[appended(2, 0, full + 1, 1)]);
        assert_eq!(tail.events(1, 0, |_| true), None);
        tail.add(&[appended(2, 1, full + 2, 1)]);
        assert_eq!(tail.events(2, full + 2, |_| true), None);
        // Indexing up to the tip starts it again, empty, covering from there.
        tail.indexed(full + 2);
        assert_eq!(
            tail.events(2, full + 1, |_| true),
            None,
            "an older snapshot scans"
        );
        assert_eq!(tail.events(2, full + 2, |_| true), Some(vec![]));
        tail.add(&[appended(2, 2, full + 3, 1)]);
        assert_eq!(
            tail.events(2, full + 2, |_| true),
            Some(vec![(2, full + 3)])
        );
    }
}
