//! Opening a [`Baker`]: the root, the index, the sources, and the checks
//! that refuse to start (no source, another origin's output), with the
//! fatal errors and the exit code each one carries.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::index::Index;
use crate::links::Scope;
use crate::privacy::Checker;
use crate::source::fetch::Fetcher;
use crate::source::render::Renderer;
use crate::write::WebRoot;

use super::Baker;
use super::locks::PathLocks;
use super::removal::RunMode;

/// How a run may treat the site (flags of `build`, `regen`, `daemon`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunOptions {
    /// Hold removals back until the run ends and apply the mass-delete guard.
    pub(crate) defer_removals: bool,
    /// `--force`: bake from an origin other than the one the site came from.
    pub(crate) force_origin: bool,
    /// One request per fetch: the caller (the daemon's scheduler) retries.
    pub(crate) single_attempt: bool,
    /// `--allow-mass-delete` on a one-shot run: pages may shrink to a
    /// tenth or less however many do (removals are decided at the end).
    pub(crate) allow_mass_change: bool,
}

/// A fatal setup error (bad root, index, templates).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// The output root.
    #[error(transparent)]
    Write(#[from] crate::write::WriteError),
    /// The index.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// The templates or data.
    #[error(transparent)]
    Render(#[from] crate::source::render::RenderError),
    /// The HTTP client.
    #[error("failed to set up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The forbidden-pattern matcher.
    #[error("`safety.forbid-patterns` cannot be compiled")]
    Patterns(#[source] aho_corasick::BuildError),
    /// Pool mode's shared index cannot be reached.
    #[error(
        "pool mode needs its shared index in Redis at {url}, which cannot be reached: {source}; start Redis (or fix `[intake] redis`), then run again"
    )]
    Pool {
        /// Redis URL.
        url: String,
        /// The cause.
        source: redis::RedisError,
    },
    /// Nothing to bake from.
    #[error(
        "no page source: set `[origin] url` in site.toml (or pass --origin http://HOST:PORT), or add `[[render]]` routes"
    )]
    NoSource,
    /// The output was baked from another origin.
    #[error(
        "this output was baked from {recorded}, not {given}: baking it from another origin could replace or delete every page; check `[origin] url` (or --origin), or pass --force if the site really moved"
    )]
    OtherOrigin {
        /// The origin in the index.
        recorded: String,
        /// The origin configured now.
        given: String,
    },
}

impl SetupError {
    /// 2 when the user must fix the setup (no page source, the wrong
    /// origin), 1 for failures of the machine (disk, index, client).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            // The templates or data are the user's to fix, as a config is.
            SetupError::NoSource | SetupError::OtherOrigin { .. } | SetupError::Render(_) => 2,
            _ => 1,
        }
    }
}

impl Baker {
    /// Opens the root `out`, the index, and the sources.
    pub(crate) async fn new(
        cfg: Arc<Config>,
        out: &Path,
        opts: RunOptions,
    ) -> Result<Baker, SetupError> {
        let root = WebRoot::open(
            out,
            cfg.output.precompress.clone(),
            cfg.output.precompress_min_bytes,
        )?;
        Baker::with_root(cfg, root, opts).await
    }

    /// Like [`Baker::new`] for a root opened by the caller (a release directory).
    pub(crate) async fn with_root(
        cfg: Arc<Config>,
        root: WebRoot,
        opts: RunOptions,
    ) -> Result<Baker, SetupError> {
        let index = Index::open(&cfg.state)?;
        Baker::from_parts(cfg, root, index, opts).await
    }

    /// A baker over parts the caller opened (the daemon shares the index
    /// and the root with its outputs).
    pub(crate) async fn from_parts(
        cfg: Arc<Config>,
        root: WebRoot,
        index: Index,
        opts: RunOptions,
    ) -> Result<Baker, SetupError> {
        let root = root.with_durability(cfg.output.durability);
        let spill_dir = cfg.state.parent().unwrap_or(Path::new(".")).to_path_buf();
        let fetcher = match &cfg.origin {
            Some(o) => {
                let attempts = if opts.single_attempt {
                    1
                } else {
                    o.retries + 1
                };
                Some(Fetcher::new(o, &spill_dir, attempts).map_err(SetupError::Client)?)
            }
            None => None,
        };
        if let Some(o) = &cfg.origin {
            let given = o.url.origin().ascii_serialization();
            match index.meta("origin").await? {
                Some(recorded) if recorded != given && !opts.force_origin => {
                    return Err(SetupError::OtherOrigin { recorded, given });
                }
                Some(recorded) if recorded == given => {}
                _ => index.set_meta("origin", given).await,
            }
        }
        let data_cache = Arc::new(crate::source::render::DataCache::default());
        let renderer = if cfg.renders() {
            let renderer = Renderer::load_with(&cfg, Some(&data_cache))?;
            for w in &renderer.warnings {
                tracing::warn!("{w}");
            }
            Some(Arc::new(renderer))
        } else {
            None
        };
        if fetcher.is_none() && renderer.is_none() {
            return Err(SetupError::NoSource);
        }
        let shared = match &cfg.pool {
            Some(pool) => Some(crate::pool::SharedIndex::connect(pool).await.map_err(
                |source| SetupError::Pool {
                    url: pool.redis.clone(),
                    source,
                },
            )?),
            None => None,
        };
        let scope = Scope::new(
            &cfg.crawl,
            cfg.output.query_strings,
            cfg.origin.as_ref().map(|o| o.url.clone()),
        )
        .with_public(cfg.origin.as_ref().and_then(|o| o.public.clone()));
        let concurrency = concurrency_of(&cfg);
        let outbox = if cfg.pool.is_some() {
            crate::index::OutboxRule::Every
        } else if !cfg.publish.is_empty() || !cfg.purge.is_empty() {
            crate::index::OutboxRule::WhenChanged
        } else {
            crate::index::OutboxRule::Never
        };
        Ok(Baker {
            checker: Checker::new(
                &cfg.safety,
                cfg.origin.as_ref().map(|o| &o.headers),
                cfg.origin.as_ref().map_or(&[][..], |o| &o.vary_ignore),
            )
            .map_err(SetupError::Patterns)?,
            cfg,
            fetcher,
            renderer: RwLock::new(renderer),
            data_cache,
            root,
            index,
            scope,
            mode: RunMode::new(opts.defer_removals, opts.allow_mass_change),
            outbox,
            shared,
            known: std::sync::Mutex::new(None),
            requests: tokio::sync::Semaphore::new(concurrency),
            baking: PathLocks::default(),
        })
    }

    /// Removes temp files a crashed kiln left in the root. Walks the whole
    /// tree, so `build` and `daemon` do it, not every `regen`. The caller
    /// holds the output lock.
    pub(crate) fn sweep_stale_temp_files(&self) -> Result<usize, SetupError> {
        let swept = self.root.sweep_temp_files()?;
        if swept > 0 {
            tracing::info!(swept, "removed temp files left by an earlier crash");
        }
        Ok(swept)
    }
}

/// Requests to the origin at once (or renders, in render mode).
pub(super) fn concurrency_of(cfg: &Config) -> usize {
    match &cfg.origin {
        Some(o) => o.concurrency,
        None => std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
    }
}
