//! The Redis Streams intake: events for many web hosts through one stream.
//!
//! Producers `XADD` an entry with a `targets` field (the target grammar, one
//! per line). Each host's daemon reads with its own consumer group (fan-out:
//! every host applies every event to its own output) and acknowledges an
//! entry only when its pages are done; what finally fails goes to a
//! dead-letter stream with the reason, then is acknowledged. Entries pending
//! on a consumer that died are reclaimed (`XAUTOCLAIM`) after an idle time.
//! When Redis is down, the other intakes go on; this one retries the
//! connection with backoff and says so in `/v1/status` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::RedisIntake;
use crate::schedule::{Request, Submitter};
use crate::targets::Target;

/// Field of a stream entry that holds its targets.
pub(crate) const TARGETS_FIELD: &str = "targets";

/// Adds one entry of targets to the stream (`kiln enqueue --redis`).
pub(crate) async fn enqueue(cfg: &RedisIntake, targets: &[Target]) -> redis::RedisResult<String> {
    let client = redis::Client::open(cfg.url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let text: String = targets.iter().map(|t| format!("{t}\n")).collect();
    redis::cmd("XADD")
        .arg(&cfg.stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(cfg.max_len)
        .arg("*")
        .arg(TARGETS_FIELD)
        .arg(text)
        .query_async(&mut conn)
        .await
}

/// Where a host that never had its consumer group keeps the stream
/// position its first full build started at (beside the group marker).
fn start_file(cfg: &RedisIntake) -> std::path::PathBuf {
    let name = cfg
        .group_marker
        .file_name()
        .map(|n| n.to_string_lossy().replace("redis-group-", "redis-start-"))
        .unwrap_or_else(|| "redis-start".into());
    cfg.group_marker.with_file_name(name)
}

/// Before a full build: the stream's position now, when this host has no
/// consumer group yet (a new host). Its build reflects every event before
/// this position, so the group the daemon creates later starts here
/// instead of replaying the whole retained stream against the origin.
/// `None` when the host has a group already or Redis does not answer in
/// time (then the group starts at the stream's beginning, as before).
pub(crate) async fn position_before_build(cfg: &RedisIntake) -> Option<String> {
    if cfg.group_marker.exists() {
        return None;
    }
    let read = async {
        let client = redis::Client::open(cfg.url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        last_entry_id(&mut conn, &cfg.stream).await
    };
    match tokio::time::timeout(Duration::from_secs(2), read).await {
        Ok(Ok(id)) => Some(id),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "could not note the stream's position before the build; the daemon's new group will read the retained stream");
            None
        }
        Err(_) => None,
    }
}

/// After the build that started at `position`: recorded for the daemon.
pub(crate) fn record_build_position(cfg: &RedisIntake, position: &str) {
    if let Err(e) = std::fs::write(start_file(cfg), format!("{position}\n")) {
        tracing::warn!(error = %e, "could not record the stream position of this build; the daemon's new group will read the retained stream");
    }
}

/// The stream's last entry id (`0-0` for an empty or missing stream).
pub(crate) async fn last_entry_id<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    stream: &str,
) -> redis::RedisResult<String> {
    let info: redis::RedisResult<std::collections::HashMap<String, redis::Value>> =
        redis::cmd("XINFO")
            .arg("STREAM")
            .arg(stream)
            .query_async(conn)
            .await;
    match info {
        Ok(info) => Ok(info
            .get("last-generated-id")
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
            .unwrap_or_else(|| "0-0".into())),
        // No such stream yet.
        Err(e) if e.code() == Some("ERR") => Ok("0-0".into()),
        Err(e) => Err(e),
    }
}

/// The intake's connection, as `/v1/status` and `/metrics` show it.
#[derive(Debug, Default)]
pub(crate) struct RedisStatus {
    /// Connected and reading now.
    pub(crate) connected: AtomicBool,
    /// The last connection error.
    pub(crate) error: std::sync::Mutex<Option<String>>,
}

impl RedisStatus {
    /// `{"connected": …, "error": …}`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "connected": self.connected.load(Ordering::Relaxed),
            "error": self.error.lock().ok().and_then(|e| e.clone()),
        })
    }
}

/// The stream as an [`crate::schedule::Intake`].
pub(crate) struct StreamIntake {
    /// Where and as whom to read.
    pub(crate) cfg: RedisIntake,
    /// Where the connection state is shown.
    pub(crate) status: Arc<RedisStatus>,
    /// Where a rebake of everything is queued durably when events were
    /// lost (the stream trimmed past us, the group gone): a request only in
    /// memory would be lost again by a stop before it is done.
    pub(crate) spool: crate::intake::spool::Spool,
}

impl crate::schedule::Intake for StreamIntake {
    fn run(
        self: Box<Self>,
        submit: Submitter,
        shutdown: CancellationToken,
    ) -> crate::schedule::Running {
        Box::pin(worker(self.cfg, submit, self.status, self.spool, shutdown))
    }
}

/// What one connection's life tells the next.
#[derive(Debug, Default)]
struct Sessions {
    /// The session that just ended had connected and was reading (its
    /// outage starts the reconnect delay over).
    was_up: bool,
    /// This process has seen its consumer group (one missing later means
    /// Redis lost it).
    group_seen: bool,
}

/// Reads the stream until `shutdown`, reconnecting with backoff.
pub(crate) async fn worker(
    cfg: RedisIntake,
    submit: Submitter,
    status: Arc<RedisStatus>,
    spool: crate::intake::spool::Spool,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(200);
    let mut sessions = Sessions::default();
    // Waits for the reports of submitted entries; an entry is acknowledged
    // only from here, when its pages are done.
    let mut waiting: JoinSet<()> = JoinSet::new();
    loop {
        sessions.was_up = false;
        let session = run_session(
            &cfg,
            &submit,
            &status,
            &spool,
            &shutdown,
            &mut waiting,
            &mut sessions,
        );
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session => r,
        };
        status.connected.store(false, Ordering::Relaxed);
        if shutdown.is_cancelled() {
            return;
        }
        let e = match result {
            Ok(()) => return,
            Err(e) => e,
        };
        if sessions.was_up {
            // This outage starts from the short delay.
            delay = Duration::from_millis(200);
            tracing::warn!(error = %e, retry_in = ?delay, stream = %cfg.stream, "redis intake lost its connection; the spool and HTTP intakes go on");
        } else {
            tracing::warn!(error = %e, retry_in = ?delay, stream = %cfg.stream, "redis intake unavailable; the spool and HTTP intakes go on");
        }
        if let Ok(mut last) = status.error.lock() {
            *last = Some(e.to_string());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: set up the group, then claim and read entries.
async fn run_session(
    cfg: &RedisIntake,
    submit: &Submitter,
    status: &Arc<RedisStatus>,
    spool: &crate::intake::spool::Spool,
    shutdown: &CancellationToken,
    waiting: &mut JoinSet<()>,
    sessions: &mut Sessions,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(cfg.url.as_str())?;
    // Longer than the 1 s a blocking read waits for entries.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    // Entries of this session being baked: a reclaim never submits them twice.
    let in_progress: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
    // Our group existed before (this process read it, or the marker beside
    // the index says an earlier run did) and is gone now: Redis came back
    // empty or was flushed, and the events of the outage are lost. Like a
    // trim past us: say so and rebake everything. The rebake is queued
    // durably (the spool) *before* the group is made again: once the group
    // exists, nothing would say it again after a kill.
    let known_before = sessions.group_seen || cfg.group_marker.exists();
    if known_before && !group_exists(&mut conn, cfg).await? {
        tracing::warn!(stream = %cfg.stream, group = %cfg.group, "this host's consumer group is gone (Redis restarted empty or was flushed): events may have been missed, so every page is rebaked");
        rebake_everything(spool).await?;
    }
    // The marker first: a group that exists without it could vanish
    // unnoticed (a kill between the two).
    if !cfg.group_marker.exists() {
        if let Err(e) = std::fs::write(&cfg.group_marker, format!("{}\n", cfg.group)) {
            tracing::warn!(error = %e, file = %cfg.group_marker.display(), "could not record that this host's consumer group exists; a Redis that loses it will not be noticed");
        }
    }
    // A new host starts where its first build started (every event
    // before is in its pages); a host without such a build, from the
    // stream's beginning.
    let start = if known_before {
        "0".to_string()
    } else {
        std::fs::read_to_string(start_file(cfg))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "0".to_string())
    };
    let created: redis::RedisResult<()> = conn
        .xgroup_create_mkstream(&cfg.stream, &cfg.group, &start)
        .await;
    if created.is_ok() && start != "0" {
        tracing::info!(stream = %cfg.stream, group = %cfg.group, from = %start, "this host's consumer group starts where its first build started");
    }
    if let Err(e) = created {
        if e.code() != Some("BUSYGROUP") {
            return Err(e);
        }
    }
    // Entries trimmed past our position stay missed until we read on, so a
    // kill before the rebake is queued finds them missed again.
    if trimmed_past_us(&mut conn, cfg).await? {
        tracing::warn!(stream = %cfg.stream, group = %cfg.group, "the stream was trimmed past this host's position: events were missed, so every page is rebaked");
        rebake_everything(spool).await?;
    }
    sessions.group_seen = true;
    sessions.was_up = true;
    status.connected.store(true, Ordering::Relaxed);
    if let Ok(mut last) = status.error.lock() {
        *last = None;
    }
    tracing::info!(stream = %cfg.stream, group = %cfg.group, consumer = %cfg.consumer, "reading the redis stream");
    // Entries delivered to this consumer before a restart, not yet acknowledged.
    let mut backlog_id = "0".to_string();
    let mut read_back: Vec<StreamId> = Vec::new();
    loop {
        while let Some(done) = waiting.try_join_next() {
            let _ = done;
        }
        // Entries of consumers that died, idle for longer than claim-idle;
        // not while our own pending list is being read back (it would claim
        // those very entries and submit them a second time).
        if backlog_id == ">" {
            autoclaim(cfg, &mut conn, submit, &in_progress, waiting).await?;
        }
        let read: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&cfg.group)
            .arg(&cfg.consumer)
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&cfg.stream)
            .arg(&backlog_id)
            .query_async(&mut conn)
            .await?;
        let mut entries: Vec<StreamId> = read
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        if backlog_id != ">" {
            match entries.last() {
                // Page on through our own pending list; its entries are
                // submitted with the first read of new ones, as one request,
                // so a restart costs one more fetch per page, not two.
                Some(last) => {
                    backlog_id = last.id.clone();
                    read_back.append(&mut entries);
                }
                // Own pending entries all read back: new ones now. (A read
                // of history never blocks; staying on it would spin.)
                None => backlog_id = ">".to_string(),
            }
            continue;
        }
        if !read_back.is_empty() {
            read_back.append(&mut entries);
            entries = std::mem::take(&mut read_back);
        }
        take(cfg, &conn, submit, entries, &in_progress, waiting).await;
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

/// Claims entries of consumers that died (idle for longer than
/// `claim-idle`) and submits them.
async fn autoclaim(
    cfg: &RedisIntake,
    conn: &mut redis::aio::MultiplexedConnection,
    submit: &Submitter,
    in_progress: &Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    waiting: &mut JoinSet<()>,
) -> redis::RedisResult<()> {
    let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(&cfg.stream)
        .arg(&cfg.group)
        .arg(&cfg.consumer)
        .arg(cfg.claim_idle.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(100)
        .query_async(conn)
        .await?;
    take(cfg, conn, submit, claimed.claimed, in_progress, waiting).await;
    Ok(())
}

/// Queues `all` in the spool, durably; Err keeps the session from going
/// on as if no event had been missed.
async fn rebake_everything(spool: &crate::intake::spool::Spool) -> redis::RedisResult<()> {
    let spool = spool.clone();
    match tokio::task::spawn_blocking(move || spool.enqueue(&[Target::All])).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not queue the rebake of everything in the spool");
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "could not queue a rebake in the spool",
                e.to_string(),
            )))
        }
        Err(e) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "queueing a rebake failed",
            e.to_string(),
        ))),
    }
}

/// Whether this host's consumer group exists (a missing stream: no).
async fn group_exists(
    conn: &mut redis::aio::MultiplexedConnection,
    cfg: &RedisIntake,
) -> redis::RedisResult<bool> {
    has_group(conn, &cfg.stream, &cfg.group).await
}

/// Whether `stream` has the consumer group `group` (a missing stream: no).
pub(crate) async fn has_group<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> redis::RedisResult<bool> {
    let groups: redis::RedisResult<Vec<std::collections::HashMap<String, redis::Value>>> =
        redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(conn)
            .await;
    match groups {
        Ok(groups) => Ok(groups.iter().any(|g| {
            g.get("name")
                .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                .as_deref()
                == Some(group)
        })),
        // "ERR no such key": no stream, so no group.
        Err(e) if e.code() == Some("ERR") => Ok(false),
        Err(e) => Err(e),
    }
}

/// True when entries this group never read were trimmed away: the stream
/// has added more entries since the group's position (its lag) than it
/// still holds after that position.
async fn trimmed_past_us(
    conn: &mut redis::aio::MultiplexedConnection,
    cfg: &RedisIntake,
) -> redis::RedisResult<bool> {
    trimmed_past(conn, &cfg.stream, &cfg.group).await
}

/// True when entries of `stream` that `group` never read were trimmed
/// away (see [`trimmed_past_us`]).
pub(crate) async fn trimmed_past<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    stream: &str,
    group_name: &str,
) -> redis::RedisResult<bool> {
    use std::collections::HashMap;
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    let get = |m: &HashMap<String, redis::Value>, k: &str| -> Option<String> {
        m.get(k)
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
    };
    let Some(group) = groups
        .iter()
        .find(|g| get(g, "name").as_deref() == Some(group_name))
    else {
        return Ok(false);
    };
    let last_delivered = get(group, "last-delivered-id").unwrap_or_else(|| "0-0".into());
    let stream: HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await?;
    let Some(lag) = get(group, "lag").and_then(|l| l.parse::<u64>().ok()) else {
        // Redis cannot compute the lag: after a restart from its AOF it no
        // longer knows how many entries the group read. What it deleted
        // tells: only entries deleted after our position were lost to us.
        // (Reading this as a trim made every host rebake the whole site
        // after a Redis restart with its data intact.)
        let max_deleted = get(&stream, "max-deleted-entry-id").unwrap_or_else(|| "0-0".into());
        return Ok(stream_id(&max_deleted) > stream_id(&last_delivered));
    };
    let length = get(&stream, "length")
        .and_then(|l| l.parse::<u64>().ok())
        .unwrap_or(0);
    let first: Option<String> = match stream.get("first-entry") {
        Some(redis::Value::Array(entry)) => entry
            .first()
            .and_then(|v| redis::from_redis_value(v.clone()).ok()),
        _ => None,
    };
    let all_after_us = first.is_none_or(|f| stream_id(&f) > stream_id(&last_delivered));
    Ok(all_after_us && lag > length)
}

/// A stream entry id (`ms-seq`) as a comparable pair.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// One stream entry being baked.
struct Entry {
    id: String,
    text: String,
    targets: Vec<Target>,
    problems: Vec<String>,
}

impl Entry {
    /// Whether this entry names `url` itself.
    fn names(&self, url: &str) -> bool {
        self.targets
            .iter()
            .any(|t| matches!(t, Target::Url(u) | Target::Delete(u) if u == url))
    }

    /// Whether this entry reaches pages through a tag, glob, `failed` or
    /// `all` (and so may have named a failed URL it does not spell out).
    fn names_indirectly(&self) -> bool {
        self.targets
            .iter()
            .any(|t| !matches!(t, Target::Url(_) | Target::Delete(_)))
    }

    /// Reads one stream entry: its `targets` field, parsed and capped.
    /// Whatever is wrong (no field, not UTF-8, bad lines, too many targets)
    /// becomes a problem that sends the entry to the dead-letter stream.
    fn read(entry: StreamId, max_targets: usize) -> Entry {
        let mut problems = Vec::new();
        let text = match entry.map.get(TARGETS_FIELD) {
            None => {
                problems.push(format!(
                    "the entry has no `{TARGETS_FIELD}` field (fields: {})",
                    crate::text::excerpt(
                        &entry.map.keys().cloned().collect::<Vec<_>>().join(", "),
                        100
                    )
                ));
                String::new()
            }
            Some(v) => match redis::from_redis_value::<Vec<u8>>(v.clone()) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(e) => {
                        problems.push(format!("the `{TARGETS_FIELD}` field is not UTF-8 text"));
                        String::from_utf8_lossy(e.as_bytes()).into_owned()
                    }
                },
                Err(_) => {
                    problems.push(format!("the `{TARGETS_FIELD}` field is not a string"));
                    String::new()
                }
            },
        };
        let (targets, bad) = if problems.is_empty() {
            Target::parse_lines(&text)
        } else {
            (Vec::new(), Vec::new())
        };
        problems.extend(
            bad.iter()
                .take(20)
                .map(|(n, e)| format!("line {n}: {}", crate::text::excerpt(&e.to_string(), 200))),
        );
        let mut targets = crate::targets::dedup(targets);
        if targets.len() > max_targets {
            problems.push(format!(
                "names {} distinct targets, over `daemon.max-targets` ({max_targets}); nothing of it was applied",
                targets.len()
            ));
            targets.clear();
        }
        Entry {
            id: entry.id,
            text: crate::text::excerpt(&text, 4096),
            targets,
            problems,
        }
    }
}

/// Submits the entries of one read as one request (so events for the same
/// page in a batch cost one fetch) and, once its pages are done,
/// acknowledges them all, after copying each entry's failures to the
/// dead-letter stream.
async fn take(
    cfg: &RedisIntake,
    conn: &redis::aio::MultiplexedConnection,
    submit: &Submitter,
    read: Vec<StreamId>,
    in_progress: &Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    waiting: &mut JoinSet<()>,
) {
    let mut entries = Vec::new();
    for entry in read {
        let fresh = in_progress
            .lock()
            .map(|mut p| p.insert(entry.id.clone()))
            .unwrap_or(true);
        if !fresh {
            continue; // already being baked in this session (reclaimed while idle)
        }
        entries.push(Entry::read(entry, cfg.max_targets));
    }
    if entries.is_empty() {
        return;
    }
    let merged: Vec<Target> =
        crate::targets::dedup(entries.iter().flat_map(|e| e.targets.clone()).collect());
    let forget = {
        let in_progress = in_progress.clone();
        move |ids: &[String]| {
            if let Ok(mut p) = in_progress.lock() {
                for id in ids {
                    p.remove(id);
                }
            }
        }
    };
    let report = if merged.is_empty() {
        None
    } else {
        let (reply, report) = oneshot::channel();
        let submitted = submit
            .submit(Request {
                targets: merged,
                reply: Some(reply),
                allow_mass_delete: false,
            })
            .await;
        if submitted.is_none() {
            forget(&entries.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
            return; // shutting down: the entries stay pending for the next start
        }
        Some(report)
    };
    let cfg = cfg.clone();
    let mut conn = conn.clone();
    waiting.spawn(async move {
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        if let Some(report) = report {
            // Dropped reply = shutdown before completion: stays pending.
            let Ok(report) = report.await else {
                forget(&ids);
                return;
            };
            // A failure belongs to the entries that name its URL; only a URL
            // no entry names comes from (and is charged to) the entries
            // that reach pages through tags, globs or `all`.
            for (url, error) in &report.tally.failed {
                let direct = entries.iter().any(|e| e.names(url));
                for e in entries
                    .iter_mut()
                    .filter(|e| if direct { e.names(url) } else { e.names_indirectly() })
                {
                    e.problems.push(format!("{url}: {error}"));
                }
            }
        }
        for e in entries.iter().filter(|e| !e.problems.is_empty()) {
            let dead: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(&cfg.dead_stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(cfg.max_len)
                .arg("*")
                .arg("id")
                .arg(&e.id)
                .arg(TARGETS_FIELD)
                .arg(&e.text)
                .arg("reason")
                .arg(e.problems.join("\n"))
                .arg("host")
                .arg(&cfg.consumer)
                .query_async(&mut conn)
                .await;
            if let Err(err) = dead {
                tracing::error!(error = %err, entry = %e.id, "could not record a failed entry in the dead-letter stream; leaving the batch unacknowledged");
                forget(&ids);
                return;
            }
        }
        let acked: redis::RedisResult<i64> = conn.xack(&cfg.stream, &cfg.group, &ids).await;
        if let Err(e) = acked {
            tracing::warn!(error = %e, entries = ids.len(), "could not acknowledge stream entries; they will be delivered again");
        }
        forget(&ids);
    });
}
