//! The dependency index: an embedded SQLite database of every baked URL, its
//! file, content hash, status, last error and tags.
//!
//! One thread owns the connection; everyone else talks to it over a bounded
//! channel ([`Index`] is a cheap clonable handle). Writes are queued without
//! waiting and committed in batches (one transaction per burst); a read first
//! commits what is pending, so every reader sees every earlier write. Tag
//! lookups use the `(tag, url)` primary key, never a scan of all pages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

/// Index failures. Opening is fatal; a failed batch is logged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexError {
    /// The database could not be opened or migrated.
    #[error("failed to open index `{path}`")]
    Open {
        /// Database path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The directory for the database could not be created.
    #[error("failed to create directory `{path}` for the index")]
    Dir {
        /// Directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The index thread could not be started.
    #[error("failed to start the index thread")]
    Thread(#[source] std::io::Error),
    /// A query failed.
    #[error("index query failed")]
    Query(#[from] rusqlite::Error),
    /// The index thread has stopped.
    #[error("the index thread has stopped")]
    Closed,
    /// The pool's shared index (Redis) could not be read.
    #[error("the pool's shared index could not be read: {0}")]
    Shared(String),
    /// The database file is damaged.
    #[error(
        "the index `{}` is corrupt; the output is intact: run `kiln index rebuild` to rebuild the index from the output and the origin (a daemon rebuilds it itself when it restarts)",
        path.display()
    )]
    Corrupt {
        /// Database path.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
}

/// SQLite's word for a damaged file (or one that is not a database).
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl IndexError {
    /// The index file is damaged (rebuild it; nothing else helps).
    pub(crate) fn is_corrupt(&self) -> bool {
        match self {
            IndexError::Corrupt { .. } => true,
            IndexError::Open { source, .. } | IndexError::Query(source) => is_corruption(source),
            _ => false,
        }
    }

    /// A failed read of the pool's shared index ([`crate::pool`]).
    pub(crate) fn shared(e: impl std::fmt::Display) -> IndexError {
        IndexError::Shared(e.to_string())
    }
}

/// Page status as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Baked and current.
    Ok,
    /// Refused by a safety check; nothing written.
    Refused,
    /// Last attempt failed; the last good file (if any) stays.
    Failed,
    /// Origin said 404/410; file removed.
    Deleted,
    /// Origin said 404/410 for a URL never baked (a broken link): recorded
    /// so pages linking to it do not fetch it again on every regen.
    Missing,
    /// Origin redirects elsewhere.
    Redirect,
}

impl Status {
    /// Stored text.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Refused => "refused",
            Status::Failed => "failed",
            Status::Deleted => "deleted",
            Status::Missing => "missing",
            Status::Redirect => "redirect",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "ok" => Status::Ok,
            "refused" => Status::Refused,
            "deleted" => Status::Deleted,
            "missing" => Status::Missing,
            "redirect" => Status::Redirect,
            _ => Status::Failed,
        }
    }
}

/// One row of the index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PageRecord {
    /// URL path (index key).
    pub(crate) url: String,
    /// File relative to the output root, when one is baked.
    pub(crate) file: Option<String>,
    /// blake3 of the baked body.
    pub(crate) hash: Option<String>,
    /// Status of the last attempt.
    pub(crate) status: Status,
    /// HTTP status of the last response, if any.
    pub(crate) http_status: Option<u16>,
    /// Error or refusal reason of the last attempt.
    pub(crate) error: Option<String>,
    /// Unix seconds of the last attempt.
    pub(crate) fetched_at: i64,
    /// `Content-Type` the origin (or the route) gave the baked file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content_type: Option<String>,
    /// `ETag` and `Last-Modified` of the baked response (None: none sent).
    #[serde(skip)]
    pub(crate) validators: Option<crate::source::fetch::Validators>,
    /// How long a shared cache may keep the baked response, from the
    /// origin's `Cache-Control` (`s-maxage`, else `max-age`), in seconds:
    /// `[[revalidate]] honour-cache-control` re-checks the page that often.
    #[serde(skip)]
    pub(crate) max_age: Option<u32>,
    /// Dependency tags (replaced on every successful fetch). `None` keeps the stored ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<Vec<String>>,
    /// Which records queue their outputs (bucket, CDN purge) in the
    /// outbox, in the same transaction.
    #[serde(skip)]
    pub(crate) outbox: OutboxRule,
    /// When the bake that made this record started (µs since the epoch;
    /// 0: unknown). In pool mode it orders bakes of one page fleet-wide:
    /// the bucket keeps the result of the bake that started last.
    #[serde(skip)]
    pub(crate) ticket: i64,
}

/// Which page records go to the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum OutboxRule {
    /// No outputs configured.
    #[default]
    Never,
    /// A record that changes what this index says is published (one host:
    /// its own index is the whole truth).
    WhenChanged,
    /// Every record but a failure: in pool mode the shared index, not this
    /// worker's, decides what changed ([`crate::pool`]).
    Every,
}

impl PageRecord {
    fn new(url: &str, status: Status, http_status: Option<u16>) -> PageRecord {
        PageRecord {
            url: url.to_string(),
            file: None,
            hash: None,
            status,
            http_status,
            error: None,
            fetched_at: now(),
            content_type: None,
            validators: None,
            max_age: None,
            tags: None,
            outbox: OutboxRule::Never,
            ticket: 0,
        }
    }

    /// A page baked into `file` with content hash `hash`, its content type
    /// and its tags.
    pub(crate) fn baked(
        url: &str,
        file: String,
        hash: String,
        content_type: String,
        http_status: Option<u16>,
        tags: Vec<String>,
    ) -> PageRecord {
        PageRecord {
            file: Some(file),
            hash: Some(hash),
            content_type: Some(content_type),
            tags: Some(tags),
            ..PageRecord::new(url, Status::Ok, http_status)
        }
    }

    /// A failed attempt; the last good file and the tags stay.
    pub(crate) fn failed(url: &str, http_status: Option<u16>, error: String) -> PageRecord {
        PageRecord {
            error: Some(error),
            ..PageRecord::new(url, Status::Failed, http_status)
        }
    }

    /// A refused page: its file is gone, its tags stay so a later change
    /// to what it shows checks it again.
    pub(crate) fn refused(url: &str, http_status: Option<u16>, reason: String) -> PageRecord {
        PageRecord {
            error: Some(reason),
            ..PageRecord::new(url, Status::Refused, http_status)
        }
    }

    /// A page whose file was removed (origin 404/410, `delete:`).
    pub(crate) fn deleted(url: &str, http_status: Option<u16>) -> PageRecord {
        PageRecord {
            tags: Some(Vec::new()),
            ..PageRecord::new(url, Status::Deleted, http_status)
        }
    }

    /// A URL the origin answers 404/410 for that never had a file.
    pub(crate) fn missing(url: &str, http_status: Option<u16>) -> PageRecord {
        PageRecord {
            tags: Some(Vec::new()),
            ..PageRecord::new(url, Status::Missing, http_status)
        }
    }

    /// A URL that redirects to `to`.
    pub(crate) fn redirect(url: &str, code: u16, to: &str) -> PageRecord {
        PageRecord {
            error: Some(format!("redirects to {to}")),
            ..PageRecord::new(url, Status::Redirect, Some(code))
        }
    }
}

/// Counts and problems, for `kiln status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Summary {
    /// Pages per status.
    pub(crate) by_status: Vec<(String, i64)>,
    /// Distinct tags.
    pub(crate) tags: i64,
    /// Failed or refused pages with their reason (first 50).
    pub(crate) problems: Vec<(String, String, String)>,
    /// Recorded redirects.
    pub(crate) redirects: i64,
    /// Baked pages that are the cookie-less variant of a `Vary: Cookie` response.
    pub(crate) anonymous_variants: i64,
}

impl Summary {
    /// The JSON shape `kiln status --json` and `GET /v1/status` share.
    pub(crate) fn to_json(&self, queue_depth: usize) -> serde_json::Value {
        serde_json::json!({
            "pages": self.by_status.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "tags": self.tags,
            "redirects": self.redirects,
            "anonymous_variants": self.anonymous_variants,
            "problems": self
                .problems
                .iter()
                .map(|(url, status, error)| serde_json::json!({"url": url, "status": status, "error": error}))
                .collect::<Vec<_>>(),
            "queue_depth": queue_depth,
        })
    }
}

/// A recorded same-origin redirect, emitted by `kiln nginx`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Redirect {
    /// Requested path.
    pub(crate) from: String,
    /// Final path.
    pub(crate) to: String,
    /// 301, 302, 307, 308.
    pub(crate) code: u16,
}

type Job = Box<dyn FnOnce(&Connection) + Send>;
/// A write: `FnMut` because a batch whose job failed is rolled back and the
/// jobs before it run again ([`owner`]).
type WriteJob = Box<dyn FnMut(&Connection) -> rusqlite::Result<()> + Send>;

enum Command {
    Write(WriteJob),
    /// A read of committed state: it ends the write batch first.
    Read(Job),
    /// A read that runs inside the write batch being gathered, seeing its
    /// writes, and lets the batch go on: for lookups made once per page,
    /// which would otherwise cost a commit each.
    Peek(Job),
}

/// Handle to the index thread.
#[derive(Clone)]
pub(crate) struct Index {
    tx: mpsc::Sender<Command>,
    /// The index thread, woken by readers while it gathers a write batch
    /// (writers let it sleep: see [`owner`]).
    thread: std::thread::Thread,
    /// Writes to this index that failed (rolled back, or lost with a
    /// failed commit): work whose records may be missing compares it
    /// before and after ([`Index::write_failures`]).
    failures: WriteFailures,
    /// Set once SQLite said the file is damaged ([`Index::broken`]).
    damage: Damage,
}

/// Whether the index file was found damaged, shared with the index thread.
/// The first finding leaves a marker file beside the index, so the next
/// daemon start rebuilds it even when its own first reads do not touch the
/// damaged pages ([`Index::marked_damaged`]).
#[derive(Debug, Clone)]
struct Damage {
    path: PathBuf,
    found: Arc<std::sync::OnceLock<String>>,
}

impl Damage {
    /// Notes `e` when it says the file is damaged.
    fn note(&self, e: &rusqlite::Error) {
        if is_corruption(e) && self.found.set(e.to_string()).is_ok() {
            tracing::error!(index = %self.path.display(), error = %e, "the index is corrupt: rebuild it from the output and the origin (a daemon does when it restarts; else `kiln index rebuild`)");
            let _ = std::fs::write(marker_of(&self.path), e.to_string());
        }
    }
}

/// The file that says the index at `path` was found damaged.
fn marker_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".corrupt");
    PathBuf::from(name)
}

/// A count of failed index writes, shared with the index thread.
#[derive(Debug, Clone, Default)]
struct WriteFailures(Arc<std::sync::atomic::AtomicU64>);

impl WriteFailures {
    fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            WRITE_FAILURES.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
-- SQLite keeps the undo pages of a savepoint or of a statement inside a
-- transaction in a statement journal: a temp file once past 64 KiB. When
-- every page's write had its savepoint that was two pwrites per page
-- changed (14 per baked page), whose dirty blocks every syncfs of the
-- output's filesystem then flushed. In memory it is never written.
PRAGMA temp_store = MEMORY;
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,
    file TEXT,
    hash TEXT,
    status TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    fetched_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (tag, url)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_url ON tags (url);
CREATE TABLE IF NOT EXISTS published (
    url TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redirects (
    from_url TEXT PRIMARY KEY,
    to_url TEXT NOT NULL,
    code INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS published_to (
    target TEXT NOT NULL,
    url TEXT NOT NULL,
    key TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (target, url)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    tags TEXT NOT NULL,
    stage INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    ticket INTEGER NOT NULL DEFAULT 0
);
";

/// The schema version this kiln writes (`PRAGMA user_version`); an index
/// from a newer kiln is refused rather than misread.
const SCHEMA_VERSION: i64 = 4;

/// The tag lookup; a test checks its query plan uses the primary key.
const URLS_FOR_TAG: &str = "SELECT url FROM tags WHERE tag = ?1";

/// Writes folded into one transaction at most.
const BATCH: usize = 2000;
/// How long a write batch may stay open waiting for more writes.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

impl Index {
    /// Opens (creating if needed) the database at `path` and starts its thread.
    pub(crate) fn open(path: &Path) -> Result<Index, IndexError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| IndexError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| match is_corruption(&source) {
            true => IndexError::Corrupt {
                path: path.to_path_buf(),
                source,
            },
            false => IndexError::Open {
                path: path.to_path_buf(),
                source,
            },
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        migrate(&conn).map_err(open_err)?;
        let (tx, rx) = mpsc::channel(4096);
        let failures = WriteFailures::default();
        let damage = Damage {
            path: path.to_path_buf(),
            found: Arc::default(),
        };
        let counted = (failures.clone(), damage.clone());
        let handle = std::thread::Builder::new()
            .name("kiln-index".into())
            .spawn(move || owner(conn, rx, counted))
            .map_err(IndexError::Thread)?;
        Ok(Index {
            tx,
            thread: handle.thread().clone(),
            failures,
            damage,
        })
    }

    async fn write(&self, job: WriteJob) {
        if self.tx.send(Command::Write(job)).await.is_err() {
            tracing::error!("index thread stopped; a page record was lost");
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, IndexError> {
        self.ask(f, Command::Read).await
    }

    /// [`Index::read`] within the current write batch ([`Command::Peek`]).
    async fn peek<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, IndexError> {
        self.ask(f, Command::Peek).await
    }

    async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        kind: fn(Job) -> Command,
    ) -> Result<T, IndexError> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.tx
            .send(kind(job))
            .await
            .map_err(|_| IndexError::Closed)?;
        // A read is served at once, also while a write batch is gathered.
        self.thread.unpark();
        match rx.await.map_err(|_| IndexError::Closed)? {
            Ok(v) => Ok(v),
            Err(e) if is_corruption(&e) => {
                self.damage.note(&e);
                Err(IndexError::Corrupt {
                    path: self.damage.path.clone(),
                    source: e,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Why the index file is damaged, once SQLite said so: the daemon's
    /// intake and `/healthz` answer 503 with it.
    pub(crate) fn broken(&self) -> Option<String> {
        self.damage.found.get().map(|why| {
            format!(
                "the index `{}` is corrupt ({why}): restart the daemon to rebuild it from the output and the origin (or stop it and run `kiln index rebuild`)",
                self.damage.path.display()
            )
        })
    }

    /// Whether an earlier run found the index at `path` damaged (it left
    /// a marker beside it): the daemon then rebuilds it at start.
    pub(crate) fn marked_damaged(path: &Path) -> bool {
        marker_of(path).exists()
    }

    /// Moves a damaged index (and its WAL and shared-memory files) aside,
    /// to `<path>.broken-<unix time>`, kept for a post-mortem. Returns the
    /// new name.
    pub(crate) fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let with = |suffix: &str| {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let aside = with(&format!(".broken-{stamp}"));
        for part in ["", "-wal", "-shm"] {
            let mut to = aside.as_os_str().to_os_string();
            to.push(part);
            match std::fs::rename(with(part), PathBuf::from(to)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        match std::fs::remove_file(marker_of(path)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(aside)
    }

    /// Waits until every queued write is committed (or failed: compare
    /// [`Index::write_failures`] before and after to know).
    pub(crate) async fn flush(&self) -> Result<(), IndexError> {
        self.read(|_| Ok(())).await
    }

    /// Writes to this index that failed since it was opened. A job whose
    /// pages were baked while this grew may have lost their records and
    /// outputs, and runs again.
    pub(crate) fn write_failures(&self) -> u64 {
        self.failures.get()
    }

    /// Upserts a page; replaces its tags when `record.tags` is `Some`.
    pub(crate) async fn record(&self, record: PageRecord) {
        self.write(Box::new(move |conn| {
            // Decided against the row as it was, inside this transaction.
            let to_outputs = match record.outbox {
                OutboxRule::Never => false,
                OutboxRule::WhenChanged => changes_what_is_published(conn, &record)?,
                OutboxRule::Every => record.status != Status::Failed,
            };
            conn.prepare_cached(
                "INSERT INTO pages (url, file, hash, status, http_status, error, fetched_at, content_type, etag, last_modified, max_age, ticket)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(url) DO UPDATE SET
                   variant = NULL,
                   ticket = CASE WHEN excluded.status = 'failed' THEN pages.ticket ELSE excluded.ticket END,
                   max_age = CASE WHEN excluded.file IS NULL THEN pages.max_age ELSE excluded.max_age END,
                   etag = CASE WHEN excluded.file IS NULL THEN pages.etag ELSE excluded.etag END,
                   last_modified = CASE WHEN excluded.file IS NULL THEN pages.last_modified ELSE excluded.last_modified END,
                   content_type = COALESCE(excluded.content_type, pages.content_type),
                   file = COALESCE(excluded.file, pages.file),
                   hash = COALESCE(excluded.hash, pages.hash),
                   status = excluded.status, http_status = excluded.http_status,
                   error = excluded.error, fetched_at = excluded.fetched_at",
            )?
            .execute(params![
                record.url,
                record.file,
                record.hash,
                record.status.as_str(),
                record.http_status,
                record.error,
                record.fetched_at,
                record.content_type,
                record.validators.as_ref().and_then(|v| v.etag.clone()),
                record.validators.as_ref().and_then(|v| v.last_modified.clone()),
                record.max_age,
                record.ticket
            ])?;
            if matches!(
                record.status,
                Status::Ok | Status::Refused | Status::Deleted | Status::Missing
            ) {
                // The URL answers itself now (or the app does, or nothing):
                // forget any redirect recorded earlier.
                conn.prepare_cached("DELETE FROM redirects WHERE from_url = ?1")?
                    .execute([&record.url])?;
            }
            if matches!(
                record.status,
                Status::Deleted | Status::Missing | Status::Redirect | Status::Refused
            ) {
                // No baked file of its own any more.
                conn.prepare_cached(
                    "UPDATE pages SET file = NULL, hash = NULL, content_type = NULL, etag = NULL, last_modified = NULL WHERE url = ?1",
                )?
                    .execute([&record.url])?;
            }
            if to_outputs {
                // The CDN must forget what the page showed before and what
                // it shows now: the tags it had and the tags it has (a
                // removed page's last tags included).
                let mut tags = tags_of(conn, &record.url)?;
                tags.extend(record.tags.iter().flatten().cloned());
                tags.retain(|t| !crate::tag::is_kiln_tag(t));
                tags.sort();
                tags.dedup();
                conn.prepare_cached(
                    "INSERT INTO outbox (url, tags, created_at, ticket) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![record.url, tags.join(" "), now_ms(), record.ticket])?;
            }
            if let Some(tags) = &record.tags {
                conn.prepare_cached("DELETE FROM tags WHERE url = ?1")?
                    .execute([&record.url])?;
                let mut insert =
                    conn.prepare_cached("INSERT OR IGNORE INTO tags (tag, url) VALUES (?1, ?2)")?;
                for tag in tags {
                    insert.execute([tag, &record.url])?;
                }
            }
            Ok(())
        }))
        .await;
    }

    /// Records that `from` redirects to `to`.
    pub(crate) async fn record_redirect(&self, redirect: Redirect) {
        self.write(Box::new(move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO redirects (from_url, to_url, code) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![redirect.from, redirect.to, redirect.code])?;
            Ok(())
        }))
        .await;
    }

    /// One page.
    pub(crate) async fn page(&self, url: &str) -> Result<Option<PageRecord>, IndexError> {
        let url = url.to_string();
        self.read(move |conn| {
            let mut rec = conn
                .prepare_cached(
                    "SELECT url, file, hash, status, http_status, error, fetched_at, content_type, ticket FROM pages WHERE url = ?1",
                )?
                .query_row([&url], row_to_record)
                .optional()?;
            if let Some(r) = rec.as_mut() {
                r.tags = Some(tags_of(conn, &url)?);
            }
            Ok(rec)
        })
        .await
    }

    /// URLs carrying any of `tags` (exact match, via the tag index).
    pub(crate) async fn urls_for_tags(&self, tags: Vec<String>) -> Result<Vec<String>, IndexError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(URLS_FOR_TAG)?;
            let mut out = Vec::new();
            for tag in &tags {
                for url in stmt.query_map([tag], |r| r.get::<_, String>(0))? {
                    out.push(url?);
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        })
        .await
    }

    /// URLs whose last attempt failed (the `failed` target; retried at daemon start).
    pub(crate) async fn failed_urls(&self) -> Result<Vec<String>, IndexError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT url FROM pages WHERE status = 'failed' ORDER BY url")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    /// Notes that the page's baked file is the anonymous variant of a
    /// response that varies by cookie (the next record of the page resets it).
    pub(crate) async fn mark_anonymous_variant(&self, url: &str) {
        let url = url.to_string();
        self.write(Box::new(move |conn| {
            conn.prepare_cached("UPDATE pages SET variant = 'anonymous' WHERE url = ?1")?
                .execute([&url])?;
            Ok(())
        }))
        .await;
    }

    /// True before anything was ever recorded.
    pub(crate) async fn is_empty(&self) -> Result<bool, IndexError> {
        self.read(|conn| {
            conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM pages)", [], |r| r.get(0))
        })
        .await
    }

    /// Pages that currently have a baked file.
    pub(crate) async fn baked_count(&self) -> Result<usize, IndexError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM pages WHERE file IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
        })
        .await
    }

    /// A value of the `meta` table (e.g. the origin the site was baked from).
    pub(crate) async fn meta(&self, key: impl Into<String>) -> Result<Option<String>, IndexError> {
        let key = key.into();
        self.read(move |conn| {
            conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([&key], |r| r.get(0))
                .optional()
        })
        .await
    }

    /// Sets a value of the `meta` table.
    pub(crate) async fn set_meta(&self, key: impl Into<String>, value: String) {
        let key = key.into();
        self.write(Box::new(move |conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                .execute([key.as_str(), value.as_str()])?;
            Ok(())
        }))
        .await;
    }

    /// The next `limit` pages that are not removed, in URL order after
    /// `after`, each with its baked file and validators when it has a
    /// baked file: a full build reads the index in such batches, so its
    /// memory does not grow with the site (guarantee 13).
    pub(crate) async fn known_after(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, Option<(String, crate::source::fetch::Validators)>)>, IndexError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT url, CASE WHEN status = 'ok' THEN file END, etag, last_modified
                 FROM pages WHERE status != 'deleted' AND url > ?1 ORDER BY url LIMIT ?2",
            )?;
            let rows = stmt.query_map(
                rusqlite::params![after.unwrap_or_default(), limit as i64],
                |r| {
                    let file: Option<String> = r.get(1)?;
                    Ok((
                        r.get::<_, String>(0)?,
                        file.map(|f| {
                            (
                                f,
                                crate::source::fetch::Validators {
                                    etag: r.get(2).unwrap_or(None),
                                    last_modified: r.get(3).unwrap_or(None),
                                },
                            )
                        }),
                    ))
                },
            )?;
            rows.collect()
        })
        .await
    }

    /// Every page that is not removed, with the shared-cache lifetime its
    /// origin gave (seconds), for `[[revalidate]]`.
    pub(crate) async fn revalidation_list(&self) -> Result<Vec<(String, Option<u32>)>, IndexError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT url, max_age FROM pages WHERE status != 'deleted' ORDER BY url",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// Every URL in the index, removed ones included.
    pub(crate) async fn every_url(&self) -> Result<Vec<String>, IndexError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT url FROM pages ORDER BY url")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    /// True when the URL is in the index (any status).
    pub(crate) async fn knows(&self, url: &str) -> Result<bool, IndexError> {
        Ok(self.unknown(vec![url.to_string()]).await?.is_empty())
    }

    /// Whether `url` was ever baked or refused (known, and not only as a
    /// link the origin answered 404 for).
    pub(crate) async fn ever_answered(&self, url: &str) -> Result<bool, IndexError> {
        let url = url.to_string();
        self.peek(move |conn| {
            conn.prepare_cached("SELECT 1 FROM pages WHERE url = ?1 AND status != 'missing'")?
                .exists([&url])
        })
        .await
    }

    /// Those of `urls` the index has never seen, in one round trip.
    pub(crate) async fn unknown(&self, urls: Vec<String>) -> Result<Vec<String>, IndexError> {
        self.peek(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM pages WHERE url = ?1")?;
            let mut out = Vec::new();
            for url in urls {
                if !stmt.exists([&url])? {
                    out.push(url);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The baked file of a page and the validators it was baked with, for
    /// a conditional re-fetch; `None` when there is no baked file.
    pub(crate) async fn validators(
        &self,
        url: &str,
    ) -> Result<Option<(String, crate::source::fetch::Validators)>, IndexError> {
        let url = url.to_string();
        self.peek(move |conn| {
            conn.prepare_cached(
                "SELECT file, etag, last_modified FROM pages
                 WHERE url = ?1 AND status = 'ok' AND file IS NOT NULL",
            )?
            .query_row([&url], |r| {
                Ok((
                    r.get(0)?,
                    crate::source::fetch::Validators {
                        etag: r.get(1)?,
                        last_modified: r.get(2)?,
                    },
                ))
            })
            .optional()
        })
        .await
    }

    /// The object a page was last published as in `target` (S3 key,
    /// content hash). Each `[[publish]]` target keeps its own record.
    pub(crate) async fn published(
        &self,
        target: &str,
        url: &str,
    ) -> Result<Option<(String, String)>, IndexError> {
        let (target, url) = (target.to_string(), url.to_string());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT key, hash FROM published_to WHERE target = ?1 AND url = ?2",
            )?
            .query_row([&target, &url], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
        .await
    }

    /// Records (or, with `None`, forgets) a page's published object in `target`.
    pub(crate) async fn set_published(
        &self,
        target: &str,
        url: &str,
        object: Option<(String, String)>,
    ) {
        let (target, url) = (target.to_string(), url.to_string());
        self.write(Box::new(move |conn| {
            match &object {
                Some((key, hash)) => conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO published_to (target, url, key, hash) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute([&target, &url, key, hash])?,
                None => conn
                    .prepare_cached("DELETE FROM published_to WHERE target = ?1 AND url = ?2")?
                    .execute([&target, &url])?,
            };
            Ok(())
        }))
        .await;
    }

    /// Outbox entries due at `now_ms` (oldest first), at most `limit`.
    pub(crate) async fn outbox_due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, IndexError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, url, tags, stage, attempts, created_at, ticket FROM outbox
                 WHERE next_at <= ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                let tags: String = r.get(2)?;
                Ok(OutboxEntry {
                    seq: r.get(0)?,
                    url: r.get(1)?,
                    tags: tags.split_whitespace().map(str::to_owned).collect(),
                    stage: r.get(3)?,
                    attempts: r.get(4)?,
                    created_at_ms: r.get(5)?,
                    ticket: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Earliest `next_at` of the outbox (ms), if it has entries.
    pub(crate) async fn outbox_next_due(&self) -> Result<Option<i64>, IndexError> {
        self.read(|conn| conn.query_row("SELECT MIN(next_at) FROM outbox", [], |r| r.get(0)))
            .await
    }

    /// Entries in the outbox.
    pub(crate) async fn outbox_depth(&self) -> Result<usize, IndexError> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
                .map(|n| n as usize)
        })
        .await
    }

    /// Records entries' progress (`stage`), due at once. Committed before
    /// this returns: a kill right after never repeats the step.
    pub(crate) async fn outbox_set_stage(
        &self,
        seqs: Vec<i64>,
        stage: i64,
    ) -> Result<(), IndexError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE outbox SET stage = ?2, attempts = 0, next_at = 0 WHERE seq = ?1",
            )?;
            for seq in seqs {
                stmt.execute(params![seq, stage])?;
            }
            Ok(())
        })
        .await
    }

    /// Entries whose step failed: tried again at `next_at_ms`.
    pub(crate) async fn outbox_retry(
        &self,
        seqs: Vec<i64>,
        next_at_ms: i64,
    ) -> Result<(), IndexError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?2 WHERE seq = ?1",
            )?;
            for seq in seqs {
                stmt.execute(params![seq, next_at_ms])?;
            }
            Ok(())
        })
        .await
    }

    /// Entries fully delivered (or given up on).
    pub(crate) async fn outbox_done(&self, seqs: Vec<i64>) -> Result<(), IndexError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?;
            for seq in seqs {
                stmt.execute([seq])?;
            }
            Ok(())
        })
        .await
    }

    /// Every baked page: URL, file, content type.
    pub(crate) async fn baked_files(
        &self,
    ) -> Result<Vec<(String, String, Option<String>)>, IndexError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT url, file, content_type FROM pages WHERE file IS NOT NULL ORDER BY url",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .await
    }

    /// Files that are not HTML, with their recorded `Content-Type`, for
    /// the nginx types map (HTML is left out here: most of a site).
    pub(crate) async fn non_html_files(&self) -> Result<Vec<(String, String)>, IndexError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT url, content_type FROM pages
                 WHERE file IS NOT NULL AND content_type IS NOT NULL
                   AND content_type NOT LIKE 'text/html%'
                   AND file NOT LIKE '.kiln-typed/%' ORDER BY url",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// Redirects recorded so far.
    pub(crate) async fn redirects(&self) -> Result<Vec<Redirect>, IndexError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT from_url, to_url, code FROM redirects ORDER BY from_url")?;
            let rows = stmt.query_map([], |r| {
                Ok(Redirect {
                    from: r.get(0)?,
                    to: r.get(1)?,
                    code: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Counts by status, failing URLs, tag count.
    pub(crate) async fn summary(&self) -> Result<Summary, IndexError> {
        self.read(|conn| {
            let mut s = Summary::default();
            let mut stmt = conn.prepare_cached(
                "SELECT status, COUNT(*) FROM pages GROUP BY status ORDER BY status",
            )?;
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                s.by_status.push(row?);
            }
            s.tags = conn.query_row("SELECT COUNT(DISTINCT tag) FROM tags", [], |r| r.get(0))?;
            s.redirects = conn.query_row("SELECT COUNT(*) FROM redirects", [], |r| r.get(0))?;
            s.anonymous_variants = conn.query_row(
                "SELECT COUNT(*) FROM pages WHERE variant = 'anonymous' AND file IS NOT NULL",
                [],
                |r| r.get(0),
            )?;
            let mut stmt = conn.prepare_cached(
                "SELECT url, status, COALESCE(error, '') FROM pages
                 WHERE status IN ('failed', 'refused') ORDER BY url LIMIT 50",
            )?;
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
                s.problems.push(row?);
            }
            Ok(s)
        })
        .await
    }
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<PageRecord> {
    Ok(PageRecord {
        url: r.get(0)?,
        file: r.get(1)?,
        hash: r.get(2)?,
        status: Status::parse(&r.get::<_, String>(3)?),
        http_status: r.get(4)?,
        error: r.get(5)?,
        fetched_at: r.get(6)?,
        content_type: r.get(7)?,
        validators: None,
        max_age: None,
        tags: None,
        outbox: OutboxRule::Never,
        ticket: r.get::<_, Option<i64>>(8).ok().flatten().unwrap_or(0),
    })
}

/// Whether `record` changes what the outputs should hold for its page: a
/// new or different file, or a file that goes. Compared with the stored
/// row, not with what the writer saw on disk, so a change whose record a
/// kill -9 lost is still published when the page is baked again (its file
/// then looks "unchanged" on disk, but not to the index).
fn changes_what_is_published(conn: &Connection, record: &PageRecord) -> rusqlite::Result<bool> {
    let old: Option<(Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT file, hash FROM pages WHERE url = ?1")?
        .query_row([&record.url], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (old_file, old_hash) = old.unwrap_or((None, None));
    Ok(match record.status {
        Status::Ok => record.file.is_some() && (old_file != record.file || old_hash != record.hash),
        Status::Deleted | Status::Refused | Status::Redirect => old_file.is_some(),
        Status::Failed | Status::Missing => false,
    })
}

fn tags_of(conn: &Connection, url: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT tag FROM tags WHERE url = ?1 ORDER BY tag")?;
    let rows = stmt.query_map([url], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Index writes that failed (rolled back) since the process started: shown
/// by `/v1/status` and `/metrics`, and a one-shot run exits 1 when any did.
pub(crate) static WRITE_FAILURES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Index writes that failed so far in this process.
pub(crate) fn write_failures() -> u64 {
    WRITE_FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

/// The index thread: applies writes in batched transactions, answers reads
/// after committing what is pending.
///
/// A job runs without a savepoint of its own: SQLite copies every page a
/// savepoint touches first (SAVEPOINT and RELEASE parsed each time, too),
/// which cost 8% of a full bake's CPU. When a job fails part-way (a page
/// row without its tags), the whole transaction is rolled back and the jobs
/// before it run again, each in a savepoint this time; the failed one is
/// counted and leaves nothing.
fn owner(
    conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    (failures, damage): (WriteFailures, Damage),
) {
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut pending_read = None;
        if let Err(e) = run(&conn, "BEGIN") {
            tracing::error!(error = %e, "index transaction failed to start");
        }
        let started = std::time::Instant::now();
        // The jobs applied in this transaction, kept to run again should a
        // later one fail.
        let mut applied: Vec<WriteJob> = Vec::new();
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Write(mut job) => {
                    if let Err(e) = job(&conn) {
                        failures.add(1);
                        damage.note(&e);
                        tracing::error!(error = %e, "an index write failed and was rolled back");
                        redo(&conn, &mut applied, &failures);
                    } else {
                        applied.push(job);
                    }
                }
                Command::Read(job) => {
                    pending_read = Some(job);
                    break;
                }
                Command::Peek(job) => job(&conn),
            }
            if applied.len() >= BATCH {
                break;
            }
            next = rx.try_recv().ok();
            // Under load, keep the transaction open a few ms so one
            // commit covers many pages. The thread sleeps meanwhile
            // rather than waiting on the channel: a sender wakes a
            // waiting receiver, and one wake-up per page cost more
            // than the writes. Readers unpark it: a read still ends
            // the batch at once, a peek runs inside it.
            while next.is_none() {
                let left = BATCH_WINDOW.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                std::thread::park_timeout(left);
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = run(&conn, "COMMIT") {
            failures.add(applied.len() as u64);
            damage.note(&e);
            tracing::error!(error = %e, "index commit failed");
            let _ = run(&conn, "ROLLBACK");
        }
        if let Some(job) = pending_read {
            job(&conn);
        }
    }
}

fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// After a job failed part-way: rolls the transaction back and applies
/// again, in a new one, the jobs that had succeeded, each in a savepoint
/// (one failing now is counted and dropped).
fn redo(conn: &Connection, applied: &mut Vec<WriteJob>, failures: &WriteFailures) {
    // An error may already have ended the transaction (SQLite rolls back
    // on some); ROLLBACK then fails harmlessly.
    let _ = run(conn, "ROLLBACK");
    if let Err(e) = run(conn, "BEGIN") {
        tracing::error!(error = %e, "index transaction failed to start");
    }
    applied.retain_mut(|job| {
        let done = run(conn, "SAVEPOINT job").and_then(|()| match job(conn) {
            Ok(()) => run(conn, "RELEASE job"),
            Err(e) => {
                let _ = run(conn, "ROLLBACK TO job");
                let _ = run(conn, "RELEASE job");
                Err(e)
            }
        });
        if let Err(e) = &done {
            failures.add(1);
            tracing::error!(error = %e, "an index write failed again and was rolled back");
        }
        done.is_ok()
    });
}

/// Brings an index made by an earlier kiln up to date.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::ToSqlConversionFailure(
            format!("this index was written by a newer kiln (schema {version}, this kiln knows {SCHEMA_VERSION}); upgrade kiln or use another state path").into(),
        ));
    }
    let has_variant: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('pages') WHERE name = 'variant'",
        [],
        |r| r.get(0),
    )?;
    if !has_variant {
        // `anonymous` when the baked file is the cookie-less variant of a
        // response with `Vary: Cookie`.
        conn.execute_batch("ALTER TABLE pages ADD COLUMN variant TEXT")?;
    }
    // Columns later kiln versions added: the recorded content type and the
    // origin's validators (ETag, Last-Modified) for conditional re-fetches.
    // Schema 3: the shared-cache lifetime the origin gave (`max_age`).
    for (column, kind) in [
        ("content_type", "TEXT"),
        ("etag", "TEXT"),
        ("last_modified", "TEXT"),
        ("max_age", "INTEGER"),
        // Schema 4: when the bake of the recorded content asked its
        // source (pool mode publishes a page's content with it).
        ("ticket", "INTEGER NOT NULL DEFAULT 0"),
    ] {
        let present: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('pages') WHERE name = ?1",
            [column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE pages ADD COLUMN {column} {kind}"))?;
        }
    }
    // Schema 4: the bake's start (pool mode orders bakes by it).
    let has_ticket: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('outbox') WHERE name = 'ticket'",
        [],
        |r| r.get(0),
    )?;
    if !has_ticket {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN ticket INTEGER NOT NULL DEFAULT 0")?;
    }
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    Ok(())
}

/// One page change waiting for its outputs (guarantee 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxEntry {
    /// Order of the change.
    pub(crate) seq: i64,
    /// The page.
    pub(crate) url: String,
    /// The origin's tags it had and has (for purge by tag).
    pub(crate) tags: Vec<String>,
    /// 0: to publish; 1: published, to purge.
    pub(crate) stage: i64,
    /// Failed attempts of the current step.
    pub(crate) attempts: i64,
    /// When the change was recorded (ms since the epoch).
    pub(crate) created_at_ms: i64,
    /// When the bake that made it started ([`PageRecord::ticket`]).
    pub(crate) ticket: i64,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(url: &str, tags: &[&str]) -> PageRecord {
        PageRecord {
            url: url.into(),
            file: Some(format!("{}index.html", url.trim_start_matches('/'))),
            hash: Some("h".into()),
            status: Status::Ok,
            http_status: Some(200),
            error: None,
            fetched_at: now(),
            content_type: Some("text/html".into()),
            validators: None,
            max_age: None,
            tags: Some(tags.iter().map(|s| s.to_string()).collect()),
            outbox: OutboxRule::Never,
            ticket: 0,
        }
    }

    #[tokio::test]
    async fn savepoints_keep_their_undo_pages_in_memory() {
        // On disk, a statement journal cost 14 pwrites per page (when each
        // page had a savepoint) to a temp file on (usually) the output's
        // filesystem, flushed again by every syncfs; redo's savepoints and
        // multi-row statements still use it.
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.db")).unwrap();
        let temp_store: i64 = index
            .read(|c| c.query_row("PRAGMA temp_store", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(temp_store, 2, "PRAGMA temp_store = MEMORY");
    }

    #[tokio::test]
    async fn a_write_that_fails_part_way_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.db")).unwrap();
        let before = write_failures();
        // Queued together, so one transaction holds all three: the failure
        // rolls it back and the job before it is applied again.
        tokio::join!(
            index.record(rec("/before/", &["post:0"])),
            index.write(Box::new(|conn| {
                conn.execute(
                    "INSERT INTO pages (url, status, fetched_at) VALUES ('/half/', 'ok', 0)",
                    [],
                )?;
                conn.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                Ok(())
            })),
            index.record(rec("/whole/", &["post:1"])),
        );
        assert!(index.page("/half/").await.unwrap().is_none(), "rolled back");
        assert!(
            index.page("/before/").await.unwrap().is_some(),
            "the job before it was applied again"
        );
        assert_eq!(
            index.urls_for_tags(vec!["post:0".into()]).await.unwrap(),
            vec!["/before/".to_string()],
            "with its tags"
        );
        assert!(
            index.page("/whole/").await.unwrap().is_some(),
            "the batch went on"
        );
        assert_eq!(write_failures(), before + 1);
    }

    #[tokio::test]
    async fn a_removed_page_queues_its_last_tags_for_the_cdn() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.db")).unwrap();
        index.record(rec("/p/1/", &["post:1", "path:/p/"])).await;
        let mut gone = PageRecord::deleted("/p/1/", Some(404));
        gone.outbox = OutboxRule::WhenChanged;
        index.record(gone).await;
        let due = index.outbox_due(now_ms(), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].url, "/p/1/");
        assert_eq!(
            due[0].tags,
            vec!["post:1".to_string()],
            "kiln's own tags are not sent"
        );
        let mut changed = rec("/p/1/", &["post:2"]);
        changed.outbox = OutboxRule::WhenChanged;
        index.record(changed).await;
        let due = index.outbox_due(now_ms(), 10).await.unwrap();
        assert_eq!(due[1].tags, vec!["post:2".to_string()]);
        index
            .outbox_retry(vec![due[0].seq], now_ms() + 60_000)
            .await
            .unwrap();
        assert_eq!(index.outbox_due(now_ms(), 10).await.unwrap().len(), 1);
        index
            .outbox_done(vec![due[0].seq, due[1].seq])
            .await
            .unwrap();
        assert_eq!(index.outbox_depth().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn tags_are_replaced_and_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("i.db")).unwrap();
        idx.record(rec("/a/", &["post:1", "list"])).await;
        idx.record(rec("/b/", &["post:2", "list"])).await;
        assert_eq!(
            idx.urls_for_tags(vec!["list".into()]).await.unwrap(),
            vec!["/a/", "/b/"]
        );
        idx.record(rec("/a/", &["post:3"])).await;
        assert_eq!(
            idx.urls_for_tags(vec!["list".into()]).await.unwrap(),
            vec!["/b/"]
        );
        let a = idx.page("/a/").await.unwrap().unwrap();
        assert_eq!(a.tags.unwrap(), vec!["post:3"]);
        // A failure keeps the file and hash of the last good bake.
        idx.record(PageRecord {
            file: None,
            hash: None,
            status: Status::Failed,
            error: Some("boom".into()),
            tags: None,
            ..rec("/a/", &[])
        })
        .await;
        let a = idx.page("/a/").await.unwrap().unwrap();
        assert_eq!(a.status, Status::Failed);
        assert_eq!(a.hash.as_deref(), Some("h"));
        assert_eq!(a.tags.unwrap(), vec!["post:3"]);
    }

    #[tokio::test]
    async fn tag_lookup_uses_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("i.db")).unwrap();
        let plan = idx
            .read(|conn| {
                let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {URLS_FOR_TAG}"))?;
                let rows = s.query_map(["x"], |r| r.get::<_, String>(3))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .unwrap()
            .join(" ");
        assert!(plan.contains("USING PRIMARY KEY"), "{plan}");
        assert!(!plan.contains("SCAN"), "{plan}");
    }
}
