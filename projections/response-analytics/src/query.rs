//! Query functions on the read model: plain structs out, for the API to wrap.
//!
//! Durations are whole seconds. Each measurement carries both its calendar duration and its
//! business-hours duration, the latter computed here with the opening hours stored *now*.

use chrono::{DateTime, Utc};
use proto_events::event::{Assignee, ChannelKind};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use std::fmt::Write as _;

use crate::fold::{SEQ_BITS, kind_str};
use crate::hours::Schedule;
use crate::stats::Stats;

/// A measured response metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// A cycle's first inbound message (or bot handoff) to its first human reply.
    FirstResponse,
    /// An assignment to a user to that user's first reply.
    AgentResponse,
    /// The first of a run of customer messages (or a later bot handoff) to the next human
    /// reply.
    MessageResponse,
    /// A cycle's start (or reopening) to its close.
    TimeToClose,
    /// A cycle's first inbound message to a bot's first reply.
    BotFirstResponse,
}

impl Metric {
    /// Every metric, in the order of their codes.
    const ALL: [Metric; 5] = [
        Metric::FirstResponse,
        Metric::AgentResponse,
        Metric::MessageResponse,
        Metric::TimeToClose,
        Metric::BotFirstResponse,
    ];

    /// How `measurements.metric` stores it.
    pub(crate) fn code(self) -> i64 {
        match self {
            Metric::FirstResponse => 1,
            Metric::AgentResponse => 2,
            Metric::MessageResponse => 3,
            Metric::TimeToClose => 4,
            Metric::BotFirstResponse => 5,
        }
    }

    fn from_code(code: i64) -> rusqlite::Result<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.code() == code)
            .ok_or_else(|| invalid(&format!("metric code {code}")))
    }
}

/// Which clock a duration is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeBasis {
    /// Elapsed time.
    Calendar,
    /// Only time inside the current opening hours (all time if none were ever set).
    Business,
}

/// Which measurements an aggregation covers. Every field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricFilter {
    /// The conversation's inbox.
    pub inbox_id: Option<Uuid>,
    /// The channel the conversation came through.
    pub channel_id: Option<Uuid>,
    /// The kind of that channel.
    pub channel_kind: Option<ChannelKind>,
    /// The user measured (the replying agent; for time to close, the assignee at close).
    pub agent_id: Option<Uuid>,
    /// A team the agent belonged to when the measurement completed.
    pub team_id: Option<Uuid>,
    /// The bot measured (bot first response, bot performance).
    pub bot_id: Option<Uuid>,
    /// Period start, inclusive: by the start instant of the measured interval.
    pub from: Option<DateTime<Utc>>,
    /// Period end, exclusive: by the start instant of the measured interval.
    pub until: Option<DateTime<Utc>>,
    /// Which private conversations count.
    pub private: PrivateConversations,
}

/// Which private conversations (a user's own e-mail account, not shared) an aggregation counts:
/// the directory lets only their owner and admins see them, and a count is a way of seeing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrivateConversations {
    /// Every one (what admins see).
    #[default]
    All,
    /// Only this user's own (what everyone else sees).
    OwnedBy(Uuid),
}

impl PrivateConversations {
    /// The owner to bind to the queries' `(? IS NULL OR private_owner IS NULL OR
    /// private_owner = ?)`; `None` counts every conversation.
    fn owner(self) -> Option<String> {
        match self {
            PrivateConversations::All => None,
            PrivateConversations::OwnedBy(user) => Some(user.to_string()),
        }
    }
}

/// One measured interval, with its durations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The cycle, from 1.
    pub cycle_no: u32,
    /// What was measured.
    pub metric: Metric,
    /// The conversation's inbox.
    pub inbox_id: Uuid,
    /// The owner of a private conversation, for access checks; `None` once shared or if shared.
    pub private_owner: Option<Uuid>,
    /// The channel.
    pub channel_id: Uuid,
    /// The channel's kind.
    pub channel_kind: ChannelKind,
    /// The user measured, if any.
    pub agent_id: Option<Uuid>,
    /// The bot measured, if any.
    pub bot_id: Option<Uuid>,
    /// The agent's teams when the measurement completed.
    pub team_ids: Vec<Uuid>,
    /// Where the interval starts.
    pub start: DateTime<Utc>,
    /// Where it ends.
    pub end: DateTime<Utc>,
    /// Elapsed seconds.
    pub seconds: i64,
    /// Seconds inside the current opening hours.
    pub business_seconds: i64,
}

impl Measurement {
    /// The duration on `basis`.
    pub fn on(&self, basis: TimeBasis) -> i64 {
        match basis {
            TimeBasis::Calendar => self.seconds,
            TimeBasis::Business => self.business_seconds,
        }
    }
}

/// A conversation as analytics knows it, for access checks and live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Its inbox.
    pub inbox_id: Uuid,
    /// Its channel.
    pub channel_id: Uuid,
    /// The channel's kind.
    pub channel_kind: ChannelKind,
    /// The owner of a private conversation; `None` if shared.
    pub private_owner: Option<Uuid>,
    /// Whether it is open.
    pub open: bool,
    /// The current cycle, from 1.
    pub cycle_no: u32,
    /// The current assignee.
    pub assignee: Option<Assignee>,
}

/// One cycle of a conversation, for drill-down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleMetrics {
    /// The cycle, from 1.
    pub cycle_no: u32,
    /// Start or reopening.
    pub started_at: DateTime<Utc>,
    /// Close, if closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// The first inbound customer message of the cycle.
    pub first_inbound_at: Option<DateTime<Utc>>,
    /// The last bot handoff of the cycle.
    pub handoff_at: Option<DateTime<Utc>>,
    /// Where first response time starts (first inbound, or the handoff).
    pub first_response_start: Option<DateTime<Utc>>,
    /// The first human reply after it.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Who sent it.
    pub first_responder: Option<Uuid>,
    /// A first response is due but no human has replied yet.
    pub awaiting: bool,
    /// First response time, elapsed seconds.
    pub first_response_seconds: Option<i64>,
    /// First response time inside opening hours.
    pub first_response_business_seconds: Option<i64>,
    /// Time to close, elapsed seconds.
    pub time_to_close_seconds: Option<i64>,
    /// Time to close inside opening hours.
    pub time_to_close_business_seconds: Option<i64>,
    /// Human replies in the cycle.
    pub human_replies: u32,
    /// Bot replies in the cycle.
    pub bot_replies: u32,
    /// Every measurement of the cycle (agent and message response times included).
    pub measurements: Vec<Measurement>,
}

/// Replies of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReplies {
    /// The agent.
    pub agent_id: Uuid,
    /// Conversations with at least one reply by the agent.
    pub conversations: u64,
    /// Replies sent.
    pub replies: u64,
}

/// How one bot performs.
#[derive(Debug, Clone, PartialEq)]
pub struct BotPerformance {
    /// The bot.
    pub bot_id: Uuid,
    /// Conversations it took part in (replied or was assigned).
    pub conversations: u64,
    /// Conversations it handed off to humans.
    pub handed_off: u64,
    /// Conversations with a cycle it took part in that closed with no human reply and no handoff.
    pub closed_without_human: u64,
    /// Its own first-response time.
    pub first_response: Stats,
}

/// Live figures of one inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxLive {
    /// The inbox.
    pub inbox_id: Uuid,
    /// Open conversations.
    pub open: u64,
    /// Open conversations with no assignee.
    pub unassigned: u64,
    /// Open conversations whose current cycle awaits its first human reply.
    pub awaiting_first_reply: u64,
    /// The oldest unanswered customer message among open conversations (or a later bot
    /// handoff: the team is waited for from then).
    pub waiting_since: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Invalid(String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid stored value: {}", self.0)
    }
}

impl std::error::Error for Invalid {}

fn invalid(value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(Invalid(value.to_owned())),
    )
}

fn uuid(s: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| invalid(s))
}

/// A conversation id, stored as its 16 bytes.
fn conversation_id_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let bytes = r.get_ref(idx)?.as_blob()?;
    Uuid::from_slice(bytes)
        .map_err(|_| invalid(&format!("conversation id of {} bytes", bytes.len())))
}

fn opt_uuid(s: Option<String>) -> rusqlite::Result<Option<Uuid>> {
    s.as_deref().map(uuid).transpose()
}

fn instant(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| invalid(&micros.to_string()))
}

fn opt_instant(micros: Option<i64>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    micros.map(instant).transpose()
}

fn channel_kind(s: &str) -> rusqlite::Result<ChannelKind> {
    Ok(match s {
        "email" => ChannelKind::Email,
        "chat" => ChannelKind::Chat,
        "messenger" => ChannelKind::Messenger,
        "form" => ChannelKind::Form,
        other => return Err(invalid(other)),
    })
}

fn seconds(start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    (end - start).num_seconds()
}

fn business(schedule: Option<&Schedule>, start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    match schedule {
        Some(schedule) => schedule.business_seconds(start, end),
        None => seconds(start, end),
    }
}

/// The opening hours in force, if any were set.
pub fn business_hours(conn: &Connection) -> rusqlite::Result<Option<Schedule>> {
    Schedule::load(conn)
}

/// The measurements query. Its keys are spelt out only when given, so that SQLite can use the
/// indexes for them (`? IS NULL OR column = ?` cannot use one): a conversation's drill-down
/// reads its range of ids, a metric with or without a period reads a range of
/// `measurements_metric` in the order the query returns. The other filters check each row.
/// The SQL text is one of eight, each cached by the connection.
fn measurement_sql(metric: bool, from: bool, until: bool, conversation: bool) -> String {
    let mut sql = String::from(
        "SELECT m.conversation_id, m.cycle_no, m.metric, c.inbox_id, c.private_owner,
                c.channel_id, c.channel_kind, m.agent_id, m.bot_id, m.teams, m.start_at, m.end_at
         FROM measurements m JOIN conversations c ON c.conversation_id = m.conversation_id
         WHERE (?2 IS NULL OR c.inbox_id = ?2)
           AND (?3 IS NULL OR c.channel_id = ?3)
           AND (?4 IS NULL OR c.channel_kind = ?4)
           AND (?5 IS NULL OR m.agent_id = ?5)
           AND (?6 IS NULL OR instr(m.teams, ',' || ?6 || ',') > 0)
           AND (?7 IS NULL OR m.bot_id = ?7)
           AND (?11 IS NULL OR c.private_owner IS NULL OR c.private_owner = ?11)",
    );
    // Every statement names every parameter, so that the same list binds to each.
    for (given, key, unused) in [
        (metric, "AND m.metric = ?1", "AND ?1 IS NULL"),
        (from, "AND m.start_at >= ?8", "AND ?8 IS NULL"),
        (until, "AND m.start_at < ?9", "AND ?9 IS NULL"),
        (
            conversation,
            "AND m.conversation_id = ?10",
            "AND ?10 IS NULL",
        ),
    ] {
        sql.push_str("\n           ");
        sql.push_str(if given { key } else { unused });
    }
    if conversation {
        // The conversation's measurements are one range of ids (`fold::measurement_ids`).
        let _ = write!(
            sql,
            "\n           AND m.id BETWEEN \
             (SELECT first_position << {SEQ_BITS} FROM conversations WHERE conversation_id = ?10) \
             AND (SELECT (first_position << {SEQ_BITS}) + {last} FROM conversations \
             WHERE conversation_id = ?10)",
            last = (1_i64 << SEQ_BITS) - 1,
        );
    }
    // Ties in start are broken by id (a conversation's first position, then its sequence
    // number): the order `measurements_metric` (metric, start_at, then the row id) keeps.
    sql.push_str("\n         ORDER BY m.start_at, m.id");
    sql
}

fn select_measurements(
    conn: &Connection,
    metric: Option<Metric>,
    filter: &MetricFilter,
    conversation_id: Option<Uuid>,
) -> rusqlite::Result<Vec<Measurement>> {
    let schedule = Schedule::load(conn)?;
    let text = |id: Option<Uuid>| id.map(|id| id.to_string());
    let sql = measurement_sql(
        metric.is_some(),
        filter.from.is_some(),
        filter.until.is_some(),
        conversation_id.is_some(),
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            metric.map(Metric::code),
            text(filter.inbox_id),
            text(filter.channel_id),
            filter.channel_kind.map(kind_str),
            text(filter.agent_id),
            text(filter.team_id),
            text(filter.bot_id),
            filter.from.map(|t| t.timestamp_micros()),
            filter.until.map(|t| t.timestamp_micros()),
            conversation_id.as_ref().map(Uuid::as_bytes),
            filter.private.owner(),
        ],
        |r| measurement_row(r, schedule.as_ref()),
    )?;
    rows.collect()
}

fn measurement_row(r: &Row<'_>, schedule: Option<&Schedule>) -> rusqlite::Result<Measurement> {
    let start = instant(r.get(10)?)?;
    let end = instant(r.get(11)?)?;
    let teams: String = r.get(9)?;
    Ok(Measurement {
        conversation_id: conversation_id_at(r, 0)?,
        cycle_no: r.get(1)?,
        metric: Metric::from_code(r.get(2)?)?,
        inbox_id: uuid(&r.get::<_, String>(3)?)?,
        private_owner: opt_uuid(r.get(4)?)?,
        channel_id: uuid(&r.get::<_, String>(5)?)?,
        channel_kind: channel_kind(&r.get::<_, String>(6)?)?,
        agent_id: opt_uuid(r.get(7)?)?,
        bot_id: opt_uuid(r.get(8)?)?,
        team_ids: teams
            .split(',')
            .filter(|t| !t.is_empty())
            .map(uuid)
            .collect::<rusqlite::Result<_>>()?,
        start,
        end,
        seconds: seconds(start, end),
        business_seconds: business(schedule, start, end),
    })
}

/// Every measurement of `metric` matching `filter`, oldest start first.
pub fn measurements(
    conn: &Connection,
    metric: Metric,
    filter: &MetricFilter,
) -> rusqlite::Result<Vec<Measurement>> {
    select_measurements(conn, Some(metric), filter, None)
}

/// Count, mean, median and 90th percentile of `metric` over the measurements matching `filter`,
/// on `basis`.
pub fn metric_stats(
    conn: &Connection,
    metric: Metric,
    filter: &MetricFilter,
    basis: TimeBasis,
) -> rusqlite::Result<Stats> {
    let values = measurements(conn, metric, filter)?
        .iter()
        .map(|m| m.on(basis))
        .collect();
    Ok(Stats::of(values))
}

/// One conversation's analytics state, `None` if unknown.
pub fn conversation(
    conn: &Connection,
    conversation_id: Uuid,
) -> rusqlite::Result<Option<ConversationSummary>> {
    conn.query_row(
        "SELECT conversation_id, inbox_id, channel_id, channel_kind, private_owner, status, cycle_no,
                assignee_kind, assignee_id
         FROM conversations WHERE conversation_id = ?1",
        [conversation_id.as_bytes()],
        |r| {
            let assignee_id = opt_uuid(r.get(8)?)?;
            let assignee = match (r.get::<_, Option<String>>(7)?.as_deref(), assignee_id) {
                (Some("user"), Some(id)) => Some(Assignee::User { id }),
                (Some("team"), Some(id)) => Some(Assignee::Team { id }),
                (Some("bot"), Some(id)) => Some(Assignee::Bot { id }),
                _ => None,
            };
            Ok(ConversationSummary {
                conversation_id: conversation_id_at(r, 0)?,
                inbox_id: uuid(&r.get::<_, String>(1)?)?,
                channel_id: uuid(&r.get::<_, String>(2)?)?,
                channel_kind: channel_kind(&r.get::<_, String>(3)?)?,
                private_owner: opt_uuid(r.get(4)?)?,
                open: r.get::<_, String>(5)? == "open",
                cycle_no: r.get(6)?,
                assignee,
            })
        },
    )
    .optional()
}

/// Drill-down: every cycle of a conversation with its metrics, first cycle first.
pub fn conversation_cycles(
    conn: &Connection,
    conversation_id: Uuid,
) -> rusqlite::Result<Vec<CycleMetrics>> {
    let schedule = Schedule::load(conn)?;
    let all = select_measurements(conn, None, &MetricFilter::default(), Some(conversation_id))?;
    let mut stmt = conn.prepare_cached(
        "SELECT cycle_no, started_at, closed_at, first_inbound_at, handoff_at, fr_start, first_response_at,
                first_responder, human_replies, bot_replies
         FROM cycles WHERE conversation_id = ?1 ORDER BY cycle_no",
    )?;
    let rows = stmt.query_map([conversation_id.as_bytes()], |r| {
        let cycle_no: u32 = r.get(0)?;
        let started_at = instant(r.get(1)?)?;
        let closed_at = opt_instant(r.get(2)?)?;
        let first_response_start = opt_instant(r.get(5)?)?;
        let first_response_at = opt_instant(r.get(6)?)?;
        let pair = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| a.zip(b);
        let frt = pair(first_response_start, first_response_at);
        let ttc = closed_at.map(|c| (started_at, c));
        Ok(CycleMetrics {
            cycle_no,
            started_at,
            closed_at,
            first_inbound_at: opt_instant(r.get(3)?)?,
            handoff_at: opt_instant(r.get(4)?)?,
            first_response_start,
            first_response_at,
            first_responder: opt_uuid(r.get(7)?)?,
            awaiting: first_response_start.is_some() && first_response_at.is_none(),
            first_response_seconds: frt.map(|(s, e)| seconds(s, e)),
            first_response_business_seconds: frt.map(|(s, e)| business(schedule.as_ref(), s, e)),
            time_to_close_seconds: ttc.map(|(s, e)| seconds(s, e)),
            time_to_close_business_seconds: ttc.map(|(s, e)| business(schedule.as_ref(), s, e)),
            human_replies: r.get(8)?,
            bot_replies: r.get(9)?,
            measurements: all
                .iter()
                .filter(|m| m.cycle_no == cycle_no)
                .cloned()
                .collect(),
        })
    })?;
    rows.collect()
}

/// Replies per agent, most replies first. Filters: inbox, channel, channel kind, agent, team
/// (at reply time), period (by the reply's send instant) and private conversations; `bot_id` is
/// ignored.
pub fn replies_per_agent(
    conn: &Connection,
    filter: &MetricFilter,
) -> rusqlite::Result<Vec<AgentReplies>> {
    let text = |id: Option<Uuid>| id.map(|id| id.to_string());
    let mut stmt = conn.prepare_cached(
        "SELECT r.agent_id, COUNT(DISTINCT r.conversation_id), COUNT(*)
         FROM replies r JOIN conversations c ON c.conversation_id = r.conversation_id
         WHERE (?1 IS NULL OR r.inbox_id = ?1)
           AND (?2 IS NULL OR r.channel_id = ?2)
           AND (?3 IS NULL OR r.channel_kind = ?3)
           AND (?4 IS NULL OR r.agent_id = ?4)
           AND (?5 IS NULL OR instr(r.teams, ',' || ?5 || ',') > 0)
           AND (?6 IS NULL OR r.sent_at >= ?6)
           AND (?7 IS NULL OR r.sent_at < ?7)
           AND (?8 IS NULL OR c.private_owner IS NULL OR c.private_owner = ?8)
         GROUP BY r.agent_id ORDER BY COUNT(*) DESC, r.agent_id",
    )?;
    let rows = stmt.query_map(
        params![
            text(filter.inbox_id),
            text(filter.channel_id),
            filter.channel_kind.map(kind_str),
            text(filter.agent_id),
            text(filter.team_id),
            filter.from.map(|t| t.timestamp_micros()),
            filter.until.map(|t| t.timestamp_micros()),
            filter.private.owner(),
        ],
        |r| {
            Ok(AgentReplies {
                agent_id: uuid(&r.get::<_, String>(0)?)?,
                conversations: r.get(1)?,
                replies: r.get(2)?,
            })
        },
    )?;
    rows.collect()
}

/// Performance of each bot, by bot id. Filters: inbox, channel, channel kind, bot and period
/// (by the bot's first part in a cycle; its first-response times by their start) and private
/// conversations; agent and team are ignored.
pub fn bot_performance(
    conn: &Connection,
    filter: &MetricFilter,
    basis: TimeBasis,
) -> rusqlite::Result<Vec<BotPerformance>> {
    let text = |id: Option<Uuid>| id.map(|id| id.to_string());
    let mut stmt = conn.prepare_cached(
        "SELECT b.bot_id,
                COUNT(DISTINCT b.conversation_id),
                COUNT(DISTINCT CASE WHEN b.handed_off_at IS NOT NULL THEN b.conversation_id END),
                COUNT(DISTINCT CASE WHEN b.closed_at IS NOT NULL AND b.handed_off_at IS NULL
                                         AND b.human_replied = 0
                                    THEN b.conversation_id END)
         FROM bot_cycles b JOIN conversations c ON c.conversation_id = b.conversation_id
         WHERE (?1 IS NULL OR b.inbox_id = ?1)
           AND (?2 IS NULL OR b.channel_id = ?2)
           AND (?3 IS NULL OR b.channel_kind = ?3)
           AND (?4 IS NULL OR b.bot_id = ?4)
           AND (?5 IS NULL OR b.took_part_at >= ?5)
           AND (?6 IS NULL OR b.took_part_at < ?6)
           AND (?7 IS NULL OR c.private_owner IS NULL OR c.private_owner = ?7)
         GROUP BY b.bot_id ORDER BY b.bot_id",
    )?;
    let counts = stmt
        .query_map(
            params![
                text(filter.inbox_id),
                text(filter.channel_id),
                filter.channel_kind.map(kind_str),
                text(filter.bot_id),
                filter.from.map(|t| t.timestamp_micros()),
                filter.until.map(|t| t.timestamp_micros()),
                filter.private.owner(),
            ],
            |r| {
                Ok((
                    uuid(&r.get::<_, String>(0)?)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, u64>(2)?,
                    r.get::<_, u64>(3)?,
                ))
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    counts
        .into_iter()
        .map(
            |(bot_id, conversations, handed_off, closed_without_human)| {
                let bot_filter = MetricFilter {
                    agent_id: None,
                    team_id: None,
                    bot_id: Some(bot_id),
                    ..filter.clone()
                };
                let first_response =
                    metric_stats(conn, Metric::BotFirstResponse, &bot_filter, basis)?;
                Ok(BotPerformance {
                    bot_id,
                    conversations,
                    handed_off,
                    closed_without_human,
                    first_response,
                })
            },
        )
        .collect()
}

/// Live figures per inbox (every inbox with at least one conversation `private` counts), by
/// inbox id.
pub fn live_figures(
    conn: &Connection,
    private: PrivateConversations,
) -> rusqlite::Result<Vec<InboxLive>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.inbox_id,
                SUM(c.status = 'open'),
                SUM(c.status = 'open' AND c.assignee_kind IS NULL),
                SUM(c.status = 'open' AND y.fr_start IS NOT NULL AND y.first_response_at IS NULL),
                MIN(CASE WHEN c.status = 'open' THEN c.run_start END)
         FROM conversations c
         JOIN cycles y ON y.conversation_id = c.conversation_id AND y.cycle_no = c.cycle_no
         WHERE ?1 IS NULL OR c.private_owner IS NULL OR c.private_owner = ?1
         GROUP BY c.inbox_id ORDER BY c.inbox_id",
    )?;
    let rows = stmt.query_map([private.owner()], |r| {
        Ok(InboxLive {
            inbox_id: uuid(&r.get::<_, String>(0)?)?,
            open: r.get(1)?,
            unassigned: r.get(2)?,
            awaiting_first_reply: r.get(3)?,
            waiting_since: opt_instant(r.get(4)?)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How SQLite would run the measurements query for the keys given.
    fn plan(metric: bool, from: bool, until: bool, conversation: bool) -> String {
        let conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&conn).unwrap();
        crate::schema::create_indexes(&conn).unwrap();
        let sql = format!(
            "EXPLAIN QUERY PLAN {}",
            measurement_sql(metric, from, until, conversation)
        );
        let id = Uuid::nil();
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt
            .query_map(
                params![
                    metric.then_some(Metric::FirstResponse.code()),
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    from.then_some(1_i64),
                    until.then_some(2_i64),
                    conversation.then_some(id.as_bytes()),
                    None::<String>,
                ],
                |r| r.get::<_, String>(3),
            )
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("; ")
    }

    #[test]
    fn metrics_and_drill_downs_read_their_index_not_every_measurement() {
        let by_period = plan(true, true, true, false);
        assert!(
            by_period.contains(
                "USING INDEX measurements_metric (metric=? AND start_at>? AND start_at<?)"
            ) && !by_period.contains("TEMP B-TREE"),
            "{by_period}"
        );
        let by_metric = plan(true, false, false, false);
        assert!(
            by_metric.contains("USING INDEX measurements_metric (metric=?)"),
            "{by_metric}"
        );
        let drill_down = plan(false, false, false, true);
        assert!(
            drill_down.contains("SEARCH m USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)")
                && !drill_down.contains("SCAN m"),
            "{drill_down}"
        );
    }
}
