//! One retry policy for everything kiln retries: a page the origin failed,
//! an upload the bucket refused, a purge the CDN did not take. Exponential
//! backoff from `base`, capped at `cap`, with jitter so many hosts that
//! failed together do not retry in lockstep, never sooner than a
//! `Retry-After` asked, and given up once the work is `give_up_after` old.

use std::time::Duration;

/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How failed work is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Delay after the first failure.
    pub(crate) base: Duration,
    /// Longest delay between two attempts.
    pub(crate) cap: Duration,
    /// Work this old (since it was first asked for) is given up.
    pub(crate) give_up_after: Duration,
}

impl RetryPolicy {
    /// The delay after `failures` failed attempts (1 = the first failure):
    /// `base · 2^(failures-1)` capped, then jittered into its upper half
    /// (`[d/2, d]`: never much sooner than the backoff, never in lockstep),
    /// and at least what the other side asked for with `Retry-After` (up
    /// to [`MAX_RETRY_AFTER`]: a hostile header cannot park work for a day).
    pub(crate) fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let backoff = self.base.saturating_mul(1 << exp).min(self.cap);
        let half = backoff / 2;
        let jitter = half.mul_f64(unit_random());
        let jittered = half + jitter;
        match retry_after {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }

    /// Whether work first asked for `age` ago should still be retried.
    pub(crate) fn keeps_trying(&self, age: Duration) -> bool {
        age <= self.give_up_after
    }
}

/// A number in [0, 1) that differs between calls, threads and processes
/// (std's per-process random hash keys, stirred by a counter): enough to
/// spread retries, not meant for anything secret.
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEYS: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bits = KEYS.with(|k| {
        let mut h = k.build_hasher();
        h.write_u64(n);
        h.finish()
    });
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(30),
        give_up_after: Duration::from_secs(3600),
    };

    #[test]
    fn backoff_doubles_within_the_cap_and_jitters_in_its_upper_half() {
        for failures in 1..30 {
            let full = Duration::from_millis(200)
                .saturating_mul(1 << (failures - 1).min(20))
                .min(Duration::from_secs(30));
            for _ in 0..50 {
                let d = POLICY.delay(failures, None);
                assert!(d >= full / 2 && d <= full, "{failures}: {d:?} vs {full:?}");
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_an_hour() {
        assert!(POLICY.delay(1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        assert_eq!(
            POLICY.delay(1, Some(Duration::from_secs(90))),
            Duration::from_secs(90),
            "longer than the cap when the other side asks"
        );
        assert_eq!(
            POLICY.delay(1, Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn hosts_do_not_retry_in_lockstep() {
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| POLICY.delay(4, None)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn work_is_given_up_at_its_age() {
        assert!(POLICY.keeps_trying(Duration::from_secs(3600)));
        assert!(!POLICY.keeps_trying(Duration::from_secs(3601)));
    }
}
