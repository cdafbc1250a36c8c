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

/// Whether `c` is a Unicode bidirectional formatting character: the embeddings and overrides
/// (U+202A to U+202E), the isolates (U+2066 to U+2069), the left-to-right and right-to-left
/// marks (U+200E, U+200F) and the Arabic letter mark (U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// A name someone outside the organisation gave (a chat visitor, a form's `name` field, an
/// answer to the bot's question), as agents are shown it: without bidirectional formatting
/// characters, which make a name read otherwise than it is written (an override can show
/// `"Bob \u{202E}nimda"` as "Bob admin" and push what follows it around), without control
/// characters (C0, DEL and C1; line breaks and tabs become spaces), its blanks collapsed to
/// one space and trimmed; `None` when nothing is left. Stripped rather than refused, as inboxes
/// usually do for names: the rest of a name is worth keeping, and a visitor cannot see what is
/// wrong with an invisible character.
pub fn display_name(value: &str) -> Option<String> {
    let kept: String = value
        .chars()
        // Whitespace controls (line breaks, tabs) are kept here to become blanks below.
        .filter(|c| c.is_whitespace() || !(c.is_control() || is_bidi_control(*c)))
        .collect();
    let name = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
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

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn display_names_lose_bidi_and_control_characters_and_keep_the_rest() {
        // Every bidirectional formatting character, wherever it is.
        for bidi in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            let given = format!("{bidi}Ann{bidi}a Berg{bidi}");
            assert_eq!(
                display_name(&given).as_deref(),
                Some("Anna Berg"),
                "{given:?}"
            );
        }
        assert_eq!(
            display_name("Bob \u{202E}nimda\u{202C}").as_deref(),
            Some("Bob nimda")
        );
        // C0, DEL and C1 controls go; line breaks and tabs become one space.
        assert_eq!(
            display_name("\u{0}A\u{7}da\u{1b}[31m \u{7f}\u{85}\u{9b}Lind\tqvist\r\n").as_deref(),
            Some("Ada[31m Lind qvist")
        );
        // Nothing but invisible characters is no name.
        assert_eq!(display_name("\u{202E}\u{200F} \u{0}\n"), None);
        assert_eq!(display_name("   "), None);
        // Right-to-left letters, accents and joiners are names, not controls.
        assert_eq!(display_name("  محمد   علي ").as_deref(), Some("محمد علي"));
        assert_eq!(display_name("Zoë O'Brien").as_deref(), Some("Zoë O'Brien"));
        assert_eq!(
            display_name("\u{1F469}\u{200D}\u{1F4BB} Kim").as_deref(),
            Some("\u{1F469}\u{200D}\u{1F4BB} Kim")
        );
    }
}
