//! Relay connection arguments, capped, and opaque keyset cursors.
//!
//! Every list is a cursor connection (`edges { cursor node }`, `pageInfo`). `first`/`last` are
//! capped at the configured page size (a larger value is refused, as GitHub does, rather than
//! silently cut); neither given means the default page size from the start. Cursors are opaque:
//! base64url of a keyset position that the list's read model understands.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{ApiError, ApiResult};
use crate::state::Limits;

/// Which page a client asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Window {
    /// The first `count` items after the `after` cursor (from the start without one).
    First {
        /// How many.
        count: usize,
        /// The decoded cursor text.
        after: Option<String>,
    },
    /// The last `count` items before the `before` cursor (from the end without one).
    Last {
        /// How many.
        count: usize,
        /// The decoded cursor text.
        before: Option<String>,
    },
}

impl Window {
    /// Validates Relay arguments against `limits`.
    pub(crate) fn new(
        limits: &Limits,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Window> {
        let count = |name: &str, n: i32| -> ApiResult<usize> {
            let n = usize::try_from(n)
                .map_err(|_| ApiError::bad_input(name, "must not be negative"))?;
            if n > limits.max_page_size {
                return Err(ApiError::bad_input(
                    name,
                    format!("at most {} items per page", limits.max_page_size),
                ));
            }
            Ok(n)
        };
        let after = after.map(|c| decode_cursor(&c, "after")).transpose()?;
        let before = before.map(|c| decode_cursor(&c, "before")).transpose()?;
        match (first, last) {
            (Some(_), Some(_)) => Err(ApiError::bad_input(
                "last",
                "pass `first` (with `after`) or `last` (with `before`), not both",
            )),
            (None, Some(n)) => {
                if after.is_some() {
                    return Err(ApiError::bad_input("after", "`after` goes with `first`"));
                }
                Ok(Window::Last {
                    count: count("last", n)?,
                    before,
                })
            }
            (first, None) => {
                if before.is_some() {
                    return Err(ApiError::bad_input("before", "`before` goes with `last`"));
                }
                Ok(Window::First {
                    count: match first {
                        Some(n) => count("first", n)?,
                        None => limits.default_page_size,
                    },
                    after,
                })
            }
        }
    }

    /// How many items the page holds at most.
    pub(crate) fn count(&self) -> usize {
        match self {
            Window::First { count, .. } | Window::Last { count, .. } => *count,
        }
    }
}

/// The opaque form of a keyset position.
pub(crate) fn encode_cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// The keyset position of an opaque cursor; `field` names the argument in errors.
pub(crate) fn decode_cursor(cursor: &str, field: &str) -> ApiResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::bad_input(field, "not a cursor returned by this list"))
}

/// The complexity of a connection field: its page size times what is selected on each item.
pub(crate) fn complexity(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let per_page = first
        .or(last)
        .map_or(20, |n| usize::try_from(n).unwrap_or(0));
    per_page.max(1).saturating_mul(child).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_validated() {
        let limits = Limits::default();
        assert_eq!(
            Window::new(&limits, None, None, None, None).ok(),
            Some(Window::First {
                count: 20,
                after: None
            })
        );
        assert!(Window::new(&limits, Some(101), None, None, None).is_err());
        assert!(Window::new(&limits, Some(-1), None, None, None).is_err());
        assert!(Window::new(&limits, Some(1), None, Some(1), None).is_err());
        assert!(Window::new(&limits, Some(1), Some("!!".into()), None, None).is_err());
        let cursor = encode_cursor("x:1");
        assert_eq!(
            Window::new(&limits, None, None, Some(5), Some(cursor)).ok(),
            Some(Window::Last {
                count: 5,
                before: Some("x:1".into())
            })
        );
    }
}
