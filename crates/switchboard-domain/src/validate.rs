//! Input checks several deciders share, so that the same field is refused with the same words
//! wherever it appears.

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
