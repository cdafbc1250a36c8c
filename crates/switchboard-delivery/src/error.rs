//! Why the delivery worker cannot start or stopped.

use switchboard_service::ServiceError;

/// A failure of the worker itself. A reply that cannot be delivered is not one: it is recorded
/// as `DeliveryFailed` and the worker goes on.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The relay's URL (`smtp_relay_url`) cannot be used: fix the configuration. The message
    /// never quotes the password.
    #[error("smtp_relay_url {message}")]
    RelayUrl {
        /// What is wrong with it.
        message: String,
    },
    /// The event log could not be read or decoded: the worker stopped; a restart folds the log
    /// again and sends what is still pending.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<switchboard_store::StoreError> for DeliveryError {
    fn from(error: switchboard_store::StoreError) -> DeliveryError {
        DeliveryError::Service(error.into())
    }
}

impl From<proto_events::DecodeError> for DeliveryError {
    fn from(error: proto_events::DecodeError) -> DeliveryError {
        DeliveryError::Service(error.into())
    }
}
