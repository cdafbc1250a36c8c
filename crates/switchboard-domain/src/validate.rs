//! Input checks several deciders share, so that the same field is refused with the same words
//! wherever it appears.

use proto_events::event::UniqueScope;
use proto_events::streams;

use crate::DomainError;

/// Longest accepted display name, subject or stage.
pub(crate) const MAX_NAME: usize = 200;

/// A display name: trimmed, not empty, at most [`MAX_NAME`] characters. Errors name `field`.
pub(crate) fn name(field: &'static str, value: &str) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Refuses a value with a control character (a NUL, a bell, an escape): no identifier or
/// address holds one, and stores refuse them in stream names. `what` names the value.
pub(crate) fn no_control(field: &'static str, what: &str, value: &str) -> Result<(), DomainError> {
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("{what} {value:?} contains a control character"),
        ));
    }
    Ok(())
}

/// Refuses a value that cannot be reserved as unique in `scope`: one with a control character,
/// or too long for its reservation stream's name ([`streams::MAX_NAME_BYTES`]).
pub(crate) fn reservable(
    field: &'static str,
    what: &str,
    scope: UniqueScope,
    value: &str,
) -> Result<(), DomainError> {
    no_control(field, what, value)?;
    let stream = streams::unique(scope, value);
    if stream.len() > streams::MAX_NAME_BYTES {
        let room = streams::MAX_NAME_BYTES - (stream.len() - scope.normalise(value).len());
        return Err(DomainError::invalid(
            field,
            format!("{what} is too long: at most {room} bytes"),
        ));
    }
    Ok(())
}

/// Whether `address` is a plain e-mail address (RFC 5321's `Mailbox` without quoted local
/// parts or address literals): a dot-atom local part of at most 64 bytes, `@`, and a domain of
/// at least two dot-separated labels of letters, digits and inner hyphens, at most 254 bytes in
/// all. Nothing else: no display name, no angle brackets, no comments, no blanks, so
/// `x<victim@y.com>` is refused. Letters beyond ASCII are taken (internationalised addresses).
pub(crate) fn email_address(address: &str) -> bool {
    const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let atom = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_alphanumeric() || ATEXT.contains(c))
    };
    let label = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && !part.starts_with('-')
            && !part.ends_with('-')
            && part.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    address.len() <= 254
        && local.len() <= 64
        && local.split('.').all(atom)
        && domain.split('.').count() >= 2
        && domain.split('.').all(label)
}
