//! The pure part of uniqueness reservations: the state of one reservation stream
//! (`unique-<scope>-<value>`) and the decisions to reserve, release and transfer its value.
//!
//! An event store checks one stream at a time, so "one contact per e-mail address" is kept by
//! giving each value a stream of its own: whoever appends [`UniqueValueReserved`] to it first,
//! with the expected version the service read, holds the value; a concurrent claim fails its
//! version check, reloads, and is then told `TAKEN`. The IO (reading, appending, retrying) is the
//! command service's; the order of steps is in [`crate::contact`]'s module note.

use proto_events::event::{Identity, UniqueScope, UniqueValueReleased, UniqueValueReserved};
use proto_events::{DomainEvent, streams};
use uuid::Uuid;

use crate::DomainError;

/// One reservation stream folded: which value, and who holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    scope: UniqueScope,
    value: String,
    holder: Option<String>,
}

impl Reservation {
    /// The state of the reservation of `value` before any event: free. The value is normalised
    /// as its scope compares it.
    pub fn new(scope: UniqueScope, value: &str) -> Reservation {
        Reservation {
            scope,
            value: scope.normalise(value),
            holder: None,
        }
    }

    /// The (free) reservation of a contact identity.
    pub fn of_identity(identity: &Identity) -> Reservation {
        let (scope, value) = UniqueScope::of_identity(identity);
        Reservation::new(scope, value)
    }

    /// The reservation's stream, to fold and append to.
    pub fn stream(&self) -> String {
        streams::unique(self.scope, &self.value)
    }

    /// What kind of value.
    pub fn scope(&self) -> UniqueScope {
        self.scope
    }

    /// The value, normalised.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Folds one event of the reservation stream in. Events about other values are ignored.
    pub fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::UniqueValueReserved(e) if self.is_about(e.scope, &e.value) => {
                self.holder = Some(e.owner_stream.clone());
            }
            DomainEvent::UniqueValueReleased(e)
                if self.is_about(e.scope, &e.value)
                    && self.holder.as_deref() == Some(e.owner_stream.as_str()) =>
            {
                self.holder = None;
            }
            _ => {}
        }
    }

    fn is_about(&self, scope: UniqueScope, value: &str) -> bool {
        self.scope == scope && self.value == value
    }

    /// Whether someone holds the value now.
    pub fn is_held(&self) -> bool {
        self.holder.is_some()
    }

    /// The stream of the aggregate holding the value, e.g. `contact-<id>`.
    pub fn holder_stream(&self) -> Option<&str> {
        self.holder.as_deref()
    }

    /// The id of the aggregate holding the value (a contact's id, for the contact scopes): when
    /// a claim is refused as `TAKEN`, the contact the service should answer with instead.
    pub fn holder(&self) -> Option<Uuid> {
        let (_, id) = self.holder.as_deref()?.split_once('-')?;
        Uuid::parse_str(id).ok()
    }

    fn held_by(&self, contact_id: Uuid) -> bool {
        self.holder.as_deref() == Some(streams::contact(contact_id).as_str())
    }
}

/// The reservation stream of `value` and the event by which `contact_id` claims it, without
/// deciding anything (see [`decide_reserve`] for the decision).
pub fn reserve(scope: UniqueScope, value: &str, contact_id: Uuid) -> (String, DomainEvent) {
    (
        streams::unique(scope, value),
        UniqueValueReserved {
            scope,
            value: scope.normalise(value),
            owner_stream: streams::contact(contact_id),
        }
        .into(),
    )
}

/// The reservation stream of `value` and the event by which `contact_id` gives it up.
pub fn release(scope: UniqueScope, value: &str, contact_id: Uuid) -> (String, DomainEvent) {
    (
        streams::unique(scope, value),
        UniqueValueReleased {
            scope,
            value: scope.normalise(value),
            owner_stream: streams::contact(contact_id),
        }
        .into(),
    )
}

/// Claims the value for `contact_id`: nothing to do if it already holds it (so a retried
/// creation goes through), `TAKEN` if another does ([`Reservation::holder`] says who).
pub fn decide_reserve(
    state: &Reservation,
    contact_id: Uuid,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.held_by(contact_id) {
        return Ok(vec![]);
    }
    if let Some(holder) = state.holder_stream() {
        return Err(taken(state, holder));
    }
    Ok(vec![reserve(state.scope, &state.value, contact_id).1])
}

/// Gives the value up if `contact_id` holds it; nothing otherwise. Used to undo the
/// reservations of a creation that lost another one.
pub fn decide_release(state: &Reservation, contact_id: Uuid) -> Vec<DomainEvent> {
    if state.held_by(contact_id) {
        vec![release(state.scope, &state.value, contact_id).1]
    } else {
        vec![]
    }
}

/// Moves the value from a merged contact to the survivor: released by `from`, reserved by `to`
/// in one append, so nobody can claim it in between. Nothing to do if `to` already holds it; a
/// free value is simply reserved; `TAKEN` if a third contact holds it.
pub fn decide_transfer(
    state: &Reservation,
    from: Uuid,
    to: Uuid,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.held_by(from) {
        return Ok(vec![
            release(state.scope, &state.value, from).1,
            reserve(state.scope, &state.value, to).1,
        ]);
    }
    decide_reserve(state, to)
}

fn taken(state: &Reservation, holder: &str) -> DomainError {
    DomainError::rejected(
        "TAKEN",
        None,
        format!(
            "{} {:?} already belongs to {}",
            state.scope.as_str(),
            state.value,
            holder.replacen('-', " ", 1)
        ),
    )
}
