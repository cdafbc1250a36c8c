//! The fold: how each event changes the read model. Only the event and the rows it touches
//! decide the outcome, so building in batches or at once gives the same tables.

use proto_events::event::{
    Assignee, BusinessHoursSet, ChannelKind, ConversationStarted, ConversationVisibility,
    ReplyAuthor,
};
use proto_events::{DomainEvent, Envelope};
use rusqlite::{OptionalExtension, Transaction, params};
use switchboard_projector::{ApplyError, CachedStatements};
use uuid::Uuid;

/// The running state of one conversation, as kept in `conversations`.
struct Conv {
    id: String,
    inbox_id: String,
    channel_id: String,
    channel_kind: String,
    cycle_no: i64,
    assignee_kind: Option<String>,
    assignee_id: Option<String>,
    pending_user_id: Option<String>,
    pending_since: Option<i64>,
    run_start: Option<i64>,
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

/// Applies one event.
pub(crate) fn apply(tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
    let at = event.metadata.occurred_at.timestamp_micros();
    match &event.payload {
        DomainEvent::ConversationStarted(e) => started(tx, e, at)?,
        DomainEvent::MessageReceived(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                inbound(tx, &mut conv, at)?;
            }
        }
        DomainEvent::ReplySent(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                match &e.author {
                    ReplyAuthor::User { id } => human_reply(tx, &mut conv, *id, e.message_id, at)?,
                    ReplyAuthor::Bot { id } => bot_reply(tx, &mut conv, *id, at)?,
                    ReplyAuthor::Automation { .. } => {}
                }
            }
        }
        DomainEvent::ConversationAssigned(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                assign(tx, &mut conv, Some(&e.assignee), at)?;
            }
        }
        DomainEvent::ConversationReassigned(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                assign(tx, &mut conv, Some(&e.to), at)?;
            }
        }
        DomainEvent::ConversationUnassigned(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                assign(tx, &mut conv, None, at)?;
            }
        }
        DomainEvent::BotHandedOff(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                handoff(tx, &mut conv, e.bot_id, at)?;
            }
        }
        DomainEvent::ConversationClosed(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                closed(tx, &mut conv, at)?;
            }
        }
        DomainEvent::ConversationReopened(e) => {
            if let Some(mut conv) = load(tx, e.conversation_id)? {
                conv.cycle_no += 1;
                conv.run_start = None;
                tx.execute_cached(
                    "INSERT INTO cycles (conversation_id, cycle_no, started_at, human_replies, bot_replies)
                     VALUES (?1, ?2, ?3, 0, 0)",
                    params![conv.id, conv.cycle_no, at],
                )?;
                tx.execute_cached(
                    "UPDATE conversations SET status = 'open' WHERE conversation_id = ?1",
                    [&conv.id],
                )?;
                store(tx, &conv)?;
            }
        }
        DomainEvent::ConversationShared(e) => {
            tx.execute_cached(
                "UPDATE conversations SET private_owner = NULL WHERE conversation_id = ?1",
                [e.conversation_id.to_string()],
            )?;
        }
        DomainEvent::TeamMemberAdded(e) => {
            tx.execute_cached(
                "INSERT OR IGNORE INTO team_members (team_id, user_id) VALUES (?1, ?2)",
                params![e.team_id.to_string(), e.user_id.to_string()],
            )?;
        }
        DomainEvent::TeamMemberRemoved(e) => {
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

fn started(tx: &Transaction<'_>, e: &ConversationStarted, at: i64) -> rusqlite::Result<()> {
    let owner = match &e.visibility {
        ConversationVisibility::Shared => None,
        ConversationVisibility::Private { owner_user_id } => Some(owner_user_id.to_string()),
    };
    let id = e.conversation_id.to_string();
    let inserted = tx.execute_cached(
        "INSERT OR IGNORE INTO conversations (conversation_id, inbox_id, channel_id, channel_kind, private_owner,
             status, cycle_no, next_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, 'open', 1, 0)",
        params![id, e.inbox_id.to_string(), e.channel_id.to_string(), kind_str(e.channel_kind), owner],
    )?;
    if inserted == 1 {
        tx.execute_cached(
            "INSERT INTO cycles (conversation_id, cycle_no, started_at, human_replies, bot_replies)
             VALUES (?1, 1, ?2, 0, 0)",
            params![id, at],
        )?;
    }
    Ok(())
}

fn load(tx: &Transaction<'_>, id: Uuid) -> rusqlite::Result<Option<Conv>> {
    tx.query_row_cached(
        "SELECT conversation_id, inbox_id, channel_id, channel_kind, cycle_no, assignee_kind, assignee_id,
                pending_user_id, pending_since, run_start
         FROM conversations WHERE conversation_id = ?1",
        [id.to_string()],
        |r| {
            Ok(Conv {
                id: r.get(0)?,
                inbox_id: r.get(1)?,
                channel_id: r.get(2)?,
                channel_kind: r.get(3)?,
                cycle_no: r.get(4)?,
                assignee_kind: r.get(5)?,
                assignee_id: r.get(6)?,
                pending_user_id: r.get(7)?,
                pending_since: r.get(8)?,
                run_start: r.get(9)?,
            })
        },
    )
    .optional()
}

fn store(tx: &Transaction<'_>, conv: &Conv) -> rusqlite::Result<()> {
    tx.execute_cached(
        "UPDATE conversations SET cycle_no = ?2, assignee_kind = ?3, assignee_id = ?4, pending_user_id = ?5,
             pending_since = ?6, run_start = ?7
         WHERE conversation_id = ?1",
        params![
            conv.id,
            conv.cycle_no,
            conv.assignee_kind,
            conv.assignee_id,
            conv.pending_user_id,
            conv.pending_since,
            conv.run_start
        ],
    )?;
    Ok(())
}

/// The teams of `user_id` now (in log order), as `,t1,t2,` for `instr` filtering.
fn teams_of(tx: &Transaction<'_>, user_id: Option<&str>) -> rusqlite::Result<String> {
    let Some(user_id) = user_id else {
        return Ok(String::new());
    };
    let mut stmt =
        tx.prepare_cached("SELECT team_id FROM team_members WHERE user_id = ?1 ORDER BY team_id")?;
    let teams: Vec<String> = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if teams.is_empty() {
        Ok(String::new())
    } else {
        Ok(format!(",{},", teams.join(",")))
    }
}

/// Records one completed measured interval.
fn measure(
    tx: &Transaction<'_>,
    conv: &Conv,
    metric: &str,
    agent_id: Option<&str>,
    bot_id: Option<&str>,
    start: i64,
    end: i64,
) -> rusqlite::Result<()> {
    let seq: i64 = tx.query_row_cached(
        "UPDATE conversations SET next_seq = next_seq + 1 WHERE conversation_id = ?1 RETURNING next_seq - 1",
        [&conv.id],
        |r| r.get(0),
    )?;
    let teams = teams_of(tx, agent_id)?;
    tx.execute_cached(
        "INSERT INTO measurements (conversation_id, seq, cycle_no, metric, inbox_id, channel_id, channel_kind,
             agent_id, bot_id, teams, start_at, end_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            conv.id,
            seq,
            conv.cycle_no,
            metric,
            conv.inbox_id,
            conv.channel_id,
            conv.channel_kind,
            agent_id,
            bot_id,
            teams,
            start,
            end
        ],
    )?;
    Ok(())
}

fn inbound(tx: &Transaction<'_>, conv: &mut Conv, at: i64) -> rusqlite::Result<()> {
    tx.execute_cached(
        "UPDATE cycles SET first_inbound_at = COALESCE(first_inbound_at, ?3),
             fr_start = CASE WHEN fr_start IS NULL AND first_response_at IS NULL THEN ?3 ELSE fr_start END
         WHERE conversation_id = ?1 AND cycle_no = ?2",
        params![conv.id, conv.cycle_no, at],
    )?;
    if conv.run_start.is_none() {
        conv.run_start = Some(at);
        store(tx, conv)?;
    }
    Ok(())
}

fn human_reply(
    tx: &Transaction<'_>,
    conv: &mut Conv,
    user: Uuid,
    message_id: Uuid,
    at: i64,
) -> rusqlite::Result<()> {
    let user = user.to_string();
    let teams = teams_of(tx, Some(&user))?;
    tx.execute_cached(
        "INSERT OR IGNORE INTO replies (message_id, conversation_id, cycle_no, inbox_id, channel_id, channel_kind,
             agent_id, teams, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            message_id.to_string(),
            conv.id,
            conv.cycle_no,
            conv.inbox_id,
            conv.channel_id,
            conv.channel_kind,
            user,
            teams,
            at
        ],
    )?;
    let (fr_start, first_response_at): (Option<i64>, Option<i64>) = tx.query_row_cached(
        "UPDATE cycles SET human_replies = human_replies + 1 WHERE conversation_id = ?1 AND cycle_no = ?2
         RETURNING fr_start, first_response_at",
        params![conv.id, conv.cycle_no],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let (Some(start), None) = (fr_start, first_response_at) {
        tx.execute_cached(
            "UPDATE cycles SET first_response_at = ?3, first_responder = ?4 WHERE conversation_id = ?1 AND cycle_no = ?2",
            params![conv.id, conv.cycle_no, at, user],
        )?;
        measure(tx, conv, "first_response", Some(&user), None, start, at)?;
    }
    if let Some(start) = conv.run_start.take() {
        measure(tx, conv, "message_response", Some(&user), None, start, at)?;
    }
    if conv.pending_user_id.as_deref() == Some(user.as_str())
        && let Some(since) = conv.pending_since
    {
        measure(tx, conv, "agent_response", Some(&user), None, since, at)?;
        conv.pending_user_id = None;
        conv.pending_since = None;
    }
    tx.execute_cached(
        "UPDATE bot_cycles SET human_replied = 1 WHERE conversation_id = ?1 AND cycle_no = ?2",
        params![conv.id, conv.cycle_no],
    )?;
    store(tx, conv)
}

/// Notes that `bot` takes part in the current cycle (first time: `at`).
fn bot_takes_part(tx: &Transaction<'_>, conv: &Conv, bot: &str, at: i64) -> rusqlite::Result<()> {
    tx.execute_cached(
        "INSERT OR IGNORE INTO bot_cycles (conversation_id, cycle_no, bot_id, inbox_id, channel_id, channel_kind,
             took_part_at, human_replied)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
        params![conv.id, conv.cycle_no, bot, conv.inbox_id, conv.channel_id, conv.channel_kind, at],
    )?;
    Ok(())
}

fn bot_reply(tx: &Transaction<'_>, conv: &mut Conv, bot: Uuid, at: i64) -> rusqlite::Result<()> {
    let bot = bot.to_string();
    bot_takes_part(tx, conv, &bot, at)?;
    let first_inbound: Option<i64> = tx.query_row_cached(
        "UPDATE cycles SET bot_replies = bot_replies + 1 WHERE conversation_id = ?1 AND cycle_no = ?2
         RETURNING first_inbound_at",
        params![conv.id, conv.cycle_no],
        |r| r.get(0),
    )?;
    let first_reply: Option<i64> = tx.query_row_cached(
        "SELECT first_reply_at FROM bot_cycles WHERE conversation_id = ?1 AND cycle_no = ?2 AND bot_id = ?3",
        params![conv.id, conv.cycle_no, bot],
        |r| r.get(0),
    )?;
    if first_reply.is_none() {
        tx.execute_cached(
            "UPDATE bot_cycles SET first_reply_at = ?4 WHERE conversation_id = ?1 AND cycle_no = ?2 AND bot_id = ?3",
            params![conv.id, conv.cycle_no, bot, at],
        )?;
        // A greeting before any customer message answers nothing: not measured.
        if let Some(start) = first_inbound {
            measure(tx, conv, "bot_first_response", None, Some(&bot), start, at)?;
        }
    }
    Ok(())
}

fn assign(
    tx: &Transaction<'_>,
    conv: &mut Conv,
    to: Option<&Assignee>,
    at: i64,
) -> rusqlite::Result<()> {
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
            bot_takes_part(tx, conv, &id.to_string(), at)?;
        }
    }
    store(tx, conv)
}

fn handoff(tx: &Transaction<'_>, conv: &mut Conv, bot: Uuid, at: i64) -> rusqlite::Result<()> {
    let bot = bot.to_string();
    bot_takes_part(tx, conv, &bot, at)?;
    tx.execute_cached(
        "UPDATE bot_cycles SET handed_off_at = COALESCE(handed_off_at, ?4)
         WHERE conversation_id = ?1 AND cycle_no = ?2 AND bot_id = ?3",
        params![conv.id, conv.cycle_no, bot, at],
    )?;
    tx.execute_cached(
        "UPDATE cycles SET handoff_at = ?3,
             fr_start = CASE WHEN first_response_at IS NULL THEN ?3 ELSE fr_start END
         WHERE conversation_id = ?1 AND cycle_no = ?2",
        params![conv.id, conv.cycle_no, at],
    )?;
    if let Some(start) = conv.run_start {
        conv.run_start = Some(start.max(at));
    }
    store(tx, conv)
}

fn closed(tx: &Transaction<'_>, conv: &mut Conv, at: i64) -> rusqlite::Result<()> {
    let started_at: i64 = tx.query_row_cached(
        "UPDATE cycles SET closed_at = ?3 WHERE conversation_id = ?1 AND cycle_no = ?2 RETURNING started_at",
        params![conv.id, conv.cycle_no, at],
        |r| r.get(0),
    )?;
    tx.execute_cached(
        "UPDATE bot_cycles SET closed_at = ?3 WHERE conversation_id = ?1 AND cycle_no = ?2",
        params![conv.id, conv.cycle_no, at],
    )?;
    let agent = match conv.assignee_kind.as_deref() {
        Some("user") => conv.assignee_id.clone(),
        _ => None,
    };
    measure(
        tx,
        conv,
        "time_to_close",
        agent.as_deref(),
        None,
        started_at,
        at,
    )?;
    conv.run_start = None;
    tx.execute_cached(
        "UPDATE conversations SET status = 'closed' WHERE conversation_id = ?1",
        [&conv.id],
    )?;
    store(tx, conv)
}

fn business_hours_set(tx: &Transaction<'_>, e: &BusinessHoursSet) -> rusqlite::Result<()> {
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
