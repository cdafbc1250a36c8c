//! Response analytics as GraphQL objects: PRODUCT.md's response metrics, aggregated over the
//! measurements the viewer may see, grouped for analysts, and drilled down to conversations and
//! their cycles.
//!
//! The definitions (cycles, first response time, agent response time, response time, time to
//! close, bot first response time, team and period attribution, statistics) are the
//! `response_analytics` read model's and are repeated in the schema's descriptions. Every
//! duration is in whole **seconds**, on the calendar clock or, with `businessHours: true`, counting
//! only time inside the organisation's opening hours as they are set now.
//!
//! Access is applied *before* aggregating: each measurement is kept only if the viewer may see
//! its conversation (`Access::conversation`: their inboxes, minus other users' private
//! conversations), so a figure never includes a conversation the viewer could not open. Replies
//! per agent, bot counts and live figures are aggregated by the read model per inbox; for a viewer
//! who does not see every inbox they are summed over the inboxes they see.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc};
use proto_events::event::{ChannelConfig, ChannelKind};
use response_analytics::{MetricFilter, PrivateConversations, Stats};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::access::Access;
use crate::error::{ApiError, ApiResult};
use crate::ids::{self, Kind};
use crate::state::{access, state};
use crate::types::conversation::Conversation;
use crate::types::directory::{Bot, ChannelType, Team, User};
use crate::types::inbox::Inbox;
use crate::types::page::{Window, encode_cursor};

/// The read model every analytics query reads.
const MODEL: &str = "response_analytics";

/// Every metric, for the drill-down that lists them all.
const ALL_METRICS: [response_analytics::Metric; 5] = [
    response_analytics::Metric::FirstResponse,
    response_analytics::Metric::AgentResponse,
    response_analytics::Metric::MessageResponse,
    response_analytics::Metric::TimeToClose,
    response_analytics::Metric::BotFirstResponse,
];

/// A response metric. Each measurement of a metric is one interval of a conversation's cycle (a
/// cycle starts when the conversation starts or is reopened and ends when it is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "Metric", remote = "response_analytics::Metric")]
pub(crate) enum MetricName {
    /// From a cycle's first inbound customer message (or a later bot handoff) to the first reply
    /// by a human agent. Comments, bot and automated replies do not count.
    FirstResponse,
    /// From an assignment to a user to that user's first reply after it.
    AgentResponse,
    /// From the first of a run of consecutive customer messages to the next human reply; a
    /// run that began while a bot held the conversation is measured from the handoff
    /// (`Analytics.responseTime`).
    #[graphql(name = "RESPONSE")]
    MessageResponse,
    /// From a cycle's start (or reopening) to its close; attributed to the assignee at close.
    TimeToClose,
    /// From a cycle's first customer message to a bot's first reply in it.
    BotFirstResponse,
}

/// Which clock durations are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "response_analytics::TimeBasis")]
pub(crate) enum TimeBasis {
    /// Elapsed time.
    Calendar,
    /// Only time inside the organisation's opening hours as set now (in their time zone,
    /// holidays excluded); all time if opening hours were never set.
    Business,
}

/// What a breakdown groups measurements by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum Dimension {
    /// The conversation's inbox.
    Inbox,
    /// The channel the conversation came through.
    Channel,
    /// The kind of that channel (e-mail, chat, Messenger, form).
    ChannelKind,
    /// The user measured (the replying agent; for time to close, the assignee at close); row
    /// `none` holds measurements without one.
    Agent,
    /// Each team the agent belonged to when the measurement completed (a measurement counts in
    /// every team of its agent); row `none` holds measurements without a team.
    Team,
    /// The bot measured (bot first response); row `none` holds the others.
    Bot,
    /// The calendar day the measured interval started on, in the organisation's time zone (its
    /// opening hours' once those are set).
    Day,
    /// The ISO week (Monday to Sunday) the measured interval started in, in the organisation's
    /// time zone (its opening hours' once those are set).
    Week,
    /// The calendar month the measured interval started in, in the organisation's time zone (its
    /// opening hours' once those are set).
    Month,
}

/// Which measurements analytics cover. Every field combines with AND; leaving all out covers
/// everything the viewer may see.
#[derive(Debug, Clone, Default, InputObject)]
pub(crate) struct AnalyticsFilter {
    /// Only conversations of this inbox (NOT_FOUND if the viewer does not see it).
    pub(crate) inbox_id: Option<ID>,
    /// Only conversations that came through this channel.
    pub(crate) channel_id: Option<ID>,
    /// Only conversations of channels of this kind.
    pub(crate) channel_kind: Option<ChannelType>,
    /// Only measurements of this user (the replying agent; for time to close, the assignee at
    /// close; for replies per agent, the sender).
    pub(crate) agent_id: Option<ID>,
    /// Only measurements whose agent belonged to this team when the measurement completed.
    pub(crate) team_id: Option<ID>,
    /// Only this bot (bot first response and bot performance).
    pub(crate) bot_id: Option<ID>,
    /// Period start, inclusive, by the instant the measured interval started (a reply by its
    /// send instant; a bot's conversation by the bot's first part in it).
    pub(crate) from: Option<DateTime<Utc>>,
    /// Period end, exclusive, on the same instants as `from`.
    pub(crate) until: Option<DateTime<Utc>>,
    /// Count only time inside opening hours (the `BUSINESS` time basis).
    #[graphql(default)]
    pub(crate) business_hours: bool,
}

/// What a field that reads every measurement of one metric in the filter (or the replies or
/// bot rows it aggregates) adds to a query's complexity: such a field costs a scan, not a
/// lookup, so that a document cannot ask for many of them under different aliases or filters
/// (30 of them exceed the default limit of 5,000, a dashboard's handful does not).
pub(crate) const SCAN: usize = 200;

/// A resolved filter and the viewer's access, shared by every field of one `Analytics`.
#[derive(Debug)]
struct Scope {
    filter: MetricFilter,
    basis: response_analytics::TimeBasis,
    access: Arc<Access>,
    /// The visible measurements of each metric ([`metric_index`]), loaded by the first field
    /// that needs them and shared by the others (a metric's statistics, its breakdowns and the
    /// drill-down read the same rows).
    loaded: [OnceCell<Arc<Vec<response_analytics::Measurement>>>; 5],
}

/// The place of `metric` in [`ALL_METRICS`] and [`Scope::loaded`].
fn metric_index(metric: response_analytics::Metric) -> usize {
    ALL_METRICS
        .iter()
        .position(|m| *m == metric)
        .unwrap_or_default()
}

impl Scope {
    /// Whether the viewer may see the conversation a measurement belongs to.
    fn sees(&self, m: &response_analytics::Measurement) -> bool {
        self.access.conversation(m.inbox_id, m.private_owner)
    }

    /// The filters to aggregate per inbox with: the filter itself when it names an inbox or the
    /// viewer sees every inbox, else one per inbox the viewer sees (summed by the caller).
    fn inbox_filters(&self) -> Vec<MetricFilter> {
        if self.filter.inbox_id.is_some() || self.access.all_inboxes {
            return vec![self.filter.clone()];
        }
        let mut inboxes: Vec<Uuid> = self.access.inboxes.iter().copied().collect();
        inboxes.sort_unstable();
        inboxes
            .into_iter()
            .map(|inbox| MetricFilter {
                inbox_id: Some(inbox),
                ..self.filter.clone()
            })
            .collect()
    }
}

/// The measurements of `metric` matching `filter` that the viewer of `scope` may see.
fn visible_in(
    conn: &rusqlite::Connection,
    scope: &Scope,
    metric: response_analytics::Metric,
    filter: &MetricFilter,
) -> rusqlite::Result<Vec<response_analytics::Measurement>> {
    let mut rows = response_analytics::measurements(conn, metric, filter)?;
    rows.retain(|m| scope.sees(m));
    Ok(rows)
}

/// The measurements of `metric` in `scope`'s filter that its viewer may see: read once per
/// `Analytics` object, whichever of its fields asks first.
async fn visible(
    ctx: &Context<'_>,
    scope: &Arc<Scope>,
    metric: response_analytics::Metric,
) -> ApiResult<Arc<Vec<response_analytics::Measurement>>> {
    let loaded = scope.loaded[metric_index(metric)]
        .get_or_try_init(|| async {
            let scope = scope.clone();
            let rows = state(ctx)
                .query(MODEL, move |conn| {
                    visible_in(conn, &scope, metric, &scope.filter)
                })
                .await?;
            Ok::<_, ApiError>(Arc::new(rows))
        })
        .await?;
    Ok(loaded.clone())
}

/// Count, mean, median, 90th percentile, minimum and maximum of a metric's durations, in
/// seconds, every one a `Float` (a mean or a median of whole seconds need not be whole).
/// Everything but `count` is null when there are no measurements.
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub(crate) struct MetricStats {
    /// How many measurements.
    pub(crate) count: u64,
    /// The arithmetic mean, seconds.
    pub(crate) mean: Option<f64>,
    /// The middle value (the mean of the two middle values for an even count), seconds.
    pub(crate) median: Option<f64>,
    /// The 90th percentile by nearest rank: the value at rank `ceil(0.9 × count)` of the
    /// ascending durations, seconds (always one of the durations).
    pub(crate) p90: Option<f64>,
    /// The shortest duration, seconds.
    pub(crate) min: Option<f64>,
    /// The longest duration, seconds.
    pub(crate) max: Option<f64>,
}

impl MetricStats {
    /// The statistics of `values` (seconds, any order).
    fn of(values: Vec<i64>) -> MetricStats {
        let seconds = |s: i64| s as f64;
        let min = values.iter().min().copied().map(seconds);
        let max = values.iter().max().copied().map(seconds);
        let stats = Stats::of(values);
        MetricStats {
            count: u64::try_from(stats.count).unwrap_or(u64::MAX),
            mean: stats.mean_seconds,
            median: stats.median_seconds,
            p90: stats.p90_seconds.map(seconds),
            min,
            max,
        }
    }
}

/// Response metrics over the conversations the viewer sees, as of the read model's position.
///
/// Figures are computed when asked for, each from the measurements matching the filter; every
/// duration is in whole seconds on `timeBasis`.
#[derive(Debug, Clone)]
pub(crate) struct Analytics(Arc<Scope>);

impl Analytics {
    /// Validates `filter` for the viewer: an inbox they do not see is NOT_FOUND.
    pub(crate) async fn resolve(
        ctx: &Context<'_>,
        filter: AnalyticsFilter,
    ) -> ApiResult<Analytics> {
        let access = access(ctx).await?;
        let id = |id: &Option<ID>, kind: Kind, field: &str| {
            id.as_ref()
                .map(|id| ids::decode(id, kind, field))
                .transpose()
        };
        let inbox_id = id(&filter.inbox_id, Kind::Inbox, "filter.inboxId")?;
        if let Some(inbox) = inbox_id
            && !access.inbox(inbox)
        {
            return Err(ApiError::not_found("inbox"));
        }
        if let (Some(from), Some(until)) = (filter.from, filter.until)
            && until <= from
        {
            return Err(ApiError::bad_input("filter.until", "must be after `from`"));
        }
        let metric_filter = MetricFilter {
            inbox_id,
            channel_id: id(&filter.channel_id, Kind::Channel, "filter.channelId")?,
            channel_kind: filter.channel_kind.map(Into::into),
            agent_id: id(&filter.agent_id, Kind::User, "filter.agentId")?,
            team_id: id(&filter.team_id, Kind::Team, "filter.teamId")?,
            bot_id: id(&filter.bot_id, Kind::Bot, "filter.botId")?,
            from: filter.from,
            until: filter.until,
            // Counts too leave out other users' private conversations (Access::conversation).
            private: if access.is_admin() {
                PrivateConversations::All
            } else {
                PrivateConversations::OwnedBy(access.user_id)
            },
        };
        Ok(Analytics(Arc::new(Scope {
            filter: metric_filter,
            basis: if filter.business_hours {
                response_analytics::TimeBasis::Business
            } else {
                response_analytics::TimeBasis::Calendar
            },
            access,
            loaded: Default::default(),
        })))
    }

    /// The statistics of `metric` over the visible measurements.
    async fn stats(
        &self,
        ctx: &Context<'_>,
        metric: response_analytics::Metric,
    ) -> ApiResult<MetricStats> {
        let rows = visible(ctx, &self.0, metric).await?;
        Ok(MetricStats::of(
            rows.iter().map(|m| m.on(self.0.basis)).collect(),
        ))
    }

    async fn replies(&self, ctx: &Context<'_>) -> ApiResult<Vec<AgentReplies>> {
        let scope = self.0.clone();
        state(ctx)
            .query(MODEL, move |conn| {
                let mut sums: HashMap<Uuid, (u64, u64)> = HashMap::new();
                for filter in scope.inbox_filters() {
                    for row in response_analytics::replies_per_agent(conn, &filter)? {
                        let sum = sums.entry(row.agent_id).or_default();
                        sum.0 += row.conversations;
                        sum.1 += row.replies;
                    }
                }
                let mut rows: Vec<AgentReplies> = sums
                    .into_iter()
                    .map(|(agent_id, (conversations, replies))| AgentReplies {
                        agent_id,
                        conversations,
                        replies,
                    })
                    .collect();
                rows.sort_by(|a, b| b.replies.cmp(&a.replies).then(a.agent_id.cmp(&b.agent_id)));
                Ok(rows)
            })
            .await
    }

    async fn bots(&self, ctx: &Context<'_>) -> ApiResult<Vec<BotPerformance>> {
        let scope = self.0.clone();
        state(ctx)
            .query(MODEL, move |conn| {
                let mut rows: BTreeMap<Uuid, BotPerformance> = BTreeMap::new();
                for filter in scope.inbox_filters() {
                    for bot in response_analytics::bot_performance(conn, &filter, scope.basis)? {
                        let row = rows
                            .entry(bot.bot_id)
                            .or_insert_with(|| BotPerformance::empty(bot.bot_id));
                        row.conversations += bot.conversations;
                        row.handed_off += bot.handed_off;
                        row.closed_without_human += bot.closed_without_human;
                    }
                }
                // The bot's first-response statistics cannot be summed across inboxes: they are
                // recomputed from the visible measurements (agent and team do not apply to bots).
                let bot_filter = MetricFilter {
                    agent_id: None,
                    team_id: None,
                    ..scope.filter.clone()
                };
                let mut values: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
                for m in visible_in(
                    conn,
                    &scope,
                    response_analytics::Metric::BotFirstResponse,
                    &bot_filter,
                )? {
                    if let Some(bot) = m.bot_id {
                        values.entry(bot).or_default().push(m.on(scope.basis));
                    }
                }
                for (bot, durations) in values {
                    rows.entry(bot)
                        .or_insert_with(|| BotPerformance::empty(bot))
                        .first_response_time = MetricStats::of(durations);
                }
                Ok(rows.into_values().collect())
            })
            .await
    }

    async fn live_figures(&self, ctx: &Context<'_>) -> ApiResult<Vec<InboxLive>> {
        let scope = self.0.clone();
        state(ctx)
            .query(MODEL, move |conn| {
                let mut rows = response_analytics::live_figures(conn, scope.filter.private)?;
                rows.retain(|l| {
                    scope.access.inbox(l.inbox_id)
                        && scope.filter.inbox_id.is_none_or(|i| i == l.inbox_id)
                });
                Ok(rows.into_iter().map(InboxLive).collect())
            })
            .await
    }

    async fn groups(
        &self,
        ctx: &Context<'_>,
        metric: response_analytics::Metric,
        by: Dimension,
    ) -> ApiResult<Vec<BreakdownRow>> {
        let scope = self.0.clone();
        let view = state(ctx).directory().await?;
        // Periods are the organisation's calendar: in its opening hours' time zone once hours
        // are set, else in the time zone it was created with, else (none parses) UTC.
        let organisation_zone: Option<chrono_tz::Tz> = view
            .directory
            .organisation
            .as_ref()
            .and_then(|o| o.time_zone.parse().ok());
        let rows = visible(ctx, &scope, metric).await?;
        let groups = state(ctx)
            .query(MODEL, move |conn| {
                let schedule = match by {
                    Dimension::Day | Dimension::Week | Dimension::Month => {
                        response_analytics::business_hours(conn)?
                    }
                    _ => None,
                };
                let zone = schedule.map(|s| s.time_zone).or(organisation_zone);
                let mut groups: BTreeMap<GroupKey, Vec<i64>> = BTreeMap::new();
                for m in rows.iter() {
                    let value = m.on(scope.basis);
                    let keys: Vec<GroupKey> = match by {
                        Dimension::Inbox => vec![GroupKey::Id(m.inbox_id)],
                        Dimension::Channel => vec![GroupKey::Id(m.channel_id)],
                        Dimension::ChannelKind => {
                            vec![GroupKey::ChannelKind(kind_names(m.channel_kind))]
                        }
                        Dimension::Agent => vec![m.agent_id.map_or(GroupKey::Nobody, GroupKey::Id)],
                        Dimension::Bot => vec![m.bot_id.map_or(GroupKey::Nobody, GroupKey::Id)],
                        Dimension::Team if m.team_ids.is_empty() => vec![GroupKey::Nobody],
                        Dimension::Team => m.team_ids.iter().copied().map(GroupKey::Id).collect(),
                        Dimension::Day | Dimension::Week | Dimension::Month => {
                            let day = match &zone {
                                Some(zone) => period_start(m.start, zone, by),
                                None => period_start(m.start, &Utc, by),
                            };
                            vec![GroupKey::Period(day)]
                        }
                    };
                    for key in keys {
                        groups.entry(key).or_default().push(value);
                    }
                }
                Ok(groups)
            })
            .await?;
        let directory = &view.directory;
        let mut rows: Vec<(GroupKey, BreakdownRow)> = groups
            .into_iter()
            .map(|(key, values)| {
                let (id, label) = key.describe(by, directory);
                let row = BreakdownRow {
                    key: id,
                    label,
                    stats: MetricStats::of(values),
                };
                (key, row)
            })
            .collect();
        rows.sort_by(|(ka, a), (kb, b)| {
            let nobody = |k: &GroupKey| matches!(k, GroupKey::Nobody);
            nobody(ka).cmp(&nobody(kb)).then_with(|| match (ka, kb) {
                (GroupKey::Period(x), GroupKey::Period(y)) => x.cmp(y),
                _ => a.label.cmp(&b.label).then_with(|| a.key.cmp(&b.key)),
            })
        });
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    }

    async fn cycles(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> ApiResult<Connection<String, CycleMeasurements>> {
        let window = Window::new(&state(ctx).limits, first, after, last, before)?;
        let scope = &self.0;
        let mut cycles: BTreeMap<(Uuid, u32), Vec<response_analytics::Measurement>> =
            BTreeMap::new();
        for metric in ALL_METRICS {
            for m in visible(ctx, scope, metric).await?.iter() {
                cycles
                    .entry((m.conversation_id, m.cycle_no))
                    .or_default()
                    .push(m.clone());
            }
        }
        let mut rows: Vec<(CycleKey, CycleMeasurements)> = cycles
            .into_iter()
            .filter_map(|((conversation_id, cycle_no), mut measurements)| {
                measurements.sort_by_key(|m| m.start);
                let first = measurements.first()?.clone();
                let key = (first.start.timestamp_micros(), conversation_id, cycle_no);
                Some((
                    key,
                    CycleMeasurements {
                        first,
                        measurements,
                        basis: scope.basis,
                    },
                ))
            })
            .collect();
        rows.sort_by_key(|(key, _)| *key);
        let (page, has_previous, has_next) = slice(rows, &window)?;
        let mut connection = Connection::new(has_previous, has_next);
        for ((micros, conversation, cycle), row) in page {
            connection.edges.push(Edge::new(
                encode_cursor(&format!("{micros}:{conversation}:{cycle}")),
                row,
            ));
        }
        Ok(connection)
    }
}

#[Object]
impl Analytics {
    /// The clock every duration here is measured on.
    async fn time_basis(&self) -> TimeBasis {
        self.0.basis.into()
    }
    /// First response time of cycles: from a cycle's first inbound customer message (or, after
    /// a bot handoff, from the handoff) to the first reply sent by a human agent. Comments, bot
    /// and automated replies do not count; a cycle nobody has answered yet has none. Seconds.
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn first_response_time(&self, ctx: &Context<'_>) -> async_graphql::Result<MetricStats> {
        Ok(self
            .stats(ctx, response_analytics::Metric::FirstResponse)
            .await?)
    }
    /// Agent response time: from the assignment to an agent to that agent's first reply after
    /// it (a reassignment before the reply measures nothing). Seconds.
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn agent_response_time(&self, ctx: &Context<'_>) -> async_graphql::Result<MetricStats> {
        Ok(self
            .stats(ctx, response_analytics::Metric::AgentResponse)
            .await?)
    }
    /// Response time of customer messages that wait for the team: from the first of a run of
    /// consecutive customer messages to the next human reply. While a bot holds the
    /// conversation the team is not waited for yet: a run that began under the bot is measured
    /// from the handoff. Seconds.
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn response_time(&self, ctx: &Context<'_>) -> async_graphql::Result<MetricStats> {
        Ok(self
            .stats(ctx, response_analytics::Metric::MessageResponse)
            .await?)
    }
    /// Time to close: from a cycle's start (the conversation's start or its reopening) to its
    /// close. Seconds.
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn time_to_close(&self, ctx: &Context<'_>) -> async_graphql::Result<MetricStats> {
        Ok(self
            .stats(ctx, response_analytics::Metric::TimeToClose)
            .await?)
    }
    /// Bots' first response time: from a cycle's first customer message to a bot's first reply
    /// in it. Seconds.
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn bot_first_response_time(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<MetricStats> {
        Ok(self
            .stats(ctx, response_analytics::Metric::BotFirstResponse)
            .await?)
    }
    /// The statistics of any metric (the same as its own field).
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn metric(
        &self,
        ctx: &Context<'_>,
        metric: MetricName,
    ) -> async_graphql::Result<MetricStats> {
        Ok(self.stats(ctx, metric.into()).await?)
    }
    /// Per agent: conversations in which they sent at least one reply, and replies sent (by
    /// send instant; the bot filter does not apply). Most replies first.
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn replies_per_agent(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AgentReplies>> {
        Ok(self.replies(ctx).await?)
    }
    /// Per bot: conversations it took part in, handed off to a human, and closed without human
    /// involvement; its own first response time (agent and team filters do not apply).
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn bot_performance(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<BotPerformance>> {
        Ok(self.bots(ctx).await?)
    }
    /// Live figures per inbox the viewer sees (only the `inboxId` filter applies): open,
    /// unassigned, awaiting a first reply, waiting longest.
    async fn live(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<InboxLive>> {
        Ok(self.live_figures(ctx).await?)
    }
    /// The statistics of `metric` grouped `by` a dimension, one row per group with at least one
    /// measurement. Periods are local to the opening hours' time zone (UTC if none were set)
    /// and sorted by time; other rows are sorted by label, `none` last.
    #[graphql(complexity = "SCAN + child_complexity")]
    async fn breakdown(
        &self,
        ctx: &Context<'_>,
        metric: MetricName,
        by: Dimension,
    ) -> async_graphql::Result<Vec<BreakdownRow>> {
        Ok(self.groups(ctx, metric.into(), by).await?)
    }
    /// Drill-down: the conversation cycles with at least one measurement in the filter, each
    /// with those measurements, ordered by their first measured instant.
    #[graphql(
        complexity = "ALL_METRICS.len() * SCAN + crate::types::page::complexity(first, last, child_complexity)"
    )]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Connection<String, CycleMeasurements>> {
        Ok(self.cycles(ctx, first, after, last, before).await?)
    }
}

/// The keyset of the drill-down list: first measured instant (µs), conversation, cycle.
type CycleKey = (i64, Uuid, u32);

fn parse_cycle_key(text: &str, field: &str) -> ApiResult<CycleKey> {
    let bad = || ApiError::bad_input(field, "not a cursor returned by this list");
    let mut parts = text.splitn(3, ':');
    let micros = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let conversation = parts
        .next()
        .and_then(|p| Uuid::parse_str(p).ok())
        .ok_or_else(bad)?;
    let cycle = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    Ok((micros, conversation, cycle))
}

/// A page of the drill-down list, with `hasPreviousPage` and `hasNextPage`.
type Slice<T> = (Vec<(CycleKey, T)>, bool, bool);

/// The page of sorted `rows` that `window` asks for, with `hasPreviousPage` and `hasNextPage`.
fn slice<T>(rows: Vec<(CycleKey, T)>, window: &Window) -> ApiResult<Slice<T>> {
    match window {
        Window::First { count, after } => {
            let after = after
                .as_deref()
                .map(|a| parse_cycle_key(a, "after"))
                .transpose()?;
            let start = after.map_or(0, |a| rows.partition_point(|(k, _)| *k <= a));
            let has_next = rows.len() - start > *count;
            let page = rows.into_iter().skip(start).take(*count).collect();
            Ok((page, start > 0, has_next))
        }
        Window::Last { count, before } => {
            let before = before
                .as_deref()
                .map(|b| parse_cycle_key(b, "before"))
                .transpose()?;
            let end = before.map_or(rows.len(), |b| rows.partition_point(|(k, _)| *k < b));
            let start = end.saturating_sub(*count);
            let has_next = end < rows.len();
            let page = rows.into_iter().take(end).skip(start).collect();
            Ok((page, start > 0, has_next))
        }
    }
}

/// The first day of the `by` period containing `instant`, in `zone`.
fn period_start<Z: TimeZone>(instant: DateTime<Utc>, zone: &Z, by: Dimension) -> NaiveDate {
    let day = instant.with_timezone(zone).date_naive();
    match by {
        Dimension::Week => day
            .checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))
            .unwrap_or(day),
        Dimension::Month => day.with_day(1).unwrap_or(day),
        _ => day,
    }
}

/// What a breakdown row groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey {
    /// An inbox, channel, user, team or bot.
    Id(Uuid),
    /// A channel kind: its enum value and label.
    ChannelKind((&'static str, &'static str)),
    /// A period, by its first day.
    Period(NaiveDate),
    /// Measurements without an agent, team or bot.
    Nobody,
}

impl GroupKey {
    /// The row's key and label.
    fn describe(
        self,
        by: Dimension,
        d: &switchboard_domain::directory::Directory,
    ) -> (String, String) {
        match self {
            GroupKey::Nobody => (
                "none".to_owned(),
                format!(
                    "No {}",
                    match by {
                        Dimension::Team => "team",
                        Dimension::Bot => "bot",
                        _ => "agent",
                    }
                ),
            ),
            GroupKey::ChannelKind((key, label)) => (key.to_owned(), label.to_owned()),
            GroupKey::Period(day) => {
                let label = match by {
                    Dimension::Week => {
                        let week = day.iso_week();
                        format!("{}-W{:02}", week.year(), week.week())
                    }
                    Dimension::Month => day.format("%Y-%m").to_string(),
                    _ => day.format("%Y-%m-%d").to_string(),
                };
                (day.format("%Y-%m-%d").to_string(), label)
            }
            GroupKey::Id(id) => {
                let (kind, name) = match by {
                    Dimension::Inbox => (Kind::Inbox, d.inboxes.get(&id).map(|i| i.name.clone())),
                    Dimension::Channel => (
                        Kind::Channel,
                        d.channels.get(&id).map(|c| channel_label(&c.config)),
                    ),
                    Dimension::Team => (Kind::Team, d.teams.get(&id).map(|t| t.name.clone())),
                    Dimension::Bot => (Kind::Bot, d.bots.get(&id).cloned()),
                    _ => (Kind::User, d.user(id).map(|u| u.name.clone())),
                };
                (
                    ids::encode(kind, id).0,
                    name.unwrap_or_else(|| format!("Unknown {}", kind.name())),
                )
            }
        }
    }
}

/// A channel kind's `ChannelType` value and label.
fn kind_names(kind: ChannelKind) -> (&'static str, &'static str) {
    match kind {
        ChannelKind::Email => ("EMAIL", "E-mail"),
        ChannelKind::Chat => ("CHAT", "Chat"),
        ChannelKind::Messenger => ("MESSENGER", "Messenger"),
        ChannelKind::Form => ("FORM", "Form"),
    }
}

/// The name a channel is shown with: its address, or its widget's, page's or form's name.
fn channel_label(config: &ChannelConfig) -> String {
    match config {
        ChannelConfig::Email { address, .. } => address.clone(),
        ChannelConfig::Chat { name } | ChannelConfig::Form { name } => name.clone(),
        ChannelConfig::Messenger { page_name, .. } => page_name.clone(),
    }
}

/// One group of a breakdown.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct BreakdownRow {
    /// What identifies the group: a global id (inbox, channel, agent, team, bot), a channel kind
    /// (`EMAIL`, `CHAT`, ...), a period's first day (`2026-03-02`), or `none`.
    pub(crate) key: String,
    /// A name to show: the inbox's, channel's, user's, team's or bot's name, the channel kind,
    /// or the period (`2026-03-02`, `2026-W10`, `2026-03`).
    pub(crate) label: String,
    /// The metric's statistics in the group, seconds.
    pub(crate) stats: MetricStats,
}

async fn user(ctx: &Context<'_>, id: Option<Uuid>) -> ApiResult<Option<User>> {
    let Some(id) = id else { return Ok(None) };
    let view = state(ctx).directory().await?;
    Ok(view.directory.user(id).cloned().map(User))
}

async fn bot(ctx: &Context<'_>, id: Option<Uuid>) -> ApiResult<Option<Bot>> {
    let Some(id) = id else { return Ok(None) };
    let view = state(ctx).directory().await?;
    Ok(view.directory.bots.get(&id).map(|name| Bot {
        bot_id: id,
        name: name.clone(),
    }))
}

async fn inbox(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Inbox>> {
    let view = state(ctx).directory().await?;
    Ok(view.directory.inboxes.get(&id).cloned().map(Inbox))
}

/// The replies of one agent.
#[derive(Debug, Clone)]
pub(crate) struct AgentReplies {
    agent_id: Uuid,
    conversations: u64,
    replies: u64,
}

#[Object]
impl AgentReplies {
    /// The agent (null if the user no longer exists).
    async fn agent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(user(ctx, Some(self.agent_id)).await?)
    }
    /// The agent's global id.
    async fn agent_id(&self) -> ID {
        ids::encode(Kind::User, self.agent_id)
    }
    /// Conversations in which the agent sent at least one reply.
    async fn conversations(&self) -> u64 {
        self.conversations
    }
    /// Replies the agent sent.
    async fn replies(&self) -> u64 {
        self.replies
    }
}

/// How one bot performs.
#[derive(Debug, Clone)]
pub(crate) struct BotPerformance {
    bot_id: Uuid,
    conversations: u64,
    handed_off: u64,
    closed_without_human: u64,
    first_response_time: MetricStats,
}

impl BotPerformance {
    fn empty(bot_id: Uuid) -> BotPerformance {
        BotPerformance {
            bot_id,
            conversations: 0,
            handed_off: 0,
            closed_without_human: 0,
            first_response_time: MetricStats::of(Vec::new()),
        }
    }
}

#[Object]
impl BotPerformance {
    /// The bot (null if unknown to the directory).
    async fn bot(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bot>> {
        Ok(bot(ctx, Some(self.bot_id)).await?)
    }
    /// The bot's global id.
    async fn bot_id(&self) -> ID {
        ids::encode(Kind::Bot, self.bot_id)
    }
    /// Conversations it took part in (it replied or was assigned).
    async fn conversations(&self) -> u64 {
        self.conversations
    }
    /// Conversations it handed off to humans.
    async fn handed_off(&self) -> u64 {
        self.handed_off
    }
    /// Conversations with a cycle it took part in that closed with neither a human reply nor a
    /// handoff.
    async fn closed_without_human(&self) -> u64 {
        self.closed_without_human
    }
    /// Its own first response time, seconds.
    async fn first_response_time(&self) -> &MetricStats {
        &self.first_response_time
    }
}

/// Live figures of one inbox. They hold instants, never "now": subtract `waitingLongestSince`
/// from the current time to get how long the longest wait is.
#[derive(Debug, Clone)]
pub(crate) struct InboxLive(response_analytics::InboxLive);

#[Object]
impl InboxLive {
    /// The inbox.
    async fn inbox(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Inbox>> {
        Ok(inbox(ctx, self.0.inbox_id).await?)
    }
    /// The inbox's global id.
    async fn inbox_id(&self) -> ID {
        ids::encode(Kind::Inbox, self.0.inbox_id)
    }
    /// Open conversations.
    async fn open(&self) -> u64 {
        self.0.open
    }
    /// Open conversations without any assignee (a team or bot assignee counts as assigned).
    async fn unassigned(&self) -> u64 {
        self.0.unassigned
    }
    /// Open conversations whose current cycle awaits its first human reply.
    async fn awaiting_first_reply(&self) -> u64 {
        self.0.awaiting_first_reply
    }
    /// Since when the customer waiting longest among open conversations has waited for the
    /// team: their oldest unanswered message, or, if that came while a bot held the
    /// conversation, the handoff; null if nobody waits.
    async fn waiting_longest_since(&self) -> Option<DateTime<Utc>> {
        self.0.waiting_since
    }
}

/// One measured interval.
#[derive(Debug, Clone)]
pub(crate) struct Measurement(response_analytics::Measurement);

#[Object]
impl Measurement {
    /// What was measured.
    async fn metric(&self) -> MetricName {
        self.0.metric.into()
    }
    /// The conversation's global id.
    async fn conversation_id(&self) -> ID {
        ids::encode(Kind::Conversation, self.0.conversation_id)
    }
    /// The cycle it belongs to, from 1.
    async fn cycle(&self) -> u32 {
        self.0.cycle_no
    }
    /// Where the interval starts.
    async fn start(&self) -> DateTime<Utc> {
        self.0.start
    }
    /// Where it ends.
    async fn end(&self) -> DateTime<Utc> {
        self.0.end
    }
    /// Its calendar duration, seconds.
    async fn seconds(&self) -> i64 {
        self.0.seconds
    }
    /// Its duration inside the current opening hours, seconds.
    async fn business_seconds(&self) -> i64 {
        self.0.business_seconds
    }
    /// The user measured, if any.
    async fn agent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(user(ctx, self.0.agent_id).await?)
    }
    /// The bot measured, if any.
    async fn bot(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Bot>> {
        Ok(bot(ctx, self.0.bot_id).await?)
    }
    /// The teams the agent belonged to when the measurement completed.
    async fn teams(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Team>> {
        let view = state(ctx).directory().await?;
        Ok(self
            .0
            .team_ids
            .iter()
            .filter_map(|id| view.directory.teams.get(id).cloned().map(Team))
            .collect())
    }
}

/// One conversation cycle in the analytics drill-down, with its measurements in the filter.
#[derive(Debug, Clone)]
pub(crate) struct CycleMeasurements {
    /// The earliest measurement, for the conversation's facts.
    first: response_analytics::Measurement,
    /// Every measurement in the filter, by start.
    measurements: Vec<response_analytics::Measurement>,
    basis: response_analytics::TimeBasis,
}

impl CycleMeasurements {
    /// The duration on the filter's basis of the first measurement of `metric`.
    fn of(&self, metric: response_analytics::Metric) -> Option<i64> {
        self.measurements
            .iter()
            .find(|m| m.metric == metric)
            .map(|m| m.on(self.basis))
    }
}

#[Object]
impl CycleMeasurements {
    /// The conversation's global id.
    async fn conversation_id(&self) -> ID {
        ids::encode(Kind::Conversation, self.first.conversation_id)
    }
    /// The conversation (null if the thread view does not know it yet).
    async fn conversation(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Conversation>> {
        Ok(Conversation::load(ctx, self.first.conversation_id).await?)
    }
    /// The cycle, from 1.
    async fn cycle(&self) -> u32 {
        self.first.cycle_no
    }
    /// The conversation's inbox.
    async fn inbox(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Inbox>> {
        Ok(inbox(ctx, self.first.inbox_id).await?)
    }
    /// The kind of channel it came through.
    async fn channel_kind(&self) -> ChannelType {
        self.first.channel_kind.into()
    }
    /// The start of its earliest measured interval (the list is ordered on it).
    async fn first_measured_at(&self) -> DateTime<Utc> {
        self.first.start
    }
    /// The cycle's first response time on the filter's time basis, seconds.
    async fn first_response_time(&self) -> Option<i64> {
        self.of(response_analytics::Metric::FirstResponse)
    }
    /// The cycle's time to close on the filter's time basis, seconds.
    async fn time_to_close(&self) -> Option<i64> {
        self.of(response_analytics::Metric::TimeToClose)
    }
    /// A bot's first response time in the cycle on the filter's time basis, seconds.
    async fn bot_first_response_time(&self) -> Option<i64> {
        self.of(response_analytics::Metric::BotFirstResponse)
    }
    /// Every measurement of the cycle in the filter (agent and message response times
    /// included), by start.
    async fn measurements(&self) -> Vec<Measurement> {
        self.measurements.iter().cloned().map(Measurement).collect()
    }
}

/// One conversation's response metrics, cycle by cycle.
#[derive(Debug, Clone)]
pub(crate) struct ConversationMetrics {
    summary: response_analytics::ConversationSummary,
    cycles: Vec<response_analytics::CycleMetrics>,
}

impl ConversationMetrics {
    /// The metrics of `conversation_id`; NOT_FOUND if analytics do not know it or the viewer may
    /// not see it.
    pub(crate) async fn load(
        ctx: &Context<'_>,
        conversation_id: Uuid,
    ) -> ApiResult<ConversationMetrics> {
        let access = access(ctx).await?;
        state(ctx)
            .query(MODEL, move |conn| {
                let Some(summary) = response_analytics::conversation(conn, conversation_id)? else {
                    return Ok(None);
                };
                if !access.conversation(summary.inbox_id, summary.private_owner) {
                    return Ok(None);
                }
                let cycles = response_analytics::conversation_cycles(conn, conversation_id)?;
                Ok(Some(ConversationMetrics { summary, cycles }))
            })
            .await?
            .ok_or_else(|| ApiError::not_found("conversation"))
    }
}

#[Object]
impl ConversationMetrics {
    /// The conversation's global id.
    async fn conversation_id(&self) -> ID {
        ids::encode(Kind::Conversation, self.summary.conversation_id)
    }
    /// The conversation (null if the thread view does not know it yet).
    async fn conversation(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Conversation>> {
        Ok(Conversation::load(ctx, self.summary.conversation_id).await?)
    }
    /// Its inbox.
    async fn inbox(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Inbox>> {
        Ok(inbox(ctx, self.summary.inbox_id).await?)
    }
    /// The kind of channel it came through.
    async fn channel_kind(&self) -> ChannelType {
        self.summary.channel_kind.into()
    }
    /// Whether it is open.
    async fn open(&self) -> bool {
        self.summary.open
    }
    /// The current cycle, from 1.
    async fn current_cycle(&self) -> u32 {
        self.summary.cycle_no
    }
    /// Every cycle, first first.
    async fn cycles(&self) -> Vec<CycleMetrics> {
        self.cycles.iter().cloned().map(CycleMetrics).collect()
    }
}

/// One cycle of a conversation, from its start or reopening to its close, with its metrics on
/// both clocks (seconds).
#[derive(Debug, Clone)]
pub(crate) struct CycleMetrics(response_analytics::CycleMetrics);

#[Object]
impl CycleMetrics {
    /// The cycle, from 1.
    async fn cycle(&self) -> u32 {
        self.0.cycle_no
    }
    /// When it started (the conversation's start or its reopening).
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    /// When it closed, if it did.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    /// Its first inbound customer message.
    async fn first_inbound_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_inbound_at
    }
    /// Its last bot handoff.
    async fn handoff_at(&self) -> Option<DateTime<Utc>> {
        self.0.handoff_at
    }
    /// Where its first response time starts: the first inbound message, or a later handoff.
    async fn first_response_start(&self) -> Option<DateTime<Utc>> {
        self.0.first_response_start
    }
    /// Its first human reply.
    async fn first_response_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_response_at
    }
    /// Who sent that reply.
    async fn first_responder(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(user(ctx, self.0.first_responder).await?)
    }
    /// A first response is due but no human has replied yet.
    async fn awaiting(&self) -> bool {
        self.0.awaiting
    }
    /// First response time, calendar seconds.
    async fn first_response_seconds(&self) -> Option<i64> {
        self.0.first_response_seconds
    }
    /// First response time inside opening hours, seconds.
    async fn first_response_business_seconds(&self) -> Option<i64> {
        self.0.first_response_business_seconds
    }
    /// Time to close, calendar seconds.
    async fn time_to_close_seconds(&self) -> Option<i64> {
        self.0.time_to_close_seconds
    }
    /// Time to close inside opening hours, seconds.
    async fn time_to_close_business_seconds(&self) -> Option<i64> {
        self.0.time_to_close_business_seconds
    }
    /// Human replies in the cycle.
    async fn human_replies(&self) -> u32 {
        self.0.human_replies
    }
    /// Bot replies in the cycle.
    async fn bot_replies(&self) -> u32 {
        self.0.bot_replies
    }
    /// Every measurement of the cycle (agent and message response times included), each on
    /// both clocks.
    async fn measurements(&self) -> Vec<Measurement> {
        self.0
            .measurements
            .iter()
            .cloned()
            .map(Measurement)
            .collect()
    }
}
