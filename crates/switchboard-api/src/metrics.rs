//! Prometheus metrics, served at `/metrics` in the text exposition format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use switchboard_projector::Lag;

/// Labels of HTTP request metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route, e.g. `/graphql` (never the raw path, to bound cardinality).
    pub route: String,
    /// The response status.
    pub status: u16,
}

/// Labels of route-only metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route.
    pub route: String,
}

/// Labels of command metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The command's name, e.g. `conversation`.
    pub command: String,
    /// `ok`, `user_error` or `error`.
    pub outcome: String,
}

/// Labels of per-projector metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectorLabels {
    /// The projector's name.
    pub projector: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    commands: Family<CommandLabels, Counter>,
    events_appended: Counter,
    subscriptions: Gauge,
    subscription_reads: Counter,
    chat_live_routed: Counter,
    chat_live_lagged: Counter,
    lag_positions: Family<ProjectorLabels, Gauge>,
    lag_seconds: Family<ProjectorLabels, Gauge<f64, AtomicU64>>,
    projector_failed: Family<ProjectorLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 0.25 ms up to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("switchboard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            latency.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands executed, by outcome",
            commands.clone(),
        );
        let events_appended = Counter::default();
        registry.register(
            "events_appended",
            "Events appended to the store by this node's commands",
            events_appended.clone(),
        );
        let subscriptions = Gauge::default();
        registry.register(
            "subscriptions_active",
            "GraphQL subscriptions open now",
            subscriptions.clone(),
        );
        let subscription_reads = Counter::default();
        registry.register(
            "subscription_reads",
            "Read-model queries made to announce live updates (at most one per event, \
             however many subscribers it concerns)",
            subscription_reads.clone(),
        );
        let chat_live_routed = Counter::default();
        registry.register(
            "chat_live_routed",
            "Messages of a chat conversation handed to the visitor sockets following it",
            chat_live_routed.clone(),
        );
        let chat_live_lagged = Counter::default();
        registry.register(
            "chat_live_lagged",
            "Messages a visitor socket had no room for (it read its conversation again)",
            chat_live_lagged.clone(),
        );
        let lag_positions = Family::<ProjectorLabels, Gauge>::default();
        registry.register(
            "projection_lag_positions",
            "Events in the store a read model has not applied yet",
            lag_positions.clone(),
        );
        let lag_seconds = Family::<ProjectorLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "projection_lag_seconds",
            "Age of the oldest event a read model has not applied yet",
            lag_seconds.clone(),
        );
        let projector_failed = Family::<ProjectorLabels, Gauge>::default();
        registry.register(
            "projection_failed",
            "1 when a projector stopped on an event",
            projector_failed.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            commands,
            events_appended,
            subscriptions,
            subscription_reads,
            chat_live_routed,
            chat_live_lagged,
            lag_positions,
            lag_seconds,
            projector_failed,
        }
    }

    /// Counts one HTTP request on `route` that took `seconds`.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one command and the events it wrote.
    pub fn observe_command(&self, command: &str, outcome: &str, written: u64) {
        self.commands
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.events_appended.inc_by(written);
    }

    /// A subscription opened (`+1`) or closed (`-1`).
    pub(crate) fn subscriptions_changed(&self, by: i64) {
        self.subscriptions.inc_by(by);
    }

    /// A read-model query made for subscriptions.
    pub(crate) fn subscription_read(&self) {
        self.subscription_reads.inc();
    }

    /// The counters of chat's live routing: messages handed to visitor sockets, and those a
    /// socket had no room for.
    pub(crate) fn chat_live(&self) -> (Counter, Counter) {
        (self.chat_live_routed.clone(), self.chat_live_lagged.clone())
    }

    /// The text exposition, with the projection lag as of `lags`.
    pub fn render(&self, lags: &[Lag]) -> String {
        for lag in lags {
            let labels = ProjectorLabels {
                projector: lag.name.to_owned(),
            };
            self.lag_positions
                .get_or_create(&labels)
                .set(i64::try_from(lag.positions_behind).unwrap_or(i64::MAX));
            self.lag_seconds
                .get_or_create(&labels)
                .set(lag.seconds_behind);
            self.projector_failed
                .get_or_create(&labels)
                .set(i64::from(lag.failed.is_some()));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
