//! The thread-view projector: the read model behind the inbox list and the thread screen.
//!
//! It folds conversation events into one header row per conversation (status, assignee, last
//! activity, unread, waiting since, counts), an ordered timeline per conversation, the delivery
//! outcomes of outbound messages and the Filtered view. Queries are plain functions over a
//! `&rusqlite::Connection` returning plain structs; the API crate wraps them.
//!
//! # Definitions
//! - **Status**: `open` or `closed`; a conversation that so far holds only filtered mail is
//!   `filtered` and appears in the Filtered view only, until a restore is followed by its
//!   `ConversationStarted`.
//! - **Times** are the events' `metadata.occurred_at`, never the wall clock. `created_at` is the
//!   time of `ConversationStarted` (for restored mail: when it became visible).
//! - **Last activity**: the latest `occurred_at` of a message in or out, a comment, an
//!   assignment change (assigned, reassigned, unassigned, queued), a bot handoff, a close, a
//!   reopen or a restore. Delivery outcomes, filtered mail and sharing do not count.
//! - **Unread** (for the assignee): inbound messages received since the assignee last replied
//!   or since the conversation was last (re/un)assigned, whichever is later. Any change of
//!   assignee resets it to 0. A reply resets it when written by the assignee itself (the user, or
//!   the bot); for a team assignee or an unassigned conversation, any human reply resets it.
//! - **Waiting since**: the `occurred_at` of the first inbound customer message not yet followed
//!   by a reply from a human or a bot (automated messages do not answer). `None` once answered.
//!   Closing does not clear it: lists of waiting conversations should also filter on `open`.
//! - **Badges** per inbox: `open`, `closed`, `unassigned` (open and without assignee) and
//!   `filtered` (filtered messages not restored).
//! - **Erasure** (`ConversationErased`): the conversation goes, header, timeline, files and
//!   filtered mail, as if it had never been there; deleted rows are overwritten in the file.
//!   `ContactErased` blanks what the contact (and those merged into it) wrote in
//!   conversations that stay (someone else's thread), see `foreign`; its own conversations
//!   follow with their own `ConversationErased` (dropping them earlier would make an event
//!   recorded in between name an unknown conversation, which stops the projector).
//!
//! # Layout
//! - `schema`: the tables, indexes and the projector version.
//! - `apply`: how each event changes the tables.
//! - `types`: the plain structs queries return.
//! - `query`: the query functions (header, timeline, lists with keyset pagination, badges,
//!   Filtered view).

mod apply;
mod chunks;
mod entry;
mod foreign;
mod query;
mod schema;
mod types;

use proto_events::Envelope;
use rusqlite::{Connection, Transaction};
use switchboard_projector::{ApplyError, Event, EventError, Projector};

pub use crate::query::{
    badge_counts, conversation, file, filtered_mail, list_conversations, timeline,
};
pub use switchboard_projector::Scope;

pub use crate::types::{
    AssigneeFilter, AssigneeRef, Author, BadgeCounts, ConversationHeader, ConversationStatus,
    Cursor, Delivery, EntryKind, FileRef, FilteredCursor, FilteredMail, ListFilter, Page,
    PageRequest, TimelineEntry,
};

/// The thread-view projector. Stateless between batches: everything lives in its tables.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadView;

impl Projector for ThreadView {
    fn name(&self) -> &'static str {
        "thread_view"
    }

    fn version(&self) -> u32 {
        schema::VERSION
    }

    fn migrate(&self, conn: &Connection) -> rusqlite::Result<()> {
        schema::migrate(conn)
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
        apply::apply_batch(tx, &[Event::decoded(event)]).map_err(|e| e.source)
    }

    fn apply_batch(&self, tx: &Transaction<'_>, events: &[Event<'_>]) -> Result<(), EventError> {
        apply::apply_batch(tx, events)
    }

    fn caught_up(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        schema::create_indexes(tx)
    }
}
