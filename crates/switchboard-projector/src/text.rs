//! Text helpers several read models share.

/// The first `limit` characters of `body` with its whitespace collapsed to single spaces (a
/// message preview), reading no further into the body than that: an e-mail of a megabyte costs
/// what its first line costs.
pub fn preview(body: &str, limit: usize) -> String {
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
            }
        }
        // A word ending exactly at the limit is followed by nothing, not by a space.
        assert_eq!(preview("yyy tail", 3), "yyy");
        assert_eq!(preview("yy tail", 3), "yy ");
    }
}
