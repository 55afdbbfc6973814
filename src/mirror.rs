//! The mirror role (`kiln mirror`): a web host of a pool that copies the
//! pool's output from the bucket into its own web root, never asking the
//! origin (docs/distributed.md).
//!
//! The pool's workers announce each change they publish on the `published`
//! stream (the object files it touched). A mirror reads that stream in its
//! own consumer group and, for each announced file, fetches the bucket's
//! current object and writes it with the same atomic, durable, symlink-safe
//! writes as a bake (or removes the file when the bucket has none).
//! Copying the *current* object, never the announcement's idea of it,
//! makes the order of announcements irrelevant: the last copy of a file is
//! made after its last announcement, so it is at least that new.
//!
//! **Bootstrap.** A new mirror (or one whose group is gone, or that fell
//! so far behind that the stream was trimmed past it) first notes the
//! stream's position, then makes its root equal to the bucket's listing
//! (downloading only what differs by ETag, removing what the bucket does
//! not have), then follows the stream from the noted position. A change
//! published during the copy is in the stream after that position, so it
//! is applied again afterwards: nothing is missed, no origin is asked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamId, StreamReadReply};
use tokio_util::sync::CancellationToken;

use crate::config::{Encoding, Mirror};
use crate::output::publish::S3;
use crate::write::WebRoot;

/// Why the mirror cannot run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MirrorError {
    /// The bucket cannot be used.
    #[error(transparent)]
    Bucket(#[from] crate::output::publish::PublishError),
    /// The web root cannot be opened or written.
    #[error(transparent)]
    Write(#[from] crate::write::WriteError),
    /// Another kiln writes this output.
    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),
    /// The mass-delete guard kept the web root's files.
    #[error(
        "the bucket lacks {count} of the {known} files in the web root ({examples}), more than the limit of {limit} (`safety.max-delete-pages` / `safety.max-delete-percent`), so none was removed; a wrong bucket, prefix or endpoint, or an empty bucket, looks like this. If the pages really are gone, run `kiln mirror --allow-mass-delete`"
    )]
    MassDelete {
        /// Files the bucket lacks.
        count: usize,
        /// Files in the root.
        known: usize,
        /// The limit that applied.
        limit: usize,
        /// A few of them.
        examples: String,
    },
}

/// Why a session of following the stream ended.
enum SessionEnd {
    /// Worth trying again (Redis, the bucket, a write).
    Retry(String),
    /// Not until the operator acts (the mass-delete guard).
    Stop(MirrorError),
}

impl From<String> for SessionEnd {
    fn from(e: String) -> SessionEnd {
        SessionEnd::Retry(e)
    }
}

/// What the mirror did, for its log, `/metrics` and the tests.
#[derive(Debug, Default)]
pub(crate) struct MirrorStats {
    /// Files written (changed content).
    pub(crate) written: AtomicU64,
    /// Files removed.
    pub(crate) removed: AtomicU64,
    /// Stream entries applied and acknowledged.
    pub(crate) applied: AtomicU64,
    /// Bootstraps from the bucket's listing.
    pub(crate) bootstraps: AtomicU64,
}

/// A file of the bucket that cannot be written here (an unsafe name).
fn is_safe_file(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('/')
        && !file.starts_with("_kiln/")
        && file.len() <= 4096
        && file.split('/').all(|seg| {
            !seg.is_empty() && !seg.starts_with('.') && !seg.chars().any(char::is_control)
        })
}

/// The mirror of one output.
pub(crate) struct MirrorRun {
    cfg: Mirror,
    s3: S3,
    root: WebRoot,
    /// Beside the state: "this group was bootstrapped" (a kill during a
    /// bootstrap leaves it unwritten, so the next start copies again).
    marker: PathBuf,
    consumer: String,
    concurrency: usize,
    /// The mass-delete limit on what a bootstrap removes; `None` with
    /// `--allow-mass-delete`.
    delete_limit: Option<crate::config::DeleteLimit>,
    /// Counts.
    pub(crate) stats: Arc<MirrorStats>,
}

impl MirrorRun {
    /// A mirror of `cfg`'s bucket into `root`; `state` is the state path
    /// (the marker lives beside it).
    pub(crate) fn new(cfg: Mirror, root: WebRoot, state: &Path) -> Result<MirrorRun, MirrorError> {
        let s3 = S3::new(&cfg.bucket)?;
        let marker = state.with_file_name(format!(
            "mirror-{}",
            cfg.group
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        ));
        Ok(MirrorRun {
            concurrency: cfg.bucket.concurrency,
            consumer: crate::config::host_name(),
            cfg,
            s3,
            root,
            marker,
            delete_limit: None,
            stats: Arc::default(),
        })
    }

    /// Holds a bootstrap's removals over `limit` (`None`: no guard).
    pub(crate) fn with_delete_limit(
        mut self,
        limit: Option<crate::config::DeleteLimit>,
    ) -> MirrorRun {
        self.delete_limit = limit;
        self
    }

    /// Follows the stream until `shutdown`, reconnecting with backoff;
    /// `ready` is called once after the first bootstrap or catch-up. Ends
    /// with the error when the mass-delete guard holds a bootstrap.
    pub(crate) async fn run(
        &self,
        shutdown: CancellationToken,
        ready: impl FnOnce(),
    ) -> Result<(), MirrorError> {
        let mut ready = Some(ready);
        let mut delay = Duration::from_millis(200);
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = self.session(&shutdown, &mut ready) => r,
            };
            if shutdown.is_cancelled() {
                return Ok(());
            }
            match result {
                Ok(()) => return Ok(()),
                Err(SessionEnd::Stop(e)) => return Err(e),
                Err(SessionEnd::Retry(e)) => {
                    tracing::warn!(error = %e, retry_in = ?delay, stream = %self.cfg.published, "mirror stopped following (Redis, the bucket or its web root, as the error says); the web root keeps serving what it has, and the mirror tries again");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        ready: &mut Option<impl FnOnce()>,
    ) -> Result<(), SessionEnd> {
        let client = redis::Client::open(self.cfg.redis.as_str()).map_err(|e| e.to_string())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        let stream = &self.cfg.published;
        let group = &self.cfg.group;
        let has_group = crate::intake::redis::has_group(&mut conn, stream, group)
            .await
            .map_err(|e| e.to_string())?;
        let lost = has_group
            && crate::intake::redis::trimmed_past(&mut conn, stream, group)
                .await
                .map_err(|e| e.to_string())?;
        if !has_group || !self.marker.exists() || lost {
            if lost {
                tracing::warn!(
                    stream,
                    group,
                    "the published stream was trimmed past this mirror: copying the bucket again"
                );
            }
            // The position first, the copy second: whatever is published
            // during the copy is read again from the stream afterwards.
            let last: String = crate::intake::redis::last_entry_id(&mut conn, stream)
                .await
                .map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(&self.marker);
            if has_group {
                let _: () = redis::cmd("XGROUP")
                    .arg("SETID")
                    .arg(stream)
                    .arg(group)
                    .arg(&last)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                let created: redis::RedisResult<()> =
                    conn.xgroup_create_mkstream(stream, group, &last).await;
                if let Err(e) = created {
                    if e.code() != Some("BUSYGROUP") {
                        return Err(e.to_string().into());
                    }
                }
            }
            let started = std::time::Instant::now();
            let (copied, removed) = self.bootstrap().await.map_err(|e| match e {
                MirrorError::MassDelete { .. } => SessionEnd::Stop(e),
                e => SessionEnd::Retry(e.to_string()),
            })?;
            std::fs::write(&self.marker, format!("{last}\n")).map_err(|e| {
                format!(
                    "cannot record the bootstrap in {}: {e}",
                    self.marker.display()
                )
            })?;
            self.stats.bootstraps.fetch_add(1, Ordering::Relaxed);
            tracing::info!(copied, removed, from = %last, took = ?started.elapsed(), "mirror bootstrapped from the bucket");
        }
        if let Some(ready) = ready.take() {
            ready();
        }
        let mut position = "0".to_string();
        loop {
            let read: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(200)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(stream)
                .arg(&position)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let entries: Vec<StreamId> = read
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default();
            if position != ">" && entries.is_empty() {
                // This consumer's own unacknowledged entries are applied.
                position = ">".to_string();
                continue;
            }
            if position != ">" {
                position = entries.last().map(|e| e.id.clone()).unwrap_or_default();
            }
            if entries.is_empty() {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                continue;
            }
            let mut files = BTreeSet::new();
            for e in &entries {
                let text: String = e.get("keys").unwrap_or_default();
                files.extend(text.lines().map(str::to_owned));
            }
            self.sync_files(files.into_iter().collect())
                .await
                .map_err(|e| e.to_string())?;
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            let _: i64 = conn
                .xack(stream, group, &ids)
                .await
                .map_err(|e| e.to_string())?;
            self.stats
                .applied
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
        }
    }

    /// Copies each of `files` from the bucket (the current object), up to
    /// `concurrency` at once; a file the bucket has not is removed.
    async fn sync_files(&self, files: Vec<String>) -> Result<(), MirrorError> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut first_error = None;
        for file in files {
            if !is_safe_file(&file) {
                tracing::warn!(file, "refused an announced file with an unsafe name");
                continue;
            }
            while tasks.len() >= self.concurrency.max(1) {
                if let Some(Ok(Err(e))) = tasks.join_next().await {
                    first_error.get_or_insert(e);
                }
            }
            let (s3, root, stats) = (self.s3.clone(), self.root.clone(), self.stats.clone());
            tasks.spawn(async move { copy_one(&s3, &root, &stats, &file).await });
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Makes the root equal to the bucket: downloads what is missing or
    /// differs (by the object's ETag, the MD5 of a single-part object),
    /// removes files the bucket does not have. Returns (copied, removed).
    pub(crate) async fn bootstrap(&self) -> Result<(usize, usize), MirrorError> {
        let listing = self.s3.list().await?;
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for (key, etag) in listing {
            if let Some(file) = self.s3.file_of(&key).filter(|f| is_safe_file(f)) {
                wanted.insert(file.to_string(), etag);
            }
        }
        let root = self.root.clone();
        let local = tokio::task::spawn_blocking(move || local_files(root.path()))
            .await
            .unwrap_or_default();
        let differs: Vec<String> = {
            let root = self.root.clone();
            let wanted = wanted.clone();
            tokio::task::spawn_blocking(move || {
                wanted
                    .iter()
                    .filter(|(file, etag)| {
                        etag.is_empty()
                            || root
                                .read_page(Path::new(file.as_str()))
                                .is_none_or(|bytes| {
                                    !crate::output::publish::etag_matches(&bytes, etag)
                                })
                    })
                    .map(|(f, _)| f.clone())
                    .collect()
            })
            .await
            .unwrap_or_default()
        };
        let copied = differs.len();
        self.sync_files(differs).await?;
        let here: std::collections::HashSet<&str> = local.iter().map(String::as_str).collect();
        // A `.gz` goes with its page (kept or removed with it).
        let is_sibling = |file: &str| {
            Encoding::ALL.iter().any(|e| {
                file.strip_suffix(e.suffix())
                    .is_some_and(|page| wanted.contains_key(page) || here.contains(page))
            })
        };
        let pages = local.iter().filter(|f| !is_sibling(f)).count();
        let gone: Vec<&String> = local
            .iter()
            .filter(|f| !wanted.contains_key(*f) && !is_sibling(f))
            .collect();
        if let Some(limit) = self.delete_limit.map(|l| l.of(pages)) {
            if gone.len() > limit {
                let examples: Vec<&str> = gone.iter().take(3).map(|f| f.as_str()).collect();
                return Err(MirrorError::MassDelete {
                    count: gone.len(),
                    known: pages,
                    limit,
                    examples: format!("e.g. {}", examples.join(", ")),
                });
            }
        }
        let mut removed = 0;
        for file in gone {
            let mut any = false;
            for place in placements(Path::new(file)) {
                any |= self.root.remove_page(&place)?;
            }
            if any {
                removed += 1;
                self.stats.removed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok((copied, removed))
    }
}

/// Every place a file of the bucket may have in a root: its own path, and
/// its path in each type's directory of the typed tree.
fn placements(logical: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    std::iter::once(logical.to_path_buf()).chain(crate::urlmap::TYPED.iter().map(
        move |(name, _)| {
            Path::new(crate::urlmap::TYPED_TREE)
                .join(name)
                .join(logical)
        },
    ))
}

/// Copies one file from the bucket into the root (or removes it).
async fn copy_one(
    s3: &S3,
    root: &WebRoot,
    stats: &MirrorStats,
    file: &str,
) -> Result<(), MirrorError> {
    match s3.get(&s3.key_of(file)).await? {
        Some((bytes, content_type)) => {
            // The bake's own three steps: staged beside the target, made
            // durable (batched with other writes), then renamed into place.
            let task = |e: tokio::task::JoinError| {
                crate::output::publish::PublishError::Task(e.to_string())
            };
            // Where a bake would put it: a feed at `feed/index.html` goes
            // to the typed tree, so this host's nginx serves it as a feed
            // from its first request, as the baking host's does.
            let logical = PathBuf::from(file);
            let content_type = content_type
                .unwrap_or_else(|| crate::urlmap::content_type_of(&logical).to_string());
            let rel = crate::urlmap::placed(logical.clone(), &content_type);
            let staging = root.clone();
            let placed_at = rel.clone();
            let staged = tokio::task::spawn_blocking(move || {
                staging.stage_page(&rel, &crate::body::Body::from(bytes))
            })
            .await
            .map_err(task)??;
            root.make_durable(&staged).await?;
            let outcome = tokio::task::spawn_blocking(move || staged.place())
                .await
                .map_err(task)??;
            if outcome == crate::write::WriteOutcome::Written {
                stats.written.fetch_add(1, Ordering::Relaxed);
            }
            // Its other placement, from an earlier type, goes.
            for other in placements(&logical).filter(|p| *p != placed_at) {
                root.remove_page(&other)?;
            }
        }
        None => {
            let mut removed = false;
            for place in placements(Path::new(file)) {
                removed |= root.remove_page(&place)?;
            }
            if removed {
                stats.removed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Every regular file under `root`, relative, `/`-separated (kiln's temp
/// files and dot files left out).
fn local_files(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(root).ok()?;
            // A page in the typed tree is its bucket key's file.
            let text = crate::urlmap::logical(rel).to_str()?.to_string();
            is_safe_file(&text).then_some(text)
        })
        .collect::<std::collections::BTreeSet<String>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_bucket_names_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            ".env",
            "a/.git/x",
            "_kiln/redirects.json",
            "a\nb",
        ] {
            assert!(!is_safe_file(bad), "{bad:?}");
        }
        for good in ["index.html", "p/1/index.html", "feed.xml", "_next/a.js"] {
            assert!(is_safe_file(good), "{good:?}");
        }
    }
}
