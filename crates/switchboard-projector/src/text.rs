//! Text helpers several read models share.

/// The first `limit` characters of `body` with its whitespace collapsed to single spaces (a
/// message preview), reading no further into the body than that: an e-mail of a megabyte costs
/// what its first line costs. Whitespace is Unicode's, as `str::split_whitespace` has it.
pub fn preview(body: &str, limit: usize) -> String {
    ascii_preview(body, limit).unwrap_or_else(|| any_preview(body, limit))
}

/// [`preview`] of a body whose first `limit` characters are ASCII, a byte at a time; `None` at
/// the first byte that is not.
fn ascii_preview(body: &str, limit: usize) -> Option<String> {
    let mut preview = String::with_capacity(limit.min(body.len()));
    let mut chars = 0;
    let mut space = false;
    for &byte in body.as_bytes() {
        if !byte.is_ascii() {
            return None;
        }
        // ASCII's Unicode whitespace: `u8::is_ascii_whitespace` lacks the vertical tab.
        if matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            space = chars > 0;
            continue;
        }
        if chars == limit {
            break;
        }
        if space {
            preview.push(' ');
            chars += 1;
            space = false;
            if chars == limit {
                break;
            }
        }
        preview.push(char::from(byte));
        chars += 1;
    }
    Some(preview)
}

/// [`preview`] of any body, a word and a character at a time.
fn any_preview(body: &str, limit: usize) -> String {
    let mut preview = String::with_capacity(limit);
    let mut chars = 0;
    for word in body.split_whitespace() {
        if chars > 0 {
            if chars == limit {
                break;
            }
            preview.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars == limit {
                return preview;
            }
            preview.push(c);
            chars += 1;
        }
    }
    preview
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_collapses_whitespace_and_stops_at_its_length() {
        let long_word = "x".repeat(200);
        let words = "word ".repeat(60);
        let cases = [
            "",
            "   ",
            "Hello",
            "  Hello,\n\n  world\t again  ",
            long_word.as_str(),
            words.as_str(),
            "é ü ñ 日本語 テキスト",
            "vertical\x0btab\x0cfeed\r\n end",
            "ascii first, then\u{a0}no-break\u{2003}em space é",
            "trailing   ",
        ];
        for limit in [0, 1, 5, 140] {
            for body in cases {
                let expected: String = body
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(limit)
                    .collect();
                assert_eq!(preview(body, limit), expected, "{body:?} cut at {limit}");
                assert_eq!(
                    any_preview(body, limit),
                    expected,
                    "{body:?} cut at {limit}"
                );
            }
        }
        // A word ending exactly at the limit is followed by nothing, not by a space.
        assert_eq!(preview("yyy tail", 3), "yyy");
        assert_eq!(preview("yy tail", 3), "yy ");
    }
}
