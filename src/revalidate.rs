//! `[[revalidate]]`: a clock for pages no event names (a "latest from
//! elsewhere" box, a date-relative listing). Each rule re-checks its baked
//! pages once per `every`, spread evenly over the interval so there is no
//! thundering re-check at :00, through the scheduler like any event: a
//! conditional request, and a 304 costs no write. Events stay the primary
//! mechanism; this is the safety net.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RevalidateRule;
use crate::index::Index;
use crate::metrics::Metrics;
use crate::schedule::{Intake, Request, Running, Submitter};
use crate::targets::Target;

/// Shortest wait between two submissions of one rule: pages due closer
/// together than this go in one request.
const MIN_STEP: Duration = Duration::from_millis(20);

/// The clock, as an [`Intake`]: the scheduler does not know it from any
/// other source of events.
pub(crate) struct RevalidateIntake {
    /// The rules.
    pub(crate) rules: Vec<RevalidateRule>,
    /// Where the baked pages are listed.
    pub(crate) index: Index,
    /// `kiln_revalidations_total`.
    pub(crate) metrics: Arc<Metrics>,
}

impl Intake for RevalidateIntake {
    fn run(self: Box<Self>, submit: Submitter, shutdown: CancellationToken) -> Running {
        Box::pin(async move {
            let mut rules = tokio::task::JoinSet::new();
            for rule in self.rules {
                rules.spawn(clock(
                    rule,
                    self.index.clone(),
                    submit.clone(),
                    self.metrics.clone(),
                    shutdown.clone(),
                ));
            }
            while rules.join_next().await.is_some() {}
        })
    }
}

/// How many of `n` pages spread over `every` are due `elapsed` into the
/// cycle: page `i` is due at `i × every / n`, so the first at once and
/// the rate even.
pub(crate) fn due_by(n: usize, every: Duration, elapsed: Duration) -> usize {
    if n == 0 {
        return 0;
    }
    if elapsed >= every {
        return n;
    }
    let due = (elapsed.as_nanos() * n as u128 / every.as_nanos().max(1)) as usize + 1;
    due.min(n)
}

/// One rule's cycles until shutdown.
async fn clock(
    rule: RevalidateRule,
    index: Index,
    submit: Submitter,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        // The pages of this cycle: baked now and matching (a page baked
        // later joins the next cycle).
        let urls: Vec<String> = match index.live_urls().await {
            Ok(urls) => urls
                .into_iter()
                .filter(|u| rule.glob.is_match(u.split('?').next().unwrap_or(u)))
                .collect(),
            Err(e) => {
                tracing::warn!(glob = %rule.pattern, error = %e, "revalidate: the index could not list pages; trying again next interval");
                Vec::new()
            }
        };
        let start = Instant::now();
        let n = urls.len();
        let mut sent = 0;
        while sent < n {
            let due = due_by(n, rule.every, start.elapsed());
            if due > sent {
                let batch: Vec<Target> = urls[sent..due].iter().cloned().map(Target::Url).collect();
                metrics.revalidations.inc_by(batch.len() as u64);
                let accepted = submit
                    .submit(Request {
                        targets: batch,
                        reply: None,
                        allow_mass_delete: false,
                    })
                    .await;
                if accepted.is_none() {
                    return; // the scheduler has stopped
                }
                sent = due;
            }
            if sent == n {
                break;
            }
            // When the next page is due (and not sooner than MIN_STEP).
            let next = start + rule.every.mul_f64(sent as f64 / n as f64);
            let next = next.max(Instant::now() + MIN_STEP);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(start + rule.every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_pages_on_a_minute_are_rechecked_at_an_even_rate() {
        let (n, every) = (10_000, Duration::from_secs(60));
        assert_eq!(due_by(n, every, Duration::ZERO), 1, "the first at once");
        let mut last = 1;
        for s in 1..=60 {
            let due = due_by(n, every, Duration::from_secs(s));
            let in_second = due - last;
            assert!(
                (166..=167).contains(&in_second),
                "second {s}: {in_second} pages (an even rate is 166.7/s)"
            );
            last = due;
        }
        assert_eq!(last, n, "all of them within the interval");
    }

    #[test]
    fn a_few_pages_are_spread_not_bunched() {
        let every = Duration::from_secs(60);
        assert_eq!(due_by(0, every, Duration::from_secs(30)), 0);
        assert_eq!(due_by(1, every, Duration::from_secs(59)), 1);
        assert_eq!(due_by(3, every, Duration::from_secs(19)), 1);
        assert_eq!(due_by(3, every, Duration::from_secs(20)), 2);
        assert_eq!(due_by(3, every, Duration::from_secs(40)), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_submits_every_page_once_per_interval_at_an_even_rate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = Index::open(&dir.path().join("index.db")).expect("index");
        for i in 0..1_000 {
            index
                .record(crate::index::PageRecord::baked(
                    &format!("/p/{i}/"),
                    format!("p/{i}/index.html"),
                    String::new(),
                    "text/html".into(),
                    Some(200),
                    Vec::new(),
                ))
                .await;
        }
        index
            .record(crate::index::PageRecord::baked(
                "/other/",
                "other/index.html".into(),
                String::new(),
                "text/html".into(),
                Some(200),
                Vec::new(),
            ))
            .await;
        index.flush().await.expect("flush");
        let (submit, mut requests) = crate::schedule::channel(4096);
        let every = Duration::from_secs(10);
        let stop = CancellationToken::new();
        let intake = Box::new(RevalidateIntake {
            rules: vec![RevalidateRule {
                pattern: "/p/**".into(),
                glob: crate::config::path_matcher("/p/**").expect("glob"),
                every,
            }],
            index,
            metrics: Arc::new(Metrics::new()),
        });
        let running = tokio::spawn(intake.run(submit, stop.clone()));
        // Two intervals' worth of re-checks, timed by the paused clock.
        let start = Instant::now();
        let mut per_second = [0usize; 21];
        let mut seen = std::collections::HashMap::<String, usize>::new();
        let mut total = 0;
        while let Some((_, req)) = requests.recv().await {
            let second = (start.elapsed().as_secs() as usize).min(20);
            for t in req.targets {
                per_second[second] += 1;
                *seen.entry(t.to_string()).or_default() += 1;
                total += 1;
            }
            if total >= 2_000 {
                break;
            }
        }
        assert!(
            start.elapsed() < 2 * every + Duration::from_millis(100),
            "two intervals took {:?}",
            start.elapsed()
        );
        stop.cancel();
        running.await.expect("intake stops");
        assert!(!seen.contains_key("/other/"), "only the rule's pages");
        assert_eq!(seen.len(), 1_000, "every page re-checked");
        assert!(seen.values().all(|&n| n == 2), "once per interval");
        for (s, n) in per_second[..20].iter().enumerate() {
            assert!(
                (99..=101).contains(n),
                "second {s}: {n} re-checks (even rate is 100/s)"
            );
        }
    }
}
