//! What a decision may consult besides its aggregate's own state.

use chrono::{DateTime, Utc};
use proto_events::Actor;

use crate::directory::Directory;

/// Who is asking, when, and the organisation they ask in. Built by the command service; deciders
/// read it and never do IO.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The organisation's setup, caught up with the store before the decision.
    pub directory: &'a Directory,
    /// Who issued the command.
    pub actor: &'a Actor,
    /// The command's time, from the service's clock.
    pub now: DateTime<Utc>,
}
