//! The event contract of Switchboard: the envelope every stored event travels in, and the typed
//! payload of every domain event.
//!
//! Everything else in the workspace (deciders, stores, projectors, the API) speaks this vocabulary,
//! so this crate depends on no workspace crate, and what it serialises is a promise: the store keeps
//! events forever, so a payload shape, once released, is never edited. A changed shape gets a new
//! schema version and an upcaster from the old one ([`upcast`]); the golden fixtures under
//! `tests/golden/` keep every released shape decoding.
//!
//! # Layout
//! - `envelope`: [`Envelope`] (an event as read back from the store), [`RawEvent`] (the store's
//!   row before decoding), [`Metadata`] and [`Actor`] (who and what caused an event).
//! - [`event`]: [`DomainEvent`], the enum over every payload, and the payload types grouped by
//!   area (organisation and people, inboxes and channels, conversations, records, uniqueness).
//! - [`personal`]: which fields hold personal data, and whose (every field of every type is
//!   classed; ADR 0007).
//! - [`upcast`]: the chain of functions that lift stored payloads of old schema versions to the
//!   current one.
//! - [`streams`]: how stream names are built (`<category>-<id>`).
//! - [`clock`]: the injectable source of domain time ([`clock::Clock`]).
//! - `error`: [`DecodeError`], what can go wrong turning stored bytes into events.
//! - `wire`: decoding the stored shapes serde's derives decode slowly (tagged enums, times).

pub mod clock;
mod envelope;
mod error;
pub mod event;
pub mod personal;
pub mod streams;
pub mod upcast;
mod wire;

pub use envelope::{Actor, Envelope, Metadata, RawEvent, new_event_id};
pub use error::DecodeError;
pub use event::DomainEvent;
