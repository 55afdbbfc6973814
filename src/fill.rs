//! Fill on miss: nginx sends an anonymous GET for a URL with no baked file
//! here (`/v1/fill/<path>`) instead of to the app. However many visitors
//! miss the same URL at once, the origin is asked once (single flight); the
//! answer is shown to every one of them and, when the privacy rules pass,
//! baked through the same pipeline as any page, so the next visitor gets
//! the static file.
//!
//! What each visitor is shown ([`Answer`]):
//! - the page, when it was baked (or is public but not a file, like a 404);
//! - "go to the app" (`X-Accel-Redirect: @origin`, nginx then proxies the
//!   visitor's own request) when the response is private, a redirect, or
//!   not a URL kiln bakes: nobody is ever shown another visitor's response;
//! - the origin's failure, remembered for `daemon.fill-window` together
//!   with 404s, so an outage costs the origin one request per URL per
//!   window, not one per visitor.
//!
//! Why here and not nginx's `proxy_cache_lock` (docs/architecture.md,
//! "Misses"): nginx's cache would keep a second copy of each page with its
//! own expiry, outside the index, that no event reaches; the daemon already
//! owns the privacy rules, the write path and the tags, so the first miss
//! becomes the baked file that events keep fresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::bake::{Baker, Filled, OnRecord, Outcome, PageError};
use crate::metrics::Metrics;
use crate::schedule::{ChangeListener, Request, Submitter};
use crate::source::fetch::FetchError;
use crate::targets::Target;

/// Distinct URLs filled at once; a miss beyond this goes to the app as it
/// would without kiln (bounded memory under a flood of distinct URLs).
pub(crate) const MAX_FLIGHTS: usize = 512;
/// Remembered failures and 404s kept at most (oldest dropped first).
const MAX_REMEMBERED: usize = 10_000;
/// Largest body a fill holds in memory to show waiting visitors; a bigger
/// page is read back from its baked file, a bigger non-page goes to the app.
const MAX_SHOWN_BYTES: u64 = 16 << 20;

/// What every visitor who missed a URL is shown.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A response any anonymous visitor may see: the baked page (200), or
    /// a public answer that is no page (404, 410).
    Shared {
        /// HTTP status.
        status: u16,
        /// Its `Content-Type`.
        content_type: String,
        /// Its bytes.
        body: Bytes,
        /// Whether it is now a baked file.
        baked: bool,
    },
    /// Each visitor asks the app himself (private, a redirect, not a URL
    /// kiln bakes, or too many fills at once).
    ToApp(&'static str),
    /// The origin could not answer.
    Unavailable {
        /// 502 (no connection), 504 (timeout) or the origin's own 5xx/429.
        status: u16,
        /// What went wrong, for the log and the `X-Kiln-Fill` header.
        reason: String,
    },
}

impl Answer {
    /// Label for metrics and the `X-Kiln-Fill` response header.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Answer::Shared { baked: true, .. } => "baked",
            Answer::Shared { baked: false, .. } => "public",
            Answer::ToApp(_) => "app",
            Answer::Unavailable { .. } => "unavailable",
        }
    }

    /// Failures and "no page here" are shown again, without asking the
    /// origin, until the window ends.
    fn is_remembered(&self) -> bool {
        // A 404 or an outage is shown for the window; a page that is not
        // baked (an asset) is asked for again, as the app would serve it.
        match self {
            Answer::Unavailable { .. } => true,
            Answer::Shared { baked, status, .. } => !baked && *status != 200,
            Answer::ToApp(_) => false,
        }
    }
}

/// Counts for `/v1/status`.
#[derive(Debug, Default)]
pub(crate) struct FillStats {
    /// Visitor requests answered.
    pub(crate) requests: AtomicU64,
    /// Of those, answered by a flight another visitor started.
    pub(crate) joined: AtomicU64,
    /// Of those, answered without asking the origin (the window, or a
    /// file placed since nginx looked).
    pub(crate) remembered: AtomicU64,
    /// Origin requests made (one per flight).
    pub(crate) fetches: AtomicU64,
    /// Pages baked by a fill.
    pub(crate) baked: AtomicU64,
    /// Visitors sent to the app.
    pub(crate) to_app: AtomicU64,
}

impl FillStats {
    /// The counts as JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "requests": n(&self.requests),
            "joined": n(&self.joined),
            "remembered": n(&self.remembered),
            "fetches": n(&self.fetches),
            "baked": n(&self.baked),
            "to_app": n(&self.to_app),
        })
    }
}

type Flight = watch::Receiver<Option<Arc<Answer>>>;

/// The fill service the HTTP endpoint calls.
pub(crate) struct Filler {
    baker: Arc<Baker>,
    /// URLs being filled, each with the channel its answer arrives on.
    flights: Mutex<HashMap<String, Flight>>,
    /// Recent failures and 404s, with when they stop being shown.
    remembered: Mutex<HashMap<String, (Instant, Arc<Answer>)>>,
    window: Duration,
    /// Flights run here, not in the visitor's request: a visitor who goes
    /// away does not cancel a bake half done. The daemon waits for them.
    tasks: TaskTracker,
    /// New pages a filled page links to go to the scheduler.
    submit: Submitter,
    /// Told about every changed page (the outbox worker's waker).
    outputs: Vec<ChangeListener>,
    metrics: Arc<Metrics>,
    /// Counts for status.
    pub(crate) stats: FillStats,
    changes: Arc<crate::schedule::Backlog>,
}

impl Filler {
    /// A filler over the daemon's baker.
    pub(crate) fn new(
        baker: Arc<Baker>,
        window: Duration,
        submit: Submitter,
        outputs: Vec<ChangeListener>,
        metrics: Arc<Metrics>,
        changes: Arc<crate::schedule::Backlog>,
    ) -> Filler {
        Filler {
            baker,
            flights: Mutex::new(HashMap::new()),
            remembered: Mutex::new(HashMap::new()),
            window,
            tasks: TaskTracker::new(),
            submit,
            outputs,
            metrics,
            stats: FillStats::default(),
            changes,
        }
    }

    /// Waits for the flights in progress (daemon shutdown).
    pub(crate) async fn finish(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The answer for one visitor's miss of `uri` (path and query).
    pub(crate) async fn answer(self: &Arc<Self>, uri: &str) -> Arc<Answer> {
        let answer = self.answer_inner(uri).await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if matches!(*answer, Answer::ToApp(_)) {
            self.stats.to_app.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics.count_fill(answer.label());
        answer
    }

    async fn answer_inner(self: &Arc<Self>, uri: &str) -> Arc<Answer> {
        let Some(path) = self.baker.bakeable_path(uri) else {
            return Arc::new(Answer::ToApp("not a URL kiln bakes"));
        };
        if let Some(a) = self.remembered(&path) {
            self.stats.remembered.fetch_add(1, Ordering::Relaxed);
            return a;
        }
        match self.baker.on_record(&path).await {
            OnRecord::Refused => return Arc::new(Answer::ToApp("refused by a privacy rule")),
            // nginx looked before the page's bake placed its file.
            OnRecord::Baked { file, content_type } => {
                if let Ok(body) = tokio::fs::read(&file).await {
                    self.stats.remembered.fetch_add(1, Ordering::Relaxed);
                    return Arc::new(Answer::Shared {
                        status: 200,
                        content_type: content_type
                            .unwrap_or_else(|| "text/html; charset=utf-8".into()),
                        body: Bytes::from(body),
                        baked: true,
                    });
                }
            }
            OnRecord::Unknown => {}
        }
        let mut flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            match flights.get(&path) {
                Some(f) => {
                    self.stats.joined.fetch_add(1, Ordering::Relaxed);
                    f.clone()
                }
                None => {
                    // Checked again under the flights lock: a flight that
                    // just ended left its answer here before it went.
                    if let Some(a) = self.remembered(&path) {
                        self.stats.remembered.fetch_add(1, Ordering::Relaxed);
                        return a;
                    }
                    if flights.len() >= MAX_FLIGHTS {
                        return Arc::new(Answer::ToApp("too many fills at once"));
                    }
                    let (tx, rx) = watch::channel(None);
                    flights.insert(path.clone(), rx.clone());
                    let me = self.clone();
                    self.tasks.spawn(async move { me.fly(path, tx).await });
                    rx
                }
            }
        };
        let answer = match flight.wait_for(Option::is_some).await {
            Ok(a) => a.clone(),
            // The flight's task ended without an answer (it panicked).
            Err(_) => None,
        };
        answer.unwrap_or_else(|| Arc::new(Answer::ToApp("the fill failed")))
    }

    fn remembered(&self, path: &str) -> Option<Arc<Answer>> {
        let mut map = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(path) {
            Some((until, a)) if Instant::now() < *until => Some(a.clone()),
            Some(_) => {
                map.remove(path);
                None
            }
            None => None,
        }
    }

    /// One origin request for `path`, its bake, and the answer for everyone
    /// who waits.
    async fn fly(self: Arc<Self>, path: String, tx: watch::Sender<Option<Arc<Answer>>>) {
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let filled = self.baker.fill(&path).await;
        let answer = Arc::new(self.shown(&path, &filled).await);
        match &*answer {
            Answer::Unavailable { reason, .. } => {
                tracing::warn!(url = %path, reason, "fill: the origin could not answer; shown to misses for the window")
            }
            a => tracing::debug!(url = %path, answer = a.label(), "fill answered"),
        }
        if answer.is_remembered() {
            let mut map = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= MAX_REMEMBERED {
                let now = Instant::now();
                map.retain(|_, (until, _)| *until > now);
                if map.len() >= MAX_REMEMBERED {
                    map.clear();
                }
            }
            map.insert(path.clone(), (Instant::now() + self.window, answer.clone()));
        }
        if matches!(*answer, Answer::Shared { baked: true, .. }) {
            // Committed before the flight ends: a miss that arrives later
            // (nginx looked before the file was placed) finds the record
            // and is shown the file instead of starting a second fetch.
            if let Err(e) = self.baker.flush().await {
                tracing::warn!(url = %path, error = %e, "fill: the index could not commit");
            }
        }
        self.flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&path);
        let _ = tx.send(Some(answer.clone()));
        self.after(filled).await;
    }

    /// What the waiting visitors are shown for a fill's result.
    async fn shown(&self, path: &str, filled: &Filled) -> Answer {
        let fetched = filled.fetched.as_ref();
        let content_type = || {
            fetched
                .and_then(|f| f.headers.get(reqwest::header::CONTENT_TYPE))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/html; charset=utf-8")
                .to_string()
        };
        match &filled.result.outcome {
            Outcome::Written | Outcome::Unchanged if filled.shareable => {
                self.stats.baked.fetch_add(1, Ordering::Relaxed);
                match self.body_of(path, filled, true).await {
                    Some(body) => Answer::Shared {
                        status: 200,
                        content_type: content_type(),
                        body,
                        baked: true,
                    },
                    None => Answer::ToApp("the page is too large to show from memory"),
                }
            }
            // A public answer kiln does not bake (an asset): shown as it
            // came, so the app is not asked twice.
            Outcome::Skipped(_) if filled.shareable && fetched.is_some_and(|f| f.status == 200) => {
                match self.body_of(path, filled, false).await {
                    Some(body) => Answer::Shared {
                        status: 200,
                        content_type: content_type(),
                        body,
                        baked: false,
                    },
                    None => Answer::ToApp("the answer is too large to show from memory"),
                }
            }
            Outcome::Deleted | Outcome::Skipped(_)
                if filled.shareable && fetched.is_some_and(|f| matches!(f.status, 404 | 410)) =>
            {
                match (fetched, self.body_of(path, filled, false).await) {
                    (Some(f), Some(body)) => Answer::Shared {
                        status: f.status,
                        content_type: content_type(),
                        body,
                        baked: false,
                    },
                    _ => Answer::ToApp("the answer is too large to show from memory"),
                }
            }
            Outcome::Failed(PageError::Fetch(e)) => match &**e {
                FetchError::Connect { .. } => Answer::Unavailable {
                    status: 502,
                    reason: e.to_string(),
                },
                FetchError::Timeout { .. } => Answer::Unavailable {
                    status: 504,
                    reason: e.to_string(),
                },
                FetchError::ServerError { status, .. } => Answer::Unavailable {
                    status: *status,
                    reason: e.to_string(),
                },
                _ => Answer::ToApp("the response cannot be baked"),
            },
            Outcome::Failed(PageError::Answered { status, .. }) if *status >= 500 => {
                Answer::Unavailable {
                    status: *status,
                    reason: format!("the origin answered {status}"),
                }
            }
            Outcome::Refused(_) => Answer::ToApp("refused by a privacy rule"),
            Outcome::Redirected(_) => Answer::ToApp("a redirect"),
            _ if fetched.is_some_and(|f| !f.hops.is_empty()) => Answer::ToApp("a redirect"),
            _ => Answer::ToApp("not bakeable"),
        }
    }

    /// The bytes to show: the response's, or (a large page) its baked file's.
    async fn body_of(&self, path: &str, filled: &Filled, baked: bool) -> Option<Bytes> {
        let f = filled.fetched.as_ref()?;
        if let Some(b) = f.body.as_bytes() {
            return Some(Bytes::copy_from_slice(b));
        }
        if !baked || f.body.len() > MAX_SHOWN_BYTES {
            return None;
        }
        let file = self.baker.baked_file(path).await?;
        tokio::fs::read(file).await.ok().map(Bytes::from)
    }

    /// What any bake's result leads to: the outputs hear of a change, the
    /// preview reloads, and new pages it links to are baked.
    async fn after(&self, filled: Filled) {
        let result = filled.result;
        self.changes.page_done(&result, &self.outputs);
        if result.links.is_empty() {
            return;
        }
        let new = self.baker.unknown(result.links).await;
        if new.is_empty() {
            return;
        }
        self.submit
            .submit(Request {
                targets: new.into_iter().map(Target::Url).collect(),
                reply: None,
                allow_mass_delete: false,
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_and_public_non_pages_are_remembered() {
        let shared = |baked| Answer::Shared {
            status: if baked { 200 } else { 404 },
            content_type: "text/html".into(),
            body: Bytes::new(),
            baked,
        };
        assert!(!shared(true).is_remembered(), "a baked page is a file now");
        assert!(
            shared(false).is_remembered(),
            "a 404 is shown for the window"
        );
        assert!(
            Answer::Unavailable {
                status: 503,
                reason: String::new()
            }
            .is_remembered()
        );
        assert!(
            !Answer::ToApp("private").is_remembered(),
            "a private answer is never reused"
        );
    }
}
