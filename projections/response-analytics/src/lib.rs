//! The response-analytics projector: per-cycle response metrics of conversations, replies per
//! agent, bot performance and live inbox figures, with a business-hours variant.
//!
//! The definitions are those of `PRODUCT.md` ("Response metrics"); the choices it leaves open
//! are made here and listed below so that analysts can rely on them.
//!
//! # Definitions
//! - **Cycle**: starts at `ConversationStarted` or `ConversationReopened`, ends at
//!   `ConversationClosed`. Every measurement belongs to the cycle it was completed in, so a
//!   reopening never changes the numbers of an earlier cycle.
//! - **First response time** of a cycle: from its first `MessageReceived` to the first
//!   `ReplySent` whose author is [`ReplyAuthor::User`](proto_events::event::ReplyAuthor). If a
//!   `BotHandedOff` comes before that reply, the start moves to the handoff. Comments, bot and
//!   automated replies never count. A cycle with a start but no human reply is *awaiting*; a
//!   cycle without any inbound message (e.g. an outbound e-mail nobody answered) has no first
//!   response time and is not awaiting.
//! - **Agent response time**: per assignment of a user (`ConversationAssigned` or
//!   `ConversationReassigned` to that user), from the assignment to that user's first reply
//!   after it. A reassignment before the reply drops the open assignment (nothing is measured
//!   for it); assignments to teams and bots are not measured.
//! - **Response time of a customer message run**: from the first of a run of consecutive
//!   customer messages to the next human reply. Bot and automated replies and comments neither
//!   answer nor break a run. While a bot handles the conversation the messages wait for the bot,
//!   not the team, so a handoff moves the start of a waiting run to the handoff. Closing the
//!   conversation drops an unanswered run (it is not measured).
//! - **Time to close**: from the cycle's start to its close. It is attributed to the user the
//!   conversation was assigned to when it closed, if any.
//! - **Replies per agent**: human replies (`ReplySent` by a user, outbound conversation starts
//!   included) and the number of distinct conversations with at least one of them.
//! - **Bot performance**, per bot: conversations it took part in (it replied or was assigned),
//!   conversations it handed off, and conversations with a cycle it took part in that closed with
//!   neither a human reply nor a handoff in that cycle; and its own first-response time, from
//!   the cycle's first customer message to the bot's first reply in that cycle.
//! - **Team attribution**: a measurement counts for the teams its agent belonged to *when the
//!   measurement was completed* (the reply, or the close), from `TeamMemberAdded/Removed` in log
//!   order. Later team changes do not move past numbers.
//! - **Period**: a measurement falls in a period by the *start* instant of its interval; a
//!   reply by its send instant; a bot's conversation by the bot's first participation.
//! - **Statistics**: count, mean, median (the middle value, or the mean of the two middle
//!   values for an even count) and 90th percentile by the nearest-rank method (the value at
//!   rank `ceil(0.9 × n)` of the ascending values). Durations are whole seconds.
//! - **Business hours**: each measurement keeps its raw start and end instants; the
//!   business-hours duration is computed at *query* time with the opening hours in force *now*
//!   (the last `BusinessHoursSet`), so changing the hours or their time zone recomputes the past.
//!   Only time inside opening intervals counts, converted from the schedule's IANA zone with
//!   chrono-tz (DST-correct: a local time skipped by DST moves forward to the first valid
//!   instant; an ambiguous one takes the earlier). An interval starting on a holiday is closed.
//!   Without any `BusinessHoursSet` the organisation counts as always open.
//! - **Live figures**, per inbox: open conversations, open ones without any assignee (a team or
//!   bot assignee counts as assigned), open ones whose current cycle awaits its first human
//!   reply, and the instant of the oldest unanswered customer message (the start of a waiting
//!   run) among open conversations. They hold instants only, never "now".
//! - **Erasure**: the read model holds nothing of a person (ids, instants and counts only), so
//!   an erased conversation keeps its cycles, measurements and replies, and past figures do not
//!   move; it is no longer open (it refuses every command, so it would never close), and leaves
//!   the live figures. `ContactErased` changes nothing here.
//!
//! # Layout
//! - `schema`: the tables and their migration.
//! - `fold`: how each event changes the tables ([`ResponseAnalytics`]'s `apply`).
//! - `hours`: the opening-hours schedule and business-time arithmetic.
//! - `stats`: count, mean, median and nearest-rank percentile.
//! - `query`: the query functions and the plain structs they return.

mod fold;
mod hours;
mod query;
mod schema;
mod stats;

use proto_events::Envelope;
use rusqlite::{Connection, Transaction};
use switchboard_projector::{ApplyError, Event, EventError, Projector};

pub use crate::hours::Schedule;
pub use crate::query::{
    AgentReplies, BotPerformance, ConversationSummary, CycleMetrics, InboxLive, Measurement,
    Metric, MetricFilter, PrivateConversations, TimeBasis, bot_performance, business_hours,
    conversation, conversation_cycles, live_figures, measurements, metric_stats, replies_per_agent,
};
pub use crate::stats::Stats;

/// The response-analytics projector. Its read model lives in `response_analytics.sqlite3`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseAnalytics;

impl Projector for ResponseAnalytics {
    fn name(&self) -> &'static str {
        "response_analytics"
    }

    fn version(&self) -> u32 {
        // 2: `measurements` without a primary key, unique by `measurements_key` once caught up.
        // 3: conversation ids as their 16 bytes; measurements without the conversation's inbox
        // and channel.
        // 4: `measurements_metric` covers the queries' order (metric, start_at, conversation_id,
        // seq).
        // 5: metrics as their codes (`Metric::code`).
        // 6: measurements' ids follow from their conversation's first position and `seq`
        // (no `measurements_key`).
        // 7: replies keyed by the position of their ReplySent (appended; no index on the
        // message id).
        // 8: `measurements_metric` is (metric, start_at) and, as every index, the row id: the
        // queries' order breaks ties in start by id.
        8
    }

    fn migrate(&self, conn: &Connection) -> rusqlite::Result<()> {
        schema::migrate(conn)
    }

    fn apply(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), ApplyError> {
        fold::apply_batch(tx, &[Event::decoded(event)]).map_err(|e| e.source)
    }

    fn apply_batch(&self, tx: &Transaction<'_>, events: &[Event<'_>]) -> Result<(), EventError> {
        fold::apply_batch(tx, events)
    }

    fn caught_up(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        schema::create_indexes(tx)
    }
}
