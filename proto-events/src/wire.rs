//! Decoding helpers for the stored JSON shapes that serde's derives decode slowly.
//!
//! Every event is decoded again whenever a read model is built from the log, so decoding is on
//! the critical path of a rebuild. Two shapes cost more than the rest of an event together:
//! internally tagged enums (`{"kind": "user", "id": ...}`), which serde buffers whole before
//! choosing a variant, and RFC 3339 times, which chrono parses with its general format machinery.
//! Tagged enums that events carry decode through a flat "wire" struct instead (see `ActorWire`;
//! identities, assignees, reply authors, visibilities, assignment reasons and reopen causes
//! too), and so do the inbound messages whose struct is written `flatten`ed into its event
//! (`InboundWire`: serde reads a flattened struct by buffering the whole object, as it does a
//! tagged enum); times through [`utc_time`]. Both accept exactly what the derives accept and
//! write nothing differently: the golden fixtures hold them to that. The metadata, which every
//! event has, and the four most frequent payloads are first read as exactly what serde_json
//! writes ([`canonical_metadata`], [`canonical_payload`]), and by serde when they are spelt any
//! other way.
//!
//! One difference from the derives, which only hand-written JSON can meet: a wire struct reads
//! every field it knows whatever the `kind`, so a field of another variant must be well-formed
//! too (`{"kind": "system", "component": "x", "id": 5}` is refused; the derive ignored the `id`).
//! Switchboard never writes such a field, and `import` refuses such input as a whole.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use serde::Deserializer;
use serde::de::{self, Visitor};
use uuid::Uuid;

use crate::event::{
    Assignee, AssignmentReason, ChannelKind, CommentAdded, ConversationAssigned,
    ConversationClosed, ConversationOrigin, ConversationReassigned, ConversationReopened,
    ConversationStarted, ConversationVisibility, DeliverySucceeded, Identity, InboundMessage,
    MessageReceived, ReopenCause, ReplyAuthor, ReplySent,
};
use crate::{Actor, DomainEvent, Metadata};

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

/// The metadata exactly as `Metadata::encode` writes it (serde_json, fields in declaration order,
/// no whitespace), read without serde; `None` for any other spelling, which the caller decodes
/// with serde as before: escapes in a string, another field order, another UUID format, a new
/// field. Everything accepted here is accepted by serde with the same value.
pub(crate) fn canonical_metadata(json: &[u8]) -> Option<Metadata> {
    let mut at = Cursor(json);
    at.literal(br#"{"actor":"#)?;
    let actor = at.actor()?;
    at.literal(br#","correlation_id":""#)?;
    let correlation_id = at.uuid()?;
    at.literal(br#"","causation_id":""#)?;
    let causation_id = at.uuid()?;
    at.literal(br#"","occurred_at":""#)?;
    let occurred_at = parse_utc(at.plain_string()?)?;
    at.literal(br#"","idempotency_key":"#)?;
    let idempotency_key = if at.literal(b"null").is_some() {
        None
    } else {
        at.literal(b"\"")?;
        let key = std::str::from_utf8(at.plain_string()?).ok()?.to_owned();
        at.literal(b"\"")?;
        Some(key)
    };
    let command_fingerprint = if at.literal(br#","command_fingerprint":""#).is_some() {
        let fingerprint = std::str::from_utf8(at.plain_string()?).ok()?.to_owned();
        at.literal(b"\"")?;
        Some(fingerprint)
    } else {
        None
    };
    at.literal(b"}")?;
    at.0.is_empty().then_some(Metadata {
        actor,
        correlation_id,
        causation_id,
        occurred_at,
        idempotency_key,
        command_fingerprint,
    })
}

/// The most frequent payloads (`MessageReceived`, `ReplySent`, `DeliverySucceeded`,
/// `ConversationClosed`, `ConversationStarted`, `CommentAdded`, `ConversationReopened`, and
/// `ConversationAssigned`/`ConversationReassigned` by hand or by a bot's handoff: nearly all of a
/// conversation's events) exactly as serde_json writes them in the current schema version, read
/// without serde (an assignment by a routing rule, with its decision, is left to serde); `None` for any other type or spelling, which
/// the caller decodes with serde as before (escapes in a string, e-mail headers, form fields,
/// another field order). Everything accepted here is accepted by serde with the same value.
pub(crate) fn canonical_payload(event_type: &str, json: &[u8]) -> Option<DomainEvent> {
    let mut at = Cursor(json);
    let event = match event_type {
        "MessageReceived" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            let inbox_id = at.uuid_field("inbox_id")?;
            let message_id = at.uuid_field("message_id")?;
            let channel_id = at.uuid_field("channel_id")?;
            let channel_kind = at.channel_kind_field()?;
            let provider_message_id = at.opt_string_field("provider_message_id")?;
            let from = at.field("from", Cursor::identity)?;
            let from_name = at.opt_string_field("from_name")?;
            let contact_id = at.field("contact_id", Cursor::opt_uuid)?;
            let subject = at.opt_string_field("subject")?;
            let body_text = at.string_field("body_text")?;
            let body_html = at.opt_string_field("body_html")?;
            at.literal(br#","email":null,"form_fields":[],"attachments":[],"raw":null"#)?;
            MessageReceived {
                conversation_id,
                inbox_id,
                message: InboundMessage {
                    message_id,
                    channel_id,
                    channel_kind,
                    provider_message_id,
                    from,
                    from_name,
                    contact_id,
                    subject,
                    body_text,
                    body_html,
                    email: None,
                    form_fields: Vec::new(),
                    attachments: Vec::new(),
                    raw: None,
                },
            }
            .into()
        }
        "ReplySent" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            let inbox_id = at.uuid_field("inbox_id")?;
            let message_id = at.uuid_field("message_id")?;
            let channel_id = at.uuid_field("channel_id")?;
            let channel_kind = at.channel_kind_field()?;
            let author = at.field("author", Cursor::reply_author)?;
            let subject = at.opt_string_field("subject")?;
            let body_text = at.string_field("body_text")?;
            let body_html = at.opt_string_field("body_html")?;
            at.literal(br#","email":null,"attachments":[]"#)?;
            ReplySent {
                conversation_id,
                inbox_id,
                message_id,
                channel_id,
                channel_kind,
                author,
                subject,
                body_text,
                body_html,
                email: None,
                attachments: Vec::new(),
            }
            .into()
        }
        "DeliverySucceeded" => DeliverySucceeded {
            conversation_id: at.first_uuid("conversation_id")?,
            inbox_id: at.uuid_field("inbox_id")?,
            message_id: at.uuid_field("message_id")?,
            channel_id: at.uuid_field("channel_id")?,
            provider_message_id: at.opt_string_field("provider_message_id")?,
        }
        .into(),
        "ConversationClosed" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            ConversationClosed {
                conversation_id,
                inbox_id: at.uuid_field("inbox_id")?,
                by: at.field("by", Cursor::actor)?,
            }
            .into()
        }
        "ConversationStarted" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            ConversationStarted {
                conversation_id,
                inbox_id: at.uuid_field("inbox_id")?,
                channel_id: at.uuid_field("channel_id")?,
                channel_kind: at.channel_kind_field()?,
                contact_id: at.field("contact_id", Cursor::opt_uuid)?,
                origin: at.field("origin", Cursor::origin)?,
                visibility: at.field("visibility", Cursor::visibility)?,
            }
            .into()
        }
        "CommentAdded" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            CommentAdded {
                conversation_id,
                inbox_id: at.uuid_field("inbox_id")?,
                comment_id: at.uuid_field("comment_id")?,
                author_user_id: at.uuid_field("author_user_id")?,
                body_text: at.string_field("body_text")?,
                mentions: at.field("mentions", Cursor::uuids)?,
            }
            .into()
        }
        "ConversationAssigned" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            ConversationAssigned {
                conversation_id,
                inbox_id: at.uuid_field("inbox_id")?,
                assignee: at.field("assignee", Cursor::assignee)?,
                reason: at.field("reason", Cursor::assignment_reason)?,
            }
            .into()
        }
        "ConversationReassigned" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            ConversationReassigned {
                conversation_id,
                inbox_id: at.uuid_field("inbox_id")?,
                from: at.field("from", Cursor::assignee)?,
                to: at.field("to", Cursor::assignee)?,
                reason: at.field("reason", Cursor::assignment_reason)?,
            }
            .into()
        }
        "ConversationReopened" => {
            let conversation_id = at.first_uuid("conversation_id")?;
            ConversationReopened {
                conversation_id,
                inbox_id: at.uuid_field("inbox_id")?,
                cause: at.field("cause", Cursor::reopen_cause)?,
            }
            .into()
        }
        _ => return None,
    };
    at.literal(b"}")?;
    at.0.is_empty().then_some(event)
}

/// What is left to read of a canonical document.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// Skips `expected`, if the text goes on with it.
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        self.0 = self.0.strip_prefix(expected)?;
        Some(())
    }

    /// A string's contents up to its closing quote (left to read), if it needs no unescaping:
    /// no backslash, and no control character (which JSON does not allow unescaped).
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let end = self
            .0
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.0[end] != b'"' {
            return None;
        }
        let (text, rest) = self.0.split_at(end);
        self.0 = rest;
        Some(text)
    }

    /// A string value's text, quotes included, if it needs no unescaping.
    fn string(&mut self) -> Option<String> {
        self.literal(b"\"")?;
        let text = std::str::from_utf8(self.plain_string()?).ok()?.to_owned();
        self.literal(b"\"")?;
        Some(text)
    }

    /// `null`, or a string value as [`Cursor::string`] reads it.
    fn opt_string(&mut self) -> Option<Option<String>> {
        if self.literal(b"null").is_some() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A UUID value, quotes included.
    fn quoted_uuid(&mut self) -> Option<Uuid> {
        self.literal(b"\"")?;
        let id = self.uuid()?;
        self.literal(b"\"")?;
        Some(id)
    }

    /// `null`, or a UUID value.
    fn opt_uuid(&mut self) -> Option<Option<Uuid>> {
        if self.literal(b"null").is_some() {
            return Some(None);
        }
        self.quoted_uuid().map(Some)
    }

    /// `"name":`, a field's key.
    fn key(&mut self, name: &str) -> Option<()> {
        self.literal(b"\"")?;
        self.literal(name.as_bytes())?;
        self.literal(b"\":")
    }

    /// `,"name":` and what follows it: `value`.
    fn field<T>(&mut self, name: &str, value: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        self.literal(b",")?;
        self.key(name)?;
        value(self)
    }

    /// The opening of an object and its first field, a UUID.
    fn first_uuid(&mut self, name: &str) -> Option<Uuid> {
        self.literal(b"{")?;
        self.key(name)?;
        self.quoted_uuid()
    }

    fn uuid_field(&mut self, name: &str) -> Option<Uuid> {
        self.field(name, Self::quoted_uuid)
    }

    fn string_field(&mut self, name: &str) -> Option<String> {
        self.field(name, Self::string)
    }

    fn opt_string_field(&mut self, name: &str) -> Option<Option<String>> {
        self.field(name, Self::opt_string)
    }

    fn channel_kind_field(&mut self) -> Option<ChannelKind> {
        self.field("channel_kind", Self::channel_kind)
    }

    /// A [`ChannelKind`] value, quotes included.
    fn channel_kind(&mut self) -> Option<ChannelKind> {
        self.literal(b"\"")?;
        let kind = match self.plain_string()? {
            b"email" => ChannelKind::Email,
            b"chat" => ChannelKind::Chat,
            b"messenger" => ChannelKind::Messenger,
            b"form" => ChannelKind::Form,
            _ => return None,
        };
        self.literal(b"\"")?;
        Some(kind)
    }

    /// An [`Actor`] object, `kind` first.
    fn actor(&mut self) -> Option<Actor> {
        self.literal(br#"{"kind":""#)?;
        let kind = self.plain_string()?;
        let actor = if kind == b"system" {
            self.literal(br#"","component":""#)?;
            Actor::System {
                component: std::str::from_utf8(self.plain_string()?).ok()?.to_owned(),
            }
        } else {
            self.literal(br#"","id":""#)?;
            let id = self.uuid()?;
            match kind {
                b"user" => Actor::User { id },
                b"contact" => Actor::Contact { id },
                b"bot" => Actor::Bot { id },
                b"channel" => Actor::Channel { id },
                _ => return None,
            }
        };
        self.literal(br#""}"#)?;
        Some(actor)
    }

    /// A tagged object, `kind` first: `read` reads the rest of its fields given the kind
    /// (`None` for a kind it does not know), then the object must close.
    fn tagged<T>(&mut self, read: impl FnOnce(&mut Self, &'a [u8]) -> Option<T>) -> Option<T> {
        self.literal(br#"{"kind":""#)?;
        let kind = self.plain_string()?;
        self.literal(b"\"")?;
        let value = read(self, kind)?;
        self.literal(b"}")?;
        Some(value)
    }

    /// An [`Identity`] object, `kind` first.
    fn identity(&mut self) -> Option<Identity> {
        self.tagged(|at, kind| {
            Some(match kind {
                b"email" => Identity::Email {
                    address: at.field("address", Self::string)?,
                },
                b"chat_visitor" => Identity::ChatVisitor {
                    visitor_id: at.field("visitor_id", Self::string)?,
                },
                b"messenger" => Identity::Messenger {
                    psid: at.field("psid", Self::string)?,
                },
                _ => return None,
            })
        })
    }

    /// A [`ReplyAuthor`] object, `kind` first.
    fn reply_author(&mut self) -> Option<ReplyAuthor> {
        self.tagged(|at, kind| {
            Some(match kind {
                b"user" => ReplyAuthor::User {
                    id: at.field("id", Self::quoted_uuid)?,
                },
                b"bot" => ReplyAuthor::Bot {
                    id: at.field("id", Self::quoted_uuid)?,
                },
                b"automation" => ReplyAuthor::Automation {
                    name: at.field("name", Self::string)?,
                },
                _ => return None,
            })
        })
    }

    /// An array of UUIDs.
    fn uuids(&mut self) -> Option<Vec<Uuid>> {
        self.literal(b"[")?;
        let mut ids = Vec::new();
        if self.literal(b"]").is_some() {
            return Some(ids);
        }
        loop {
            ids.push(self.quoted_uuid()?);
            if self.literal(b"]").is_some() {
                return Some(ids);
            }
            self.literal(b",")?;
        }
    }

    /// A [`ConversationOrigin`] value, quotes included.
    fn origin(&mut self) -> Option<ConversationOrigin> {
        self.literal(b"\"")?;
        let origin = match self.plain_string()? {
            b"inbound" => ConversationOrigin::Inbound,
            b"outbound" => ConversationOrigin::Outbound,
            _ => return None,
        };
        self.literal(b"\"")?;
        Some(origin)
    }

    /// A [`ConversationVisibility`] object, `kind` first.
    fn visibility(&mut self) -> Option<ConversationVisibility> {
        self.tagged(|at, kind| {
            Some(match kind {
                b"shared" => ConversationVisibility::Shared,
                b"private" => ConversationVisibility::Private {
                    owner_user_id: at.field("owner_user_id", Self::quoted_uuid)?,
                },
                _ => return None,
            })
        })
    }

    /// An [`Assignee`] object, `kind` first.
    fn assignee(&mut self) -> Option<Assignee> {
        self.tagged(|at, kind| {
            let id = at.field("id", Self::quoted_uuid)?;
            Some(match kind {
                b"user" => Assignee::User { id },
                b"team" => Assignee::Team { id },
                b"bot" => Assignee::Bot { id },
                _ => return None,
            })
        })
    }

    /// An [`AssignmentReason`] by hand or by a bot's handoff; `None` for a rule's decision.
    fn assignment_reason(&mut self) -> Option<AssignmentReason> {
        self.tagged(|at, kind| {
            Some(match kind {
                b"manual" => AssignmentReason::Manual {
                    by: at.field("by", Self::actor)?,
                },
                b"bot_handoff" => AssignmentReason::BotHandoff {
                    bot_id: at.field("bot_id", Self::quoted_uuid)?,
                },
                _ => return None,
            })
        })
    }

    /// A [`ReopenCause`] object, `kind` first.
    fn reopen_cause(&mut self) -> Option<ReopenCause> {
        self.tagged(|at, kind| {
            Some(match kind {
                b"customer_wrote" => ReopenCause::CustomerWrote {
                    message_id: at.field("message_id", Self::quoted_uuid)?,
                },
                b"manual" => ReopenCause::Manual {
                    by: at.field("by", Self::actor)?,
                },
                _ => return None,
            })
        })
    }

    /// A hyphenated UUID, up to the quote after it (left to read).
    fn uuid(&mut self) -> Option<Uuid> {
        let (text, rest) = self.0.split_at_checked(36)?;
        if rest.first() != Some(&b'"') {
            return None;
        }
        let id = Uuid::try_parse_ascii(text).ok()?;
        self.0 = rest;
        Some(id)
    }
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

    fn metadata(actor: Actor, idempotency_key: Option<&str>, nanos: u32) -> Metadata {
        Metadata {
            actor,
            correlation_id: Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            causation_id: Uuid::from_u128(7),
            occurred_at: DateTime::from_timestamp(1_790_000_000, nanos).expect("in range"),
            idempotency_key: idempotency_key.map(str::to_owned),
            command_fingerprint: idempotency_key.map(|key| format!("{key}-fingerprint")),
        }
    }

    #[test]
    fn canonical_metadata_is_read_as_serde_reads_it_and_the_rest_is_left_to_serde() {
        let id = Uuid::from_u128(42);
        let actors = [
            Actor::User { id },
            Actor::Contact { id },
            Actor::Bot { id },
            Actor::Channel { id },
            Actor::System {
                component: "router".into(),
            },
            Actor::System {
                component: "api:user:é".into(),
            },
        ];
        for actor in actors {
            for key in [None, Some("reply-1"), Some("")] {
                for nanos in [0, 500_000_000, 123_456_789] {
                    let written = metadata(actor.clone(), key, nanos).encode();
                    let fast = canonical_metadata(&written);
                    let serde: Metadata = serde_json::from_slice(&written).expect("decodes");
                    assert_eq!(
                        fast.as_ref(),
                        Some(&serde),
                        "{}",
                        String::from_utf8_lossy(&written)
                    );
                }
            }
        }
        // Spelt otherwise: not taken here (serde decides, as before).
        let escaped = metadata(
            Actor::System {
                component: "say \"hi\"\n".into(),
            },
            Some("tab\t"),
            0,
        );
        assert_eq!(canonical_metadata(&escaped.encode()), None);
        let canonical =
            String::from_utf8(metadata(Actor::User { id }, None, 0).encode()).expect("UTF-8");
        for other in [
            canonical.replace(r#"{"actor":"#, r#"{ "actor":"#),
            canonical
                .replace(r#""kind":"user","id""#, r#""id""#)
                .replace(
                    r#""00000000-0000-0000-0000-00000000002a","correlation"#,
                    r#""00000000-0000-0000-0000-00000000002a","kind":"user","correlation"#,
                ),
            canonical.replace(
                "00000000-0000-0000-0000-00000000002a",
                "0000000000000000000000000000002a",
            ),
            canonical.replace("}", r#","extra":1}"#),
            canonical.replace(r#""kind":"user""#, r#""kind":"admin""#),
            format!("{canonical} "),
            canonical[..canonical.len() - 1].to_owned(),
        ] {
            assert_eq!(canonical_metadata(other.as_bytes()), None, "{other}");
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

    /// Payloads of every type and shape the fast path reads.
    fn frequent_payloads() -> Vec<DomainEvent> {
        let id = |n: u128| Uuid::from_u128(n);
        let identities = [
            Identity::Email {
                address: "ada@example.org".into(),
            },
            Identity::ChatVisitor {
                visitor_id: "v-1".into(),
            },
            Identity::Messenger { psid: "123".into() },
        ];
        let mut events: Vec<DomainEvent> = Vec::new();
        for (n, from) in identities.into_iter().enumerate() {
            let some = n % 2 == 0;
            events.push(
                MessageReceived {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    message: InboundMessage {
                        message_id: id(3),
                        channel_id: id(4),
                        channel_kind: [ChannelKind::Email, ChannelKind::Chat, ChannelKind::Form][n],
                        provider_message_id: some.then(|| "mid.1".into()),
                        from,
                        from_name: some.then(|| "Ada Lövelace 日本".into()),
                        contact_id: some.then(|| id(5)),
                        subject: some.then(|| "Seats".into()),
                        body_text: "Hello — how much for 20 seats?".into(),
                        body_html: some.then(|| "<p>Hello</p>".into()),
                        email: None,
                        form_fields: Vec::new(),
                        attachments: Vec::new(),
                        raw: None,
                    },
                }
                .into(),
            );
        }
        let authors = [
            ReplyAuthor::User { id: id(6) },
            ReplyAuthor::Bot { id: id(7) },
            ReplyAuthor::Automation {
                name: "Auto-ack".into(),
            },
        ];
        for (n, author) in authors.into_iter().enumerate() {
            let some = n % 2 == 1;
            events.push(
                ReplySent {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    message_id: id(8),
                    channel_id: id(4),
                    channel_kind: ChannelKind::Messenger,
                    author,
                    subject: some.then(|| "Re: Seats".into()),
                    body_text: String::new(),
                    body_html: some.then(|| "<p>Yes</p>".into()),
                    email: None,
                    attachments: Vec::new(),
                }
                .into(),
            );
        }
        for provider_message_id in [None, Some("queue-7".to_owned())] {
            events.push(
                DeliverySucceeded {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    message_id: id(8),
                    channel_id: id(4),
                    provider_message_id,
                }
                .into(),
            );
        }
        for by in [
            Actor::User { id: id(6) },
            Actor::System {
                component: "auto-close".into(),
            },
        ] {
            events.push(
                ConversationClosed {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    by,
                }
                .into(),
            );
        }
        let visibilities = [
            ConversationVisibility::Shared,
            ConversationVisibility::Private {
                owner_user_id: id(6),
            },
        ];
        for (n, visibility) in visibilities.into_iter().enumerate() {
            events.push(
                ConversationStarted {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    channel_id: id(4),
                    channel_kind: ChannelKind::Email,
                    contact_id: (n == 1).then(|| id(5)),
                    origin: [ConversationOrigin::Inbound, ConversationOrigin::Outbound][n],
                    visibility,
                }
                .into(),
            );
        }
        for mentions in [vec![], vec![id(6)], vec![id(6), id(7), id(8)]] {
            events.push(
                CommentAdded {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    comment_id: id(9),
                    author_user_id: id(6),
                    body_text: "Can you take this one?".into(),
                    mentions,
                }
                .into(),
            );
        }
        let assignees = [
            Assignee::User { id: id(6) },
            Assignee::Team { id: id(10) },
            Assignee::Bot { id: id(11) },
        ];
        let reasons = [
            AssignmentReason::Manual {
                by: Actor::User { id: id(6) },
            },
            AssignmentReason::BotHandoff { bot_id: id(11) },
            AssignmentReason::Manual {
                by: Actor::System {
                    component: "router".into(),
                },
            },
        ];
        for (assignee, reason) in assignees.iter().zip(&reasons) {
            events.push(
                ConversationAssigned {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    assignee: assignee.clone(),
                    reason: reason.clone(),
                }
                .into(),
            );
            events.push(
                ConversationReassigned {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    from: assignees[0].clone(),
                    to: assignee.clone(),
                    reason: reason.clone(),
                }
                .into(),
            );
        }
        let causes = [
            ReopenCause::CustomerWrote { message_id: id(3) },
            ReopenCause::Manual {
                by: Actor::User { id: id(6) },
            },
        ];
        for cause in causes {
            events.push(
                ConversationReopened {
                    conversation_id: id(1),
                    inbox_id: id(2),
                    cause,
                }
                .into(),
            );
        }
        events
    }

    #[test]
    fn frequent_payloads_read_without_serde_as_serde_reads_them() {
        for event in frequent_payloads() {
            let json = event.encode();
            let fast = canonical_payload(event.event_type(), &json);
            assert_eq!(
                fast.as_ref(),
                Some(&event),
                "{}",
                String::from_utf8_lossy(&json)
            );
        }
    }

    #[test]
    fn other_spellings_of_frequent_payloads_are_left_to_serde() {
        for event in frequent_payloads() {
            let json = String::from_utf8(event.encode()).unwrap();
            let event_type = event.event_type();
            let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
            let object = value.as_object_mut().unwrap();
            let mut reordered = serde_json::Map::new();
            for (key, field) in object.iter().rev() {
                reordered.insert(key.clone(), field.clone());
            }
            let mut extra = object.clone();
            extra.insert("zz_new".into(), serde_json::Value::from(1));
            let others = [
                serde_json::to_string_pretty(&value).unwrap(),
                format!("{json} "),
                serde_json::Value::Object(reordered).to_string(),
                serde_json::Value::Object(extra).to_string(),
                json.replacen(
                    "00000000-0000-0000-0000-000000000001",
                    "00000000000000000000000000000001",
                    1,
                ),
            ];
            for other in others {
                assert_eq!(
                    canonical_payload(event_type, other.as_bytes()),
                    None,
                    "{other}"
                );
                let decoded =
                    DomainEvent::decode(event_type, event.schema_version(), other.as_bytes());
                assert_eq!(decoded.ok().as_ref(), Some(&event), "serde reads {other}");
            }
        }
        let mut escaped = frequent_payloads().swap_remove(0);
        if let DomainEvent::MessageReceived(m) = &mut escaped {
            m.message.body_text = "line one\nline \"two\"".into();
            m.message.form_fields = Vec::new();
        }
        assert_eq!(
            canonical_payload("MessageReceived", &escaped.encode()),
            None
        );
        assert_eq!(canonical_payload("CommentAdded", b"{}"), None);
        assert_eq!(canonical_payload("ConversationQueued", b"{}"), None);
        // A routing rule's decision is left to serde.
        let id = "00000000-0000-0000-0000-000000000001";
        let by_rule = format!(
            r#"{{"conversation_id":"{id}","inbox_id":"{id}","assignee":{{"kind":"user","id":"{id}"}},"reason":{{"kind":"rule","rule_id":"{id}"}}}}"#
        );
        assert_eq!(
            canonical_payload("ConversationAssigned", by_rule.as_bytes()),
            None
        );
    }
}
