//! Outbound e-mail and Messenger replies: the delivery worker sends the replies the log records
//! through an SMTP relay (or Meta's Send API) and records what became of each.
//!
//! `sendReply` only records `ReplySent`; this crate is what makes an e-mail of it. The worker is
//! a reactor beside the routing reactor: it reads the event log (never a read model), and talks
//! to the write side through commands only (`RecordDelivery`, as the system component
//! `delivery`), like a channel integration would.
//!
//! # What it sends
//! - Every `ReplySent` of an e-mail conversation, and of a form conversation whose reply the
//!   domain gave e-mail headers (the visitor left an address): from the inbox's team address,
//!   or its fallback address.
//! - An agent's chat reply the visitor's widget was not handed within
//!   `chat_email_unseen_after`, when the visitor left an e-mail address: the worker asks the
//!   conversation to e-mail it (`ChatReplyEmailed`, ADR 0006), then sends it like a form's
//!   reply, threaded so that the visitor's answer comes back to the conversation.
//! - A channel with an SMTP server of its own (`EmailServersSet`, e.g. a private account's
//!   provider) sends through that server, logged in with its password from the vault; other
//!   channels through the relay. Without either, a reply fails temporarily, saying so.
//! - `From` is the channel's address with a display name: the author's, the inbox's, or
//!   "Author via Inbox" ([`FromName`]). `To`, `Cc`, `Subject`, `Message-ID`, `In-Reply-To` and
//!   `References` are the ones recorded with the reply; attachments are read from the blob store
//!   by their SHA-256.
//!
//! # Messenger replies
//! With a [`GraphApi`] configured, every `ReplySent` of a Messenger conversation too: through
//! Meta's Send API with the page's access token (sealed in the vault, named by
//! `MessengerPageSet`), to the page-scoped id of the conversation's last inbound message,
//! `RESPONSE` within 24 hours of it, with the `HUMAN_AGENT` tag up to 7 days for a page that has
//! it, failed without being sent later. Graph's `message_id` is recorded with
//! `DeliverySucceeded`; see [`messenger`] for which errors are permanent.
//!
//! # What it records
//! - `DeliverySucceeded` once the relay accepted the message (with the relay's queue id when it
//!   names one). That is all SMTP can say: a later bounce arrives as mail.
//! - `DeliveryFailed` with `permanent = true` and the status (`550 5.1.1`) when the relay refuses
//!   it with a 5xx answer (for one recipient of several, the whole reply: SMTP gives no partial
//!   success here), or when the message cannot be made (an address that does not parse,
//!   an attachment missing from the blob store, an inbox with no address to send from).
//! - For temporary failures (a 4xx answer, a relay that cannot be reached, a timeout), a
//!   `DeliveryFailed` with `permanent = false` the first time each reason occurs; it is tried
//!   again with exponential backoff until `retry_for` has passed since the reply was written,
//!   then the next failure is recorded as permanent.
//! - A reply the worker first sees when `retry_for` has already passed (written while no relay
//!   was configured, or while no node ran the worker, for that long) is recorded as failed
//!   without being sent: a week-old answer surprising a customer is worse than an agent seeing
//!   "not delivered" and deciding. Within the window, a backlog is sent.
//!
//! # Restarts: at least once
//! The pending set is folded from the log: a reply without a `DeliverySucceeded` or a permanent
//! `DeliveryFailed` is pending. A reply recorded as delivered is therefore never sent again. A
//! reply the relay accepted just before a crash, whose outcome was not yet recorded, is sent
//! again after the restart, **with the same `Message-ID`**: mail clients and most mailbox
//! providers show the two copies as one message, but a customer may see it twice. Making that
//! window smaller would take a two-phase record ("sending" before the SMTP transaction), which
//! turns the opposite risk (a reply never sent) into one needing a human; we prefer a rare
//! duplicate.
//!
//! # Several nodes
//! Nodes sharing one PostgreSQL store each fold the same pending set. If several ran the worker,
//! each would send every reply (the recorded outcome is idempotent, the mail is not). So exactly
//! one node should run it: `delivery_worker = false` on the others. A node that stops leaves its
//! pending replies in the log for whichever node runs the worker next.
//!
//! # Layout
//! - [`relay`]: the relay's URL, the connection (lettre), and what its answers mean.
//! - `mime`: a reply's MIME message (lettre's builder).
//! - [`messenger`]: [`GraphApi`], Meta's Send API for Messenger replies, and what its answers
//!   mean.
//! - `chat`: the unseen chat replies and when they fall due for e-mail.
//! - [`worker`]: [`DeliveryWorker`], the reactor.
//! - [`error`]: [`DeliveryError`], the worker's own failures.

mod chat;
pub mod error;
pub mod messenger;
mod mime;
pub mod relay;
pub mod worker;

pub use crate::error::DeliveryError;
pub use crate::messenger::{DEFAULT_GRAPH_VERSION, GraphApi};
pub use crate::relay::{Relay, RelayUrl, Security};
pub use crate::worker::{DeliverySettings, DeliveryWorker, FromName};
