//! The one mapping from failures to what clients see.
//!
//! Business-rule failures of a mutation (the domain's `Invalid` and `Rejected`) become
//! `userErrors` in its payload, so a form can show them beside the field. Everything else is a
//! top-level GraphQL error whose `extensions.code` is one of `UNAUTHENTICATED`, `FORBIDDEN`,
//! `BAD_USER_INPUT`, `NOT_FOUND`, `CONFLICT`, `IDEMPOTENCY_KEY_REUSED`, `CONSISTENCY_TIMEOUT`,
//! `UNAVAILABLE` or `INTERNAL`. Internal causes
//! are logged with an incident id; the client gets only that id.

use async_graphql::{ErrorExtensions, SimpleObject};
use switchboard_domain::DomainError;
use switchboard_projector::RuntimeError;
use switchboard_service::ServiceError;
use switchboard_store::StoreError;
use uuid::Uuid;

/// A failure that becomes a top-level GraphQL error.
///
/// It deliberately does not implement `Display`: async-graphql turns every `Display` error into
/// an error without a code, so `?` on an `ApiError` must go through the `From` below instead.
#[derive(Debug)]
pub enum ApiError {
    /// No valid token (UNAUTHENTICATED): sign in again.
    Unauthenticated(String),
    /// The viewer may not do this (FORBIDDEN).
    Forbidden(String),
    /// An argument is malformed (BAD_USER_INPUT); `field` names it.
    BadUserInput {
        /// The argument or input field, as the schema names it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// It does not exist, or the viewer may not know that it does (NOT_FOUND).
    NotFound(String),
    /// The target changed since the client read it (CONFLICT): re-read, decide again.
    Conflict {
        /// What happened, with the current version.
        message: String,
        /// The stream's version now, when known.
        current_version: Option<u64>,
    },
    /// The `clientMutationId` was used for a different mutation by the same viewer within its
    /// lifetime (IDEMPOTENCY_KEY_REUSED): nothing was written. Send a new key.
    IdempotencyKeyReused(String),
    /// The read models did not include the consistency token's write in time
    /// (CONSISTENCY_TIMEOUT): retry, or read without the token.
    ConsistencyTimeout(String),
    /// A part of the server the request needs is down for now, e.g. the live feed of
    /// subscriptions could not follow the store (UNAVAILABLE): retry later; a subscription
    /// subscribes again with `after` to miss nothing.
    Unavailable(String),
    /// Anything else (INTERNAL). The cause is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// The `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::BadUserInput { .. } => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Conflict { .. } => "CONFLICT",
            ApiError::IdempotencyKeyReused(_) => "IDEMPOTENCY_KEY_REUSED",
            ApiError::ConsistencyTimeout(_) => "CONSISTENCY_TIMEOUT",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The message sent to the client (never the cause of an internal error).
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::IdempotencyKeyReused(m)
            | ApiError::ConsistencyTimeout(m)
            | ApiError::Unavailable(m) => m.clone(),
            ApiError::BadUserInput { field, message } => format!("invalid {field}: {message}"),
            ApiError::Conflict { message, .. } => message.clone(),
            ApiError::Internal(_) => "internal error".to_owned(),
        }
    }

    /// An internal failure: `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }

    /// A malformed argument.
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadUserInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Something the viewer cannot see (or that does not exist: they are told the same).
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> async_graphql::Error {
        let code = error.code();
        let message = match &error {
            ApiError::Internal(cause) => {
                let incident = Uuid::now_v7();
                tracing::error!(%incident, cause = %cause, "internal error answering a request");
                format!("internal error (incident {incident})")
            }
            other => other.message(),
        };
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", code);
            match &error {
                ApiError::BadUserInput { field, .. } => ext.set("field", field.as_str()),
                ApiError::Conflict {
                    current_version: Some(v),
                    ..
                } => ext.set("currentVersion", *v),
                _ => {}
            }
        })
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        ApiError::internal(format!("read model: {e}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(format!("event store: {e}"))
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> ApiError {
        match e {
            RuntimeError::Timeout { .. } => ApiError::ConsistencyTimeout(format!(
                "the read models did not catch up with the consistency token in time: {e}"
            )),
            other => ApiError::internal(format!("projections: {other}")),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Domain(d) => ApiError::from(d),
            ServiceError::Conflict { stream, actual, .. } => ApiError::Conflict {
                message: format!(
                    "{stream} changed since you read it (now at version {}); read it again",
                    actual.map_or_else(|| "none".to_owned(), |v| v.to_string())
                ),
                current_version: actual,
            },
            ServiceError::IdempotencyKeyReused { key } => ApiError::IdempotencyKeyReused(format!(
                "clientMutationId {key:?} was already used for a different mutation; \
                 send a new one (nothing was written)"
            )),
            ServiceError::Store(StoreError::WrongExpectedVersion { stream, actual, .. }) => {
                ApiError::Conflict {
                    message: format!("{stream} changed since you read it; read it again"),
                    current_version: actual,
                }
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        match e {
            DomainError::NotFound { what } => ApiError::not_found(what),
            DomainError::Forbidden { reason } => ApiError::Forbidden(reason),
            DomainError::Invalid { field, message } => ApiError::bad_input(field, message),
            DomainError::Rejected { message, .. } => ApiError::BadUserInput {
                field: "input".to_owned(),
                message,
            },
        }
    }
}

/// A business-rule failure of a mutation, returned in its payload.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
pub struct UserError {
    /// The path to the input field concerned, e.g. `["input", "name"]`; null when the error is
    /// about the whole input.
    pub field: Option<Vec<String>>,
    /// What went wrong, for humans.
    pub message: String,
    /// A stable SCREAMING_SNAKE code to switch on, e.g. `ALREADY_CLOSED` or `INVALID`.
    pub code: String,
}

/// Splits a command's failure: business-rule failures become `userErrors`, the rest top-level
/// errors.
pub fn user_errors(error: ServiceError) -> Result<Vec<UserError>, ApiError> {
    match error {
        ServiceError::Domain(DomainError::Invalid { field, message }) => Ok(vec![UserError {
            field: Some(input_path(&field)),
            message,
            code: "INVALID".to_owned(),
        }]),
        ServiceError::Domain(DomainError::Rejected {
            code,
            field,
            message,
        }) => Ok(vec![UserError {
            field: field.map(input_path),
            message,
            code: code.to_owned(),
        }]),
        other => Err(ApiError::from(other)),
    }
}

/// The path of a field the write side names (`imap.password`: a field of a nested input).
fn input_path(field: &str) -> Vec<String> {
    std::iter::once("input")
        .chain(field.split('.'))
        .map(str::to_owned)
        .collect()
}

/// The result type of resolvers.
pub type ApiResult<T> = Result<T, ApiError>;
