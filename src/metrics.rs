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

/// Labels of a stream's consumer group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabel {
    /// The stream's key.
    pub(crate) stream: String,
    /// The group.
    pub(crate) group: String,
}

/// Label naming a host (a pool worker, the host of a dead letter).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HostLabel {
    /// Its name.
    pub(crate) host: String,
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
    pub(crate) outputs: Family<OutputLabel, Counter>,
    /// Entries each consumer group of the fleet's streams has not read.
    pub(crate) stream_lag: Family<GroupLabel, Gauge>,
    /// Entries each group read and has not acknowledged.
    pub(crate) stream_pending: Family<GroupLabel, Gauge>,
    /// Dead letters by the host that gave up (of the last 1,000).
    pub(crate) dead_letters: Family<HostLabel, Gauge>,
    /// Each pool worker's outbox depth, from its heartbeat.
    pub(crate) worker_outbox: Family<HostLabel, Gauge>,
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
        let outputs = Family::<OutputLabel, Counter>::default();
        registry.register(
            "output_changes",
            "Output work since start by kind (uploaded, deleted, publish_failed, purges_sent, purge_failed, given_up; in a pool also superseded, already_published, announced)",
            outputs.clone(),
        );
        let stream_lag = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "stream_lag_entries",
            "Entries of a fleet stream a consumer group has not read yet (Redis)",
            stream_lag.clone(),
        );
        let stream_pending = Family::<GroupLabel, Gauge>::default();
        registry.register(
            "stream_pending_entries",
            "Entries of a fleet stream a consumer group read and has not acknowledged",
            stream_pending.clone(),
        );
        let dead_letters = Family::<HostLabel, Gauge>::default();
        registry.register(
            "dead_letters",
            "Dead-lettered events by the host that gave up on them (of the last 1,000)",
            dead_letters.clone(),
        );
        let worker_outbox = Family::<HostLabel, Gauge>::default();
        registry.register(
            "pool_worker_outbox_entries",
            "Page changes waiting in each pool worker's outbox (from its heartbeat)",
            worker_outbox.clone(),
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
            stream_lag,
            stream_pending,
            dead_letters,
            worker_outbox,
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
            "superseded",
            "already_published",
            "announced",
        ] {
            // The outputs count in their own atomics; the counter follows.
            let counter = self.outputs.get_or_create(&OutputLabel {
                kind: kind.to_string(),
            });
            let now = json[kind].as_u64().unwrap_or(0);
            counter.inc_by(now.saturating_sub(counter.get()));
        }
    }

    /// Sets the fleet's gauges from a fresh read of it.
    pub(crate) fn set_fleet(&self, fleet: &crate::fleet::Fleet) {
        self.stream_lag.clear();
        self.stream_pending.clear();
        for view in [&fleet.events, &fleet.published].into_iter().flatten() {
            for g in &view.groups {
                let label = GroupLabel {
                    stream: view.stream.clone(),
                    group: g.name.clone(),
                };
                if let Some(lag) = g.lag {
                    self.stream_lag.get_or_create(&label).set(lag as i64);
                }
                self.stream_pending
                    .get_or_create(&label)
                    .set(g.pending as i64);
            }
        }
        self.dead_letters.clear();
        for (host, n) in fleet.dead.iter().flat_map(|d| d.by_host.iter()) {
            self.dead_letters
                .get_or_create(&HostLabel { host: host.clone() })
                .set(*n as i64);
        }
        self.worker_outbox.clear();
        for w in &fleet.workers {
            self.worker_outbox
                .get_or_create(&HostLabel {
                    host: w.name.clone(),
                })
                .set(w.outbox as i64);
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
