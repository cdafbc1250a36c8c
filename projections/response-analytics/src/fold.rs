//! The fold: how each event changes the read model. Only the event and the rows it touches
//! decide the outcome, so building in batches or at once gives the same tables.
//!
//! A batch keeps the rows its events keep changing in memory ([`Batch`]): each conversation's
//! running state, its cycles with their bots, and the teams of the agents measured. Each is read
//! at most once per batch and written back once at its end ([`Batch::flush`]), with the
//! measurements made, in the order of their ids; replies are appends and go straight to their
//! table.

use proto_events::event::{
    Assignee, BusinessHoursSet, ChannelKind, ConversationStarted, ConversationVisibility,
    ReplyAuthor,
};
use proto_events::{DomainEvent, Envelope};
use rusqlite::{OptionalExtension, Transaction, params};
use switchboard_projector::{ApplyError, BatchMap, BatchRows, BatchTx, Event, EventError};
use uuid::Uuid;

use crate::query::Metric;

/// The running state of one conversation: its row of `conversations`.
#[derive(Debug, Clone)]
struct Conv {
    /// The conversation id, the key of the batch's maps.
    key: Uuid,
    /// The position of the event that started it: its measurements' ids start from it
    /// ([`measurement_id`]).
    first_position: i64,
    inbox_id: String,
    channel_id: String,
    channel_kind: String,
    private_owner: Option<String>,
    status: &'static str,
    cycle_no: i64,
    assignee_kind: Option<String>,
    assignee_id: Option<String>,
    pending_user_id: Option<String>,
    pending_since: Option<i64>,
    run_start: Option<i64>,
    next_seq: i64,
}

/// One row of `cycles`, with the rows of `bot_cycles` of the same cycle.
#[derive(Debug, Clone)]
struct Cycle {
    started_at: i64,
    closed_at: Option<i64>,
    first_inbound_at: Option<i64>,
    handoff_at: Option<i64>,
    fr_start: Option<i64>,
    first_response_at: Option<i64>,
    first_responder: Option<String>,
    human_replies: i64,
    bot_replies: i64,
    bots: Vec<BotCycle>,
}

/// One row of `bot_cycles`.
#[derive(Debug, Clone)]
struct BotCycle {
    bot_id: String,
    inbox_id: String,
    channel_id: String,
    channel_kind: String,
    took_part_at: i64,
    first_reply_at: Option<i64>,
    handed_off_at: Option<i64>,
    human_replied: bool,
    closed_at: Option<i64>,
}

/// What a batch has read or changed, written back by [`Batch::flush`].
#[derive(Debug, Default)]
struct Batch {
    convs: BatchRows<Uuid, Conv>,
    cycles: BatchRows<(Uuid, i64), Cycle>,
    /// `teams_of` per user; emptied when membership changes.
    teams: BatchMap<String, String>,
    /// The measurements made, inserted in the order of their ids when the batch ends: once
    /// conversations interleave, each lands inside the table rather than at its end, and in
    /// id order the inserts walk its pages once instead of jumping between them.
    measurements: Vec<Measured>,
}

/// The stored state of conversation `id`, if any.
fn load_conv(tx: &BatchTx<'_>, id: Uuid) -> rusqlite::Result<Option<Conv>> {
    tx.query_row_cached(
        "SELECT inbox_id, channel_id, channel_kind, private_owner, status,
                     cycle_no, assignee_kind, assignee_id, pending_user_id, pending_since,
                     run_start, next_seq, first_position
                 FROM conversations WHERE conversation_id = ?1",
        [id.as_bytes()],
        |r| {
            Ok(Conv {
                key: id,
                inbox_id: r.get(0)?,
                channel_id: r.get(1)?,
                channel_kind: r.get(2)?,
                private_owner: r.get(3)?,
                status: match r.get_ref(4)?.as_str()? {
                    "closed" => "closed",
                    "erased" => "erased",
                    _ => "open",
                },
                cycle_no: r.get(5)?,
                assignee_kind: r.get(6)?,
                assignee_id: r.get(7)?,
                pending_user_id: r.get(8)?,
                pending_since: r.get(9)?,
                run_start: r.get(10)?,
                next_seq: r.get(11)?,
                first_position: r.get(12)?,
            })
        },
    )
    .optional()
}

/// The stored cycle `key` of a conversation, with its bots' part in it, if any.
fn load_cycle(tx: &BatchTx<'_>, key: (Uuid, i64)) -> rusqlite::Result<Option<Cycle>> {
    let id = key.0.as_bytes();
    let mut stored = tx
        .query_row_cached(
            "SELECT started_at, closed_at, first_inbound_at, handoff_at, fr_start,
                     first_response_at, first_responder, human_replies, bot_replies
                 FROM cycles WHERE conversation_id = ?1 AND cycle_no = ?2",
            params![id, key.1],
            |r| {
                Ok(Cycle {
                    started_at: r.get(0)?,
                    closed_at: r.get(1)?,
                    first_inbound_at: r.get(2)?,
                    handoff_at: r.get(3)?,
                    fr_start: r.get(4)?,
                    first_response_at: r.get(5)?,
                    first_responder: r.get(6)?,
                    human_replies: r.get(7)?,
                    bot_replies: r.get(8)?,
                    bots: Vec::new(),
                })
            },
        )
        .optional()?;
    if let Some(cycle) = &mut stored {
        cycle.bots = tx.with_statement(
            "SELECT bot_id, inbox_id, channel_id, channel_kind, took_part_at, first_reply_at,
                     handed_off_at, human_replied, closed_at
                 FROM bot_cycles WHERE conversation_id = ?1 AND cycle_no = ?2 ORDER BY bot_id",
            |stmt| {
                stmt.query_map(params![id, key.1], |r| {
                    Ok(BotCycle {
                        bot_id: r.get(0)?,
                        inbox_id: r.get(1)?,
                        channel_id: r.get(2)?,
                        channel_kind: r.get(3)?,
                        took_part_at: r.get(4)?,
                        first_reply_at: r.get(5)?,
                        handed_off_at: r.get(6)?,
                        human_replied: r.get(7)?,
                        closed_at: r.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()
            },
        )?;
    }
    Ok(stored)
}

/// The stored spelling of a channel kind.
pub(crate) fn kind_str(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Email => "email",
        ChannelKind::Chat => "chat",
        ChannelKind::Messenger => "messenger",
        ChannelKind::Form => "form",
    }
}

/// Applies a batch of events in log order.
pub(crate) fn apply_batch(tx: &Transaction<'_>, events: &[Event<'_>]) -> Result<(), EventError> {
    let tx = &BatchTx::new(tx);
    let mut batch = Batch::default();
    for (index, event) in events.iter().enumerate() {
        apply(tx, &mut batch, event.envelope).map_err(|source| EventError { index, source })?;
    }
    batch.flush(tx).map_err(|e| EventError {
        index: events.len().saturating_sub(1),
        source: e.into(),
    })
}

/// The event's position, as SQLite stores it.
fn position(event: &Envelope) -> Result<i64, ApplyError> {
    i64::try_from(event.position)
        .map_err(|_| ApplyError::Inconsistent(format!("position {} too large", event.position)))
}

/// Applies one event.
fn apply(tx: &BatchTx<'_>, b: &mut Batch, event: &Envelope) -> Result<(), ApplyError> {
    let at = event.metadata.occurred_at.timestamp_micros();
    match &event.payload {
        DomainEvent::ConversationStarted(e) => started(tx, b, e, position(event)?, at)?,
        DomainEvent::MessageReceived(e) => {
            if let Some(mut conv) = b.take_conv(tx, e.conversation_id)? {
                let done = inbound(tx, b, &mut conv, at);
                b.put_conv(e.conversation_id, conv);
                done?;
            }
        }
        DomainEvent::ReplySent(e) => {
            if let Some(mut conv) = b.take_conv(tx, e.conversation_id)? {
                let done = match &e.author {
                    ReplyAuthor::User { id } => {
                        let reply = (position(event)?, e.message_id);
                        human_reply(tx, b, &mut conv, *id, reply, at)
                    }
                    ReplyAuthor::Bot { id } => bot_reply(tx, b, &mut conv, *id, at),
                    ReplyAuthor::Automation { .. } => Ok(()),
                };
                b.put_conv(e.conversation_id, conv);
                done?;
            }
        }
        DomainEvent::ConversationAssigned(e) => {
            with_conv(tx, b, e.conversation_id, |tx, b, conv| {
                assign(tx, b, conv, Some(&e.assignee), at)
            })?;
        }
        DomainEvent::ConversationReassigned(e) => {
            with_conv(tx, b, e.conversation_id, |tx, b, conv| {
                assign(tx, b, conv, Some(&e.to), at)
            })?;
        }
        DomainEvent::ConversationUnassigned(e) => {
            with_conv(tx, b, e.conversation_id, |tx, b, conv| {
                assign(tx, b, conv, None, at)
            })?;
        }
        DomainEvent::BotHandedOff(e) => {
            with_conv(tx, b, e.conversation_id, |tx, b, conv| {
                handoff(tx, b, conv, e.bot_id, at)
            })?;
        }
        DomainEvent::ConversationClosed(e) => {
            with_conv(tx, b, e.conversation_id, |tx, b, conv| {
                closed(tx, b, conv, at)
            })?;
        }
        DomainEvent::ConversationReopened(e) => {
            with_conv(tx, b, e.conversation_id, |tx, b, conv| {
                conv.cycle_no += 1;
                conv.run_start = None;
                let key = (e.conversation_id, conv.cycle_no);
                let slot = b.cycle_slot(tx, key)?;
                if slot.0.is_some() {
                    return Err(ApplyError::Inconsistent(format!(
                        "cycle {} of conversation {} already exists",
                        key.1, key.0
                    )));
                }
                *slot = (Some(Cycle::new(at)), true);
                conv.status = "open";
                Ok(())
            })?;
        }
        DomainEvent::ConversationShared(e) => {
            if let Some(conv) = b.conv(tx, e.conversation_id)? {
                conv.private_owner = None;
            }
        }
        // Its numbers stay (they hold nothing of the person); it will never close, so it
        // leaves the live figures, and nothing more waits in it.
        DomainEvent::ConversationErased(e) => {
            if let Some(conv) = b.conv(tx, e.conversation_id)? {
                conv.status = "erased";
                conv.run_start = None;
                conv.pending_user_id = None;
                conv.pending_since = None;
            }
        }
        DomainEvent::TeamMemberAdded(e) => {
            b.teams.clear();
            tx.execute_cached(
                "INSERT OR IGNORE INTO team_members (team_id, user_id) VALUES (?1, ?2)",
                params![e.team_id.to_string(), e.user_id.to_string()],
            )?;
        }
        DomainEvent::TeamMemberRemoved(e) => {
            b.teams.clear();
            tx.execute_cached(
                "DELETE FROM team_members WHERE team_id = ?1 AND user_id = ?2",
                params![e.team_id.to_string(), e.user_id.to_string()],
            )?;
        }
        DomainEvent::BusinessHoursSet(e) => business_hours_set(tx, e)?,
        _ => {}
    }
    Ok(())
}

/// Runs `f` on the state of conversation `id`, if it exists.
fn with_conv(
    tx: &BatchTx<'_>,
    b: &mut Batch,
    id: Uuid,
    f: impl FnOnce(&BatchTx<'_>, &mut Batch, &mut Conv) -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    if let Some(mut conv) = b.take_conv(tx, id)? {
        let done = f(tx, b, &mut conv);
        b.put_conv(id, conv);
        done?;
    }
    Ok(())
}

impl Cycle {
    fn new(started_at: i64) -> Cycle {
        Cycle {
            started_at,
            closed_at: None,
            first_inbound_at: None,
            handoff_at: None,
            fr_start: None,
            first_response_at: None,
            first_responder: None,
            human_replies: 0,
            bot_replies: 0,
            bots: Vec::new(),
        }
    }
}

impl Batch {
    fn conv_slot(
        &mut self,
        tx: &BatchTx<'_>,
        id: Uuid,
    ) -> rusqlite::Result<&mut (Option<Conv>, bool)> {
        self.convs.slot(id, |id| load_conv(tx, *id))
    }

    /// The state of conversation `id`, marked changed; `None` if it does not exist.
    fn conv(&mut self, tx: &BatchTx<'_>, id: Uuid) -> rusqlite::Result<Option<&mut Conv>> {
        self.convs.get(id, |id| load_conv(tx, *id))
    }

    /// Takes the state of conversation `id` out of the batch, to change it beside other rows;
    /// [`Batch::put_conv`] gives it back.
    fn take_conv(&mut self, tx: &BatchTx<'_>, id: Uuid) -> rusqlite::Result<Option<Conv>> {
        Ok(self.conv_slot(tx, id)?.0.take())
    }

    fn put_conv(&mut self, id: Uuid, conv: Conv) {
        self.convs.put(id, conv);
    }

    fn cycle_slot(
        &mut self,
        tx: &BatchTx<'_>,
        key: (Uuid, i64),
    ) -> rusqlite::Result<&mut (Option<Cycle>, bool)> {
        self.cycles.slot(key, |key| load_cycle(tx, *key))
    }

    /// The current cycle of `conv`, marked changed; `None` if it has no row.
    fn cycle(&mut self, tx: &BatchTx<'_>, conv: &Conv) -> Result<Option<&mut Cycle>, ApplyError> {
        let key = (conv.key, conv.cycle_no);
        Ok(self.cycles.get(key, |key| load_cycle(tx, *key))?)
    }

    /// The current cycle of `conv`; fails if it has no row.
    fn existing_cycle(&mut self, tx: &BatchTx<'_>, conv: &Conv) -> Result<&mut Cycle, ApplyError> {
        let (id, cycle_no) = (conv.key, conv.cycle_no);
        self.cycle(tx, conv)?.ok_or_else(|| {
            ApplyError::Inconsistent(format!("conversation {id} has no cycle {cycle_no}"))
        })
    }

    /// The teams of `user_id` now (in log order), as `,t1,t2,` for `instr` filtering.
    fn teams_of(&mut self, tx: &BatchTx<'_>, user_id: Option<&str>) -> rusqlite::Result<String> {
        let Some(user_id) = user_id else {
            return Ok(String::new());
        };
        if let Some(teams) = self.teams.get(user_id) {
            return Ok(teams.clone());
        }
        let mut stmt = tx.prepare_cached(
            "SELECT team_id FROM team_members WHERE user_id = ?1 ORDER BY team_id",
        )?;
        let teams: Vec<String> = stmt
            .query_map([user_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let teams = if teams.is_empty() {
            String::new()
        } else {
            format!(",{},", teams.join(","))
        };
        self.teams.insert(user_id.to_owned(), teams.clone());
        Ok(teams)
    }

    /// Writes every changed conversation, cycle and bot row back, and the measurements made.
    fn flush(mut self, tx: &BatchTx<'_>) -> rusqlite::Result<()> {
        self.measurements.sort_unstable_by_key(|m| m.id);
        for m in &self.measurements {
            tx.execute_cached(
                "INSERT INTO measurements (id, conversation_id, seq, cycle_no, metric, agent_id,
                     bot_id, teams, start_at, end_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    m.id,
                    m.conversation_id.as_bytes(),
                    m.seq,
                    m.cycle_no,
                    m.metric.code(),
                    m.agent_id,
                    m.bot_id,
                    m.teams,
                    m.start,
                    m.end
                ],
            )?;
        }
        for (_, c) in self.convs.take_changed() {
            tx.execute_cached(
                "INSERT INTO conversations (conversation_id, inbox_id, channel_id, channel_kind,
                     private_owner, status, cycle_no, assignee_kind, assignee_id, pending_user_id,
                     pending_since, run_start, next_seq, first_position)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (conversation_id) DO UPDATE SET
                     inbox_id = excluded.inbox_id, channel_id = excluded.channel_id,
                     channel_kind = excluded.channel_kind, private_owner = excluded.private_owner,
                     status = excluded.status, cycle_no = excluded.cycle_no,
                     assignee_kind = excluded.assignee_kind, assignee_id = excluded.assignee_id,
                     pending_user_id = excluded.pending_user_id,
                     pending_since = excluded.pending_since, run_start = excluded.run_start,
                     next_seq = excluded.next_seq",
                params![
                    c.key.as_bytes(),
                    c.inbox_id,
                    c.channel_id,
                    c.channel_kind,
                    c.private_owner,
                    c.status,
                    c.cycle_no,
                    c.assignee_kind,
                    c.assignee_id,
                    c.pending_user_id,
                    c.pending_since,
                    c.run_start,
                    c.next_seq,
                    c.first_position,
                ],
            )?;
        }
        for (key, c) in self.cycles.take_changed() {
            let id = key.0.as_bytes();
            tx.execute_cached(
                "INSERT INTO cycles (conversation_id, cycle_no, started_at, closed_at,
                     first_inbound_at, handoff_at, fr_start, first_response_at, first_responder,
                     human_replies, bot_replies)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (conversation_id, cycle_no) DO UPDATE SET
                     started_at = excluded.started_at, closed_at = excluded.closed_at,
                     first_inbound_at = excluded.first_inbound_at,
                     handoff_at = excluded.handoff_at, fr_start = excluded.fr_start,
                     first_response_at = excluded.first_response_at,
                     first_responder = excluded.first_responder,
                     human_replies = excluded.human_replies, bot_replies = excluded.bot_replies",
                params![
                    id,
                    key.1,
                    c.started_at,
                    c.closed_at,
                    c.first_inbound_at,
                    c.handoff_at,
                    c.fr_start,
                    c.first_response_at,
                    c.first_responder,
                    c.human_replies,
                    c.bot_replies,
                ],
            )?;
            for bot in &c.bots {
                tx.execute_cached(
                    "INSERT INTO bot_cycles (conversation_id, cycle_no, bot_id, inbox_id, channel_id,
                         channel_kind, took_part_at, first_reply_at, handed_off_at, human_replied,
                         closed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (conversation_id, cycle_no, bot_id) DO UPDATE SET
                         inbox_id = excluded.inbox_id, channel_id = excluded.channel_id,
                         channel_kind = excluded.channel_kind,
                         took_part_at = excluded.took_part_at,
                         first_reply_at = excluded.first_reply_at,
                         handed_off_at = excluded.handed_off_at,
                         human_replied = excluded.human_replied, closed_at = excluded.closed_at",
                    params![
                        id,
                        key.1,
                        bot.bot_id,
                        bot.inbox_id,
                        bot.channel_id,
                        bot.channel_kind,
                        bot.took_part_at,
                        bot.first_reply_at,
                        bot.handed_off_at,
                        bot.human_replied,
                        bot.closed_at,
                    ],
                )?;
            }
        }
        Ok(())
    }
}

fn started(
    tx: &BatchTx<'_>,
    b: &mut Batch,
    e: &ConversationStarted,
    position: i64,
    at: i64,
) -> Result<(), ApplyError> {
    let slot = b.conv_slot(tx, e.conversation_id)?;
    // A conversation starts once; a second start changes nothing.
    if slot.0.is_some() {
        return Ok(());
    }
    let owner = match &e.visibility {
        ConversationVisibility::Shared => None,
        ConversationVisibility::Private { owner_user_id } => Some(owner_user_id.to_string()),
    };
    *slot = (
        Some(Conv {
            key: e.conversation_id,
            first_position: position,
            inbox_id: e.inbox_id.to_string(),
            channel_id: e.channel_id.to_string(),
            channel_kind: kind_str(e.channel_kind).to_owned(),
            private_owner: owner,
            status: "open",
            cycle_no: 1,
            assignee_kind: None,
            assignee_id: None,
            pending_user_id: None,
            pending_since: None,
            run_start: None,
            next_seq: 0,
        }),
        true,
    );
    let cycle = b.cycle_slot(tx, (e.conversation_id, 1))?;
    if cycle.0.is_some() {
        return Err(ApplyError::Inconsistent(format!(
            "conversation {} has a cycle before it started",
            e.conversation_id
        )));
    }
    *cycle = (Some(Cycle::new(at)), true);
    Ok(())
}

/// Records one completed measured interval.
#[allow(clippy::too_many_arguments)]
fn measure(
    tx: &BatchTx<'_>,
    b: &mut Batch,
    conv: &mut Conv,
    metric: Metric,
    agent_id: Option<&str>,
    bot_id: Option<&str>,
    start: i64,
    end: i64,
) -> Result<(), ApplyError> {
    let seq = conv.next_seq;
    let id = measurement_id(conv.first_position, seq).ok_or_else(|| {
        ApplyError::Inconsistent(format!(
            "conversation {} has too many measurements ({seq}) or starts too late",
            conv.key
        ))
    })?;
    conv.next_seq += 1;
    let teams = b.teams_of(tx, agent_id)?;
    b.measurements.push(Measured {
        id,
        conversation_id: conv.key,
        seq,
        cycle_no: conv.cycle_no,
        metric,
        agent_id: agent_id.map(str::to_owned),
        bot_id: bot_id.map(str::to_owned),
        teams,
        start,
        end,
    });
    Ok(())
}

/// A measurement made in the batch, inserted when it ends ([`Batch::flush`]).
#[derive(Debug)]
struct Measured {
    id: i64,
    conversation_id: Uuid,
    seq: i64,
    cycle_no: i64,
    metric: Metric,
    agent_id: Option<String>,
    bot_id: Option<String>,
    teams: String,
    start: i64,
    end: i64,
}

/// How many bits of a measurement's id number it within its conversation.
pub(crate) const SEQ_BITS: u32 = 23;

/// The id of measurement `seq` of the conversation started at `first_position`: a
/// conversation's measurements have consecutive ids, in a range of their own
/// ([`measurement_ids`]), so the table keeps them together, in order, without an index of its
/// own. `None` past 2^23 measurements or a start past position 2^40.
pub(crate) fn measurement_id(first_position: i64, seq: i64) -> Option<i64> {
    let first = measurement_ids(first_position)?;
    (0..1 << SEQ_BITS)
        .contains(&seq)
        .then(|| first.start() + seq)
}

/// The range of ids of the measurements of the conversation started at `first_position`;
/// `None` for a start past position 2^40.
pub(crate) fn measurement_ids(first_position: i64) -> Option<std::ops::RangeInclusive<i64>> {
    (0..1 << (63 - SEQ_BITS))
        .contains(&first_position)
        .then(|| {
            let first = first_position << SEQ_BITS;
            first..=first + ((1 << SEQ_BITS) - 1)
        })
}
fn inbound(tx: &BatchTx<'_>, b: &mut Batch, conv: &mut Conv, at: i64) -> Result<(), ApplyError> {
    if let Some(cycle) = b.cycle(tx, conv)? {
        cycle.first_inbound_at.get_or_insert(at);
        if cycle.fr_start.is_none() && cycle.first_response_at.is_none() {
            cycle.fr_start = Some(at);
        }
    }
    conv.run_start.get_or_insert(at);
    Ok(())
}

fn human_reply(
    tx: &BatchTx<'_>,
    b: &mut Batch,
    conv: &mut Conv,
    user: Uuid,
    (position, message_id): (i64, Uuid),
    at: i64,
) -> Result<(), ApplyError> {
    let user = user.to_string();
    let teams = b.teams_of(tx, Some(&user))?;
    tx.execute_cached(
        "INSERT INTO replies (position, message_id, conversation_id, cycle_no, inbox_id,
             channel_id, channel_kind, agent_id, teams, sent_at)
         VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            message_id.as_bytes(),
            conv.key.as_bytes(),
            conv.cycle_no,
            conv.inbox_id,
            conv.channel_id,
            conv.channel_kind,
            user,
            teams,
            at,
            position
        ],
    )?;
    let cycle = b.existing_cycle(tx, conv)?;
    cycle.human_replies += 1;
    // A human reply ends the bots' unanswered stretch in this cycle.
    for bot in &mut cycle.bots {
        bot.human_replied = true;
    }
    let first_response = match (cycle.fr_start, cycle.first_response_at) {
        (Some(start), None) => {
            cycle.first_response_at = Some(at);
            cycle.first_responder = Some(user.clone());
            Some(start)
        }
        _ => None,
    };
    if let Some(start) = first_response {
        measure(
            tx,
            b,
            conv,
            Metric::FirstResponse,
            Some(&user),
            None,
            start,
            at,
        )?;
    }
    if let Some(start) = conv.run_start.take() {
        measure(
            tx,
            b,
            conv,
            Metric::MessageResponse,
            Some(&user),
            None,
            start,
            at,
        )?;
    }
    if conv.pending_user_id.as_deref() == Some(user.as_str())
        && let Some(since) = conv.pending_since
    {
        measure(
            tx,
            b,
            conv,
            Metric::AgentResponse,
            Some(&user),
            None,
            since,
            at,
        )?;
        conv.pending_user_id = None;
        conv.pending_since = None;
    }
    Ok(())
}

/// The row of `bot` in the current cycle, created (taking part at `at`) the first time the bot
/// takes part in it.
fn bot_in_cycle<'b>(
    tx: &BatchTx<'_>,
    b: &'b mut Batch,
    conv: &Conv,
    bot: &str,
    at: i64,
) -> Result<&'b mut BotCycle, ApplyError> {
    let cycle = b.existing_cycle(tx, conv)?;
    let index = match cycle.bots.iter().position(|c| c.bot_id == bot) {
        Some(index) => index,
        None => {
            cycle.bots.push(BotCycle {
                bot_id: bot.to_owned(),
                inbox_id: conv.inbox_id.clone(),
                channel_id: conv.channel_id.clone(),
                channel_kind: conv.channel_kind.clone(),
                took_part_at: at,
                first_reply_at: None,
                handed_off_at: None,
                human_replied: false,
                closed_at: None,
            });
            cycle.bots.len() - 1
        }
    };
    Ok(&mut cycle.bots[index])
}

fn bot_reply(
    tx: &BatchTx<'_>,
    b: &mut Batch,
    conv: &mut Conv,
    bot: Uuid,
    at: i64,
) -> Result<(), ApplyError> {
    let bot = bot.to_string();
    let first_reply = {
        let row = bot_in_cycle(tx, b, conv, &bot, at)?;
        let first = row.first_reply_at.is_none();
        if first {
            row.first_reply_at = Some(at);
        }
        first
    };
    let cycle = b.existing_cycle(tx, conv)?;
    cycle.bot_replies += 1;
    let first_inbound = cycle.first_inbound_at;
    // A greeting before any customer message answers nothing: not measured.
    if first_reply && let Some(start) = first_inbound {
        measure(
            tx,
            b,
            conv,
            Metric::BotFirstResponse,
            None,
            Some(&bot),
            start,
            at,
        )?;
    }
    Ok(())
}

fn assign(
    tx: &BatchTx<'_>,
    b: &mut Batch,
    conv: &mut Conv,
    to: Option<&Assignee>,
    at: i64,
) -> Result<(), ApplyError> {
    conv.pending_user_id = None;
    conv.pending_since = None;
    match to {
        None => {
            conv.assignee_kind = None;
            conv.assignee_id = None;
        }
        Some(Assignee::User { id }) => {
            conv.assignee_kind = Some("user".into());
            conv.assignee_id = Some(id.to_string());
            conv.pending_user_id = Some(id.to_string());
            conv.pending_since = Some(at);
        }
        Some(Assignee::Team { id }) => {
            conv.assignee_kind = Some("team".into());
            conv.assignee_id = Some(id.to_string());
        }
        Some(Assignee::Bot { id }) => {
            conv.assignee_kind = Some("bot".into());
            conv.assignee_id = Some(id.to_string());
            bot_in_cycle(tx, b, conv, &id.to_string(), at)?;
        }
    }
    Ok(())
}

fn handoff(
    tx: &BatchTx<'_>,
    b: &mut Batch,
    conv: &mut Conv,
    bot: Uuid,
    at: i64,
) -> Result<(), ApplyError> {
    let bot = bot.to_string();
    bot_in_cycle(tx, b, conv, &bot, at)?
        .handed_off_at
        .get_or_insert(at);
    let cycle = b.existing_cycle(tx, conv)?;
    cycle.handoff_at = Some(at);
    if cycle.first_response_at.is_none() {
        cycle.fr_start = Some(at);
    }
    if let Some(start) = conv.run_start {
        conv.run_start = Some(start.max(at));
    }
    Ok(())
}

fn closed(tx: &BatchTx<'_>, b: &mut Batch, conv: &mut Conv, at: i64) -> Result<(), ApplyError> {
    let cycle = b.existing_cycle(tx, conv)?;
    cycle.closed_at = Some(at);
    for bot in &mut cycle.bots {
        bot.closed_at = Some(at);
    }
    let started_at = cycle.started_at;
    let agent = match conv.assignee_kind.as_deref() {
        Some("user") => conv.assignee_id.clone(),
        _ => None,
    };
    measure(
        tx,
        b,
        conv,
        Metric::TimeToClose,
        agent.as_deref(),
        None,
        started_at,
        at,
    )?;
    conv.run_start = None;
    conv.status = "closed";
    Ok(())
}

fn business_hours_set(tx: &BatchTx<'_>, e: &BusinessHoursSet) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DELETE FROM business_hours; DELETE FROM opening_intervals; DELETE FROM holidays;",
    )?;
    tx.execute_cached(
        "INSERT INTO business_hours (id, time_zone) VALUES (1, ?1)",
        [&e.time_zone],
    )?;
    for interval in &e.weekly {
        let day = chrono::Weekday::from(interval.day).num_days_from_monday();
        tx.execute_cached(
            "INSERT OR IGNORE INTO opening_intervals (day, opens, closes) VALUES (?1, ?2, ?3)",
            params![
                day,
                interval.opens.format("%H:%M:%S").to_string(),
                interval.closes.format("%H:%M:%S").to_string()
            ],
        )?;
    }
    for holiday in &e.holidays {
        tx.execute_cached(
            "INSERT OR REPLACE INTO holidays (date, name) VALUES (?1, ?2)",
            params![holiday.date.format("%Y-%m-%d").to_string(), holiday.name],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_ids_are_one_range_per_conversation_and_refuse_what_does_not_fit() {
        assert_eq!(measurement_id(7, 0), Some(7 << 23));
        assert_eq!(measurement_id(7, 5), Some((7 << 23) + 5));
        assert_eq!(measurement_ids(7), Some((7 << 23)..=(8 << 23) - 1));
        // The last measurement of one conversation comes right before the first of the next.
        assert_eq!(
            measurement_id(7, (1 << 23) - 1).map(|id| id + 1),
            measurement_id(8, 0)
        );
        assert_eq!(measurement_id(7, 1 << 23), None);
        assert_eq!(measurement_id(7, -1), None);
        let last = (1_i64 << 40) - 1;
        assert_eq!(measurement_id(last, (1 << 23) - 1), Some(i64::MAX));
        assert_eq!(measurement_ids(1 << 40), None);
        assert_eq!(measurement_ids(-1), None);
    }
}
