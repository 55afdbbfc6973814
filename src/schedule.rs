//! The scheduler: turns requests (targets from the spool, HTTP or the file
//! watcher) into page bakes, with a debounce window, per-URL single flight,
//! bounded concurrency and retries that never hold up other URLs.
//!
//! The coalescing rules live in [`Coalescer`], a pure state machine driven by
//! explicit instants so it can be table-tested without sleeping:
//! - leading edge: an event for a URL that is idle starts its bake at once
//!   (fresh in milliseconds, not after a window);
//! - an event that arrives while the URL is being baked causes exactly one
//!   more bake after it, however many such events arrive;
//! - two bakes of one URL start at least `min_interval` apart
//!   (`daemon.debounce`), which bounds what a storm of events costs an origin.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bake::{Baker, Outcome, PageError, PageResult, Resolved, Retry, Summary};
use crate::metrics::Metrics;
use crate::targets::Target;

/// What the scheduler reports to: counters, its observable state, and the
/// outputs beside the local web root.
pub(crate) struct Reporting {
    /// Prometheus counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Backlog and change signals.
    pub(crate) backlog: Arc<Backlog>,
    /// Told about every changed page.
    pub(crate) outputs: Vec<ChangeListener>,
}

/// A running intake or output worker.
pub(crate) type Running = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A source of work (the spool, the HTTP endpoint, the template watcher, a
/// Redis stream): it turns what arrives into requests until shutdown. The
/// scheduler does not know which is which.
pub(crate) trait Intake: Send {
    /// Feeds `submit` until `shutdown` fires.
    fn run(self: Box<Self>, submit: Submitter, shutdown: CancellationToken) -> Running;
}

/// Told the URL of every page whose file was written, removed or refused
/// (the outbox worker's waker). A closure the daemon wires, so the
/// scheduler knows nothing of the outputs.
pub(crate) type ChangeListener = Box<dyn Fn(&str) + Send + Sync>;

/// Identifies a request; reported by the HTTP API.
pub(crate) type JobId = u64;

/// What to do with a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Fetch or render and write.
    Bake,
    /// Remove the file.
    Delete,
}

/// Which of the URLs due at the same time starts first: a page a target
/// named (the post an editor saved, `kiln regen /x/`) before the pages a
/// tag fans out to (every page with the post in a sidebar), so the page
/// the editor looks at is fresh first however wide the fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// Named by its path, or by a tag or glob matching a handful of pages.
    Named,
    /// One of many pages a tag, a glob or `all` matched; a newly linked page.
    FanOut,
}

#[derive(Debug)]
struct Pending {
    op: Op,
    first_event: Instant,
    jobs: Vec<JobId>,
    attempt: u32,
    /// When it may start (its key in `by_due`, with `rank`).
    due: Instant,
    rank: Rank,
}

/// A bake the coalescer has released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dispatch {
    /// URL path.
    pub(crate) url: String,
    /// Bake or delete.
    pub(crate) op: Op,
    /// Jobs this bake completes.
    pub(crate) jobs: Vec<JobId>,
    /// When the first coalesced event arrived (for latency).
    pub(crate) first_event: Instant,
    /// Retry attempt (0 first).
    pub(crate) attempt: u32,
    /// When this bake was started (set by the worker).
    pub(crate) started: Option<Instant>,
}

/// Pure coalescing state: pending URLs with due times, URLs in flight.
/// Every operation is logarithmic in the backlog (or skips at most the URLs
/// in flight): a storm of 10,000 changed pages must not cost a scan of the
/// backlog per finished page.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    pending: HashMap<String, Pending>,
    /// The pending URLs by due time (changed only by a new event for a
    /// URL waiting for a retry, which brings it forward).
    by_due: BTreeSet<(Instant, Rank, String)>,
    /// Pending entries that are retries of a failure.
    retries: usize,
    in_flight: HashSet<String>,
    /// When each recently baked URL last started, for the minimum interval.
    last_start: HashMap<String, Instant>,
}

impl Coalescer {
    /// Records an event for `url` at `now`: due at once, or `min_interval`
    /// after the URL's last bake started; a URL named itself ([`Rank::Named`]).
    pub(crate) fn event(
        &mut self,
        url: String,
        op: Op,
        job: Option<JobId>,
        now: Instant,
        min_interval: Duration,
    ) {
        self.ranked_event(url, op, job, now, min_interval, Rank::Named);
    }

    /// [`Coalescer::event`] with its rank among URLs due at the same time.
    pub(crate) fn ranked_event(
        &mut self,
        url: String,
        op: Op,
        job: Option<JobId>,
        now: Instant,
        min_interval: Duration,
        rank: Rank,
    ) {
        let earliest = self
            .last_start
            .get(&url)
            .map_or(now, |started| (*started + min_interval).max(now));
        let p = match self.pending.entry(url) {
            Entry::Occupied(e) => {
                let url = e.key().clone();
                let p = e.into_mut();
                if p.attempt > 0 && p.due > earliest {
                    // A URL waiting out a retry backoff: a new event means
                    // "try now" (the origin may be back, the content is
                    // new), and starts the retry count afresh.
                    self.by_due.remove(&(p.due, p.rank, url.clone()));
                    p.due = earliest;
                    p.rank = p.rank.min(rank);
                    self.by_due.insert((p.due, p.rank, url));
                    p.attempt = 0;
                    p.first_event = now;
                    self.retries -= 1;
                } else if rank < p.rank {
                    // Named now: it goes before the fan-out due with it.
                    self.by_due.remove(&(p.due, p.rank, url.clone()));
                    p.rank = rank;
                    self.by_due.insert((p.due, p.rank, url));
                }
                p
            }
            Entry::Vacant(e) => {
                self.by_due.insert((earliest, rank, e.key().clone()));
                e.insert(Pending {
                    op,
                    first_event: now,
                    jobs: Vec::new(),
                    attempt: 0,
                    due: earliest,
                    rank,
                })
            }
        };
        p.op = op; // the latest intent wins (a delete after a bake deletes)
        if let Some(j) = job {
            p.jobs.push(j);
        }
    }

    /// Puts a failed bake back with a later due time, keeping its jobs.
    pub(crate) fn retry(&mut self, d: Dispatch, due: Instant) {
        let p = match self.pending.entry(d.url) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.by_due.insert((due, Rank::Named, e.key().clone()));
                e.insert(Pending {
                    op: d.op,
                    first_event: d.first_event,
                    jobs: Vec::new(),
                    attempt: 0,
                    due,
                    rank: Rank::Named,
                })
            }
        };
        p.jobs.extend(d.jobs);
        if p.attempt == 0 {
            self.retries += 1;
        }
        p.attempt = p.attempt.max(d.attempt + 1);
    }

    /// The earliest due time of a URL that could start now.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.by_due
            .iter()
            .find(|(_, _, u)| !self.in_flight.contains(u))
            .map(|(due, _, _)| *due)
    }

    /// Releases up to `slots` due URLs that are not in flight, marking them in flight.
    pub(crate) fn take_due(&mut self, now: Instant, slots: usize) -> Vec<Dispatch> {
        let ready: Vec<(Instant, Rank, String)> = self
            .by_due
            .iter()
            .take_while(|(due, _, _)| *due <= now)
            .filter(|(_, _, u)| !self.in_flight.contains(u))
            .take(slots)
            .cloned()
            .collect();
        if self.last_start.len() > 4 * (self.pending.len() + self.in_flight.len()) + 1024 {
            // Forget start times too old to matter (a day is far beyond any interval).
            self.last_start
                .retain(|_, t| now.saturating_duration_since(*t) < Duration::from_secs(86_400));
        }
        ready
            .into_iter()
            .filter_map(|key| {
                self.by_due.remove(&key);
                let url = key.2;
                let p = self.pending.remove(&url)?;
                if p.attempt > 0 {
                    self.retries -= 1;
                }
                self.in_flight.insert(url.clone());
                self.last_start.insert(url.clone(), now);
                Some(Dispatch {
                    url,
                    op: p.op,
                    jobs: p.jobs,
                    first_event: p.first_event,
                    attempt: p.attempt,
                    started: None,
                })
            })
            .collect()
    }

    /// Marks a bake finished; a pending entry for the URL (events during the
    /// bake) becomes eligible.
    pub(crate) fn finished(&mut self, url: &str) {
        self.in_flight.remove(url);
    }

    /// URLs waiting or running.
    pub(crate) fn backlog(&self) -> (usize, usize) {
        (self.pending.len(), self.in_flight.len())
    }

    /// True when the URL is waiting or being baked.
    pub(crate) fn is_scheduled(&self, url: &str) -> bool {
        self.pending.contains_key(url) || self.in_flight.contains(url)
    }

    /// Pending URLs that are retries of a failure.
    pub(crate) fn retrying(&self) -> usize {
        self.retries
    }
}

/// A request for work.
#[derive(Debug)]
pub(crate) struct Request {
    /// What to regenerate.
    pub(crate) targets: Vec<Target>,
    /// Called when every URL of the request is done.
    pub(crate) reply: Option<oneshot::Sender<JobReport>>,
    /// The operator's consent to a mass removal (`--allow-mass-delete`):
    /// resets the daemon's mass-delete guard before the targets run.
    pub(crate) allow_mass_delete: bool,
}

/// How a request ended: the URLs it named and the one outcome tally
/// ([`Summary`], the same the CLI prints).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct JobReport {
    /// URLs the targets resolved to.
    pub(crate) urls: usize,
    /// Outcomes (failures only once retries gave up).
    #[serde(flatten)]
    pub(crate) tally: Summary,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    /// Accepted, targets not resolved yet.
    Queued,
    /// URLs being baked (or retried).
    Running,
    /// Every URL finished.
    Done,
}

/// A job as the HTTP API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct JobInfo {
    /// Id.
    pub(crate) id: JobId,
    /// Where it is.
    pub(crate) state: JobState,
    /// Targets as given.
    pub(crate) targets: Vec<String>,
    /// URLs done so far.
    pub(crate) done: usize,
    /// The report so far.
    pub(crate) report: JobReport,
}

/// Job table shared with the HTTP API (short std-mutex sections, no await inside).
#[derive(Debug, Default, Clone)]
pub(crate) struct Jobs {
    inner: Arc<Mutex<JobTable>>,
}

#[derive(Debug, Default)]
struct JobTable {
    next: JobId,
    jobs: HashMap<JobId, JobEntry>,
}

#[derive(Debug)]
struct JobEntry {
    info: JobInfo,
    remaining: usize,
    reply: Option<oneshot::Sender<JobReport>>,
    /// The pages the job's targets named narrowly
    /// ([`crate::targets::resolve::Resolved::narrow`]): one of them turning
    /// out gone is the app's own doing (it deleted that object), not a
    /// broken origin, and the mass-delete guard does not count it.
    narrow: HashSet<String>,
}

/// Jobs remembered after they finish, for `GET /v1/jobs/ID`.
const KEEP_FINISHED: usize = 10_000;

impl Jobs {
    /// A table whose ids start at the microseconds since the epoch: ids
    /// stay unique across daemon restarts (a restarted daemon never answers
    /// for someone else's job) and below 2^53 (exact in JSON).
    fn starting_at_the_clock() -> Jobs {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Jobs {
            inner: Arc::new(Mutex::new(JobTable {
                next: start,
                jobs: HashMap::new(),
            })),
        }
    }

    fn create(&self, targets: &[Target], reply: Option<oneshot::Sender<JobReport>>) -> JobId {
        let Ok(mut t) = self.inner.lock() else {
            return 0;
        };
        t.next += 1;
        let id = t.next;
        if t.jobs.len() > KEEP_FINISHED {
            let mut done: Vec<JobId> = t
                .jobs
                .iter()
                .filter(|(_, j)| j.info.state == JobState::Done)
                .map(|(id, _)| *id)
                .collect();
            done.sort();
            for old in done.into_iter().take(KEEP_FINISHED / 2) {
                t.jobs.remove(&old);
            }
        }
        t.jobs.insert(
            id,
            JobEntry {
                info: JobInfo {
                    id,
                    state: JobState::Queued,
                    targets: targets.iter().map(Target::to_string).collect(),
                    done: 0,
                    report: JobReport::default(),
                },
                remaining: 0,
                reply,
                narrow: HashSet::new(),
            },
        );
        id
    }

    fn set_urls(
        &self,
        id: JobId,
        n: usize,
        unmatched: &[(String, String)],
        narrow: HashSet<String>,
    ) {
        if let Ok(mut t) = self.inner.lock() {
            if let Some(j) = t.jobs.get_mut(&id) {
                j.narrow = narrow;
                j.remaining = n;
                j.info.report.urls = n;
                j.info.report.tally.unmatched = unmatched.to_vec();
                j.info.state = JobState::Running;
            }
        }
        if n == 0 {
            self.complete_if_done(id);
        }
    }

    fn add_urls(&self, id: JobId, n: usize) {
        if let Ok(mut t) = self.inner.lock() {
            if let Some(j) = t.jobs.get_mut(&id) {
                j.remaining += n;
                j.info.report.urls += n;
            }
        }
    }

    /// Whether one more finished URL completes job `id`.
    fn completes_with_one_more(&self, id: JobId) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|t| {
                t.jobs
                    .get(&id)
                    .map(|j| j.remaining <= 1 && j.info.state != JobState::Done)
            })
            .unwrap_or(false)
    }

    fn url_done(&self, id: JobId, result: &PageResult) {
        if let Ok(mut t) = self.inner.lock() {
            if let Some(j) = t.jobs.get_mut(&id) {
                j.remaining = j.remaining.saturating_sub(1);
                j.info.done += 1;
                j.info.report.tally.add(result.clone());
            }
        }
        self.complete_if_done(id);
    }

    fn complete_if_done(&self, id: JobId) {
        let reply = {
            let Ok(mut t) = self.inner.lock() else { return };
            let Some(j) = t.jobs.get_mut(&id) else { return };
            if j.remaining > 0 || j.info.state == JobState::Done {
                return;
            }
            j.info.state = JobState::Done;
            // One line per job at info; each page's line is at debug.
            let t = &j.info.report.tally;
            // A rebuild's job names every page: the line shows a few.
            let shown = j.info.targets.len().min(10);
            let more = match j.info.targets.len() - shown {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            tracing::info!(
                job = id,
                targets = %format!("{}{more}", j.info.targets[..shown].join(" ")),
                urls = j.info.report.urls,
                written = t.written,
                unchanged = t.unchanged,
                deleted = t.deleted,
                redirects = t.redirected,
                refused = t.refused.len(),
                failed = t.failed.len(),
                skipped = t.skipped.len(),
                "job done"
            );
            j.reply.take().map(|r| (r, j.info.report.clone()))
        };
        if let Some((tx, report)) = reply {
            let _ = tx.send(report);
        }
    }

    /// Job `id` runs again from its targets (its last run's records may
    /// be lost): its report starts over, its waiter keeps waiting.
    fn restart(&self, id: JobId) {
        if let Ok(mut t) = self.inner.lock() {
            if let Some(j) = t.jobs.get_mut(&id) {
                j.remaining = 0;
                j.info.done = 0;
                j.info.state = JobState::Queued;
                j.info.report = JobReport::default();
            }
        }
    }

    /// Job `id` could not be done within the retry policy: each target is
    /// reported failed with `why` (a spool file goes to `failed/`).
    fn give_up(&self, id: JobId, why: &str) {
        if let Ok(mut t) = self.inner.lock() {
            if let Some(j) = t.jobs.get_mut(&id) {
                j.remaining = 0;
                let failed = j.info.targets.iter().map(|t| (t.clone(), why.to_string()));
                j.info.report.tally.failed.extend(failed);
            }
        }
        self.complete_if_done(id);
    }

    /// Whether one of the jobs `ids` named `url` narrowly ([`JobEntry::narrow`]).
    fn named_narrowly(&self, ids: &[JobId], url: &str) -> bool {
        self.inner.lock().ok().is_some_and(|t| {
            ids.iter()
                .any(|id| t.jobs.get(id).is_some_and(|j| j.narrow.contains(url)))
        })
    }

    fn is_done(&self, id: JobId) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|t| t.jobs.get(&id).map(|j| j.info.state == JobState::Done))
            .unwrap_or(true)
    }

    /// Drops the reply of every job not done: the scheduler stopped, so
    /// their waiters learn it (a spool file, a journal entry, a stream
    /// entry stays for the next start) instead of waiting forever.
    fn abandon_unfinished(&self) {
        if let Ok(mut t) = self.inner.lock() {
            for j in t.jobs.values_mut() {
                if j.info.state != JobState::Done {
                    j.reply = None;
                }
            }
        }
    }

    fn forget(&self, id: JobId) {
        if let Ok(mut t) = self.inner.lock() {
            t.jobs.remove(&id);
        }
    }

    /// The `n` most recent jobs, newest first (for the status page).
    pub(crate) fn recent(&self, n: usize) -> Vec<JobInfo> {
        let Ok(t) = self.inner.lock() else {
            return Vec::new();
        };
        let mut ids: Vec<JobId> = t.jobs.keys().copied().collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.into_iter()
            .take(n)
            .filter_map(|id| t.jobs.get(&id).map(|j| j.info.clone()))
            .collect()
    }

    /// A job's current state.
    pub(crate) fn get(&self, id: JobId) -> Option<JobInfo> {
        self.inner
            .lock()
            .ok()?
            .jobs
            .get(&id)
            .map(|j| j.info.clone())
    }
}

/// Handle for submitting requests; the HTTP API and spool worker hold one.
#[derive(Debug, Clone)]
pub(crate) struct Submitter {
    tx: mpsc::Sender<(JobId, Request)>,
    jobs: Jobs,
}

impl Submitter {
    /// Queues a request; returns its job id. Waits when the scheduler is saturated.
    pub(crate) async fn submit(&self, mut req: Request) -> Option<JobId> {
        let id = self.jobs.create(&req.targets, req.reply.take());
        if self.tx.send((id, req)).await.is_err() {
            // Scheduler gone (shutting down): drop the job and its reply, so
            // a waiting spool file is kept for the next start.
            self.jobs.forget(id);
            return None;
        }
        Some(id)
    }

    /// The job table.
    pub(crate) fn jobs(&self) -> &Jobs {
        &self.jobs
    }
}

/// Creates the request channel.
pub(crate) fn channel(capacity: usize) -> (Submitter, mpsc::Receiver<(JobId, Request)>) {
    let (tx, rx) = mpsc::channel(capacity);
    (
        Submitter {
            tx,
            jobs: Jobs::starting_at_the_clock(),
        },
        rx,
    )
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Debounce window.
    pub(crate) debounce: Duration,
    /// Parallel bakes.
    pub(crate) concurrency: usize,
    /// Attempts per URL for permanent failures (the daemon's fetcher makes
    /// one request per attempt).
    pub(crate) attempts: u32,
    /// First delay between attempts, doubled each time...
    pub(crate) retry_delay: Duration,
    /// ...up to this.
    pub(crate) max_retry_delay: Duration,
    /// Transient failures are retried until the first event is this old.
    pub(crate) give_up_after: Duration,
}

impl Settings {
    /// When to try a failed URL again, or `None` to give up. Transient
    /// failures (origin down, 5xx, 429) are retried with capped backoff until
    /// the give-up age, honouring `Retry-After`; others `attempts` times.
    pub(crate) fn next_retry(&self, d: &Dispatch, retry: Retry, now: Instant) -> Option<Instant> {
        let policy = self.retry_policy();
        match retry {
            Retry::Transient(after) => {
                let due = now + policy.delay(d.attempt + 1, after);
                policy
                    .keeps_trying(due.duration_since(d.first_event))
                    .then_some(due)
            }
            Retry::No => {
                (d.attempt + 1 < self.attempts).then(|| now + policy.delay(d.attempt + 1, None))
            }
        }
    }

    /// The shared policy ([`crate::retry`]) with this daemon's settings.
    pub(crate) fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            base: self.retry_delay,
            cap: self.max_retry_delay,
            give_up_after: self.give_up_after,
        }
    }
}

/// What the scheduler is doing, for `/v1/status`, `kiln serve` and tests
/// (read without asking the scheduler task).
#[derive(Debug)]
pub(crate) struct Backlog {
    /// Bumped whenever a file was written, deleted or refused: `kiln serve`
    /// reloads open browser tabs when it changes and the backlog is idle.
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    /// Why the templates do not load, while they do not (`kiln serve` shows it).
    pub(crate) template_error: tokio::sync::watch::Sender<Option<String>>,
    /// URLs waiting (debounce or retry).
    pub(crate) pending: AtomicUsize,
    /// URLs being baked.
    pub(crate) in_flight: AtomicUsize,
    /// Pending URLs that are retries of failures.
    pub(crate) retrying: AtomicUsize,
    /// Requests whose targets are still being resolved.
    pub(crate) resolving: AtomicUsize,
    /// The mass-delete guard: tripped now, and files it kept so far.
    pub(crate) removal_guard: Mutex<(bool, u64)>,
    /// Pages whose template fails at render time, with the problem in full
    /// (`kiln serve` shows the first one until it renders again).
    pub(crate) render_errors: tokio::sync::watch::Sender<BTreeMap<String, String>>,
}

impl Default for Backlog {
    fn default() -> Backlog {
        Backlog {
            changes: tokio::sync::watch::Sender::new(0),
            template_error: tokio::sync::watch::Sender::new(None),
            pending: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            retrying: AtomicUsize::new(0),
            resolving: AtomicUsize::new(0),
            removal_guard: Mutex::new((false, 0)),
            render_errors: tokio::sync::watch::Sender::new(BTreeMap::new()),
        }
    }
}

impl Backlog {
    /// True when nothing is waiting, running or being resolved.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.load(Ordering::Relaxed) == 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.resolving.load(Ordering::Relaxed) == 0
    }

    fn set(&self, co: &Coalescer, resolving: usize) {
        let (pending, in_flight) = co.backlog();
        self.pending.store(pending, Ordering::Relaxed);
        self.in_flight.store(in_flight, Ordering::Relaxed);
        self.retrying.store(co.retrying(), Ordering::Relaxed);
        self.resolving.store(resolving, Ordering::Relaxed);
    }

    /// A page is done: when its file was written, removed or refused, the
    /// preview reloads and the outputs hear of it (whoever baked it: the
    /// scheduler or a fill).
    pub(crate) fn page_done(&self, result: &PageResult, outputs: &[ChangeListener]) {
        // A render failure is shown until the page renders again.
        match &result.outcome {
            Outcome::Failed(PageError::Render(e)) => {
                let problem = e.detailed();
                self.render_errors.send_if_modified(|m| {
                    let changed = m.get(&result.url) != Some(&problem);
                    if changed {
                        m.insert(result.url.clone(), problem);
                    }
                    changed
                });
            }
            _ => {
                self.render_errors
                    .send_if_modified(|m| m.remove(&result.url).is_some());
            }
        }
        let changed = matches!(
            result.outcome,
            Outcome::Written | Outcome::Deleted | Outcome::Refused(_)
        );
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
        // An unchanged file may still have queued an output: its record can
        // differ from what was published (a record a kill lost; in a pool,
        // a copy another worker published since). The outputs look, and
        // find nothing to do when there is nothing.
        if changed || matches!(result.outcome, Outcome::Unchanged) {
            let url = result.final_path.as_deref().unwrap_or(&result.url);
            for output in outputs {
                output(url);
            }
        }
    }

    /// The numbers as JSON fields.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let (tripped, held) = self.removal_guard.lock().map(|g| *g).unwrap_or_default();
        serde_json::json!({
            "mass_delete_guard": {"tripped": tripped, "removals_held": held},
            "pending_urls": self.pending.load(Ordering::Relaxed),
            "in_flight_urls": self.in_flight.load(Ordering::Relaxed),
            "retrying_urls": self.retrying.load(Ordering::Relaxed),
            "resolving_requests": self.resolving.load(Ordering::Relaxed),
        })
    }
}

/// Targets that name pages by what the index knows of them (tags, globs,
/// `all`), kept while a bake that started before them is in flight. A page
/// baked for the first time is not in the index until its bake records it,
/// so such a target resolved meanwhile cannot name it, although its fetch
/// may have read the page before the change the target announces. When such
/// a bake ends, its page is checked against the targets that arrived after
/// it started, and baked once more if one names it. (A page the index knew
/// is named by the resolution itself, and the coalescer bakes it once more.)
#[derive(Debug, Default)]
struct LateTargets {
    recent: std::collections::VecDeque<(Instant, Naming, JobId)>,
}

/// What a late target names pages by: compiled once when it arrives.
#[derive(Debug)]
enum Naming {
    Tag(String),
    Glob(globset::GlobMatcher),
    All,
}

impl LateTargets {
    fn note(&mut self, at: Instant, targets: &[Target], job: JobId) {
        for t in targets {
            let naming = match t {
                Target::Tag(tag) => Naming::Tag(tag.clone()),
                // A glob that does not compile matched nothing at resolution.
                Target::Glob(pattern) => match crate::glob::path_matcher(pattern) {
                    Ok(m) => Naming::Glob(m),
                    Err(_) => continue,
                },
                Target::All => Naming::All,
                _ => continue,
            };
            self.recent.push_back((at, naming, job));
        }
    }

    /// The jobs whose targets, arrived after `started`, name the page at
    /// `url` with `tags`.
    fn naming(&self, url: &str, tags: &[String], started: Instant) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = self
            .recent
            .iter()
            .filter(|(at, _, _)| *at >= started)
            .filter(|(_, n, _)| match n {
                Naming::Tag(tag) => tags.iter().any(|t| t == tag),
                Naming::Glob(m) => crate::glob::matches_url(m, url),
                Naming::All => true,
            })
            .map(|(_, _, job)| *job)
            .collect();
        jobs.dedup();
        jobs
    }

    /// Forgets what arrived before every bake in flight started.
    fn prune(&mut self, oldest_in_flight: Option<Instant>) {
        while let Some((at, _, _)) = self.recent.front() {
            if oldest_in_flight.is_some_and(|oldest| *at >= oldest) {
                break;
            }
            self.recent.pop_front();
        }
    }
}

/// The jobs being worked on, with what it takes to run one again. A job
/// whose targets could not be resolved (the index unreadable), or during
/// which a write to the index failed (a full disk under the state, a
/// broken file), may have lost its pages' records and the outputs they
/// queue: it runs again from its targets under the retry policy, and is
/// reported done (its spool file, journal entry or stream entry let go)
/// only once a run of it committed everything.
#[derive(Debug, Default)]
struct JobRuns {
    runs: HashMap<JobId, JobRun>,
    /// The jobs waiting to run again, by when: the scheduler's loop asks
    /// for the earliest on every turn, so it is not a scan of every job.
    waiting: BTreeSet<(Instant, JobId)>,
}

#[derive(Debug)]
struct JobRun {
    targets: Vec<Target>,
    /// Runs so far, less one.
    attempt: u32,
    /// When the job was first accepted (the give-up age counts from it).
    first: Instant,
    /// The index's write failures when this run started.
    failures_at: u64,
}

impl JobRuns {
    fn start(&mut self, id: JobId, targets: Vec<Target>, now: Instant, failures: u64) {
        self.runs.insert(
            id,
            JobRun {
                targets,
                attempt: 0,
                first: now,
                failures_at: failures,
            },
        );
    }

    /// Whether an index write failed since job `id`'s run started.
    fn lost_writes(&self, id: JobId, failures: u64) -> bool {
        self.runs.get(&id).is_some_and(|r| failures > r.failures_at)
    }

    /// Schedules job `id` to run again; `None` when the policy gives up.
    fn again(
        &mut self,
        id: JobId,
        policy: &crate::retry::RetryPolicy,
        now: Instant,
    ) -> Option<Duration> {
        let run = self.runs.get_mut(&id)?;
        run.attempt += 1;
        let delay = policy.delay(run.attempt, None);
        if !policy.keeps_trying((now + delay).duration_since(run.first)) {
            self.runs.remove(&id);
            return None;
        }
        self.waiting.insert((now + delay, id));
        Some(delay)
    }

    fn next_due(&self) -> Option<Instant> {
        self.waiting.first().map(|(at, _)| *at)
    }

    /// The jobs due to run again at `now`, with their targets; each run
    /// counts index failures afresh from `failures`.
    fn take_due(&mut self, now: Instant, failures: u64) -> Vec<(JobId, Vec<Target>)> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.waiting.pop_first();
            if let Some(run) = self.runs.get_mut(&id) {
                run.failures_at = failures;
                due.push((id, run.targets.clone()));
            }
        }
        due
    }

    fn finished(&mut self, id: JobId) {
        self.runs.remove(&id);
    }
}

type BakeDone = (Dispatch, PageResult);
type ResolveDone = (JobId, Instant, Result<Resolved, crate::index::IndexError>);

/// The long-running scheduler task. Stops taking new work when `shutdown`
/// fires, lets in-flight bakes finish, then returns.
///
/// Target resolution (`all`, `tag:`, `glob:` can name thousands of URLs)
/// runs in its own tasks, so a slow request never holds up events already
/// queued: the loop keeps dispatching while it resolves.
pub(crate) async fn worker(
    baker: Arc<Baker>,
    jobs: Jobs,
    mut requests: mpsc::Receiver<(JobId, Request)>,
    settings: Settings,
    reporting: Reporting,
    shutdown: CancellationToken,
) {
    let Reporting {
        metrics,
        backlog,
        outputs,
    } = reporting;
    let mut co = Coalescer::default();
    let mut tasks: JoinSet<BakeDone> = JoinSet::new();
    let mut resolving: JoinSet<ResolveDone> = JoinSet::new();
    // What each task was doing, so a task that panics still ends its page or
    // its job: no job stays queued, no waiter hangs, nothing else is touched.
    let mut baking: HashMap<tokio::task::Id, Dispatch> = HashMap::new();
    let mut resolving_jobs: HashMap<tokio::task::Id, (JobId, Vec<String>)> = HashMap::new();
    let mut runs = JobRuns::default();
    let mut late = LateTargets::default();
    loop {
        let wake = co.next_due();
        let rerun = runs.next_due();
        let can_start = tasks.len() < settings.concurrency;
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let done = match done {
                    Ok((task, d)) => {
                        baking.remove(&task);
                        Ok(d)
                    }
                    Err(e) => match baking.remove(&e.id()) {
                        Some(d) => {
                            tracing::error!(url = %d.url, error = %e, "regenerating a page panicked; it is marked failed");
                            let mut r = PageResult::new(&d.url);
                            r.outcome = Outcome::Failed(PageError::Internal(panic_text(&e)));
                            Ok((d, r))
                        }
                        None => Err(e),
                    },
                };
                match done {
                    Ok(d) => {
                        backlog.page_done(&d.1, &outputs);
                        bake_again_if_named(&late, &jobs, &mut co, &settings, &d);
                        finish(&baker, &jobs, &mut co, &mut runs, &settings, &metrics, d).await
                    }
                    Err(e) => tracing::error!(error = %e, "bake task panicked"),
                }
            }
            Some(done) = resolving.join_next_with_id(), if !resolving.is_empty() => {
                let (id, at, resolved) = match done {
                    Ok((task, done)) => {
                        resolving_jobs.remove(&task);
                        done
                    }
                    Err(e) => {
                        // The job ends with its targets refused, not stuck.
                        if let Some((id, targets)) = resolving_jobs.remove(&e.id()) {
                            tracing::error!(job = id, error = %e, "resolving targets panicked; they are refused");
                            let why = format!("refused: resolving it failed ({})", panic_text(&e));
                            let unmatched: Vec<_> = targets.into_iter().map(|t| (t, why.clone())).collect();
                            jobs.set_urls(id, 0, &unmatched, HashSet::new());
                            runs.finished(id);
                        }
                        continue;
                    }
                };
                match resolved {
                    Ok(resolved) => {
                        log_unmatched(id, &resolved.unmatched);
                        let urls = resolved.bake.len() + resolved.delete.len();
                        jobs.set_urls(id, urls, &resolved.unmatched, resolved.narrow.iter().cloned().collect());
                        for u in resolved.bake {
                            let rank = if resolved.narrow.contains(&u) { Rank::Named } else { Rank::FanOut };
                            co.ranked_event(u, Op::Bake, Some(id), at, settings.debounce, rank);
                        }
                        for u in resolved.delete {
                            co.event(u, Op::Delete, Some(id), at, settings.debounce);
                        }
                        if jobs.is_done(id) {
                            runs.finished(id);
                        }
                    }
                    Err(e) => {
                        // Acknowledged work is not dropped because the
                        // index cannot be read now: the job runs again.
                        let why = format!("the index could not be read to resolve the targets: {}", crate::bake::error_chain(&e));
                        metrics.errors.inc();
                        match runs.again(id, &settings.retry_policy(), Instant::now()) {
                            Some(delay) => tracing::error!(job = id, error = %why, retry_in = ?delay, "could not resolve targets; the job runs again"),
                            None => {
                                tracing::error!(job = id, error = %why, "could not resolve targets; giving up");
                                jobs.give_up(id, &why);
                            }
                        }
                    }
                }
            }
            Some((id, req)) = requests.recv() => {
                let now = Instant::now();
                metrics.events.inc_by(req.targets.len() as u64);
                if req.allow_mass_delete {
                    baker.consent_to_removals();
                }
                let targets = crate::targets::dedup(req.targets);
                late.note(now, &targets, id);
                runs.start(id, targets.clone(), now, baker.index_write_failures());
                resolve(&baker, &mut resolving, &mut resolving_jobs, id, targets, now);
            }
            _ = sleep_until(wake), if wake.is_some() && can_start => {
                let slots = settings.concurrency - tasks.len();
                for mut d in co.take_due(Instant::now(), slots) {
                    d.started = Some(Instant::now());
                    let baker = baker.clone();
                    metrics.fetches.inc();
                    let dispatch = d.clone();
                    let consent = jobs.named_narrowly(&d.jobs, &d.url);
                    let task = tasks.spawn(async move {
                        let result = match d.op {
                            Op::Bake => baker.bake_as(&d.url, consent).await,
                            Op::Delete => {
                                let mut r = PageResult::new(&d.url);
                                r.outcome = baker.remove(&d.url, None).await;
                                r
                            }
                        };
                        (d, result)
                    });
                    baking.insert(task.id(), dispatch);
                }
            }
            _ = sleep_until(rerun), if rerun.is_some() => {
                let now = Instant::now();
                for (id, targets) in runs.take_due(now, baker.index_write_failures()) {
                    resolve(&baker, &mut resolving, &mut resolving_jobs, id, targets, now);
                }
            }
        }
        late.prune(baking.values().filter_map(|d| d.started).min());
        let (pending, running) = co.backlog();
        metrics.set_backlog(pending, running);
        metrics.retrying.set(co.retrying() as i64);
        backlog.set(&co, resolving.len());
        let guard = baker.removals_held();
        metrics.removals_held.set(guard.1 as i64);
        metrics.mass_delete_guard_tripped.set(i64::from(guard.0));
        if let Ok(mut g) = backlog.removal_guard.lock() {
            *g = guard;
        }
    }
    // Graceful stop: in-flight pages finish and are recorded; pending work
    // stays in the spool (and failed pages in the index) for the next start.
    let mut finished = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((d, result)) = done {
            co.finished(&d.url);
            metrics.record_outcome(
                result.outcome.label(),
                matches!(result.outcome, Outcome::Failed(_)),
                d.first_event.elapsed(),
            );
            finished.push((d, result));
        }
    }
    // Committed before any job is reported done (see `finish`); a job
    // that lost a write stays in its intake for the next start.
    if let Err(e) = baker.flush().await {
        tracing::error!(error = %e, "index flush at shutdown failed");
        finished.clear();
    }
    let failures = baker.index_write_failures();
    for (d, result) in finished {
        if result.outcome.retry() == Retry::No {
            for j in d.jobs.iter().filter(|j| !runs.lost_writes(**j, failures)) {
                jobs.url_done(*j, &result);
            }
        }
    }
    jobs.abandon_unfinished();
}

/// A page whose bake started before a tag, glob or `all` target that names
/// it arrived is baked once more, for that target's jobs ([`LateTargets`]).
fn bake_again_if_named(
    late: &LateTargets,
    jobs: &Jobs,
    co: &mut Coalescer,
    settings: &Settings,
    (d, result): &BakeDone,
) {
    let (Some(started), Op::Bake) = (d.started, d.op) else {
        return;
    };
    if !matches!(result.outcome, Outcome::Written | Outcome::Unchanged) {
        return;
    }
    let url = result.final_path.as_deref().unwrap_or(&d.url);
    let named = late.naming(url, &result.tags, started);
    if named.is_empty() {
        return;
    }
    tracing::debug!(url, jobs = ?named, "a target that names this page arrived while it was baked for the first time; baking it once more");
    let now = Instant::now();
    co.event(url.to_string(), Op::Bake, None, now, settings.debounce);
    for job in named {
        if !jobs.is_done(job) {
            jobs.add_urls(job, 1);
            co.event(url.to_string(), Op::Bake, Some(job), now, settings.debounce);
        }
    }
}

/// Starts resolving job `id`'s targets in its own task.
/// Targets that matched nothing, said once per job: a tag naming a brand
/// new object (no page shows it yet) is normal, and an app saving 500 new
/// rows must not print 500 lines. Each is in the job's report; at debug
/// level, one line each.
fn log_unmatched(job: JobId, unmatched: &[(String, String)]) {
    let Some((first, why)) = unmatched.first() else {
        return;
    };
    for (target, why) in unmatched {
        tracing::debug!(job, %target, why, "target matched nothing");
    }
    if unmatched.len() == 1 {
        tracing::info!(job, target = %first, why, "target matched nothing");
    } else {
        tracing::info!(job, count = unmatched.len(), first = %first, why, "targets matched nothing (each is in the job's report)");
    }
}

fn resolve(
    baker: &Arc<Baker>,
    resolving: &mut JoinSet<ResolveDone>,
    resolving_jobs: &mut HashMap<tokio::task::Id, (JobId, Vec<String>)>,
    id: JobId,
    targets: Vec<Target>,
    at: Instant,
) {
    let baker = baker.clone();
    let named = targets.iter().map(Target::to_string).collect();
    let task = resolving.spawn(async move { (id, at, baker.resolve(&targets).await) });
    resolving_jobs.insert(task.id(), (id, named));
}

async fn finish(
    baker: &Baker,
    jobs: &Jobs,
    co: &mut Coalescer,
    runs: &mut JobRuns,
    settings: &Settings,
    metrics: &Metrics,
    (d, result): BakeDone,
) {
    co.finished(&d.url);
    let elapsed = d.first_event.elapsed();
    if let Outcome::Failed(e) = &result.outcome {
        let now = Instant::now();
        if let Some(due) = settings.next_retry(&d, result.outcome.retry(), now) {
            tracing::info!(url = %d.url, error = %e.chain(), attempt = d.attempt + 1, retry_in = ?due.duration_since(now), "page failed; will retry");
            metrics.errors.inc();
            co.retry(d, due);
            return;
        }
        tracing::warn!(url = %d.url, error = %e.chain(), attempts = d.attempt + 1, "page failed; giving up");
    }
    let mut result = result;
    if let Outcome::Failed(e) = &mut result.outcome {
        // The reason says what really happened: every attempt counted.
        if d.attempt > 0 {
            *e = PageError::GaveUp {
                last: Box::new(e.clone()),
                attempts: d.attempt + 1,
            };
        }
    }
    tracing::debug!(url = %d.url, outcome = result.outcome.label(), ms = elapsed.as_millis() as u64, "regenerated");
    metrics.record_outcome(
        result.outcome.label(),
        matches!(result.outcome, Outcome::Failed(_)),
        elapsed,
    );
    // New pages linked from a regenerated page are baked too, as part of the
    // same jobs (a job is done when what it led to is done), registered
    // before this URL counts as done so no job completes early.
    if !result.links.is_empty() {
        let new = baker.unknown(result.links.clone()).await;
        for link in new {
            if co.is_scheduled(&link) {
                continue;
            }
            for j in &d.jobs {
                jobs.add_urls(*j, 1);
            }
            co.ranked_event(
                link.clone(),
                Op::Bake,
                None,
                Instant::now(),
                settings.debounce,
                Rank::FanOut,
            );
            for j in &d.jobs {
                co.ranked_event(
                    link.clone(),
                    Op::Bake,
                    Some(*j),
                    Instant::now(),
                    settings.debounce,
                    Rank::FanOut,
                );
            }
        }
    }
    // A job reported done lets its intake forget it (the spool file, the
    // journal entry, the stream entry go), so the page records and outbox
    // rows of its pages must be committed first: a kill -9 after the report
    // must not find a page on disk whose record and outputs were lost.
    // A job during which an index write failed runs again instead.
    let completing: Vec<JobId> = d
        .jobs
        .iter()
        .copied()
        .filter(|j| jobs.completes_with_one_more(*j))
        .collect();
    let flushed = match completing.is_empty() {
        true => true,
        false => match baker.flush().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "the index could not commit");
                false
            }
        },
    };
    let failures = baker.index_write_failures();
    for j in &d.jobs {
        if completing.contains(j) && (!flushed || runs.lost_writes(*j, failures)) {
            jobs.restart(*j);
            metrics.errors.inc();
            match runs.again(*j, &settings.retry_policy(), Instant::now()) {
                Some(delay) => {
                    tracing::error!(job = j, retry_in = ?delay, "a write to the index failed while this job ran (see above); it is not reported done and runs again")
                }
                None => {
                    let why = "writes to the index kept failing (see the log); the pages' records may be missing";
                    tracing::error!(job = j, "{why}; giving up");
                    jobs.give_up(*j, why);
                }
            }
            continue;
        }
        jobs.url_done(*j, &result);
        if jobs.is_done(*j) {
            runs.finished(*j);
        }
    }
}

/// What a panicked task said, for the report.
fn panic_text(e: &tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let text = e.to_string();
    text.chars().take(200).collect()
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(w) => tokio::time::sleep_until(w).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(100);

    proptest::proptest! {
        /// Under any sequence of events, releases, finishes and retries,
        /// the due-time order agrees with the pending URLs, releases are
        /// the earliest due ones not in flight, and the retry count is exact.
        #[test]
        fn the_due_order_stays_consistent(ops in proptest::collection::vec((0..4u8, 0..6u8, 0..300u64), 0..200)) {
            let t0 = Instant::now();
            let mut co = Coalescer::default();
            let mut released: Vec<Dispatch> = Vec::new();
            for (kind, url, ms) in ops {
                let now = t0 + Duration::from_millis(ms);
                let url = format!("/{url}/");
                match kind {
                    0 => {
                        let rank = if ms % 2 == 0 { Rank::Named } else { Rank::FanOut };
                        co.ranked_event(url, Op::Bake, Some(ms), now, W, rank)
                    }
                    1 => {
                        // The two earliest due URLs not in flight, from the
                        // pending set itself.
                        let mut due: Vec<(Instant, Rank, String)> = co
                            .by_due
                            .iter()
                            .filter(|(d, _, u)| *d <= now && !co.in_flight.contains(u))
                            .cloned()
                            .collect();
                        due.sort();
                        due.truncate(2);
                        let got = co.take_due(now, 2);
                        let got_urls: Vec<&String> = got.iter().map(|d| &d.url).collect();
                        let want_urls: Vec<&String> = due.iter().map(|(_, _, u)| u).collect();
                        proptest::prop_assert_eq!(got_urls, want_urls);
                        released.extend(got);
                    }
                    2 => {
                        if let Some(d) = released.pop() {
                            co.finished(&d.url);
                        }
                    }
                    _ => {
                        if let Some(d) = released.pop() {
                            co.finished(&d.url);
                            co.retry(d, now + W);
                        }
                    }
                }
                proptest::prop_assert_eq!(co.by_due.len(), co.pending.len());
                for (due, rank, u) in &co.by_due {
                    let p = &co.pending[u];
                    proptest::prop_assert_eq!((p.due, p.rank), (*due, *rank));
                }
                proptest::prop_assert_eq!(
                    co.retrying(),
                    co.pending.values().filter(|p| p.attempt > 0).count()
                );
                let earliest = co
                    .by_due
                    .iter()
                    .filter(|(_, _, u)| !co.in_flight.contains(u))
                    .map(|(d, _, _)| *d)
                    .min();
                proptest::prop_assert_eq!(co.next_due(), earliest);
            }
        }
    }

    #[test]
    fn an_isolated_event_starts_at_once_and_a_burst_costs_two_bakes() {
        let t0 = Instant::now();
        let mut co = Coalescer::default();
        co.event("/a/".into(), Op::Bake, Some(0), t0, W);
        let first = co.take_due(t0, 8);
        assert_eq!(first.len(), 1, "leading edge: no waiting for a window");
        for i in 1..1000 {
            co.event(
                "/a/".into(),
                Op::Bake,
                Some(i),
                t0 + Duration::from_micros(i * 50),
                W,
            );
        }
        co.finished("/a/");
        assert!(
            co.take_due(t0 + Duration::from_millis(60), 8).is_empty(),
            "the next bake waits for the minimum interval"
        );
        let second = co.take_due(t0 + W, 8);
        assert_eq!(second.len(), 1);
        assert_eq!(
            second[0].jobs.len(),
            999,
            "every later job is completed by the second bake"
        );
        co.finished("/a/");
        assert!(co.take_due(t0 + W * 10, 8).is_empty());
        // Idle long enough: the next event starts at once again.
        co.event("/a/".into(), Op::Bake, None, t0 + W * 10, W);
        assert_eq!(co.take_due(t0 + W * 10, 8).len(), 1);
    }

    #[test]
    fn events_during_a_bake_cause_exactly_one_more() {
        let t0 = Instant::now();
        let mut co = Coalescer::default();
        co.event("/a/".into(), Op::Bake, Some(1), t0, W);
        let first = co.take_due(t0, 8);
        assert_eq!(first.len(), 1);
        // 500 events while in flight, some long after the window.
        for i in 0..500 {
            co.event(
                "/a/".into(),
                Op::Bake,
                Some(2 + i),
                t0 + W + Duration::from_millis(i),
                W,
            );
        }
        assert!(
            co.take_due(t0 + W * 20, 8).is_empty(),
            "single flight: nothing while in flight"
        );
        assert_eq!(co.next_due(), None);
        co.finished("/a/");
        let second = co.take_due(t0 + W * 20, 8);
        assert_eq!(second.len(), 1, "exactly one more");
        assert_eq!(second[0].jobs.len(), 500);
        co.finished("/a/");
        assert!(co.take_due(t0 + W * 40, 8).is_empty());
    }

    #[test]
    fn slots_bound_concurrency_and_other_urls_are_not_blocked() {
        let t0 = Instant::now();
        let mut co = Coalescer::default();
        for u in ["/a/", "/b/", "/c/"] {
            co.event(u.into(), Op::Bake, None, t0, W);
        }
        assert_eq!(co.take_due(t0 + W, 2).len(), 2);
        assert_eq!(co.take_due(t0 + W, 2).len(), 1);
        // A retry of /a/ later does not hold /d/.
        let d = Dispatch {
            url: "/a/".into(),
            op: Op::Bake,
            jobs: vec![7],
            first_event: t0,
            attempt: 0,
            started: None,
        };
        co.finished("/a/");
        co.retry(d, t0 + W * 50);
        co.event("/d/".into(), Op::Bake, None, t0 + W, W);
        let now = co.take_due(t0 + W * 2, 8);
        assert_eq!(
            now.iter().map(|d| d.url.as_str()).collect::<Vec<_>>(),
            vec!["/d/"]
        );
        let later = co.take_due(t0 + W * 50, 8);
        assert_eq!(later[0].url, "/a/");
        assert_eq!(later[0].attempt, 1);
        assert_eq!(later[0].jobs, vec![7]);
    }

    #[test]
    fn an_event_for_a_url_in_retry_backoff_means_try_now() {
        let t0 = Instant::now();
        let mut co = Coalescer::default();
        co.event("/a/".into(), Op::Bake, None, t0, W);
        let d = co.take_due(t0, 8).pop().unwrap();
        co.finished("/a/");
        // It failed; the retry is due in 10 s.
        co.retry(d, t0 + Duration::from_secs(10));
        assert_eq!(co.retrying(), 1);
        let t1 = t0 + Duration::from_secs(1);
        assert!(co.take_due(t1, 8).is_empty());
        // The origin is back and the content changed: a new event.
        co.event("/a/".into(), Op::Bake, Some(7), t1, W);
        let due = co.take_due(t1 + W, 8);
        assert_eq!(due.len(), 1, "not the scheduled retry, now");
        assert_eq!(due[0].attempt, 0, "a fresh start");
        assert_eq!(due[0].jobs, vec![7]);
        assert_eq!(co.retrying(), 0);
    }

    #[test]
    fn latest_intent_wins() {
        let t0 = Instant::now();
        let mut co = Coalescer::default();
        co.event("/a/".into(), Op::Bake, None, t0, W);
        co.event("/a/".into(), Op::Delete, None, t0, W);
        assert_eq!(co.take_due(t0 + W, 8)[0].op, Op::Delete);
    }

    #[test]
    fn transient_failures_retry_until_the_give_up_age_with_capped_backoff() {
        let t0 = Instant::now();
        let s = Settings {
            debounce: W,
            concurrency: 4,
            attempts: 3,
            retry_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(30),
            give_up_after: Duration::from_secs(3600),
        };
        let mut d = Dispatch {
            url: "/a/".into(),
            op: Op::Bake,
            jobs: vec![],
            first_event: t0,
            attempt: 0,
            started: None,
        };
        let transient = Retry::Transient(None);
        // Jittered into the upper half of the backoff (crate::retry).
        let first = s.next_retry(&d, transient, t0).unwrap();
        assert!(
            first >= t0 + Duration::from_millis(100) && first <= t0 + Duration::from_millis(200)
        );
        d.attempt = 20;
        let late = t0 + Duration::from_secs(600);
        let capped = s.next_retry(&d, transient, late).unwrap();
        assert!(
            capped >= late + Duration::from_secs(15) && capped <= late + Duration::from_secs(30),
            "capped"
        );
        assert_eq!(
            s.next_retry(&d, Retry::Transient(Some(Duration::from_secs(90))), late),
            Some(late + Duration::from_secs(90)),
            "Retry-After wins over a shorter backoff"
        );
        assert_eq!(
            s.next_retry(&d, transient, t0 + Duration::from_secs(3590)),
            None,
            "given up after an hour"
        );
        assert_eq!(
            s.next_retry(&d, Retry::No, late),
            None,
            "permanent failures stop after `attempts`"
        );
        d.attempt = 1;
        assert!(s.next_retry(&d, Retry::No, late).is_some());
    }

    /// The real scheduler and a real (render-mode) baker, in process, on
    /// paused time: deterministic and instant, however slow the machine.
    #[tokio::test(start_paused = true)]
    async fn in_process_a_burst_of_requests_is_one_bake_after_the_debounce_window() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/i.html"), "<p>hello</p>").unwrap();
        let toml = dir.path().join("site.toml");
        std::fs::write(&toml, "[[render]]\ntemplate = \"i.html\"\nurl = \"/\"\n").unwrap();
        let cfg = Arc::new(crate::config::Config::load(Some(&toml), &Default::default()).unwrap());
        let baker = Arc::new(
            Baker::new(cfg.clone(), &cfg.out, Default::default())
                .await
                .unwrap(),
        );
        let (submit, requests) = channel(64);
        let metrics = Arc::new(Metrics::new());
        let cancel = CancellationToken::new();
        let worker = tokio::spawn(worker(
            baker,
            submit.jobs().clone(),
            requests,
            Settings {
                debounce: W,
                concurrency: 4,
                attempts: 1,
                retry_delay: W,
                max_retry_delay: W,
                give_up_after: W,
            },
            Reporting {
                metrics: metrics.clone(),
                backlog: Arc::new(Backlog::default()),
                outputs: Vec::new(),
            },
            cancel.clone(),
        ));
        let start = Instant::now();
        let mut replies = Vec::new();
        for _ in 0..50 {
            let (tx, rx) = oneshot::channel();
            submit
                .submit(Request {
                    targets: vec![Target::Url("/".into())],
                    reply: Some(tx),
                    allow_mass_delete: false,
                })
                .await
                .unwrap();
            replies.push(rx);
        }
        let mut replies = replies.into_iter();
        let first = replies.next().unwrap().await.unwrap();
        assert_eq!(first.tally.written, 1, "{first:?}");
        assert!(
            start.elapsed() < W,
            "leading edge: the first request did not wait for a window"
        );
        for r in replies {
            let report = r.await.unwrap();
            assert_eq!(
                report.tally.written + report.tally.unchanged,
                1,
                "{report:?}"
            );
        }
        assert!(
            metrics.fetches.get() <= 2,
            "50 requests: a leading bake and at most one trailing one, got {}",
            metrics.fetches.get()
        );
        assert_eq!(
            std::fs::read_to_string(cfg.out.join("index.html")).unwrap(),
            "<p>hello</p>"
        );
        cancel.cancel();
        worker.await.unwrap();
    }

    #[test]
    fn a_named_page_starts_before_the_fan_out_due_with_it() {
        let t0 = Instant::now();
        let mut co = Coalescer::default();
        // A tag fans out to 300 pages; the edited post is one of them and
        // also named by its path, and sorts last by name.
        for i in 0..300 {
            co.ranked_event(
                format!("/a/{i:03}/"),
                Op::Bake,
                Some(1),
                t0,
                W,
                Rank::FanOut,
            );
        }
        co.ranked_event("/z/post/".into(), Op::Bake, Some(1), t0, W, Rank::FanOut);
        co.event("/z/post/".into(), Op::Bake, Some(1), t0, W);
        let first = co.take_due(t0, 1);
        assert_eq!(first[0].url, "/z/post/");
        // A fan-out event for a named page leaves it named.
        co.event("/z/other/".into(), Op::Bake, None, t0, W);
        co.ranked_event("/z/other/".into(), Op::Bake, None, t0, W, Rank::FanOut);
        assert_eq!(co.take_due(t0, 1)[0].url, "/z/other/");
        assert_eq!(co.take_due(t0, 1)[0].url, "/a/000/");
    }
}
