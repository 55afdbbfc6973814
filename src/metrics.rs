//! Daemon counters exported at `GET /metrics` in Prometheus text format
//! (prometheus-client does the encoding).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label for page outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    /// written, unchanged, deleted, refused, failed, redirected, skipped.
    pub(crate) outcome: &'static str,
}

/// Label for index page counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    /// ok, failed, refused, deleted, redirect.
    pub(crate) status: String,
}

/// Label for output counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutputLabel {
    /// uploaded, deleted, publish_failed, purges_sent, purge_failed, given_up.
    pub(crate) kind: String,
}

/// Label for fill answers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FillLabel {
    /// baked, public, app, unavailable.
    pub(crate) answer: &'static str,
}

/// Every metric the daemon exports.
pub(crate) struct Metrics {
    registry: Registry,
    /// Targets received (spool, HTTP, watcher).
    pub(crate) events: Counter,
    /// Bakes started.
    pub(crate) fetches: Counter,
    /// Failed attempts (including ones that will be retried).
    pub(crate) errors: Counter,
    /// Finished pages by outcome.
    pub(crate) pages: Family<OutcomeLabel, Counter>,
    /// Event → file-in-place latency.
    pub(crate) latency: Histogram,
    /// URLs waiting for their debounce window or a slot.
    pub(crate) pending: Gauge,
    /// URLs being baked.
    pub(crate) in_flight: Gauge,
    /// Pending URLs that are retries of a failure.
    pub(crate) retrying: Gauge,
    /// 1 while the Redis intake is connected (absent without one).
    pub(crate) redis_connected: Gauge,
    /// Files the mass-delete guard kept since the daemon started.
    pub(crate) removals_held: Gauge,
    /// 1 while the mass-delete guard holds removals back.
    pub(crate) mass_delete_guard_tripped: Gauge,
    /// Accepted requests not done (journal entries and spool files).
    pub(crate) journal_entries: Gauge,
    /// Page changes waiting for their outputs.
    pub(crate) outbox_entries: Gauge,
    /// Output counters (uploaded, deleted, purges, failures), by kind.
    pub(crate) outputs: Family<OutputLabel, Gauge>,
    /// Index writes rolled back since start.
    pub(crate) index_write_failures: Gauge,
    /// Pages in the index by status, refreshed at each scrape.
    pub(crate) index_pages: Family<StatusLabel, Gauge>,
    /// Visitor misses answered by the fill, by answer.
    pub(crate) fills: Family<FillLabel, Counter>,
    /// Pages re-checked by `[[revalidate]]`.
    pub(crate) revalidations: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers everything.
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kiln");
        let events = Counter::default();
        let fetches = Counter::default();
        let errors = Counter::default();
        let pages = Family::<OutcomeLabel, Counter>::default();
        let latency = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let pending = Gauge::default();
        let in_flight = Gauge::default();
        let retrying = Gauge::default();
        let redis_connected = Gauge::default();
        registry.register("events", "Targets received", events.clone());
        registry.register("fetches", "Page bakes started", fetches.clone());
        registry.register("errors", "Failed page attempts", errors.clone());
        registry.register("pages", "Finished pages by outcome", pages.clone());
        registry.register(
            "event_to_fresh_seconds",
            "Time from the first event for a URL to its file being in place",
            latency.clone(),
        );
        registry.register("pending_urls", "URLs waiting to be baked", pending.clone());
        registry.register("in_flight_urls", "URLs being baked", in_flight.clone());
        registry.register(
            "redis_connected",
            "1 while the Redis Streams intake is connected",
            redis_connected.clone(),
        );
        registry.register(
            "retrying_urls",
            "URLs whose last attempt failed and that wait for a retry",
            retrying.clone(),
        );
        let removals_held = Gauge::default();
        registry.register(
            "removals_held",
            "Files the mass-delete guard kept although the origin removed their pages",
            removals_held.clone(),
        );
        let mass_delete_guard_tripped = Gauge::default();
        registry.register(
            "mass_delete_guard_tripped",
            "1 while the mass-delete guard holds removals back (consent: --allow-mass-delete)",
            mass_delete_guard_tripped.clone(),
        );
        let journal_entries = Gauge::default();
        registry.register(
            "queue_entries",
            "Accepted requests not done yet (journal entries and spool files)",
            journal_entries.clone(),
        );
        let outbox_entries = Gauge::default();
        registry.register(
            "outbox_entries",
            "Page changes waiting for the bucket or the CDN",
            outbox_entries.clone(),
        );
        let outputs = Family::<OutputLabel, Gauge>::default();
        registry.register(
            "outputs",
            "Output work since start by kind (uploaded, deleted, publish_failed, purges_sent, purge_failed, given_up)",
            outputs.clone(),
        );
        let index_write_failures = Gauge::default();
        registry.register(
            "index_write_failures",
            "Index writes rolled back since start",
            index_write_failures.clone(),
        );
        let index_pages = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "index_pages",
            "Pages in the index by status",
            index_pages.clone(),
        );
        let fills = Family::<FillLabel, Counter>::default();
        registry.register(
            "fill_requests",
            "Anonymous misses nginx handed to the daemon, by answer (baked, public, app, unavailable)",
            fills.clone(),
        );
        let revalidations = Counter::default();
        registry.register(
            "revalidations",
            "Pages re-checked on the clock of a [[revalidate]] rule",
            revalidations.clone(),
        );
        Metrics {
            registry,
            fills,
            revalidations,
            events,
            fetches,
            errors,
            pages,
            latency,
            pending,
            in_flight,
            retrying,
            redis_connected,
            removals_held,
            mass_delete_guard_tripped,
            journal_entries,
            outbox_entries,
            outputs,
            index_write_failures,
            index_pages,
        }
    }

    /// Sets the outputs' gauges from their counts and the outbox depth.
    pub(crate) fn set_outputs(&self, json: &serde_json::Value, depth: usize) {
        self.outbox_entries.set(depth as i64);
        for kind in [
            "uploaded",
            "deleted",
            "publish_failed",
            "purges_sent",
            "purge_failed",
            "given_up",
        ] {
            self.outputs
                .get_or_create(&OutputLabel {
                    kind: kind.to_string(),
                })
                .set(json[kind].as_i64().unwrap_or(0));
        }
    }

    /// Sets the index page counts (from `Index::summary`).
    pub(crate) fn set_index_pages(&self, by_status: &[(String, i64)]) {
        self.index_pages.clear();
        for (status, n) in by_status {
            self.index_pages
                .get_or_create(&StatusLabel {
                    status: status.clone(),
                })
                .set(*n);
        }
    }

    /// Counts a finished page by its outcome's label (`Outcome::label`).
    pub(crate) fn record_outcome(&self, label: &'static str, failed: bool, latency: Duration) {
        if failed {
            self.errors.inc();
        }
        self.pages
            .get_or_create(&OutcomeLabel { outcome: label })
            .inc();
        self.latency.observe(latency.as_secs_f64());
    }

    /// Counts one fill answer.
    pub(crate) fn count_fill(&self, answer: &'static str) {
        self.fills.get_or_create(&FillLabel { answer }).inc();
    }

    /// Updates the backlog gauges.
    pub(crate) fn set_backlog(&self, pending: usize, in_flight: usize) {
        self.pending.set(pending as i64);
        self.in_flight.set(in_flight as i64);
    }

    /// Prometheus text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
