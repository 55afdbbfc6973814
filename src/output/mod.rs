//! Outputs beside the local web root: the bucket mirror ([`publish`]) and
//! the CDN purge hooks ([`purge`]), fed from the outbox (guarantee 9,
//! docs/architecture.md).
//!
//! A page change is queued in the index's `outbox` table in the same
//! transaction as the page record ([`crate::index::PageRecord::outbox`]),
//! so no change is recorded without its outputs, whatever is killed when.
//! [`Outbox::deliver_due`] drains it in order for each change: first the
//! page goes to every bucket, then — only once it is there — every purge
//! hook is told (the URL, and the origin's tags the page had and has, so a
//! removed page's tags are purged too). Each step is recorded as done
//! before the next starts, so a kill repeats at most the step in flight,
//! and a purge succeeds once per change per hook, not once per attempt.
//! Failures wait with the shared [`crate::retry::RetryPolicy`] until the
//! give-up age; nothing is kept only in memory.

pub(crate) mod publish;
pub(crate) mod purge;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::PurgeHook;
use crate::index::{Index, IndexError, OutboxEntry};
use crate::retry::RetryPolicy;
use crate::write::WebRoot;

/// How long the daemon lets changes gather before delivering them.
const GATHER: Duration = Duration::from_millis(100);

/// Entries taken from the outbox at a time.
const BATCH: usize = 500;

/// Bit of `OutboxEntry::stage` set once the page is in every bucket; bit
/// `1 + i` once purge hook `i` accepted it.
const PUBLISHED: i64 = 1;

/// Counts for `/v1/status` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct OutputStats {
    /// Objects uploaded.
    pub(crate) uploaded: AtomicU64,
    /// Objects deleted.
    pub(crate) deleted: AtomicU64,
    /// Bucket attempts that failed (each is retried).
    pub(crate) publish_failed: AtomicU64,
    /// Purge requests accepted.
    pub(crate) purges_sent: AtomicU64,
    /// Purge attempts that failed (each is retried).
    pub(crate) purge_failed: AtomicU64,
    /// Changes given up at the give-up age.
    pub(crate) given_up: AtomicU64,
    /// Pool mode: changes dropped because a bake of the page that started
    /// later was published already.
    pub(crate) superseded: AtomicU64,
    /// Pool mode: changes whose content the pool had published already.
    pub(crate) already_published: AtomicU64,
    /// Pool mode: changes announced to the mirrors.
    pub(crate) announced: AtomicU64,
}

impl OutputStats {
    /// Adds what one bucket step did.
    fn count(&self, done: publish::Published) {
        self.uploaded.fetch_add(done.uploaded, Ordering::Relaxed);
        self.deleted.fetch_add(done.deleted, Ordering::Relaxed);
    }

    /// For `/v1/status`.
    pub(crate) fn to_json(&self, depth: usize) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "outbox": depth,
            "uploaded": n(&self.uploaded),
            "deleted": n(&self.deleted),
            "publish_failed": n(&self.publish_failed),
            "purges_sent": n(&self.purges_sent),
            "purge_failed": n(&self.purge_failed),
            "given_up": n(&self.given_up),
            "superseded": n(&self.superseded),
            "already_published": n(&self.already_published),
            "announced": n(&self.announced),
        })
    }
}

/// The outputs of one output directory and the outbox that feeds them.
#[derive(Clone)]
pub(crate) struct Outbox {
    index: Index,
    root: WebRoot,
    buckets: Vec<publish::S3>,
    hooks: Vec<PurgeHook>,
    policy: RetryPolicy,
    client: reqwest::Client,
    /// Pool mode: the shared index decides what is published, and changes
    /// are announced to the mirrors ([`crate::pool`]).
    shared: Option<crate::pool::SharedIndex>,
    /// Pages published at once (the smallest `[[publish]] concurrency`).
    concurrency: usize,
    /// Counts.
    pub(crate) stats: Arc<OutputStats>,
}

/// What the bucket step did for one page.
enum Step {
    /// In every bucket (and, in a pool, announced): purge next.
    Published,
    /// Nothing to publish or purge (the pool has it, or has newer).
    Nothing,
    /// Another worker is publishing the page: ask again shortly.
    Busy,
}

/// One outbox entry on its way to the bucket.
struct Change {
    seq: i64,
    ticket: i64,
    attempts: i64,
}

/// How soon a page another worker is publishing is asked about again.
const BUSY_RETRY: Duration = Duration::from_millis(200);

/// What one pass delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Changes fully delivered (and removed from the outbox).
    pub(crate) delivered: usize,
    /// Changes whose step failed and wait for a retry.
    pub(crate) waiting: usize,
}

impl Outbox {
    /// The outputs of `cfg` over `root` (the live root) and `index`; `None`
    /// when there are none. Fails when a bucket cannot be used.
    pub(crate) fn new(
        cfg: &crate::config::Config,
        index: Index,
        root: WebRoot,
        policy: RetryPolicy,
        shared: Option<crate::pool::SharedIndex>,
    ) -> Result<Option<Outbox>, publish::PublishError> {
        if cfg.publish.is_empty() && cfg.purge.is_empty() {
            return Ok(None);
        }
        let buckets = cfg
            .publish
            .iter()
            .map(publish::S3::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Outbox {
            index,
            root,
            buckets,
            hooks: cfg.purge.clone(),
            policy,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            shared,
            concurrency: cfg
                .publish
                .iter()
                .map(|p| p.concurrency)
                .min()
                .unwrap_or(1)
                .max(1),
            stats: Arc::default(),
        }))
    }

    /// The stage value of an entry delivered everywhere.
    fn complete(&self) -> i64 {
        (0..self.hooks.len()).fold(PUBLISHED, |m, i| m | 1 << (1 + i))
    }

    /// Delivers what is due now, one step per entry per pass: entries not
    /// yet in every bucket are uploaded (or deleted there); entries that
    /// are go to each purge hook that has not taken them. Returns what
    /// happened; `Err` only when the index cannot be read.
    pub(crate) async fn deliver_due(&self) -> Result<Delivery, IndexError> {
        let now = crate::index::now_ms();
        let due = self.index.outbox_due(now, BATCH).await?;
        let mut result = Delivery::default();
        if due.is_empty() {
            return Ok(result);
        }
        let (expired, due): (Vec<OutboxEntry>, Vec<OutboxEntry>) = due.into_iter().partition(|e| {
            !self
                .policy
                .keeps_trying(Duration::from_millis((now - e.created_at_ms).max(0) as u64))
        });
        if !expired.is_empty() {
            tracing::error!(changes = expired.len(), first = %expired[0].url, "outputs gave up on page changes at the give-up age; `kiln publish` reconciles the bucket");
            self.stats
                .given_up
                .fetch_add(expired.len() as u64, Ordering::Relaxed);
            self.index
                .outbox_done(expired.iter().map(|e| e.seq).collect())
                .await?;
        }
        let mut stage: BTreeMap<i64, i64> = due.iter().map(|e| (e.seq, e.stage)).collect();
        let mut failed: BTreeMap<i64, (i64, String)> = BTreeMap::new();

        // 1. The bucket, each page once (its newest content), every change
        //    of that page in this batch at once; up to the buckets'
        //    `concurrency` pages at a time (one page's steps stay in order).
        // Owned: a borrowed key in the closure below trips the compiler's
        // higher-ranked lifetime check when the worker is spawned.
        let mut to_publish: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for e in due.iter().filter(|e| e.stage & PUBLISHED == 0) {
            to_publish.entry(e.url.clone()).or_default().push(Change {
                seq: e.seq,
                ticket: e.ticket,
                attempts: e.attempts,
            });
        }
        let mut published = Vec::new();
        let mut settled = Vec::new();
        let mut busy = Vec::new();
        let steps: Vec<(Vec<Change>, Result<Step, String>)> = {
            use futures_util::StreamExt as _;
            futures_util::stream::iter(to_publish)
                .map(|(url, entries)| async move {
                    let step = match &self.shared {
                        None => self.publish(&url).await.map(|()| Step::Published),
                        Some(shared) => {
                            let newest = entries.iter().map(|e| e.ticket).max().unwrap_or(0);
                            self.publish_in_pool(shared, &url, newest).await
                        }
                    };
                    (entries, step)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await
        };
        for (entries, step) in steps {
            let seqs = entries.iter().map(|e| e.seq);
            match step {
                Ok(Step::Published) => published.extend(seqs),
                Ok(Step::Nothing) => settled.extend(seqs),
                Ok(Step::Busy) => busy.extend(seqs),
                Err(why) => {
                    self.stats.publish_failed.fetch_add(1, Ordering::Relaxed);
                    for e in entries {
                        failed.insert(e.seq, (e.attempts, why.clone()));
                    }
                }
            }
        }
        for seq in &published {
            if let Some(s) = stage.get_mut(seq) {
                *s |= PUBLISHED;
            }
        }
        let complete = self.complete();
        for seq in &settled {
            if let Some(s) = stage.get_mut(seq) {
                *s = complete;
            }
        }
        if !busy.is_empty() {
            self.index
                .outbox_retry(busy.clone(), now + BUSY_RETRY.as_millis() as i64)
                .await?;
        }

        // 2. Each purge hook, for what is in the bucket and not yet purged
        //    by that hook: one request with their URLs and tags.
        for (i, hook) in self.hooks.iter().enumerate() {
            let bit = 1 << (1 + i);
            let ready: Vec<&OutboxEntry> = due
                .iter()
                .filter(|e| !failed.contains_key(&e.seq))
                .filter(|e| stage[&e.seq] & PUBLISHED != 0 && stage[&e.seq] & bit == 0)
                .collect();
            if ready.is_empty() {
                continue;
            }
            let urls: BTreeSet<String> = ready.iter().map(|e| e.url.clone()).collect();
            let tags: BTreeSet<String> = ready.iter().flat_map(|e| e.tags.clone()).collect();
            match purge::send(&self.client, hook, &urls, &tags).await {
                Ok(()) => {
                    self.stats.purges_sent.fetch_add(1, Ordering::Relaxed);
                    for e in ready {
                        if let Some(s) = stage.get_mut(&e.seq) {
                            *s |= bit;
                        }
                    }
                }
                Err(why) => {
                    self.stats.purge_failed.fetch_add(1, Ordering::Relaxed);
                    for e in ready {
                        failed.insert(e.seq, (e.attempts, why.clone()));
                    }
                }
            }
        }

        // 3. Record: delivered entries go, progress is kept, failures wait.
        let mut done = Vec::new();
        let mut advanced: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for e in due.iter().filter(|e| !busy.contains(&e.seq)) {
            let now_stage = stage[&e.seq];
            if now_stage == complete {
                done.push(e.seq);
            } else if now_stage != e.stage {
                advanced.entry(now_stage).or_default().push(e.seq);
            }
        }
        result.delivered = done.len();
        self.index.outbox_done(done).await?;
        for (s, seqs) in advanced {
            self.index.outbox_set_stage(seqs, s).await?;
        }
        let mut by_delay: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (seq, (attempts, why)) in &failed {
            let delay = self.policy.delay(
                u32::try_from(*attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
                None,
            );
            tracing::warn!(seq, error = %why, retry_in = ?delay, "an output failed; the local page is unaffected, will retry");
            by_delay
                .entry(now + delay.as_millis() as i64)
                .or_default()
                .push(*seq);
        }
        result.waiting = failed.len();
        for (at, seqs) in by_delay {
            self.index.outbox_retry(seqs, at).await?;
        }
        Ok(result)
    }

    /// Pool mode: publishes this worker's copy of `url` unless the pool
    /// has it or has a newer one, then announces it to the mirrors. Only a
    /// page that really changed in the bucket goes on to the purge hooks,
    /// so the pool purges it once. The copy published is the page as this
    /// worker has it now, so it goes with the ticket of the bake that made
    /// it (not of the outbox entry, which may be older: publishing newer
    /// content under an older ticket would let another worker's older
    /// content win afterwards).
    async fn publish_in_pool(
        &self,
        shared: &crate::pool::SharedIndex,
        url: &str,
        newest_entry: i64,
    ) -> Result<Step, String> {
        use crate::pool::Claim;
        let record = self.index.page(url).await.map_err(|e| e.to_string())?;
        let ticket = record
            .as_ref()
            .map(|r| r.ticket)
            .filter(|t| *t > 0)
            .unwrap_or(newest_entry);
        let page = record.filter(|p| p.status == crate::index::Status::Ok);
        let now = page.as_ref().and_then(|p| {
            Some(publish::PageFile {
                file: p.file.clone()?,
                hash: p.hash.clone()?,
                content_type: p.content_type.clone(),
            })
        });
        let tags = page.and_then(|p| p.tags).unwrap_or_default();
        let hash = now.as_ref().map(|p| p.hash.as_str());
        let redis = |e: redis::RedisError| format!("the pool's shared index: {e}");
        match shared
            .claim(url, ticket, hash, &tags)
            .await
            .map_err(redis)?
        {
            Claim::Busy => return Ok(Step::Busy),
            Claim::Stale => {
                self.stats.superseded.fetch_add(1, Ordering::Relaxed);
                return Ok(Step::Nothing);
            }
            Claim::Same => {
                self.stats.already_published.fetch_add(1, Ordering::Relaxed);
                return Ok(Step::Nothing);
            }
            Claim::Mine => {}
            Claim::Go => {
                let old = shared.published_file(url).await.map_err(redis)?;
                for s3 in &self.buckets {
                    let done = match publish::publish_decided(
                        s3,
                        &self.index,
                        &self.root,
                        url,
                        now.as_ref(),
                        old.as_deref(),
                    )
                    .await
                    {
                        Ok(done) => done,
                        // Still ours (the lock): the next pass publishes
                        // the new record.
                        Err(publish::PublishError::MovedOn(_)) => return Ok(Step::Busy),
                        Err(e) => return Err(e.to_string()),
                    };
                    self.stats.count(done);
                }
                let file = now.as_ref().map(|p| p.file.as_str());
                if !shared
                    .commit(url, ticket, hash, file, &tags)
                    .await
                    .map_err(redis)?
                {
                    // Our lock expired during a slow upload and a newer
                    // bake was published meanwhile: ours may have landed
                    // over it, so the pool bakes the page once more.
                    tracing::warn!(
                        url,
                        "a newer bake of this page was published while this worker's upload was slow; the page is baked again so the bucket ends on the newest copy"
                    );
                    shared.rebake(url).await.map_err(redis)?;
                    return Ok(Step::Nothing);
                }
                // The mirrors copy what changed: the new file and the old
                // one (gone, or renamed).
                let mut files: Vec<String> = old.into_iter().collect();
                files.extend(file.map(str::to_owned));
                files.dedup();
                shared.announce(url, &files).await.map_err(redis)?;
                self.stats.announced.fetch_add(1, Ordering::Relaxed);
                return Ok(Step::Published);
            }
        }
        // Published before a restart, not yet announced (or announced and
        // the stage not recorded: a mirror copies it twice, harmlessly).
        let files: Vec<String> = now.iter().map(|p| p.file.clone()).collect();
        let files = if files.is_empty() {
            shared
                .published_file(url)
                .await
                .map_err(redis)?
                .into_iter()
                .collect()
        } else {
            files
        };
        shared.announce(url, &files).await.map_err(redis)?;
        self.stats.announced.fetch_add(1, Ordering::Relaxed);
        Ok(Step::Published)
    }

    /// Mirrors one page to every bucket.
    async fn publish(&self, url: &str) -> Result<(), String> {
        for s3 in &self.buckets {
            let done = publish::publish_page(s3, &self.index, &self.root, url, true)
                .await
                .map_err(|e| e.to_string())?;
            self.stats.count(done);
        }
        Ok(())
    }

    /// Delivers until nothing is due, or `limit` has passed (a one-shot
    /// run's last step); returns the entries still waiting.
    pub(crate) async fn deliver_for(&self, limit: Duration) -> Result<usize, IndexError> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let pass = self.deliver_due().await?;
            let depth = self.index.outbox_depth().await?;
            if depth == 0 || tokio::time::Instant::now() >= until {
                return Ok(depth);
            }
            if pass.delivered == 0 {
                // Only waiting entries left: sleep until the next is due.
                let next = self.index.outbox_next_due().await?.unwrap_or(0);
                let wait = Duration::from_millis((next - crate::index::now_ms()).max(10) as u64);
                tokio::time::sleep_until(until.min(tokio::time::Instant::now() + wait)).await;
            }
        }
    }
}

/// Wakes the outbox worker when the scheduler changed a page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Waker(Arc<Notify>);

impl Waker {
    /// A page changed: deliver what is due.
    pub(crate) fn wake(&self) {
        self.0.notify_one();
    }
}

/// The daemon's outbox worker: delivers what is due whenever a page
/// changes, and when a waiting entry's retry comes due; at start it
/// delivers what a previous run left.
pub(crate) async fn worker(outbox: Outbox, waker: Waker, shutdown: CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let pass = match outbox.deliver_due().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "the outbox cannot be read; outputs wait");
                Delivery::default()
            }
        };
        if pass.delivered > 0 || pass.waiting > 0 {
            // More may be due at once (a batch limit, a step to take next).
            if outbox
                .index
                .outbox_due(crate::index::now_ms(), 1)
                .await
                .is_ok_and(|d| !d.is_empty())
            {
                continue;
            }
        }
        let next = outbox.index.outbox_next_due().await.ok().flatten();
        let sleep =
            next.map(|at| Duration::from_millis((at - crate::index::now_ms()).max(0) as u64));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = waker.0.notified() => {
                // Let the rest of a batch of changes land: one purge
                // request for them, not one per page.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(GATHER) => {}
                }
            }
            _ = sleep_for(sleep) => {}
        }
    }
}

async fn sleep_for(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
