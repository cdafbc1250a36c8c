//! Why a command did not go through.

use proto_events::DecodeError;
use switchboard_domain::DomainError;
use switchboard_store::StoreError;

/// A command's failure. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The domain refused the command; map it as [`DomainError`] says.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The stream moved on since the client (or the last retry) read it: re-read and decide again
    /// (CONFLICT). `actual` is the stream's current version.
    #[error("conflict on {stream}: expected version {expected:?}, current {actual:?}")]
    Conflict {
        /// The stream.
        stream: String,
        /// The version the command expected (`None`: no stream).
        expected: Option<u64>,
        /// The stream's version now.
        actual: Option<u64>,
    },
    /// The idempotency key was used, within its lifetime, for a different command by the same
    /// actor (IDEMPOTENCY_KEY_REUSED): nothing was written. Send a new key for a new command.
    #[error("idempotency key {key:?} was already used for a different command")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// The event store failed (INTERNAL, or retry later on `StoreError::Closed`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded: a bug or damaged data (INTERNAL).
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
