//! `kiln daemon`: the supervisor. Spawns the spool worker, the HTTP worker,
//! the template watcher (render mode) and the scheduler into one `JoinSet`,
//! and stops them all when the shutdown future passed in completes.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bake::{Baker, RunOptions, SetupError};
use crate::config::Config;
use crate::http::{self, ApiState};
use crate::metrics::Metrics;
use crate::queue::{Intake, Spool, SpoolError};
use crate::schedule::{self, Request, Settings, Submitter};

/// Fatal daemon errors (exit code 1 or 2); per-page errors never end up here.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Output root, index or sources.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The spool directory.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Another kiln owns the output.
    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),
    /// Off-loopback without a token.
    #[error("refusing to listen on {0} without a token: set the environment variable named by `daemon.token-env` (default KILN_TOKEN), or listen on 127.0.0.1")]
    NoToken(SocketAddr),
    /// Could not bind.
    #[error("failed to listen on {addr}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Things the caller may want to learn once the daemon is up.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The bound HTTP address, if the endpoint is enabled.
    pub http: Option<SocketAddr>,
}

/// Runs until `shutdown` completes; then in-flight pages finish, unprocessed
/// spool files stay for the next start.
pub async fn run(
    cfg: Arc<Config>,
    token: Option<String>,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send,
    ready: impl FnOnce(Ready) + Send,
) -> Result<(), DaemonError> {
    if let Some(addr) = cfg.daemon.listen {
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(DaemonError::NoToken(addr));
        }
    }
    // One writer per output: a second daemon (or a build) stops here.
    let mut lock = crate::lock::try_lock(&cfg.state, "daemon")?;
    let out = crate::release::live_root(&cfg.out);
    // The scheduler retries failed pages itself, with backoff, without holding
    // a fetch slot; the fetcher makes a single attempt per dispatch.
    let attempts = cfg.origin.as_ref().map_or(1, |o| o.retries + 1);
    let mut baker_cfg = (*cfg).clone();
    if let Some(o) = baker_cfg.origin.as_mut() {
        o.retries = 0;
    }
    let baker = Arc::new(Baker::new(Arc::new(baker_cfg), &out, opts).await?);
    baker.sweep_stale_temp_files()?;
    let spool = Spool::open(&cfg.queue)?;
    let metrics = Arc::new(Metrics::new());
    let backlog = Arc::new(schedule::Backlog::default());
    let cancel = CancellationToken::new();
    let (submitter, requests) = schedule::channel(1024);

    let listener = match cfg.daemon.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Bind { addr, source })?,
        ),
        None => None,
    };
    let http_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(addr) = http_addr {
        if let Err(e) = lock.set_http(format!("http://{addr}")) {
            tracing::warn!(error = %e, "could not record the HTTP address in the lock file; CLI commands will use the spool");
        }
    }

    let mut tasks = JoinSet::new();
    tasks.spawn(schedule::worker(
        baker.clone(),
        submitter.jobs().clone(),
        requests,
        Settings {
            debounce: cfg.daemon.debounce,
            concurrency: baker.concurrency(),
            attempts,
            retry_delay: cfg
                .origin
                .as_ref()
                .map_or(Duration::from_millis(200), |o| o.backoff),
            max_retry_delay: cfg.daemon.max_retry_delay,
            give_up_after: cfg.daemon.give_up_after,
        },
        metrics.clone(),
        backlog.clone(),
        cancel.clone(),
    ));
    tasks.spawn(spool_worker(
        spool,
        submitter.clone(),
        SpoolLimits {
            rescan: cfg.daemon.rescan,
            max_bytes: cfg.daemon.max_spool_file,
            max_targets: cfg.daemon.max_targets,
        },
        cancel.clone(),
    ));
    // Pages that were failing when the daemon last stopped (an origin
    // outage, say) are retried: the pending set survives a restart.
    if !baker
        .index()
        .failed_urls()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        let submit = submitter.clone();
        tasks.spawn(async move {
            submit
                .submit(Request {
                    targets: vec![crate::targets::Target::Failed],
                    reply: None,
                })
                .await;
        });
    }
    if let Some(listener) = listener {
        let state = ApiState {
            submit: submitter.clone(),
            index: baker.index().clone(),
            metrics: metrics.clone(),
            token,
            queue: cfg.queue.clone(),
            backlog: backlog.clone(),
            max_targets: cfg.daemon.max_targets,
        };
        let stop = cancel.clone();
        tasks.spawn(async move {
            let app = http::router(state);
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
            {
                tracing::error!(error = %e, "HTTP endpoint stopped");
            }
        });
    }
    if cfg.renders() && cfg.daemon.watch {
        match crate::watch::start(&cfg) {
            Ok(handle) => {
                tasks.spawn(crate::watch::worker(
                    handle,
                    cfg.clone(),
                    baker.clone(),
                    submitter.clone(),
                    cancel.clone(),
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch templates and data; edits need `kiln regen`")
            }
        }
    }
    tracing::info!(http = ?http_addr, queue = %cfg.queue.display(), out = %baker.root().path().display(), "daemon started");
    ready(Ready { http: http_addr });

    shutdown.await;
    tracing::info!("shutting down: finishing in-flight pages");
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    drop(lock);
    tracing::info!("daemon stopped");
    Ok(())
}

/// Caps and timing of the spool intake.
#[derive(Debug, Clone, Copy)]
struct SpoolLimits {
    rescan: Duration,
    max_bytes: u64,
    max_targets: usize,
}

/// Watches `queue/new` (notify, with periodic rescans because notify can
/// miss events) and submits each spool file as one job. A file is removed
/// only when its job completes; failed URLs are recorded in `failed/`.
async fn spool_worker(
    spool: Spool,
    submit: Submitter,
    limits: SpoolLimits,
    shutdown: CancellationToken,
) {
    let rescan_every = limits.rescan;
    // Waits for the reports of submitted files; owned here, so shutdown
    // drops them (and their files stay for the next start).
    let mut waiting: JoinSet<()> = JoinSet::new();
    let fallback = format!("the spool is rescanned every {rescan_every:?}");
    let new_dir = [spool.new_dir()];
    let (_watcher, mut hints, overflow) =
        match crate::watch::watch_dirs(&new_dir, notify::RecursiveMode::NonRecursive, &fallback) {
            Ok(h) => (Some(h.watcher), h.rx, h.overflow),
            Err(e) => {
                crate::watch::report_watch_error(&e, &new_dir[0], &fallback);
                // A closed channel: only the periodic rescan finds files.
                (None, mpsc::channel(1).1, Arc::new(AtomicBool::new(false)))
            }
        };
    let (done_tx, mut done_rx) = mpsc::channel::<PathBuf>(1024);
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    let mut tick = tokio::time::interval(rescan_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut to_check: Vec<PathBuf> = Vec::new();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(p) = done_rx.recv() => { claimed.remove(&p); }
            Some(_) = waiting.join_next(), if !waiting.is_empty() => {}
            Some(p) = hints.recv() => {
                to_check.push(p);
                while let Ok(p) = hints.try_recv() {
                    to_check.push(p);
                }
            }
            _ = tick.tick() => {
                // Start-up scan, periodic safety net, and recovery from overflow.
                overflow.store(false, Ordering::Relaxed);
                match spool.pending() {
                    Ok(files) => to_check.extend(files),
                    Err(e) => tracing::error!(error = %e, "spool rescan failed"),
                }
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            if let Ok(files) = spool.pending() {
                to_check.extend(files);
            }
        }
        for path in to_check {
            if claimed.contains(&path)
                || !path.starts_with(spool.new_dir())
                || !crate::queue::is_spool_name(&path)
            {
                continue;
            }
            claimed.insert(path.clone());
            take_spool_file(&spool, &submit, path, limits, done_tx.clone(), &mut waiting).await;
        }
    }
}

async fn take_spool_file(
    spool: &Spool,
    submit: &Submitter,
    path: PathBuf,
    limits: SpoolLimits,
    done: mpsc::Sender<PathBuf>,
    waiting: &mut JoinSet<()>,
) {
    let file = match spool.read(&path, limits.max_bytes, limits.max_targets) {
        Ok(Intake::Parsed(f)) => f,
        Ok(Intake::Rejected(why)) => {
            match spool.reject(&path, &why) {
                Ok(dest) => {
                    tracing::warn!(file = %path.display(), moved_to = %dest.display(), reason = %why, "spool file not read")
                }
                Err(e) => {
                    tracing::error!(error = %e, reason = %why, "could not move an unreadable spool file aside")
                }
            }
            let _ = done.send(path).await;
            return;
        }
        Err(e) => {
            // Vanished between listing and reading (another daemon?), or unreadable.
            tracing::warn!(error = %e, "skipping spool file");
            let _ = done.send(path).await;
            return;
        }
    };
    if !file.bad.is_empty() {
        let lines: Vec<String> = file
            .bad
            .iter()
            .map(|(n, e)| format!("line {n}: {} # {}", e.text, e.reason))
            .collect();
        match spool.record_failures(&path, "bad-lines", &lines) {
            Ok(rec) => {
                tracing::warn!(file = %path.display(), record = %rec.display(), bad = lines.len(), "spool file has bad lines; kept them in failed/")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record bad spool lines; leaving the file in place");
                return;
            }
        }
    }
    if file.targets.is_empty() {
        if let Err(e) = spool.done(&path) {
            tracing::error!(error = %e, "could not remove spool file");
        }
        let _ = done.send(path).await;
        return;
    }
    let (reply, report) = oneshot::channel();
    let submitted = submit
        .submit(Request {
            targets: file.targets,
            reply: Some(reply),
        })
        .await;
    if submitted.is_none() {
        return; // shutting down; the file stays for the next start
    }
    let spool = spool.clone();
    waiting.spawn(async move {
        // Dropped reply = shutdown before completion: keep the file.
        let Ok(report) = report.await else { return };
        if !report.tally.failed.is_empty() {
            let lines: Vec<String> = report
                .tally
                .failed
                .iter()
                .map(|(u, e)| format!("{u} # {e}"))
                .collect();
            if let Err(e) = spool.record_failures(&path, "failed-urls", &lines) {
                tracing::error!(error = %e, "could not record failed URLs; leaving the spool file in place");
                return;
            }
        }
        if let Err(e) = spool.done(&path) {
            tracing::error!(error = %e, "could not remove processed spool file");
        }
        let _ = done.send(path).await;
    });
}
