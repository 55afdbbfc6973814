//! Removing baked files, and the mass-delete guard that keeps them when an
//! origin seems to be removing the site rather than a few pages.
//!
//! A one-shot run ([`RunMode::Run`]) holds its removals back and decides at
//! the end ([`Baker::apply_removals`]); a long-running baker
//! ([`RunMode::LongRunning`]) has no end, so its [`RemovalGuard`] counts
//! removals over a sliding window with the same limit.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::QueryPolicy;
use crate::index::PageRecord;
use crate::urlmap;

use super::Baker;
use super::outcome::{Outcome, PageError, error_chain};

/// How far back the daemon's mass-delete guard counts removals.
pub(crate) const GUARD_WINDOW: Duration = Duration::from_secs(600);

/// Pages a tripped guard remembers, to clear itself once all came back.
/// Beyond this the guard stays tripped until the operator consents, so its
/// memory does not grow with the site.
const HELD_PAGES_TRACKED: usize = 10_000;

/// The mass-delete guard stopped a run; nothing was removed.
#[derive(Debug, thiserror::Error)]
#[error(
    "this run would remove {count} baked files of {known} ({examples}); that is more than the limit of {limit} (`safety.max-delete-pages` / `safety.max-delete-percent`), so nothing was removed. A wrong origin or a broken app looks like this; if the pages are really gone, run again with --allow-mass-delete"
)]
pub(crate) struct MassDelete {
    /// Files the run would remove.
    pub(crate) count: usize,
    /// Pages with a file before the run.
    pub(crate) known: usize,
    /// The limit that applied.
    pub(crate) limit: usize,
    /// A few of the URLs.
    pub(crate) examples: String,
}

/// How a baker treats removals and repeated pages: the one switch between
/// a one-shot run and a long-running baker.
pub(super) enum RunMode {
    /// `build`, `regen`: removals wait for the end of the run so the
    /// mass-delete guard can stop them all, and a page reached twice
    /// (through a redirect) is baked once.
    Run {
        /// Removals held back until [`Baker::apply_removals`].
        deferred: Mutex<Vec<Removal>>,
        /// Pages baked (or being baked) so far, by key (a million pages'
        /// URLs are not kept).
        claimed: Mutex<HashSet<crate::urlpath::UrlKey>>,
        /// Pages that shrank to a tenth or less: written as they come, so
        /// they are counted as the daemon counts them; `None` with
        /// `--allow-mass-delete`.
        shrinks: Option<Mutex<RemovalGuard>>,
    },
    /// The daemon, `serve`: removals go at once under the sliding-window
    /// guard; the scheduler's coalescing keeps a page from being baked
    /// twice at once.
    LongRunning {
        /// The guard.
        guard: Mutex<RemovalGuard>,
    },
}

impl RunMode {
    /// A one-shot run when `defer_removals`, else a long-running baker;
    /// `allow_mass` is the run's consent to mass changes.
    pub(super) fn new(defer_removals: bool, allow_mass: bool) -> RunMode {
        if defer_removals {
            RunMode::Run {
                deferred: Mutex::default(),
                claimed: Mutex::default(),
                shrinks: (!allow_mass).then(Mutex::default),
            }
        } else {
            RunMode::LongRunning {
                guard: Mutex::default(),
            }
        }
    }
}

/// A file removal held back until the end of a run.
#[derive(Debug, Clone)]
pub(super) struct Removal {
    url: String,
    rel: PathBuf,
    http_status: Option<u16>,
    /// The refusal reason, when the page was refused rather than gone.
    refused: Option<String>,
}

/// The mass-delete guard of a long-running baker (the daemon, `serve`).
///
/// It counts the removals an origin caused (404/410, a refusal) over a
/// sliding window, with the same limit as a run. The removal that would go
/// over the limit is held (its file stays, the page is marked failed with
/// the reason) and the guard trips: every later automatic removal is held
/// too, with a WARN, `mass_delete_guard` in `/v1/status` and
/// `kiln_removals_held` / `kiln_mass_delete_guard_tripped` in `/metrics`,
/// until the operator consents (`--allow-mass-delete` on a request, which
/// lets removals pass for one window) or every page it kept was baked again
/// (the origin came back). An explicit `delete:` is its own consent and is
/// never held. Pure: the caller passes the time, so it is table-tested.
#[derive(Debug, Default)]
pub(super) struct RemovalGuard {
    /// Pages removed automatically within [`GUARD_WINDOW`], and when: the
    /// limit counts distinct pages, as a run's does.
    recent: HashMap<String, Instant>,
    /// Set once the limit was reached.
    tripped: bool,
    /// The pages it kept since it tripped; `None` once there were more
    /// than [`HELD_PAGES_TRACKED`] (then only consent clears it).
    kept: Option<HashSet<String>>,
    /// Consent given (`--allow-mass-delete`): removals pass uncounted until then.
    consented_until: Option<Instant>,
    /// Removals held since the daemon started.
    held: u64,
}

/// The guard's answer for one removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The file may go.
    Pass,
    /// The file stays; `first` when this removal tripped the guard.
    Held {
        /// This removal tripped the guard.
        first: bool,
        /// The limit that applied.
        limit: usize,
    },
}

impl RemovalGuard {
    /// Whether `path`'s file may be removed at `now`, on a site with
    /// `baked` pages now; `limit_for` is the limit for a site of a size.
    pub(super) fn admit(
        &mut self,
        path: &str,
        now: Instant,
        baked: usize,
        limit_for: impl Fn(usize) -> usize,
    ) -> Admission {
        self.recent
            .retain(|_, t| now.duration_since(*t) <= GUARD_WINDOW);
        // The site as it was before this window's removals, as a run
        // counts it before its own.
        let limit = limit_for(baked + self.recent.len());
        if self.consented_until.is_some_and(|until| now < until) {
            return Admission::Pass;
        }
        if self.tripped || (!self.recent.contains_key(path) && self.recent.len() >= limit) {
            let first = !self.tripped;
            if first {
                self.kept = Some(HashSet::new());
            }
            self.tripped = true;
            self.held += 1;
            if let Some(kept) = &mut self.kept {
                kept.insert(path.to_string());
                if kept.len() > HELD_PAGES_TRACKED {
                    self.kept = None;
                }
            }
            Admission::Held { first, limit }
        } else {
            self.recent.insert(path.to_string(), now);
            Admission::Pass
        }
    }

    /// `path` was baked again (or removed on request): a page the guard
    /// kept is settled. When every kept page is, the origin is evidently
    /// back and the guard clears. Returns true when it cleared.
    pub(super) fn settled(&mut self, path: &str) -> bool {
        if !self.tripped {
            return false;
        }
        let Some(kept) = &mut self.kept else {
            return false;
        };
        if kept.remove(path) && kept.is_empty() {
            self.tripped = false;
            self.kept = None;
            return true;
        }
        false
    }

    /// The operator consented (`--allow-mass-delete`): removals pass for
    /// one window from `now`, then the guard counts afresh. Returns whether
    /// it was tripped.
    pub(super) fn consent(&mut self, now: Instant) -> bool {
        let was = self.tripped;
        self.tripped = false;
        self.kept = None;
        self.recent.clear();
        self.consented_until = Some(now + GUARD_WINDOW);
        was
    }

    /// (tripped, removals held so far), for status and metrics.
    pub(super) fn state(&self) -> (bool, u64) {
        (self.tripped, self.held)
    }
}

impl Baker {
    /// True when this run may bake `path`: once per one-shot run, always
    /// in a long-running baker (where coalescing does this job).
    pub(super) fn claim(&self, path: &str) -> bool {
        match &self.mode {
            RunMode::Run { claimed, .. } => claimed
                .lock()
                .map(|mut c| c.insert(crate::urlpath::UrlKey::of(path)))
                .unwrap_or(true),
            RunMode::LongRunning { .. } => true,
        }
    }

    /// A page that must not be served static any more: its file goes (now,
    /// or at the end of a one-shot run) and the app serves it live.
    pub(super) async fn refuse(
        &self,
        path: &str,
        http_status: Option<u16>,
        reason: String,
    ) -> Outcome {
        let record = PageRecord::refused(path, http_status, reason.clone());
        match self.file_of(path).await {
            Ok(rel) if matches!(self.mode, RunMode::Run { .. }) => {
                // Recorded when the removal is applied: the record says the
                // file is gone, which is true only then (and the outputs
                // must not drop a page the mass-delete guard keeps).
                self.defer(Removal {
                    url: path.to_string(),
                    rel,
                    http_status,
                    refused: Some(reason.clone()),
                });
            }
            Ok(rel) => {
                if let Err(held) = self
                    .may_remove(path, &rel, format!("refused ({reason})"))
                    .await
                {
                    return self.fail(path, http_status, held).await;
                }
                let removed = self.root.remove_page(&rel);
                self.record(record).await;
                if let Err(e) = removed {
                    return Outcome::Failed(PageError::StaleRefused {
                        reason,
                        source: Arc::new(e),
                    });
                }
            }
            Err(_) => self.record(record).await,
        }
        Outcome::Refused(reason)
    }

    /// The origin says the page is gone (404/410), or its data file went:
    /// remove its file. `Deleted` only when a file was really there.
    pub(super) async fn gone(&self, path: &str, http_status: Option<u16>) -> Outcome {
        let rel = match self.file_of(path).await {
            Ok(rel) => rel,
            Err(e) => {
                return Outcome::Skipped(format!(
                    "not a page ({e}); the origin answered {}",
                    http_status.map_or("nothing".into(), |c| c.to_string())
                ));
            }
        };
        let exists = match self.root.has_page(&rel) {
            Ok(e) => e,
            Err(e) => {
                return self
                    .fail(path, http_status, PageError::Write(Arc::new(e)))
                    .await;
            }
        };
        if !exists {
            // Siblings a crash left behind go too (nothing else names them).
            let _ = self.root.remove_page(&rel);
            // A known page's record (a kill may have come between its
            // file's removal and its record) tells the outputs it is gone.
            // A URL never baked that the origin answers 404 for (a broken
            // link) is recorded as missing: the index then knows it, so the
            // next page linking to it does not fetch it again on every regen.
            if self.index.ever_answered(path).await.unwrap_or(false) {
                self.record(PageRecord::deleted(path, http_status)).await;
            } else if http_status.is_some() {
                self.record(PageRecord::missing(path, http_status)).await;
            }
            return Outcome::Skipped(match http_status {
                Some(code) => format!("origin answered {code}; there was no baked file"),
                None => "no baked file".into(),
            });
        }
        if matches!(self.mode, RunMode::Run { .. }) {
            self.defer(Removal {
                url: path.to_string(),
                rel,
                http_status,
                refused: None,
            });
            return Outcome::Deleted;
        }
        let why = match http_status {
            Some(code) => format!("the origin answered {code}"),
            None => "its source is gone".to_string(),
        };
        if let Err(held) = self.may_remove(path, &rel, why).await {
            return self.fail(path, http_status, held).await;
        }
        self.remove_now(path, &rel, http_status).await
    }

    /// The daemon's mass-delete guard ([`RemovalGuard`]): Ok when `path`'s
    /// file may go now, else the error that keeps it. Only files that
    /// exist count.
    async fn may_remove(&self, path: &str, rel: &Path, why: String) -> Result<(), PageError> {
        let RunMode::LongRunning { guard } = &self.mode else {
            return Ok(());
        };
        if !self.root.has_page(rel).unwrap_or(false) {
            return Ok(());
        }
        let Some((first, limit)) = self.held_by(guard, path).await else {
            return Ok(());
        };
        let window = humantime::format_duration(GUARD_WINDOW);
        if first {
            tracing::warn!(url = %path, limit, window = %window, "mass-delete guard tripped: the origin is removing more pages than the limit allows; their files are kept until `kiln regen --allow-mass-delete failed` or until they are baked again");
        } else {
            tracing::warn!(url = %path, "mass-delete guard kept a file the origin removed");
        }
        Err(PageError::RemovalHeld {
            why,
            limit,
            window: window.to_string(),
        })
    }

    /// The mass-change guard for a page whose new body (`new` bytes) is a
    /// tenth or less of its file (`old` bytes): a broken template or app
    /// blanks pages this way, and a site-wide blanking is held like a
    /// mass removal (the file kept, the page failed with the reason). The
    /// same limit and window as removals, counted with them in the daemon.
    pub(super) async fn may_shrink(&self, path: &str, old: u64, new: u64) -> Result<(), PageError> {
        let guard = match &self.mode {
            RunMode::LongRunning { guard } => guard,
            RunMode::Run {
                shrinks: Some(guard),
                ..
            } => guard,
            RunMode::Run { shrinks: None, .. } => return Ok(()),
        };
        let Some((first, limit)) = self.held_by(guard, path).await else {
            return Ok(());
        };
        let window = humantime::format_duration(GUARD_WINDOW);
        if first {
            tracing::warn!(url = %path, limit, window = %window, "mass-change guard tripped: more pages than the limit shrank to a tenth or less; their files are kept until `kiln regen --allow-mass-delete failed` or until they are baked again");
        } else {
            tracing::warn!(url = %path, old, new, "mass-change guard kept a file that shrank");
        }
        Err(PageError::ShrinkHeld {
            old,
            new,
            limit,
            window: window.to_string(),
        })
    }

    /// Asks `guard` whether `path` may be removed or blanked now: `None`
    /// when it may (the event named the page narrowly, [`super::APP_CONSENTS`],
    /// or the limit is not reached), else `(tripped by this one, limit)`.
    async fn held_by(&self, guard: &Mutex<RemovalGuard>, path: &str) -> Option<(bool, usize)> {
        if super::APP_CONSENTS.try_with(|c| *c).unwrap_or(false) {
            // The app removed what it meant to (a deleted post), not a
            // site's worth.
            return None;
        }
        let baked = self.index.baked_count().await.unwrap_or(0);
        let admission = guard
            .lock()
            .ok()?
            .admit(path, Instant::now(), baked, |n| self.limit_for(n));
        match admission {
            Admission::Pass => None,
            Admission::Held { first, limit } => Some((first, limit)),
        }
    }

    /// A page was baked or removed on request: the guard may clear.
    pub(super) fn settle(&self, path: &str) {
        if let RunMode::LongRunning { guard } = &self.mode {
            if guard.lock().is_ok_and(|mut g| g.settled(path)) {
                tracing::info!(url = %path, "mass-delete guard cleared: every page it kept was baked again");
            }
        }
    }

    /// The most files one run (or one guard window) may remove.
    async fn removal_limit(&self) -> usize {
        let known = self.index.baked_count().await.unwrap_or(0);
        self.limit_for(known)
    }

    /// The mass-delete limit for a site of `known` baked pages (one rule
    /// for runs and the daemon).
    fn limit_for(&self, known: usize) -> usize {
        self.cfg.safety.delete_limit().of(known)
    }

    /// The operator consented to a mass removal (`--allow-mass-delete` on a
    /// request): removals pass for one guard window (the request's own and
    /// any that follow it closely), then the guard counts afresh.
    pub(crate) fn consent_to_removals(&self) {
        if let RunMode::LongRunning { guard } = &self.mode {
            if guard.lock().is_ok_and(|mut g| g.consent(Instant::now())) {
                tracing::info!("mass-delete guard reset by an --allow-mass-delete request");
            }
        }
    }

    /// The guard's state for status: (tripped, removals held so far).
    pub(crate) fn removals_held(&self) -> (bool, u64) {
        match &self.mode {
            RunMode::LongRunning { guard } => guard.lock().map_or((false, 0), |g| g.state()),
            RunMode::Run { .. } => (false, 0),
        }
    }

    async fn remove_now(&self, path: &str, rel: &Path, http_status: Option<u16>) -> Outcome {
        match self.root.remove_page(rel) {
            Ok(removed) => {
                self.record(PageRecord::deleted(path, http_status)).await;
                if removed {
                    Outcome::Deleted
                } else {
                    Outcome::Skipped("no baked file".into())
                }
            }
            Err(e) => {
                self.fail(path, http_status, PageError::Write(Arc::new(e)))
                    .await
            }
        }
    }

    /// Removes the baked file of `path` at once (an explicit `delete:`,
    /// which is its own consent and never deferred).
    pub(crate) async fn remove(&self, path: &str, http_status: Option<u16>) -> Outcome {
        self.settle(path);
        match self.file_of(path).await {
            Ok(rel) => self.remove_now(path, &rel, http_status).await,
            Err(e) => Outcome::Skipped(format!("not a page: {e}")),
        }
    }

    fn defer(&self, r: Removal) {
        if let RunMode::Run { deferred, .. } = &self.mode {
            if let Ok(mut d) = deferred.lock() {
                d.push(r);
            }
        }
    }

    /// Applies the removals a one-shot run held back, unless there are more
    /// than the mass-delete limit and `allow_mass` is false: then nothing is
    /// removed and [`MassDelete`] says why. Returns how many files went.
    pub(crate) async fn apply_removals(&self, allow_mass: bool) -> Result<usize, MassDelete> {
        let pending: Vec<Removal> = match &self.mode {
            RunMode::Run { deferred, .. } => deferred
                .lock()
                .map(|mut d| std::mem::take(&mut *d))
                .unwrap_or_default(),
            RunMode::LongRunning { .. } => return Ok(0),
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let known = self.index.baked_count().await.unwrap_or(0);
        let limit = self.removal_limit().await;
        if pending.len() > limit && !allow_mass {
            let examples: Vec<&str> = pending.iter().take(3).map(|r| r.url.as_str()).collect();
            return Err(MassDelete {
                count: pending.len(),
                known,
                limit,
                examples: format!("e.g. {}", examples.join(", ")),
            });
        }
        let mut removed = 0;
        for r in pending {
            let gone = match self.root.remove_page(&r.rel) {
                Ok(gone) => gone,
                Err(e) => {
                    tracing::error!(url = %r.url, error = %error_chain(&e), "could not remove file");
                    continue;
                }
            };
            removed += usize::from(gone);
            let record = match &r.refused {
                None => PageRecord::deleted(&r.url, r.http_status),
                Some(reason) => PageRecord::refused(&r.url, r.http_status, reason.clone()),
            };
            self.record(record).await;
        }
        Ok(removed)
    }

    /// The file a URL is baked into: the index's record, else the mapping.
    pub(super) async fn file_of(&self, path: &str) -> Result<PathBuf, String> {
        let stored = self
            .index
            .page(path)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.file)
            .map(PathBuf::from);
        match stored {
            Some(r) => Ok(r),
            None => urlmap::page_file(path, true, QueryPolicy::Strip, &self.cfg.crawl.query_params)
                .map_err(|e| e.to_string()),
        }
    }

    pub(super) async fn remove_file_of(&self, path: &str) -> Result<bool, String> {
        let rel = self.file_of(path).await?;
        self.root.remove_page(&rel).map_err(|e| error_chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a guard's life: at `t` seconds, do `act`, expect `want`.
    enum Act {
        Remove(&'static str),
        Settle(&'static str),
        Consent,
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        Pass,
        Held {
            first: bool,
        },
        /// After a settle or consent: (tripped, held so far).
        State(bool, u64),
    }

    fn run(name: &str, steps: &[(u64, Act, Want)]) {
        // A 100-page site with a limit of 3 removals per window.
        let start = Instant::now();
        let mut guard = RemovalGuard::default();
        for (i, (t, act, want)) in steps.iter().enumerate() {
            let now = start + Duration::from_secs(*t);
            let got = match act {
                Act::Remove(path) => match guard.admit(path, now, 100, |_| 3) {
                    Admission::Pass => Want::Pass,
                    Admission::Held { first, limit } => {
                        assert_eq!(limit, 3, "{name}: step {i}");
                        Want::Held { first }
                    }
                },
                Act::Settle(path) => {
                    guard.settled(path);
                    let (tripped, held) = guard.state();
                    Want::State(tripped, held)
                }
                Act::Consent => {
                    guard.consent(now);
                    let (tripped, held) = guard.state();
                    Want::State(tripped, held)
                }
            };
            assert_eq!(&got, want, "{name}: step {i}");
        }
    }

    #[test]
    fn the_guard_holds_what_goes_over_the_limit_within_its_window() {
        let w = GUARD_WINDOW.as_secs();
        use Act::*;
        run(
            "under the limit, and the same page twice counts once",
            &[
                (0, Remove("/a/"), Want::Pass),
                (1, Remove("/a/"), Want::Pass),
                (2, Remove("/b/"), Want::Pass),
                (3, Remove("/c/"), Want::Pass),
                (4, Remove("/c/"), Want::Pass),
            ],
        );
        run(
            "over the limit trips, and a tripped guard holds every removal",
            &[
                (0, Remove("/a/"), Want::Pass),
                (0, Remove("/b/"), Want::Pass),
                (0, Remove("/c/"), Want::Pass),
                (1, Remove("/d/"), Want::Held { first: true }),
                (2, Remove("/e/"), Want::Held { first: false }),
                (3, Remove("/a/"), Want::Held { first: false }),
                // Still tripped a window later: only consent or the pages'
                // return clears it.
                (w + 10, Remove("/f/"), Want::Held { first: false }),
            ],
        );
        run(
            "the window slides: old removals stop counting",
            &[
                (0, Remove("/a/"), Want::Pass),
                (0, Remove("/b/"), Want::Pass),
                (0, Remove("/c/"), Want::Pass),
                (w + 1, Remove("/d/"), Want::Pass),
                (w + 1, Remove("/e/"), Want::Pass),
                (w + 2, Remove("/f/"), Want::Pass),
                (w + 3, Remove("/g/"), Want::Held { first: true }),
            ],
        );
        run(
            "consent lets removals pass for one window, then counts afresh",
            &[
                (0, Remove("/a/"), Want::Pass),
                (0, Remove("/b/"), Want::Pass),
                (0, Remove("/c/"), Want::Pass),
                (1, Remove("/d/"), Want::Held { first: true }),
                (2, Consent, Want::State(false, 1)),
                (3, Remove("/d/"), Want::Pass),
                (4, Remove("/e/"), Want::Pass),
                (5, Remove("/f/"), Want::Pass),
                (6, Remove("/g/"), Want::Pass),
                (w + 3, Remove("/h/"), Want::Pass),
                (w + 3, Remove("/i/"), Want::Pass),
                (w + 3, Remove("/j/"), Want::Pass),
                (w + 4, Remove("/k/"), Want::Held { first: true }),
            ],
        );
        run(
            "the guard clears once every page it kept was baked again",
            &[
                (0, Remove("/a/"), Want::Pass),
                (0, Remove("/b/"), Want::Pass),
                (0, Remove("/c/"), Want::Pass),
                (1, Remove("/d/"), Want::Held { first: true }),
                (2, Remove("/e/"), Want::Held { first: false }),
                (3, Settle("/a/"), Want::State(true, 2)),
                (4, Settle("/d/"), Want::State(true, 2)),
                (5, Settle("/e/"), Want::State(false, 2)),
                // Cleared, but the window still counts /a/ /b/ /c/.
                (6, Remove("/f/"), Want::Held { first: true }),
                (w + 1, Settle("/f/"), Want::State(false, 3)),
                (w + 2, Remove("/g/"), Want::Pass),
            ],
        );
    }

    #[test]
    fn a_guard_that_kept_more_pages_than_it_tracks_waits_for_consent() {
        let start = Instant::now();
        let mut guard = RemovalGuard::default();
        let paths: Vec<String> = (0..=HELD_PAGES_TRACKED + 1)
            .map(|i| format!("/p{i}/"))
            .collect();
        for p in &paths {
            guard.admit(p, start, 1_000_000, |_| 0);
        }
        for p in &paths {
            guard.settled(p);
        }
        assert!(guard.state().0, "cleared without consent");
        guard.consent(start);
        assert!(!guard.state().0);
    }
}
