//! Decoding helpers for the stored JSON shapes that serde's derives decode slowly.
//!
//! Every event is decoded again whenever a read model is built from the log, so decoding is on
//! the critical path of a rebuild. Two shapes cost more than the rest of an event together:
//! internally tagged enums (`{"kind": "user", "id": ...}`), which serde buffers whole before
//! choosing a variant, and RFC 3339 times, which chrono parses with its general format machinery.
//! Tagged enums that every event carries decode through a flat "wire" struct instead (see
//! `ActorWire`); times through [`utc_time`]. Both accept exactly what the derives accept and
//! write nothing differently: the golden fixtures hold them to that.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::Deserializer;
use serde::de::{self, Visitor};

/// A tagged enum's wire struct lacked the field its `kind` needs; serde's own message for it.
#[derive(Debug)]
pub(crate) struct MissingField(pub(crate) &'static str);

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "missing field `{}`", self.0)
    }
}

/// Deserializes a `DateTime<Utc>` as chrono's serde support does (any RFC 3339 time, converted to
/// UTC), reading the shape chrono itself writes (`2026-10-01T08:27:00Z`, optionally with a
/// fraction of a second) without its general parser.
pub(crate) fn utc_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(UtcTime)
}

struct UtcTime;

impl Visitor<'_> for UtcTime {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        if let Some(time) = parse_utc(text.as_bytes()) {
            return Ok(time);
        }
        // Anything else goes the way chrono's own `Deserialize` goes, errors included.
        text.parse::<DateTime<FixedOffset>>()
            .map(|time| time.with_timezone(&Utc))
            .map_err(E::custom)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, or `None` for any other spelling (offsets, lower-case
/// separators, leap seconds, out-of-range fields), which the caller leaves to chrono.
fn parse_utc(text: &[u8]) -> Option<DateTime<Utc>> {
    let (&b'Z', text) = text.split_last()? else {
        return None;
    };
    if text.len() < 19 {
        return None;
    }
    let (date, rest) = text.split_at(19);
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        date.get(range)?.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, b)| date[at] != b) {
        return None;
    }
    let nanos = match rest {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = digits.iter().try_fold(0u32, |n, &b| {
                b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
            })?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let day = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let second = number(17..19)?;
    if second > 59 {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(number(11..13)?, number(14..16)?, second, nanos)?;
    Some(day.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What chrono's own `Deserialize` makes of `text`.
    fn chrono(text: &str) -> Result<DateTime<Utc>, String> {
        serde_json::from_value::<DateTime<Utc>>(serde_json::Value::from(text))
            .map_err(|e| e.to_string())
    }

    fn ours(text: &str) -> Result<DateTime<Utc>, String> {
        utc_time(serde_json::Value::from(text)).map_err(|e| e.to_string())
    }

    #[test]
    fn times_decode_as_chrono_decodes_them() {
        for text in [
            "2026-10-01T08:27:00Z",
            "2026-10-01T08:27:00.5Z",
            "2026-10-01T08:27:00.123456Z",
            "2026-10-01T08:27:00.123456789Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999999Z",
            // Not the shape chrono writes, left to chrono: the same answers.
            "2026-10-01T10:27:00+02:00",
            "2026-10-01t08:27:00z",
            "2026-10-01 08:27:00Z",
            "2016-12-31T23:59:60Z",
            "2026-10-01T08:27:00.1234567891Z",
            // Wrong, one way or another: the same errors.
            "2026-02-30T08:27:00Z",
            "2026-13-01T08:27:00Z",
            "2026-10-01T24:00:00Z",
            "2026-10-01T08:27:00.Z",
            "2026-10-01T08:27Z",
            "2026-1a-01T08:27:00Z",
            "+2026-10-01T08:27:00Z",
            "Z",
            "",
        ] {
            assert_eq!(ours(text), chrono(text), "{text:?}");
        }
    }

    #[test]
    fn the_fast_path_takes_the_shape_chrono_writes() {
        let time = DateTime::from_timestamp(1_790_000_000, 123_456_000).expect("in range");
        let written = serde_json::to_value(time).expect("serialises");
        let text = written.as_str().expect("a string");
        assert_eq!(parse_utc(text.as_bytes()), Some(time), "{text}");
        assert_eq!(parse_utc(b"2026-10-01T10:27:00+02:00"), None);
    }
}
