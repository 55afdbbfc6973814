//! `[[revalidate]]`: a clock for pages no event names (a "latest from
//! elsewhere" box, a date-relative listing). Each rule re-checks its baked
//! pages once per `every`, spread evenly over the interval so there is no
//! thundering re-check at :00, through the scheduler like any event: a
//! conditional request, and a 304 costs no write. Events stay the primary
//! mechanism; this is the safety net.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
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

/// When each page of one cycle is re-checked. Pages that share an
/// interval are spread evenly over it (page `i` of `n` first at
/// `i × interval / n`, then once per interval), so the rate is even and
/// there is no thundering re-check at :00; the cycle ends at `every`.
pub(crate) struct Plan {
    /// (due, page) soonest first.
    due: BinaryHeap<Reverse<(Duration, usize)>>,
    intervals: Vec<Duration>,
    every: Duration,
}

impl Plan {
    /// A plan for pages with these intervals (each at most `every`).
    pub(crate) fn new(intervals: Vec<Duration>, every: Duration) -> Plan {
        let mut groups: HashMap<Duration, Vec<usize>> = HashMap::new();
        for (page, interval) in intervals.iter().enumerate() {
            groups.entry(*interval).or_default().push(page);
        }
        let mut due = BinaryHeap::with_capacity(intervals.len());
        for (interval, pages) in groups {
            let n = pages.len() as u32;
            for (i, page) in pages.into_iter().enumerate() {
                due.push(Reverse((interval * i as u32 / n, page)));
            }
        }
        Plan {
            due,
            intervals,
            every,
        }
    }

    /// The pages due `elapsed` into the cycle (each re-planned one
    /// interval later, within the cycle).
    pub(crate) fn take_due(&mut self, elapsed: Duration) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(Reverse((at, page))) = self.due.peek().copied() {
            if at > elapsed {
                break;
            }
            self.due.pop();
            out.push(page);
            let next = at + self.intervals[page];
            if next < self.every {
                self.due.push(Reverse((next, page)));
            }
        }
        out
    }

    /// When the next page is due, from the cycle's start.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }
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
        // The pages of this cycle: known now and matching (a page baked
        // later joins the next cycle).
        let pages: Vec<(String, Option<u32>)> = match index.revalidation_list().await {
            Ok(pages) => pages
                .into_iter()
                .filter(|(u, _)| rule.glob.is_match(u.split('?').next().unwrap_or(u)))
                .collect(),
            Err(e) => {
                tracing::warn!(glob = %rule.pattern, error = %e, "revalidate: the index could not list pages; trying again next interval");
                Vec::new()
            }
        };
        let intervals = pages
            .iter()
            .map(|(_, max_age)| match max_age {
                Some(s) if rule.honour_cache_control => {
                    Duration::from_secs(u64::from(*s).max(1)).min(rule.every)
                }
                _ => rule.every,
            })
            .collect();
        let mut plan = Plan::new(intervals, rule.every);
        let start = Instant::now();
        loop {
            let due = plan.take_due(start.elapsed());
            if !due.is_empty() {
                let batch: Vec<Target> = due
                    .into_iter()
                    .map(|i| Target::Url(pages[i].0.clone()))
                    .collect();
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
            }
            let Some(next) = plan.next_at() else { break };
            // Not sooner than MIN_STEP: pages due closer together share a request.
            let next = (start + next).max(Instant::now() + MIN_STEP);
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

    /// Pages per whole second of a plan run to its end.
    fn per_second(mut plan: Plan, seconds: usize) -> Vec<usize> {
        let mut counts = vec![0; seconds];
        let mut taken = 0;
        for ms in 0..(seconds as u64 * 1000) {
            let due = plan.take_due(Duration::from_millis(ms)).len();
            counts[(ms / 1000) as usize] += due;
            taken += due;
        }
        assert!(plan.next_at().is_none(), "the plan ends with its cycle");
        counts.push(taken);
        counts
    }

    #[test]
    fn ten_thousand_pages_on_a_minute_are_rechecked_at_an_even_rate() {
        let every = Duration::from_secs(60);
        let counts = per_second(Plan::new(vec![every; 10_000], every), 60);
        let total = counts[60];
        assert_eq!(total, 10_000, "each page once in the interval");
        for (s, n) in counts[..60].iter().enumerate() {
            assert!(
                (166..=167).contains(n),
                "second {s}: {n} pages (an even rate is 166.7/s)"
            );
        }
    }

    #[test]
    fn a_shorter_cache_lifetime_rechecks_its_pages_more_often_still_spread() {
        let every = Duration::from_secs(60);
        // 100 pages whose origin said s-maxage=10, 600 on the rule's minute.
        let mut intervals = vec![Duration::from_secs(10); 100];
        intervals.extend(vec![every; 600]);
        let mut plan = Plan::new(intervals, every);
        let mut per_page = vec![0usize; 700];
        for ms in 0..60_000u64 {
            for p in plan.take_due(Duration::from_millis(ms)) {
                per_page[p] += 1;
            }
        }
        assert!(
            per_page[..100].iter().all(|&n| n == 6),
            "every 10 s: 6 times a minute"
        );
        assert!(per_page[100..].iter().all(|&n| n == 1), "once a minute");
        // 10/s from the short group plus 10/s from the long one.
        let counts = per_second(
            Plan::new(
                {
                    let mut v = vec![Duration::from_secs(10); 100];
                    v.extend(vec![every; 600]);
                    v
                },
                every,
            ),
            60,
        );
        for (s, n) in counts[..60].iter().enumerate() {
            assert_eq!(*n, 20, "second {s}");
        }
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
                glob: crate::glob::path_matcher("/p/**").expect("glob"),
                every,
                honour_cache_control: false,
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
