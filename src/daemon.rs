//! `kiln daemon`: the supervisor. Spawns the spool intake ([`crate::intake::spool::worker`]), the HTTP worker,
//! the template watcher (render mode) and the scheduler into one `JoinSet`,
//! and stops them all when the shutdown future passed in completes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bake::{Baker, RunOptions, SetupError};
use crate::config::Config;
use crate::index::Index;
use crate::intake::http::{ApiState, HttpIntake};
use crate::intake::spool::{Spool, SpoolError, SpoolIntake, SpoolLimits};
use crate::metrics::Metrics;
use crate::schedule::{self, ChangeListener, Intake, Request, Settings};
use crate::write::WebRoot;

/// Fatal daemon errors (exit code 1 or 2); per-page errors never end up here.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    /// Output root, index or sources.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The spool directory.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The object storage mirror cannot be set up.
    #[error(transparent)]
    Publish(crate::output::publish::PublishError),
    /// Another kiln owns the output.
    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),
    /// Off-loopback without a token.
    #[error(
        "refusing to listen on {0} without a token: set the environment variable named by `daemon.token-env` (default KILN_TOKEN), or listen on 127.0.0.1"
    )]
    NoToken(SocketAddr),
    /// Could not bind.
    #[error("failed to listen on {addr}{}", bind_hint(source, addr))]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// What to do about a listen address that cannot be bound.
fn bind_hint(e: &std::io::Error, addr: &SocketAddr) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            ": another program listens there (another kiln daemon? `ss -ltnp 'sport = :{}'` names it); pick a free port with --listen 127.0.0.1:PORT or `daemon.listen`",
            addr.port()
        ),
        std::io::ErrorKind::PermissionDenied => {
            ": ports below 1024 need privileges; use a port above 1024".to_string()
        }
        _ => String::new(),
    }
}

impl DaemonError {
    /// 2 for what the user fixes (no token off loopback, a second daemon,
    /// an address that is taken or privileged, the setup's own usage
    /// errors), 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            DaemonError::NoToken(_) => 2,
            DaemonError::Bind { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::AddrInUse
                        | std::io::ErrorKind::PermissionDenied
                        | std::io::ErrorKind::AddrNotAvailable
                ) =>
            {
                2
            }
            DaemonError::Locked(e) => e.exit_code(),
            DaemonError::Setup(e) => e.exit_code(),
            DaemonError::Spool(_) | DaemonError::Publish(_) | DaemonError::Bind { .. } => 1,
        }
    }
}

/// How long a starting daemon waits for a one-shot command that holds the
/// output (a build from a deploy hook) before it gives up with exit 2.
const LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

/// Things the caller may want to learn once the daemon is up.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    /// The bound HTTP address, if the endpoint is enabled.
    pub(crate) http: Option<SocketAddr>,
    /// The scheduler's observable state (`kiln serve` follows it).
    pub(crate) backlog: Arc<schedule::Backlog>,
    /// Cancelled when the daemon stops.
    pub(crate) stopping: CancellationToken,
}

/// Opens the index and the baker over it. A damaged index does not stop
/// the daemon: it is rebuilt ([`rebuild_index`]).
async fn open_index(
    cfg: &Arc<Config>,
    root: &WebRoot,
    spool: &Spool,
    opts: RunOptions,
) -> Result<(Index, Arc<Baker>), DaemonError> {
    let damaged = match Index::open(&cfg.state) {
        Ok(index) if Index::marked_damaged(&cfg.state) => {
            drop(index);
            "an earlier run found it damaged".to_string()
        }
        Ok(index) => {
            match Baker::from_parts(cfg.clone(), root.clone(), index.clone(), opts).await {
                Ok(baker) => return Ok((index, Arc::new(baker))),
                Err(SetupError::Index(e)) if e.is_corrupt() => crate::bake::error_chain(&e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) if e.is_corrupt() => crate::bake::error_chain(&e),
        Err(e) => return Err(SetupError::from(e).into()),
    };
    let index = rebuild_index(cfg, root, spool, &damaged)?;
    let baker = Baker::from_parts(cfg.clone(), root.clone(), index.clone(), opts).await?;
    Ok((index, Arc::new(baker)))
}

/// Rebuilds a damaged index from the output and the origin: every page
/// file's URL is queued in the spool first (durable: a kill before the
/// rebuild is done leaves them queued, and a kill before the index is
/// moved aside finds it damaged again), with `all` for the seeds and
/// render routes; then the damaged file is moved aside and a new, empty
/// index opened. The spool intake bakes the queued pages, which fills the
/// index with their records and tags again.
fn rebuild_index(
    cfg: &Config,
    root: &WebRoot,
    spool: &Spool,
    why: &str,
) -> Result<Index, DaemonError> {
    let urls: Vec<String> = root
        .page_files()
        .map_err(SetupError::from)?
        .iter()
        .filter_map(|f| crate::urlmap::url_for(f))
        .collect();
    let mut targets = vec![crate::targets::Target::All];
    targets.extend(
        urls.iter()
            .filter_map(|u| crate::targets::Target::parse(u).ok()),
    );
    // Spool files within the daemon's own limits.
    let per_file = cfg.daemon.max_targets.clamp(1, 5_000);
    for chunk in targets.chunks(per_file) {
        spool.enqueue(chunk)?;
    }
    let aside = Index::set_aside(&cfg.state).map_err(|source| {
        SetupError::Index(crate::index::IndexError::Dir {
            path: cfg.state.clone(),
            source,
        })
    })?;
    tracing::error!(
        damage = why,
        moved_to = %aside.display(),
        pages = urls.len(),
        "the index was damaged: it is rebuilt from the output and the origin (every page in the output is queued and baked again)"
    );
    Ok(Index::open(&cfg.state).map_err(SetupError::from)?)
}

/// Runs until `shutdown` completes; then in-flight pages finish, unprocessed
/// spool files stay for the next start.
pub(crate) async fn run(
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
    // One writer per output: a second daemon stops here at once; a
    // one-shot command (a deploy hook's build) is waited for, a while, so
    // systemd starting the daemon during a build does not fail it.
    let mut lock =
        match tokio::time::timeout(LOCK_WAIT, crate::lock::lock(&cfg.out, "daemon")).await {
            Ok(locked) => locked?,
            Err(_) => crate::lock::try_lock(&cfg.out, "daemon")?,
        };
    let out = crate::release::live_root(&cfg.out);
    // The scheduler retries failed pages itself, with backoff, without holding
    // a fetch slot; the fetcher makes a single attempt per dispatch.
    let attempts = cfg.origin.as_ref().map_or(1, |o| o.retries + 1);
    let opts = RunOptions {
        single_attempt: true,
        ..opts
    };
    // The index and the root are shared with the outputs (bucket, purge)
    // and the HTTP status; the baker gets them as parts.
    let root = crate::write::WebRoot::open(
        &out,
        cfg.output.precompress.clone(),
        cfg.output.precompress_min_bytes,
    )
    .map_err(SetupError::from)?;
    let spool = Spool::open(&cfg.queue)?;
    let swept = spool.sweep_tmp();
    if swept > 0 {
        tracing::info!(swept, "removed files writers abandoned in the spool's tmp/");
    }
    let (index, baker) = open_index(&cfg, &root, &spool, opts).await?;
    baker.sweep_stale_temp_files()?;
    let metrics = Arc::new(Metrics::new());
    let backlog = Arc::new(schedule::Backlog::default());
    let cancel = CancellationToken::new();
    let (submitter, requests) = schedule::channel(1024);

    let listener = match cfg.daemon.listen {
        Some(addr) => Some(bind(addr).map_err(|source| DaemonError::Bind { addr, source })?),
        None => None,
    };
    let http_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(addr) = http_addr {
        if let Err(e) = lock.set_http(format!("http://{addr}")) {
            tracing::warn!(error = %e, "could not record the HTTP address in the lock file; CLI commands will use the spool");
        }
    }

    let mut tasks = JoinSet::new();

    // What a killed daemon had accepted over HTTP and not finished goes
    // back to the spool before any intake starts (guarantee 9).
    let replayed = spool.replay_journal()?;
    if replayed > 0 {
        tracing::info!(
            entries = replayed,
            "replaying requests accepted before the last stop"
        );
    }
    let (journal, journal_writer) = spool.journal(cancel.clone());
    tasks.spawn(journal_writer);

    // Outputs beside the local web root, fed from the outbox: whatever a
    // previous run left is delivered first, then each change as it comes.
    let mut outputs: Vec<ChangeListener> = Vec::new();
    let outbox = crate::output::Outbox::new(
        &cfg,
        index.clone(),
        root.clone(),
        output_retry_policy(&cfg),
        baker.shared(),
    )
    .map_err(DaemonError::Publish)?;
    if let Some(shared) = baker.shared() {
        tasks.spawn(crate::pool::heartbeat(
            shared,
            index.clone(),
            cancel.clone(),
        ));
    }
    let output_stats = outbox.as_ref().map(|o| o.stats.clone());
    let mut fill_outputs: Vec<ChangeListener> = Vec::new();
    if let Some(outbox) = outbox {
        let waker = crate::output::Waker::default();
        tasks.spawn(crate::output::worker(outbox, waker.clone(), cancel.clone()));
        let for_scheduler = waker.clone();
        outputs.push(Box::new(move |_| for_scheduler.wake()));
        fill_outputs.push(Box::new(move |_| waker.wake()));
    }
    // nginx's anonymous misses (fetch mode, with the HTTP endpoint on).
    let filler = (cfg.origin.is_some() && cfg.daemon.fill && listener.is_some()).then(|| {
        Arc::new(crate::fill::Filler::new(
            baker.clone(),
            cfg.daemon.fill_window,
            submitter.clone(),
            fill_outputs,
            metrics.clone(),
            backlog.clone(),
        ))
    });
    // The nginx types map follows the pages (and reloads nginx when set).
    tasks.spawn(crate::nginx::types_worker(
        index.clone(),
        cfg.types_map(),
        cfg.daemon.nginx_reload.clone(),
        backlog.changes.subscribe(),
        cancel.clone(),
    ));
    tasks.spawn(schedule::worker(
        baker.clone(),
        submitter.jobs().clone(),
        requests,
        Settings {
            debounce: cfg.daemon.debounce,
            // URLs at once; requests to the origin stay bounded by
            // `origin.concurrency` in the baker.
            concurrency: baker.pages_in_flight(),
            attempts,
            retry_delay: cfg
                .origin
                .as_ref()
                .map_or(Duration::from_millis(200), |o| o.backoff),
            max_retry_delay: cfg.daemon.max_retry_delay,
            give_up_after: cfg.daemon.give_up_after,
        },
        schedule::Reporting {
            metrics: metrics.clone(),
            backlog: backlog.clone(),
            outputs,
        },
        cancel.clone(),
    ));

    // The Redis intake's connection, shown by the HTTP status.
    let redis_status = cfg
        .redis
        .as_ref()
        .map(|_| Arc::new(crate::intake::redis::RedisStatus::default()));
    // Intakes: everything that turns arrivals into requests.
    let mut intakes: Vec<Box<dyn Intake>> = vec![Box::new(SpoolIntake {
        spool: spool.clone(),
        limits: SpoolLimits {
            rescan: cfg.daemon.rescan,
            max_bytes: cfg.daemon.max_spool_file,
            max_targets: cfg.daemon.max_targets,
        },
    })];
    if let Some(listener) = listener {
        intakes.push(Box::new(HttpIntake {
            listener,
            state: ApiState {
                submit: submitter.clone(),
                index: index.clone(),
                metrics: metrics.clone(),
                token,
                queue: cfg.queue.clone(),
                backlog: backlog.clone(),
                max_targets: cfg.daemon.max_targets,
                journal,
                outputs: output_stats.clone(),
                filler: filler.clone(),
                redis: redis_status.clone(),
                fleet: crate::fleet::FleetSource::of(&cfg),
            },
        }));
    }
    if !cfg.revalidate.is_empty() {
        intakes.push(Box::new(crate::intake::clock::RevalidateIntake {
            rules: cfg.revalidate.clone(),
            index: index.clone(),
            metrics: metrics.clone(),
        }));
    }
    if let (Some(redis), Some(status)) = (cfg.redis.clone(), redis_status.clone()) {
        intakes.push(Box::new(crate::intake::redis::StreamIntake {
            cfg: redis,
            status,
            spool: spool.clone(),
        }));
    }
    if cfg.renders() && cfg.daemon.watch {
        match crate::intake::watch::start(&cfg) {
            Ok(handle) => intakes.push(Box::new(crate::intake::watch::WatchIntake {
                handle,
                cfg: cfg.clone(),
                baker: baker.clone(),
                backlog: backlog.clone(),
            })),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch templates and data; edits need `kiln regen`")
            }
        }
    }
    for intake in intakes {
        tasks.spawn(intake.run(submitter.clone(), cancel.clone()));
    }
    // Pages that were failing when the daemon last stopped (an origin
    // outage, say) are retried: the pending set survives a restart.
    if !index.failed_urls().await.unwrap_or_default().is_empty() {
        let submit = submitter.clone();
        tasks.spawn(async move {
            submit
                .submit(Request {
                    targets: vec![crate::targets::Target::Failed],
                    reply: None,
                    allow_mass_delete: false,
                })
                .await;
        });
    }
    tracing::info!(
        http = %http_addr.map_or("off".to_string(), |a| format!("http://{a}")),
        queue = %cfg.queue.display(),
        out = %root.path().display(),
        "daemon started"
    );
    ready(Ready {
        http: http_addr,
        backlog: backlog.clone(),
        stopping: cancel.clone(),
    });

    shutdown.await;
    tracing::info!("shutting down: finishing in-flight pages");
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    if let Some(filler) = &filler {
        // A fill still baking finishes and is committed like any page.
        filler.finish().await;
        if let Err(e) = baker.flush().await {
            tracing::error!(error = %e, "index flush after the last fills failed");
        }
    }
    drop(lock);
    tracing::info!("daemon stopped");
    Ok(())
}

/// Connections the kernel holds for the listener before it accepts them.
/// A crowd missing one page is a burst of that many connections from nginx
/// at once; with the default 128, the rest were dropped and their SYNs
/// retried a second later (BENCHMARKS.md §10). The kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// The HTTP listener, with a backlog for bursts.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    // As std's listeners do: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How the outputs retry: the origin's first backoff, the daemon's cap and
/// give-up age ([`crate::retry`]).
pub(crate) fn output_retry_policy(cfg: &Config) -> crate::retry::RetryPolicy {
    crate::retry::RetryPolicy {
        base: cfg
            .origin
            .as_ref()
            .map_or(Duration::from_millis(200), |o| o.backoff),
        cap: cfg.daemon.max_retry_delay,
        give_up_after: cfg.daemon.give_up_after,
    }
}
