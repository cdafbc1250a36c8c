//! Why a command was refused. A refused command writes no event.

use std::borrow::Cow;

/// A command's rejection. The API maps each variant once: `NotFound`, `Forbidden` and `Invalid`
/// become top-level errors with `extensions.code`; `Rejected` becomes a `userError` in the
/// mutation payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The thing does not exist, or the actor may not know that it does: access rules answer
    /// "not found" rather than "forbidden" for what the actor cannot see (NOT_FOUND).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `"inbox"`.
        what: &'static str,
    },
    /// The actor may see the thing but not do this to it, e.g. an agent changing roles, or an
    /// auditor writing anything (FORBIDDEN).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why, in words an admin can act on.
        reason: String,
    },
    /// An input field is malformed (BAD_USER_INPUT). `field` is the input's field name.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The input field, as the API names it (camelCase); an item of a list is named by its
        /// index, e.g. `fields.2.name`.
        field: Cow<'static, str>,
        /// What is wrong with it.
        message: String,
    },
    /// A business rule refuses the command in the current state, e.g. closing a closed
    /// conversation (a `userError` with this `code`).
    #[error("{message}")]
    Rejected {
        /// A stable, SCREAMING_SNAKE code clients can switch on.
        code: &'static str,
        /// The input field concerned, if one is.
        field: Option<&'static str>,
        /// A sentence for humans.
        message: String,
    },
}

impl DomainError {
    pub(crate) fn invalid(
        field: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> DomainError {
        DomainError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(reason: impl Into<String>) -> DomainError {
        DomainError::Forbidden {
            reason: reason.into(),
        }
    }

    pub(crate) fn rejected(
        code: &'static str,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> DomainError {
        DomainError::Rejected {
            code,
            field,
            message: message.into(),
        }
    }
}
