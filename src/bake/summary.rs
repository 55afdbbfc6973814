//! The tally of a run: every page counted once, by what happened to it,
//! printed at the end of `build` and `regen` (and in a daemon job's report).

use std::time::{Duration, Instant};

use super::{Outcome, PageResult};

/// Tally of a run, printed at the end of `build` and `regen`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Summary {
    /// Pages written.
    pub(crate) written: usize,
    /// Pages already current.
    pub(crate) unchanged: usize,
    /// Pages removed.
    pub(crate) deleted: usize,
    /// Redirects recorded.
    pub(crate) redirected: usize,
    /// Skipped URLs with the reason (not pages, nothing to remove, policy).
    pub(crate) skipped: Vec<(String, String)>,
    /// Targets that matched nothing, with why.
    pub(crate) unmatched: Vec<(String, String)>,
    /// Refused pages with reasons.
    pub(crate) refused: Vec<(String, String)>,
    /// Failed pages with errors.
    pub(crate) failed: Vec<(String, String)>,
    /// Whether `crawl.max-pages` stopped the crawl.
    pub(crate) hit_page_limit: bool,
    /// Of the failed pages, those whose origin could not be connected to
    /// (one problem, said once: "is the app running?").
    #[serde(skip)]
    pub(crate) unreachable: usize,
    /// Wall time.
    #[serde(with = "humantime_serde_secs")]
    pub(crate) elapsed: Duration,
    #[serde(skip)]
    started: Option<Instant>,
}

mod humantime_serde_secs {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        let secs: f64 = serde::Deserialize::deserialize(d)?;
        Ok(std::time::Duration::try_from_secs_f64(secs).unwrap_or_default())
    }
}

impl Summary {
    /// Starts the clock.
    pub(crate) fn start() -> Summary {
        Summary {
            started: Some(Instant::now()),
            ..Summary::default()
        }
    }

    /// Counts one result.
    pub(crate) fn add(&mut self, r: PageResult) {
        self.redirected += r.hops;
        match r.outcome {
            Outcome::Written => self.written += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Redirected(_) => {}
            Outcome::Skipped(why) => self.skipped.push((r.url, why)),
            Outcome::Refused(why) => self.refused.push((r.url, why)),
            Outcome::Failed(why) => {
                if why.is_unreachable() {
                    self.unreachable += 1;
                }
                self.failed.push((r.url, why.chain()))
            }
        }
    }

    /// Folds another summary in (for multi-step runs).
    pub(crate) fn merge(&mut self, other: Summary) {
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.redirected += other.redirected;
        self.skipped.extend(other.skipped);
        self.unmatched.extend(other.unmatched);
        self.refused.extend(other.refused);
        self.failed.extend(other.failed);
        self.unreachable += other.unreachable;
        self.hit_page_limit |= other.hit_page_limit;
    }

    /// Stops the clock.
    pub(crate) fn finish(&mut self) {
        if let Some(s) = self.started {
            self.elapsed = s.elapsed();
        }
    }

    /// Pages processed.
    /// Every URL once, whatever happened to it: the parts of the summary
    /// line add up to this.
    pub(crate) fn pages(&self) -> usize {
        self.written
            + self.unchanged
            + self.deleted
            + self.redirected
            + self.skipped.len()
            + self.refused.len()
            + self.failed.len()
    }

    /// True when any page failed (exit code 1).
    pub(crate) fn has_failures(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The human summary.
    pub(crate) fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.pages() as f64 / secs
        } else {
            0.0
        };
        let mut s = format!(
            "{} pages in {:.2}s ({:.0} pages/s): {} written, {} unchanged, {} deleted, {} redirects, {} refused, {} failed",
            self.pages(),
            secs,
            rate,
            self.written,
            self.unchanged,
            self.deleted,
            self.redirected,
            self.refused.len(),
            self.failed.len()
        );
        if !self.skipped.is_empty() {
            s.push_str(&format!(", {} skipped", self.skipped.len()));
        }
        for (target, why) in &self.unmatched {
            s.push_str(&format!("\n  {target} matched nothing: {why}"));
        }
        if self.hit_page_limit {
            s.push_str("\n  note: crawl.max-pages was reached; some links were not followed");
        }
        for (url, why) in &self.refused {
            s.push_str(&format!("\n  refused {url}: {why}"));
        }
        for (url, why) in &self.failed {
            s.push_str(&format!("\n  failed  {url}: {why}"));
        }
        for (url, why) in self.skipped.iter().take(20) {
            s.push_str(&format!("\n  skipped {url}: {why}"));
        }
        if self.skipped.len() > 20 {
            s.push_str(&format!(
                "\n  ... and {} more skipped",
                self.skipped.len() - 20
            ));
        }
        s
    }
}
