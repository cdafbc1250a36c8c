//! The contact-sidebar read model: what the sidebar beside a thread shows about the customer.
//!
//! Three things, each from its own events:
//! - the contact itself: properties, identities (e-mail, chat visitor, Messenger), owner, and
//!   the contacts merged into it. A merge moves everything of the merged contact to the survivor
//!   and leaves the merged id pointing at the survivor, so a lookup by either id answers with the
//!   survivor;
//! - the records associated with it (companies, deals, tickets, with their names, subjects and
//!   stages). An association is recorded in one record's stream but holds both ways, so it is
//!   indexed in both directions;
//! - the contact's conversations, newest activity first, with the last message's preview, the
//!   status, the inbox and the private owner (so the API can apply access rules).
//!
//! Erasure drops what the sidebar holds of a person. `ContactErased`: the contact and the
//! contacts merged into it (rows, properties, identities, associations) and the conversations
//! it names, without waiting for their own `ConversationErased` (which then finds nothing to
//! do); a conversation still naming the contact that it does not list keeps its row, without
//! the contact. `ConversationErased` (with its contact, or by retention): the conversation's
//! row and associations, and the subject of tickets made from it (now empty, as a rebuild from
//! a log whose keys are destroyed reads it). Deleted rows are overwritten in the file
//! (`secure_delete`).
//!
//! # Layout
//! - `schema`: the tables and indexes this projector owns.
//! - `apply`: how each event changes them.
//! - `query`: the query functions and the plain structs they return.
//! - `sql`: small conversions between ids, times and SQLite values.

mod apply;
mod query;
mod schema;
mod sql;

use proto_events::Envelope;
use rusqlite::{Connection, Transaction};
use switchboard_projector::{ApplyError, Event, EventError, Projector};

pub use crate::query::{
    AssociatedRecord, Contact, ContactConversation, ConversationCursor, ConversationPage,
    ConversationStatus, MessageDirection, associations_of, contact_by_id, contact_by_identity,
    conversations_of_contact, records_of_contact, resolve_contact,
};

/// The contact-sidebar projector (`contact_sidebar.sqlite3`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContactSidebar;

impl Projector for ContactSidebar {
    fn name(&self) -> &'static str {
        "contact_sidebar"
    }

    fn version(&self) -> u32 {
        // 2: `conversations_by_contact` built once caught up; `conversations_of_contact`
        // (contact id alone) until then.
        // 3: erasure; tickets keep the conversation they were made from; deleted rows are
        // overwritten, so a file written before (with old rows' text in free space) is built
        // again.
        // 4: a conversation keeps the contact it first had (another contact writing in it
        // does not take it over), and the sender of its last message (`last_sender_id`), whose
        // erasure empties the preview.
        // 5: and the sender whose message gave it its subject (`subject_sender_id`), whose
        // erasure clears the subject.
        5
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
