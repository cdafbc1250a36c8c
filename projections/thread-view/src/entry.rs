//! Timeline rows: what a conversation's thread shows of each event, and the delivery outcomes of
//! its outbound messages, each packed into one BLOB (`timeline.entry`) with
//! [`switchboard_projector::pack`].
//!
//! A timeline is only ever read whole, one conversation at a time, so its rows need no columns
//! of their own beyond the conversation they belong to: one packed value instead of eighteen
//! mostly empty columns costs a fraction to write while a rebuild inserts one per event.
//!
//! A row starts with its kind (an [`EntryKind`]'s code, or [`DELIVERY`]), then the time and,
//! for entries, the actor; then a bit set of the optional fields present, then those fields in
//! the order of [`Fields`].

use chrono::{DateTime, Utc};
use proto_events::Actor;
use switchboard_projector::pack::{Unpack, optional, put_id, put_signed, put_str, put_varint};
use uuid::Uuid;

use crate::types::{AssigneeRef, Author, Delivery, EntryKind, Receipt, TimelineEntry};

/// The kind code of a delivery outcome's row.
const DELIVERY: u8 = 0x80;

/// The kind code of a Messenger receipt's row.
const RECEIPT: u8 = 0x81;

/// The kind code of the row saying a chat reply went out by e-mail.
const EMAILED: u8 = 0x82;

/// The optional fields of a timeline entry, as apply writes them.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub(crate) message_id: Option<Uuid>,
    pub(crate) comment_id: Option<Uuid>,
    pub(crate) author: Option<Author>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) body_text: Option<&'a str>,
    /// Users @mentioned; `None` but for comments.
    pub(crate) mentions: Option<&'a [Uuid]>,
    pub(crate) assignee: Option<AssigneeRef>,
    pub(crate) previous: Option<AssigneeRef>,
    /// Why, as JSON (see [`TimelineEntry::reason_json`]).
    pub(crate) reason: Option<String>,
    /// The message's files, as JSON (see [`TimelineEntry::files_json`]).
    pub(crate) files: Option<String>,
}

/// A timeline row, read back.
#[derive(Debug)]
pub(crate) enum Record {
    Entry(Box<TimelineEntry>),
    Delivery(Uuid, Delivery),
    Receipt(Receipt),
    /// A chat reply e-mailed to this address.
    Emailed(Uuid, String),
}

/// Writes an entry of `kind` at `at` (microseconds) by `actor` into `out`.
pub(crate) fn put_entry(
    out: &mut Vec<u8>,
    kind: EntryKind,
    at: i64,
    actor: &Actor,
    fields: &Fields<'_>,
) {
    out.push(kind.code());
    put_signed(out, at);
    put_actor(out, actor);
    let present = [
        fields.message_id.is_some(),
        fields.comment_id.is_some(),
        fields.author.is_some(),
        fields.subject.is_some(),
        fields.body_text.is_some(),
        fields.mentions.is_some(),
        fields.assignee.is_some(),
        fields.previous.is_some(),
        fields.reason.is_some(),
        fields.files.is_some(),
    ];
    let bits = present
        .iter()
        .enumerate()
        .fold(0u64, |bits, (i, &set)| bits | (u64::from(set) << i));
    put_varint(out, bits);
    if let Some(id) = fields.message_id {
        put_id(out, id.as_bytes());
    }
    if let Some(id) = fields.comment_id {
        put_id(out, id.as_bytes());
    }
    if let Some(author) = &fields.author {
        put_author(out, author);
    }
    if let Some(subject) = fields.subject {
        put_str(out, subject);
    }
    if let Some(body) = fields.body_text {
        put_str(out, body);
    }
    if let Some(mentions) = fields.mentions {
        put_varint(out, mentions.len() as u64);
        for id in mentions {
            put_id(out, id.as_bytes());
        }
    }
    for assignee in [&fields.assignee, &fields.previous].into_iter().flatten() {
        put_assignee(out, assignee);
    }
    if let Some(reason) = &fields.reason {
        put_str(out, reason);
    }
    if let Some(files) = &fields.files {
        put_str(out, files);
    }
}

/// What became of an outbound message, as [`put_delivery`] writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome<'a> {
    pub(crate) succeeded: bool,
    pub(crate) permanent: bool,
    pub(crate) reason: Option<&'a str>,
    pub(crate) provider_message_id: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
}

/// Writes a delivery outcome of message `message_id` at `at` into `out`.
pub(crate) fn put_delivery(out: &mut Vec<u8>, at: i64, message_id: Uuid, outcome: Outcome<'_>) {
    let Outcome {
        succeeded,
        permanent,
        reason,
        provider_message_id,
        status,
    } = outcome;
    out.push(DELIVERY);
    put_signed(out, at);
    put_id(out, message_id.as_bytes());
    let flags = u8::from(succeeded)
        | u8::from(permanent) << 1
        | u8::from(reason.is_some()) << 2
        | u8::from(provider_message_id.is_some()) << 3
        | u8::from(status.is_some()) << 4;
    out.push(flags);
    for text in [reason, provider_message_id, status].into_iter().flatten() {
        put_str(out, text);
    }
}

/// Writes a Messenger receipt recorded at `at` into `out`: read or delivered, its watermark
/// (microseconds) and the `mid`s it named.
pub(crate) fn put_receipt(out: &mut Vec<u8>, at: i64, read: bool, watermark: i64, mids: &[String]) {
    out.push(RECEIPT);
    put_signed(out, at);
    out.push(u8::from(read));
    put_signed(out, watermark);
    put_varint(out, mids.len() as u64);
    for mid in mids {
        put_str(out, mid);
    }
}

/// Writes that chat reply `message_id` went out by e-mail to `address`, at `at`.
pub(crate) fn put_emailed(out: &mut Vec<u8>, at: i64, message_id: Uuid, address: &str) {
    out.push(EMAILED);
    put_signed(out, at);
    put_id(out, message_id.as_bytes());
    put_str(out, address);
}

/// Reads a receipt's row after its code and time.
fn read_receipt(input: &mut Unpack<'_>, occurred_at: DateTime<Utc>) -> Option<Receipt> {
    let read = match input.byte()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let watermark = DateTime::from_timestamp_micros(input.signed()?)?;
    let count = input.varint()?;
    let mut mids = Vec::new();
    for _ in 0..count {
        mids.push(input.str()?.to_owned());
    }
    Some(Receipt {
        occurred_at,
        read,
        watermark,
        mids,
    })
}

/// Reads the row at `position`; `None` if `packed` is malformed.
pub(crate) fn read(position: u64, packed: &[u8]) -> Option<Record> {
    let mut input = Unpack::new(packed);
    let code = input.byte()?;
    let occurred_at = DateTime::from_timestamp_micros(input.signed()?)?;
    if code == EMAILED {
        let message_id = Uuid::from_bytes(input.id()?);
        let address = input.str()?.to_owned();
        return input
            .is_empty()
            .then_some(Record::Emailed(message_id, address));
    }
    if code == RECEIPT {
        let receipt = read_receipt(&mut input, occurred_at)?;
        return input.is_empty().then_some(Record::Receipt(receipt));
    }
    if code == DELIVERY {
        let message_id = Uuid::from_bytes(input.id()?);
        let flags = input.byte()?;
        if flags > 0b1_1111 {
            return None;
        }
        let mut text =
            |bit: u8| optional(flags & (1 << bit) != 0, || input.str().map(str::to_owned));
        let reason = text(2)?;
        let provider_message_id = text(3)?;
        let status = text(4)?;
        let delivery = Delivery {
            status,
            position,
            occurred_at,
            succeeded: flags & 1 != 0,
            reason,
            permanent: flags & 2 != 0,
            provider_message_id,
        };
        return input
            .is_empty()
            .then_some(Record::Delivery(message_id, delivery));
    }
    let kind = EntryKind::from_code(code)?;
    let (actor, fields) = read_entry_rest(&mut input)?;
    let entry = TimelineEntry {
        position,
        occurred_at,
        kind,
        actor_json: actor_json(&actor),
        message_id: fields.message_id,
        comment_id: fields.comment_id,
        author: fields.author,
        subject: fields.subject,
        body_text: fields.body_text,
        mentions: fields.mentions.unwrap_or_default(),
        assignee: fields.assignee,
        previous_assignee: fields.previous,
        reason_json: fields.reason,
        deliveries: Vec::new(),
        delivered_at: None,
        read_at: None,
        emailed_to: None,
        files_json: fields.files,
    };
    Some(Record::Entry(Box::new(entry)))
}

/// An entry row's optional fields as read back ([`Fields`], owned).
struct ReadFields {
    message_id: Option<Uuid>,
    comment_id: Option<Uuid>,
    author: Option<Author>,
    subject: Option<String>,
    body_text: Option<String>,
    mentions: Option<Vec<Uuid>>,
    assignee: Option<AssigneeRef>,
    previous: Option<AssigneeRef>,
    reason: Option<String>,
    files: Option<String>,
}

/// The rest of an entry row after its kind and time: the actor and the optional fields, as
/// [`put_entry`] writes them; `None` if malformed or if anything follows them.
fn read_entry_rest(input: &mut Unpack<'_>) -> Option<(Actor, ReadFields)> {
    let actor = read_actor(input)?;
    let bits = input.varint()?;
    if bits >= 1 << 10 {
        return None;
    }
    // Each optional field: `None` when absent, the read's failure when malformed.
    let has = |field: u32| bits & (1 << field) != 0;
    let id = |input: &mut Unpack<'_>| input.id().map(Uuid::from_bytes);
    let text = |input: &mut Unpack<'_>| input.str().map(str::to_owned);
    let message_id = optional(has(0), || id(input))?;
    let comment_id = optional(has(1), || id(input))?;
    let author = optional(has(2), || read_author(input))?;
    let subject = optional(has(3), || text(input))?;
    let body_text = optional(has(4), || text(input))?;
    let mentions = optional(has(5), || {
        let count = input.varint()?;
        (0..count).map(|_| id(input)).collect::<Option<Vec<_>>>()
    })?;
    let assignee = optional(has(6), || read_assignee(input))?;
    let previous = optional(has(7), || read_assignee(input))?;
    let reason = optional(has(8), || text(input))?;
    let files = optional(has(9), || text(input))?;
    let fields = ReadFields {
        message_id,
        comment_id,
        author,
        subject,
        body_text,
        mentions,
        assignee,
        previous,
        reason,
        files,
    };
    input.is_empty().then_some((actor, fields))
}

/// The entry row `packed` as an erased customer's message in a conversation that stays shows
/// it ([`crate::foreign`]): its author's address and name, subject, body and files blanked,
/// everything else (kind, time, actor, ids, filter reason) kept. `None` if `packed` is not a
/// well-formed entry row.
pub(crate) fn redacted(packed: &[u8]) -> Option<Vec<u8>> {
    let mut input = Unpack::new(packed);
    let kind = EntryKind::from_code(input.byte()?)?;
    let at = input.signed()?;
    let (actor, read) = read_entry_rest(&mut input)?;
    let author = read.author.map(|author| match author {
        Author::Contact { contact_id, .. } => Author::Contact {
            contact_id,
            address: String::new(),
            name: None,
        },
        other => other,
    });
    let fields = Fields {
        message_id: read.message_id,
        comment_id: read.comment_id,
        author,
        subject: None,
        body_text: read.body_text.as_ref().map(|_| ""),
        mentions: read.mentions.as_deref(),
        assignee: read.assignee,
        previous: read.previous,
        reason: read.reason,
        files: None,
    };
    let mut out = Vec::with_capacity(packed.len());
    put_entry(&mut out, kind, at, &actor, &fields);
    Some(out)
}

/// The actor as JSON, exactly as serde writes it.
fn actor_json(actor: &Actor) -> String {
    let (kind, id) = match actor {
        Actor::User { id } => ("user", id),
        Actor::Contact { id } => ("contact", id),
        Actor::Bot { id } => ("bot", id),
        Actor::Channel { id } => ("channel", id),
        Actor::System { component } => {
            let component = serde_json::Value::from(component.as_str());
            return format!(r#"{{"kind":"system","component":{component}}}"#);
        }
    };
    format!(r#"{{"kind":"{kind}","id":"{id}"}}"#)
}

fn put_actor(out: &mut Vec<u8>, actor: &Actor) {
    let (code, id) = match actor {
        Actor::User { id } => (0, id),
        Actor::Contact { id } => (1, id),
        Actor::Bot { id } => (2, id),
        Actor::Channel { id } => (3, id),
        Actor::System { component } => {
            out.push(4);
            put_str(out, component);
            return;
        }
    };
    out.push(code);
    put_id(out, id.as_bytes());
}

fn read_actor(input: &mut Unpack<'_>) -> Option<Actor> {
    let code = input.byte()?;
    if code == 4 {
        let component = input.str()?.to_owned();
        return Some(Actor::System { component });
    }
    let id = Uuid::from_bytes(input.id()?);
    Some(match code {
        0 => Actor::User { id },
        1 => Actor::Contact { id },
        2 => Actor::Bot { id },
        3 => Actor::Channel { id },
        _ => return None,
    })
}

fn put_author(out: &mut Vec<u8>, author: &Author) {
    match author {
        Author::Contact {
            contact_id,
            address,
            name,
        } => {
            out.push(0);
            out.push(u8::from(contact_id.is_some()) | u8::from(name.is_some()) << 1);
            if let Some(id) = contact_id {
                put_id(out, id.as_bytes());
            }
            put_str(out, address);
            if let Some(name) = name {
                put_str(out, name);
            }
        }
        Author::User(id) => {
            out.push(1);
            put_id(out, id.as_bytes());
        }
        Author::Bot(id) => {
            out.push(2);
            put_id(out, id.as_bytes());
        }
        Author::Automation(name) => {
            out.push(3);
            put_str(out, name);
        }
    }
}

fn read_author(input: &mut Unpack<'_>) -> Option<Author> {
    Some(match input.byte()? {
        0 => {
            let flags = input.byte()?;
            if flags > 0b11 {
                return None;
            }
            let contact_id = optional(flags & 1 != 0, || input.id().map(Uuid::from_bytes))?;
            let address = input.str()?.to_owned();
            let name = optional(flags & 2 != 0, || input.str().map(str::to_owned))?;
            Author::Contact {
                contact_id,
                address,
                name,
            }
        }
        1 => Author::User(Uuid::from_bytes(input.id()?)),
        2 => Author::Bot(Uuid::from_bytes(input.id()?)),
        3 => Author::Automation(input.str()?.to_owned()),
        _ => return None,
    })
}

fn put_assignee(out: &mut Vec<u8>, assignee: &AssigneeRef) {
    let (code, id) = match assignee {
        AssigneeRef::User(id) => (0, id),
        AssigneeRef::Team(id) => (1, id),
        AssigneeRef::Bot(id) => (2, id),
    };
    out.push(code);
    put_id(out, id.as_bytes());
}

fn read_assignee(input: &mut Unpack<'_>) -> Option<AssigneeRef> {
    let code = input.byte()?;
    let id = Uuid::from_bytes(input.id()?);
    Some(match code {
        0 => AssigneeRef::User(id),
        1 => AssigneeRef::Team(id),
        2 => AssigneeRef::Bot(id),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn entry(record: Option<Record>) -> TimelineEntry {
        match record {
            Some(Record::Entry(entry)) => *entry,
            other => panic!("not an entry: {other:?}"),
        }
    }

    #[test]
    fn every_field_reads_back_as_written() {
        let mentions = [id(7), id(8)];
        let fields = Fields {
            message_id: Some(id(1)),
            comment_id: Some(id(2)),
            author: Some(Author::Contact {
                contact_id: Some(id(3)),
                address: "ada@example.org".into(),
                name: Some("Ada".into()),
            }),
            subject: Some("Seats"),
            body_text: Some("How much for 20 seats?"),
            mentions: Some(&mentions),
            assignee: Some(AssigneeRef::Team(id(4))),
            previous: Some(AssigneeRef::Bot(id(5))),
            reason: Some(r#"{"kind":"manual"}"#.into()),
            files: Some(r#"{"attachments":[],"raw":null}"#.into()),
        };
        let actor = Actor::System {
            component: "router \"east\"".into(),
        };
        let mut out = Vec::new();
        put_entry(&mut out, EntryKind::Comment, -1_000_001, &actor, &fields);
        let got = entry(read(42, &out));
        assert_eq!(got.position, 42);
        assert_eq!(
            got.occurred_at,
            DateTime::from_timestamp_micros(-1_000_001).unwrap()
        );
        assert_eq!(got.kind, EntryKind::Comment);
        assert_eq!(got.actor_json, serde_json::to_string(&actor).unwrap());
        assert_eq!(got.message_id, fields.message_id);
        assert_eq!(got.comment_id, fields.comment_id);
        assert_eq!(got.author, fields.author);
        assert_eq!(got.subject.as_deref(), fields.subject);
        assert_eq!(got.body_text.as_deref(), fields.body_text);
        assert_eq!(got.mentions, mentions);
        assert_eq!(got.assignee, fields.assignee);
        assert_eq!(got.previous_assignee, fields.previous);
        assert_eq!(got.reason_json, fields.reason);
        assert_eq!(got.files_json, fields.files);

        let mut out = Vec::new();
        let bare = Fields::default();
        let user = Actor::User { id: id(9) };
        put_entry(&mut out, EntryKind::Closed, 5, &user, &bare);
        let got = entry(read(43, &out));
        assert_eq!(got.actor_json, serde_json::to_string(&user).unwrap());
        assert_eq!(
            (got.message_id, got.author, got.body_text),
            (None, None, None)
        );
        assert!(got.mentions.is_empty());
    }

    #[test]
    fn actors_are_written_as_serde_writes_them() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        for actor in [
            Actor::User { id },
            Actor::Contact { id },
            Actor::Bot { id },
            Actor::Channel { id },
            Actor::System {
                component: "router \"east\"\n".into(),
            },
        ] {
            assert_eq!(actor_json(&actor), serde_json::to_string(&actor).unwrap());
        }
    }

    #[test]
    fn kinds_read_back_from_their_codes() {
        for code in 0..=u8::MAX {
            if let Some(kind) = EntryKind::from_code(code) {
                assert_eq!(kind.code(), code);
            }
        }
        assert_eq!(
            EntryKind::from_code(EntryKind::Shared.code()),
            Some(EntryKind::Shared)
        );
        assert!(EntryKind::from_code(DELIVERY).is_none());
        assert!(EntryKind::from_code(RECEIPT).is_none());
        assert!(EntryKind::from_code(EMAILED).is_none());
    }

    #[test]
    fn deliveries_read_back_as_written() {
        let mut out = Vec::new();
        let outcome = Outcome {
            succeeded: false,
            permanent: true,
            reason: Some("mailbox full"),
            provider_message_id: None,
            status: Some("552 5.2.2"),
        };
        put_delivery(&mut out, 7, id(1), outcome);
        match read(9, &out) {
            Some(Record::Delivery(message, delivery)) => {
                assert_eq!(message, id(1));
                assert_eq!(delivery.position, 9);
                assert!(!delivery.succeeded && delivery.permanent);
                assert_eq!(delivery.reason.as_deref(), Some("mailbox full"));
                assert_eq!(delivery.provider_message_id, None);
                assert_eq!(delivery.status.as_deref(), Some("552 5.2.2"));
            }
            other => panic!("not a delivery: {other:?}"),
        }
    }

    #[test]
    fn receipts_read_back_as_written() {
        let mut out = Vec::new();
        let mids = ["m_1".to_owned(), "m_2".to_owned()];
        put_receipt(&mut out, 7, true, 5_000_000, &mids);
        match read(9, &out) {
            Some(Record::Receipt(receipt)) => {
                assert!(receipt.read);
                assert_eq!(receipt.occurred_at.timestamp_micros(), 7);
                assert_eq!(receipt.watermark.timestamp_micros(), 5_000_000);
                assert_eq!(receipt.mids, mids);
            }
            other => panic!("not a receipt: {other:?}"),
        }
        for cut in 0..out.len() {
            assert!(read(9, &out[..cut]).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn emailed_rows_read_back_as_written() {
        let mut out = Vec::new();
        put_emailed(&mut out, 7, id(1), "visitor@prospect.test");
        match read(9, &out) {
            Some(Record::Emailed(message, address)) => {
                assert_eq!(message, id(1));
                assert_eq!(address, "visitor@prospect.test");
            }
            other => panic!("not an e-mailed row: {other:?}"),
        }
    }

    #[test]
    fn damaged_rows_do_not_read() {
        let mut out = Vec::new();
        let fields = Fields {
            body_text: Some("hello"),
            ..Fields::default()
        };
        put_entry(
            &mut out,
            EntryKind::InboundMessage,
            1,
            &Actor::User { id: id(1) },
            &fields,
        );
        for cut in 0..out.len() {
            assert!(read(1, &out[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = out.clone();
        longer.push(0);
        assert!(read(1, &longer).is_none());
        let mut unknown_kind = out;
        unknown_kind[0] = 0x7f;
        assert!(read(1, &unknown_kind).is_none());
    }
}
