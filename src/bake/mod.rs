//! One page through the pipeline: source (fetch or render) → a pure
//! [`decision::Decision`] (privacy rules included) → URL→file mapping →
//! atomic write → index record (and, through it, the outputs). Target
//! resolution lives in [`crate::targets::resolve`], the run's tally in
//! [`summary`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::body::Body;
use crate::config::{Config, QueryPolicy};
use crate::index::{Index, PageRecord, Redirect};
use crate::links::{self, Scope};
use crate::privacy::Checker;
use crate::source::fetch::{FetchError, Fetched, Fetcher, Hop, Validators};
use crate::source::render::Renderer;
use crate::tag::Tag;
use crate::targets::Target;
use crate::urlmap;
use crate::write::{WebRoot, WriteOutcome};

mod decision;
mod summary;

use decision::{Decision, decide, private_redirect};

use crate::index::IndexError;
pub(crate) use crate::targets::resolve::Resolved;
pub(crate) use summary::Summary;

/// Why a page failed; the last good file is kept. Typed, so callers decide
/// (retry or give up) from the error, not from its text.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PageError {
    /// The origin could not be fetched (down, slow, 5xx, 429, too big...).
    #[error(transparent)]
    Fetch(Arc<FetchError>),
    /// The origin answered a status kiln cannot bake or remove for.
    #[error("{url} answered {status}")]
    Answered {
        /// Full URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The origin answered a success with no body at all.
    #[error(
        "{url} answered {status} with an empty body; the last good file is kept (set `origin.allow-empty = true` if empty pages are real)"
    )]
    Empty {
        /// Full URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The template did not render.
    #[error(transparent)]
    Render(Arc<crate::source::render::RenderError>),
    /// Writing or removing the file failed.
    #[error(transparent)]
    Write(Arc<crate::write::WriteError>),
    /// Refused, but the old file could not be removed.
    #[error("refused ({reason}), and its old file could not be removed")]
    StaleRefused {
        /// The refusal.
        reason: String,
        /// The removal error.
        #[source]
        source: Arc<crate::write::WriteError>,
    },
    /// The work for this page stopped on a bug (a panic); the last good
    /// file is kept and nothing else is affected.
    #[error(
        "internal error while regenerating this page ({0}); the last good file is kept (please report this)"
    )]
    Internal(String),
    /// The daemon's mass-delete guard kept the file.
    #[error(
        "{why}, but removing its file would make more than {limit} removals within {window} (`safety.max-delete-pages` / `safety.max-delete-percent`), so the mass-delete guard kept it; a wrong origin or a broken app looks like this. If the pages are really gone, run `kiln regen --allow-mass-delete failed`"
    )]
    RemovalHeld {
        /// What asked for the removal.
        why: String,
        /// The limit.
        limit: usize,
        /// The window, human readable.
        window: String,
    },
    /// The daemon retried until its policy gave up.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        /// The last attempt's error.
        last: Box<PageError>,
        /// Attempts made.
        attempts: u32,
    },
}

impl PageError {
    /// Whether retrying may help, and after how long the origin asked.
    pub(crate) fn retry(&self) -> Retry {
        match self {
            PageError::Fetch(e) if e.is_transient() => Retry::Transient(e.retry_after()),
            // An app answering nothing is broken for now; so is a disk
            // that is full, read-only or failing: the page keeps its last
            // good file and is tried until it can be written.
            PageError::Empty { .. } => Retry::Transient(None),
            PageError::Write(e) | PageError::StaleRefused { source: e, .. }
                if e.is_local_outage() =>
            {
                Retry::Transient(None)
            }
            _ => Retry::No,
        }
    }

    /// Nothing answered at the origin's address.
    pub(crate) fn is_unreachable(&self) -> bool {
        match self {
            PageError::Fetch(e) => matches!(**e, FetchError::Connect { .. }),
            PageError::GaveUp { last, .. } => last.is_unreachable(),
            _ => false,
        }
    }

    /// `error: cause: cause`, for reports and the index.
    pub(crate) fn chain(&self) -> String {
        error_chain(self)
    }
}

impl PartialEq for PageError {
    fn eq(&self, other: &PageError) -> bool {
        self.chain() == other.chain()
    }
}

impl Eq for PageError {}

/// What happened to one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// New or changed content written.
    Written,
    /// Same content as on disk; nothing touched.
    Unchanged,
    /// Removed (origin 404/410, or `delete:`).
    Deleted,
    /// Refused by a privacy check; the reason.
    Refused(String),
    /// Failed; the last good file is kept.
    Failed(PageError),
    /// The URL redirects; where to.
    Redirected(String),
    /// Not bakeable by policy (e.g. a query string); why.
    Skipped(String),
}

impl Outcome {
    /// One word per outcome, for logs and metric labels.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
            Outcome::Redirected(_) => "redirected",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// Whether the outcome is a failure worth retrying.
    pub(crate) fn retry(&self) -> Retry {
        match self {
            Outcome::Failed(e) => e.retry(),
            _ => Retry::No,
        }
    }
}

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Retry {
    /// Permanent (or not a failure at all).
    #[default]
    No,
    /// Transient (origin down, slow, 5xx, 429): retry, after the origin's
    /// `Retry-After` when it sent one.
    Transient(Option<Duration>),
}

/// The result of baking one URL.
#[derive(Debug, Clone)]
pub(crate) struct PageResult {
    /// URL path asked for.
    pub(crate) url: String,
    /// URL path baked after redirects.
    pub(crate) final_path: Option<String>,
    /// What happened.
    pub(crate) outcome: Outcome,
    /// In-scope links (or sitemap entries) found in the page.
    pub(crate) links: Vec<String>,
    /// Redirect hops recorded on the way.
    pub(crate) hops: usize,
}

impl PageResult {
    /// A result for `url` before anything happened.
    pub(crate) fn new(url: &str) -> PageResult {
        PageResult {
            url: url.to_string(),
            final_path: None,
            outcome: Outcome::Skipped(String::new()),
            links: Vec::new(),
            hops: 0,
        }
    }
}

tokio::task_local! {
    /// When the bake of the current page asked its source (µs since the
    /// epoch): after its event was read, and as close as kiln can get to
    /// the moment the origin read the page. Its records carry it as their
    /// ticket ([`PageRecord::ticket`]), which orders bakes of a page in a
    /// pool: taken before waiting for a request slot instead, a bake that
    /// waited would fetch newer content under an older ticket than a bake
    /// that did not, and the bucket would step back for a moment.
    static BAKE_STARTED: std::cell::Cell<i64>;
}

/// Microseconds since the Unix epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Everything a page needs to go from source to disk. Cheap to share by reference.
pub(crate) struct Baker {
    cfg: Arc<Config>,
    fetcher: Option<Fetcher>,
    renderer: RwLock<Option<Arc<Renderer>>>,
    /// The data files the renderer was loaded from, parsed: the daemon's
    /// watcher reloads through it, so an edit re-reads one file.
    data_cache: Arc<crate::source::render::DataCache>,
    checker: Checker,
    root: WebRoot,
    index: Index,
    scope: Scope,
    /// In a one-shot run, removals wait here until the run is over, so the
    /// mass-delete guard can stop them all ([`Baker::apply_removals`]).
    deferred: Option<Mutex<Vec<Removal>>>,
    /// Which page records queue their outputs (a bucket, a CDN) in the
    /// same transaction ([`crate::output`]).
    outbox: crate::index::OutboxRule,
    /// In pool mode, the index every worker shares ([`crate::pool`]).
    shared: Option<crate::pool::SharedIndex>,
    /// In the daemon (removals not deferred), the mass-delete guard over a
    /// sliding window: see [`RemovalGuard`].
    guard: Option<Mutex<RemovalGuard>>,
    /// In a one-shot run, the pages baked (or being baked) so far: a page
    /// reached again through a redirect is not fetched twice.
    claimed: Option<Mutex<std::collections::HashSet<String>>>,
    /// Validators of every baked page, loaded at once for a full build.
    known: RwLock<Option<std::collections::HashMap<String, (String, Validators)>>>,
    /// Requests to the origin at once (`origin.concurrency`). Held for the
    /// request only: a page waiting for its write to be durable does not
    /// keep the next page from being fetched.
    requests: tokio::sync::Semaphore,
    /// One bake of a URL at a time: the scheduler never runs two, but a
    /// visitor's fill ([`Baker::fill`]) may meet an event's bake, and the
    /// later fetch must be the one whose file stays.
    baking: PathLocks,
}

/// Per-URL async locks, kept only while someone holds or waits for one.
#[derive(Default)]
struct PathLocks(Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// Held while a URL is baked; the entry goes when nobody else waits.
struct PathGuard<'a> {
    locks: &'a PathLocks,
    path: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl PathLocks {
    async fn lock(&self, path: &str) -> PathGuard<'_> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(path.to_string()).or_default().clone()
        };
        let held = Some(lock.clone().lock_owned().await);
        PathGuard {
            locks: self,
            path: path.to_string(),
            lock,
            held,
        }
    }
}

impl Drop for PathGuard<'_> {
    fn drop(&mut self) {
        self.held.take();
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // The map's handle and ours: nobody else holds or waits.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.path);
        }
    }
}

/// What a visitor's fill ([`Baker::fill`]) did: the page's result, and the
/// response it came from (kept so the waiting visitors can be shown it).
pub(crate) struct Filled {
    /// As for any bake.
    pub(crate) result: PageResult,
    /// The origin's response, when one complete response came back.
    pub(crate) fetched: Option<Fetched>,
    /// Whether that response may be shown to any anonymous visitor (the
    /// privacy rules pass); said for answers that are not pages too (a 404).
    pub(crate) shareable: bool,
}

/// What the index holds for a URL a visitor missed ([`Baker::on_record`]).
pub(crate) enum OnRecord {
    /// Baked, and its file is there.
    Baked {
        /// The file in the live root.
        file: PathBuf,
        /// Its recorded `Content-Type`.
        content_type: Option<String>,
    },
    /// Refused by a privacy rule: the app serves it.
    Refused,
    /// Nothing that answers the visitor.
    Unknown,
}

/// What kiln records about a stored body beside its bytes.
struct BodyMeta {
    /// Maps to `index.html` and has links.
    is_html: bool,
    /// The origin's (or the route's) `Content-Type`.
    content_type: Option<String>,
    /// The origin's `ETag` / `Last-Modified`, for the next conditional fetch.
    validators: Option<Validators>,
    /// The status it came with.
    http_status: Option<u16>,
    /// The origin's shared-cache lifetime (seconds).
    max_age: Option<u32>,
}

/// A file removal held back until the end of a run.
#[derive(Debug, Clone)]
struct Removal {
    url: String,
    rel: PathBuf,
    http_status: Option<u16>,
    /// The refusal reason, when the page was refused rather than gone.
    refused: Option<String>,
}

/// The mass-delete guard of a long-running baker (the daemon, `serve`).
///
/// A one-shot run holds its removals back and decides at the end; a daemon
/// has no end, so it counts the removals an origin caused (404/410, a
/// refusal) over a sliding window, with the same limit as a run. The
/// removal that would go over the limit is held (its file stays, the page
/// is marked failed with the reason) and the guard trips: every later
/// automatic removal is held too, with a WARN, `mass_delete_guard` in
/// `/v1/status` and `kiln_removals_held` / `kiln_mass_delete_guard_tripped`
/// in `/metrics`, until the operator consents (`--allow-mass-delete` on a
/// request, which lets removals pass for one window). An explicit `delete:` is its own
/// consent and is never held.
#[derive(Debug, Default)]
struct RemovalGuard {
    /// Pages removed automatically within [`GUARD_WINDOW`], and when: the
    /// limit counts distinct pages, as a run's does.
    recent: std::collections::HashMap<String, std::time::Instant>,
    /// Set once the limit was reached; cleared by consent.
    tripped: bool,
    /// Consent given (`--allow-mass-delete`): removals pass uncounted until then.
    consented_until: Option<std::time::Instant>,
    /// Removals held since the daemon started.
    held: u64,
}

/// How far back the daemon's mass-delete guard counts removals.
pub(crate) const GUARD_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// How a run may treat the site (flags of `build`, `regen`, `daemon`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RunOptions {
    /// Hold removals back until the run ends and apply the mass-delete guard.
    pub(crate) defer_removals: bool,
    /// `--force`: bake from an origin other than the one the site came from.
    pub(crate) force_origin: bool,
    /// One request per fetch: the caller (the daemon's scheduler) retries.
    pub(crate) single_attempt: bool,
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

/// The mass-delete guard stopped a run; nothing was removed.
#[derive(Debug, thiserror::Error)]
#[error(
    "this run would remove {count} baked files of {known} ({examples}); that is more than the limit of {limit} (`safety.max-delete-pages` / `safety.max-delete-percent`), so nothing was removed. A wrong origin or a broken app looks like this; if the pages are really gone, run again with --allow-mass-delete"
)]
pub(crate) struct MassDelete {
    /// Files the run would remove.
    pub(crate) count: usize,
    /// Pages with a file before the run.
    pub(crate) known: usize,
    /// The limit that applied.
    pub(crate) limit: usize,
    /// A few of the URLs.
    pub(crate) examples: String,
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
        );
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
            deferred: opts.defer_removals.then(Default::default),
            guard: (!opts.defer_removals).then(Default::default),
            outbox,
            shared,
            claimed: opts.defer_removals.then(Default::default),
            known: RwLock::new(None),
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

    /// Commits every queued index write (end of a run).
    pub(crate) async fn flush(&self) -> Result<(), crate::index::IndexError> {
        self.index.flush().await
    }

    /// Those of `links` the index has never seen (new pages), in one round trip.
    pub(crate) async fn unknown(&self, links: Vec<String>) -> Vec<String> {
        let unknown = self.index.unknown(links).await.unwrap_or_default();
        match &self.shared {
            // A page another worker of the pool published is known too:
            // discovering it again would fetch it once per worker.
            Some(shared) if !unknown.is_empty() => {
                match shared.unpublished(unknown.clone()).await {
                    Ok(left) => left,
                    Err(e) => {
                        tracing::warn!(error = %e, "the pool's shared index could not be read; linked pages are checked locally only");
                        unknown
                    }
                }
            }
            _ => unknown,
        }
    }

    /// The URL path a visitor's request names, when kiln bakes such a URL
    /// from the origin: canonical, the query policy applied, a path that
    /// maps to a file, inside the crawl scope. `None` sends the visitor to
    /// the app.
    pub(crate) fn bakeable_path(&self, uri: &str) -> Option<String> {
        self.fetcher.as_ref()?;
        let canonical = crate::urlpath::canonical(uri).ok()?;
        let path = urlmap::apply_query_policy(&canonical, self.cfg.output.query_strings).ok()?;
        urlmap::file_for(path, true, QueryPolicy::Strip).ok()?;
        self.in_scope(path).then(|| path.to_string())
    }

    /// Whether the crawl may follow a link (include/exclude globs).
    pub(crate) fn in_scope(&self, path: &str) -> bool {
        self.scope.allows(path)
    }

    /// The crawl limits.
    pub(crate) fn crawl_limits(&self) -> &crate::config::Crawl {
        &self.cfg.crawl
    }

    /// The current renderer, if in render mode.
    pub(crate) fn renderer(&self) -> Option<Arc<Renderer>> {
        self.renderer.read().ok().and_then(|g| g.clone())
    }

    /// The parsed data files the renderer was loaded from.
    pub(crate) fn data_cache(&self) -> Arc<crate::source::render::DataCache> {
        self.data_cache.clone()
    }

    /// Swaps in freshly loaded templates and data (daemon watch).
    pub(crate) fn set_renderer(&self, r: Renderer) {
        if let Ok(mut g) = self.renderer.write() {
            *g = Some(Arc::new(r));
        }
    }

    /// Parallel requests to the origin (or renders).
    pub(crate) fn concurrency(&self) -> usize {
        concurrency_of(&self.cfg)
    }

    /// Pages a crawl keeps in flight: more than [`Baker::concurrency`], so
    /// pages waiting for the disk (a shared sync) or the CPU overlap with
    /// the requests, which stay bounded by the concurrency.
    pub(crate) fn pages_in_flight(&self) -> usize {
        self.concurrency() * 4
    }

    /// Seeds of a full build: render routes' URLs, the crawl seeds, and
    /// every page the index knows (an unchanged page answers 304 and has no
    /// body to find links in; a changed one does, so new pages are found).
    pub(crate) async fn build_seeds_with_known(&self) -> Vec<String> {
        let mut seeds = self.build_seeds();
        // Every page the index knows is asked for again, so a build is
        // authoritative: what no route or origin produces any more is
        // removed (under the mass-delete guard), in render mode too.
        seeds.extend(self.index.live_urls().await.unwrap_or_default());
        if self.fetcher.is_some() {
            // Every page will be asked for: load all validators in one go.
            if let (Ok(all), Ok(mut known)) =
                (self.index.all_validators().await, self.known.write())
            {
                *known = Some(all);
            }
        }
        seeds
    }

    /// In pool mode, the pool's shared index (the outputs publish through it).
    pub(crate) fn shared(&self) -> Option<crate::pool::SharedIndex> {
        self.shared.clone()
    }

    /// Resolves targets to URLs to bake and URLs to delete, noting targets
    /// that matched nothing and why ([`crate::targets::resolve`]).
    pub(crate) async fn resolve(&self, targets: &[Target]) -> Result<Resolved, IndexError> {
        crate::targets::resolve::Sources {
            index: &self.index,
            depend: &self.cfg.depend,
            renderer: self.renderer(),
            seeds: self.build_seeds(),
            shared: self.shared.as_ref(),
        }
        .resolve(targets)
        .await
    }

    pub(crate) fn build_seeds(&self) -> Vec<String> {
        let mut seeds = Vec::new();
        if let Some(r) = self.renderer() {
            seeds.extend(r.urls());
        }
        if self.fetcher.is_some() {
            seeds.extend(self.cfg.crawl.seeds.iter().cloned());
        }
        seeds
    }

    /// The baked file and validators of a page: from the map a full build
    /// loaded (a miss there is a new page), else from the index. Asking the
    /// index per page would also end its write batch each time.
    async fn validators_of(
        &self,
        path: &str,
    ) -> Result<Option<(String, Validators)>, crate::index::IndexError> {
        if let Ok(known) = self.known.read() {
            if let Some(all) = known.as_ref() {
                return Ok(all.get(path).cloned());
            }
        }
        self.index.validators(path).await
    }

    /// Bakes one URL from whichever source owns it.
    #[tracing::instrument(level = "debug", skip(self))]
    pub(crate) async fn bake(&self, url: &str) -> PageResult {
        let _one_at_a_time = self.baking.lock(url).await;
        // In a pool another worker may hold a newer copy than this one's:
        // only a full response can be compared with the shared index.
        let conditional = self.cfg.pool.is_none();
        let (result, _) = BAKE_STARTED
            .scope(now_us().into(), self.bake_inner(url, conditional))
            .await;
        match &result.outcome {
            Outcome::Failed(e) => {
                tracing::warn!(url, error = %e, "page failed; last good file kept")
            }
            Outcome::Refused(e) => {
                tracing::warn!(url, reason = %e, "page refused; its baked file is removed")
            }
            o => tracing::debug!(url, outcome = ?o, "page done"),
        }
        result
    }

    /// Bakes `url` for visitors who found no file (the daemon's fill):
    /// the same pipeline as [`Baker::bake`], never at the same time as
    /// another bake of the URL, always a full request (no validators: the
    /// visitors need a body), and the response kept for them.
    pub(crate) async fn fill(&self, url: &str) -> Filled {
        let _one_at_a_time = self.baking.lock(url).await;
        let (result, fetched) = BAKE_STARTED
            .scope(now_us().into(), self.bake_inner(url, false))
            .await;
        // A stored page passed the privacy rules already (its decision
        // was to store it); anything else (a 404) is checked here.
        let stored = matches!(result.outcome, Outcome::Written | Outcome::Unchanged);
        let shareable = fetched.as_ref().is_some_and(|f| {
            f.hops.is_empty()
                && (stored
                    || self
                        .checker
                        .check(&f.final_path, &f.headers, &f.body)
                        .is_ok())
        });
        Filled {
            result,
            fetched,
            shareable,
        }
    }

    /// The live root's file for a baked URL path (the fill reads a large
    /// page back from it).
    pub(crate) async fn baked_file(&self, path: &str) -> Option<PathBuf> {
        let rel = self.file_of(path).await.ok()?;
        Some(self.root.path().join(rel))
    }

    /// What the index and the root say about `path` before a fill asks
    /// the origin: a miss that raced the bake of its page is shown the
    /// file, a page refused by a privacy rule goes to the app at once.
    pub(crate) async fn on_record(&self, path: &str) -> OnRecord {
        let Ok(Some(page)) = self.index.page(path).await else {
            return OnRecord::Unknown;
        };
        match (page.status, page.file) {
            (crate::index::Status::Refused, _) => OnRecord::Refused,
            (crate::index::Status::Ok, Some(file)) => match self.root.has_page(Path::new(&file)) {
                Ok(true) => OnRecord::Baked {
                    file: self.root.path().join(file),
                    content_type: page.content_type,
                },
                _ => OnRecord::Unknown,
            },
            _ => OnRecord::Unknown,
        }
    }

    /// Bakes one URL; with `conditional`, an unchanged page costs a 304.
    /// The response is returned too when one came back complete.
    async fn bake_inner(&self, url: &str, conditional: bool) -> (PageResult, Option<Fetched>) {
        let mut result = PageResult::new(url);
        let path = match urlmap::apply_query_policy(url, self.cfg.output.query_strings) {
            Ok(p) => p.to_string(),
            Err(e) => {
                result.outcome = Outcome::Skipped(e.to_string());
                return (result, None);
            }
        };
        if let Some(renderer) = self.renderer() {
            if let Some(rendered) = renderer.render(&path) {
                result.final_path = Some(path.clone());
                result.outcome = match rendered {
                    Ok(page) => {
                        let body = Body::from(page.body);
                        let meta = BodyMeta {
                            is_html: page.is_html,
                            content_type: page.content_type,
                            validators: None,
                            http_status: Some(200),
                            max_age: None,
                        };
                        self.store(&path, &body, meta, page.tags).await
                    }
                    Err(e) => self.fail(&path, None, PageError::Render(Arc::new(e))).await,
                };
                return (result, None);
            }
        }
        let Some(fetcher) = &self.fetcher else {
            result.outcome = Outcome::Skipped(format!(
                "no render route produces {path} and no origin is configured"
            ));
            if self.index.knows(&path).await.unwrap_or(false) {
                // A page whose data file vanished: remove it.
                result.outcome = self.gone(&path, None).await;
            }
            return (result, None);
        };
        if !self.claim(&path) {
            result.outcome =
                Outcome::Skipped("already baked in this run (reached through a redirect)".into());
            return (result, None);
        }
        // The validators of the baked copy, when that copy is really there:
        // an unchanged page then costs the origin a 304 and kiln no write.
        let known = match self.validators_of(&path).await {
            Ok(Some((file, v)))
                if conditional && self.root.has_page(Path::new(&file)).unwrap_or(false) =>
            {
                Some(v)
            }
            _ => None,
        };
        let fetched = {
            let _request = self.requests.acquire().await;
            let _ = BAKE_STARTED.try_with(|t| t.set(now_us()));
            fetcher
                .fetch(&path, &|p| self.claim(p), known.as_ref())
                .await
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                if let FetchError::NotOnOrigin(_) = e {
                    // Never a page: not recorded, never fetched again.
                    result.outcome = Outcome::Skipped(e.to_string());
                    return (result, None);
                }
                let code = match &e {
                    FetchError::ServerError { status, .. } => Some(*status),
                    _ => None,
                };
                result.outcome = self.fail(&path, code, PageError::Fetch(Arc::new(e))).await;
                return (result, None);
            }
        };
        self.classify(&mut result, &path, &fetched).await;
        (result, Some(fetched))
    }

    /// Decides what a complete response means for the page and stores it.
    async fn classify(&self, result: &mut PageResult, path: &str, fetched: &Fetched) {
        let final_path = fetched.final_path.clone();
        result.final_path = Some(final_path.clone());
        // Every hop is recorded (a chain may pass through the origin first),
        // unless the redirect itself is private.
        result.hops = self.record_hops(&fetched.hops).await;
        if let Some(first) = fetched.hops.first().filter(|h| h.from == path) {
            if let Some(why) = private_redirect(first, &self.checker) {
                result.outcome = Outcome::Refused(why);
                return;
            }
        }
        let allow_empty = self.cfg.origin.as_ref().is_some_and(|o| o.allow_empty);
        // The page's full URL, for the messages of failures.
        let url = || {
            self.fetcher
                .as_ref()
                .map(|f| f.url_of(&final_path))
                .unwrap_or_default()
        };
        result.outcome = match decide(fetched, &self.checker, allow_empty) {
            Decision::Redirect { to } => Outcome::Redirected(to),
            Decision::Unchanged => Outcome::Unchanged,
            Decision::Gone { status } => {
                let outcome = self.gone(path, Some(status)).await;
                if final_path != path {
                    self.gone(&final_path, Some(status)).await;
                }
                outcome
            }
            Decision::Fail { status } => {
                let url = url();
                self.fail(path, Some(status), PageError::Answered { url, status })
                    .await
            }
            Decision::Refuse { reason } => {
                self.refuse(&final_path, Some(fetched.status), reason).await
            }
            Decision::Empty { status } => {
                let url = url();
                self.fail(path, Some(status), PageError::Empty { url, status })
                    .await
            }
            Decision::Store { anonymous } => {
                let outcome = self.store_fetched(&final_path, fetched).await;
                let stored = matches!(outcome, Outcome::Written | Outcome::Unchanged);
                if stored && anonymous {
                    self.index.mark_anonymous_variant(&final_path).await;
                }
                if stored {
                    let is_html = fetched.is_html();
                    result.links = blocking_if(is_big(&fetched.body), || {
                        self.links_of(&final_path, &fetched.body, is_html)
                    });
                }
                outcome
            }
        };
    }

    /// Stores a fetched page with what the origin said about it: its
    /// tags, type, validators and shared-cache lifetime.
    async fn store_fetched(&self, path: &str, fetched: &Fetched) -> Outcome {
        let tags = self
            .fetcher
            .as_ref()
            .map(|f| f.tags_from(&fetched.headers))
            .unwrap_or_default();
        let content_type = fetched
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let meta = BodyMeta {
            is_html: fetched.is_html(),
            content_type,
            validators: Validators::of(&fetched.headers),
            http_status: Some(fetched.status),
            max_age: crate::source::fetch::shared_max_age(&fetched.headers),
        };
        self.store(path, &fetched.body, meta, tags).await
    }

    /// True when this run may bake `path` (always in the daemon, where
    /// coalescing does this job).
    fn claim(&self, path: &str) -> bool {
        match &self.claimed {
            Some(c) => c
                .lock()
                .map(|mut c| c.insert(path.to_string()))
                .unwrap_or(true),
            None => true,
        }
    }

    fn links_of(&self, page: &str, body: &Body, is_html: bool) -> Vec<String> {
        let (base, raw) = if is_html {
            links::extract_links(body, self.cfg.crawl.assets)
        } else if page.ends_with(".xml") {
            (None, links::sitemap_locs(body).unwrap_or_default())
        } else {
            return Vec::new();
        };
        let Some(scope) = self.scope.page(page, base.as_deref()) else {
            return Vec::new();
        };
        let mut out: Vec<String> = raw.iter().filter_map(|l| scope.admit(l)).collect();
        if !is_html && out.is_empty() && !raw.is_empty() {
            // A sitemap that names only another host (the app's idea of its
            // public name, Wagtail's Site record) was silently useless.
            tracing::warn!(
                sitemap = page,
                listed = raw.len(),
                example = %crate::text::excerpt(&raw[0], 120),
                "the sitemap lists no URL on the origin: kiln follows only the origin's; set `[origin] host` to the host the app writes into it"
            );
        }
        out.dedup();
        out
    }

    /// Writes a good body and records it with its tags. A URL that cannot
    /// be a file is refused with the reason (never a failure: a hostile link
    /// must not fail every build).
    async fn store(
        &self,
        path: &str,
        body: &Body,
        meta: BodyMeta,
        mut tags: Vec<String>,
    ) -> Outcome {
        let BodyMeta {
            is_html,
            content_type,
            validators,
            http_status,
            max_age,
        } = meta;
        let rel = match urlmap::file_for(path, is_html, self.cfg.output.query_strings) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("cannot be stored as a file: {e}");
                self.record(PageRecord::refused(path, http_status, why.clone()))
                    .await;
                return Outcome::Refused(why);
            }
        };
        // Temp files are written here; the wait for their durability holds
        // no thread, so concurrent pages share one sync ([`WebRoot::make_durable`]).
        let staged = blocking_if(self.root.syncs_each_file() || is_big(body), || {
            self.root.stage_page(&rel, body)
        });
        let written = match staged {
            Ok(staged) => match self.root.make_durable(&staged).await {
                Ok(()) => staged.place(),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let written = written.map(|outcome| (outcome, body.hash()));
        let (outcome, hash) = match written {
            Ok((WriteOutcome::Written, h)) => (Outcome::Written, h),
            Ok((WriteOutcome::Unchanged, h)) => (Outcome::Unchanged, h),
            Err(e) => {
                return self
                    .fail(path, http_status, PageError::Write(Arc::new(e)))
                    .await;
            }
        };
        tags.extend(
            urlmap::path_prefixes(path)
                .into_iter()
                .map(|p| Tag::Path(p).into()),
        );
        tags.sort();
        tags.dedup();
        let hash = hash.map(|h| h.to_hex().to_string()).unwrap_or_default();
        // What the origin said it is (or the route); else what the file's
        // extension says. nginx, `serve` and publishing all use this record.
        let content_type =
            content_type.unwrap_or_else(|| urlmap::content_type_of(&rel).to_string());
        let mut record = PageRecord::baked(
            path,
            rel_to_string(&rel),
            hash,
            content_type,
            http_status,
            tags,
        );
        record.validators = validators;
        record.max_age = max_age;
        self.record(record).await;
        outcome
    }

    /// Records each redirect hop (for `kiln nginx`) and removes the baked
    /// file of a URL that now redirects, unless its target maps to the same
    /// file (`/a` → `/a/`). A target off the origin maps to no file.
    async fn record_hops(&self, hops: &[Hop]) -> usize {
        let mut recorded = 0;
        for hop in hops {
            if let Some(why) = private_redirect(hop, &self.checker) {
                // The app answers it, per visitor: nothing recorded for nginx.
                self.refuse(&hop.from, Some(hop.code), why).await;
                continue;
            }
            let same_file = urlmap::file_for(&hop.from, true, QueryPolicy::Strip).ok()
                == urlmap::file_for(&hop.to, true, QueryPolicy::Strip).ok();
            if !same_file {
                if let Err(e) = self.remove_file_of(&hop.from).await {
                    tracing::warn!(url = %hop.from, error = %e, "could not remove the file of a redirected URL");
                }
            }
            self.index
                .record_redirect(Redirect {
                    from: hop.from.clone(),
                    to: hop.to.clone(),
                    code: hop.code,
                })
                .await;
            self.record(PageRecord::redirect(&hop.from, hop.code, &hop.to))
                .await;
            recorded += 1;
        }
        recorded
    }

    /// Records a page in the index. With outputs configured, the index
    /// also queues them when the record changes what they should hold
    /// (compared with the stored row, so a change whose record a kill lost
    /// is still published when the page is baked again).
    async fn record(&self, mut record: PageRecord) {
        record.outbox = self.outbox;
        record.ticket = BAKE_STARTED.try_with(std::cell::Cell::get).unwrap_or(0);
        self.index.record(record).await;
    }

    async fn fail(&self, path: &str, http_status: Option<u16>, error: PageError) -> Outcome {
        self.record(PageRecord::failed(path, http_status, error.chain()))
            .await;
        Outcome::Failed(error)
    }

    /// A page that must not be served static any more: its file goes (now,
    /// or at the end of a one-shot run) and the app serves it live.
    async fn refuse(&self, path: &str, http_status: Option<u16>, reason: String) -> Outcome {
        let record = PageRecord::refused(path, http_status, reason.clone());
        match self.file_of(path).await {
            Ok(rel) if self.deferred.is_some() => {
                // Recorded when the removal is applied: the record says the
                // file is gone, which is true only then (and the outputs
                // must not drop a page the mass-delete guard keeps).
                self.defer(Removal {
                    url: path.to_string(),
                    rel,
                    http_status,
                    refused: Some(reason.clone()),
                });
            }
            Ok(rel) => {
                if let Err(held) = self
                    .may_remove(path, &rel, format!("refused ({reason})"))
                    .await
                {
                    return self.fail(path, http_status, held).await;
                }
                let removed = self.root.remove_page(&rel);
                self.record(record).await;
                if let Err(e) = removed {
                    return Outcome::Failed(PageError::StaleRefused {
                        reason,
                        source: Arc::new(e),
                    });
                }
            }
            Err(_) => self.record(record).await,
        }
        Outcome::Refused(reason)
    }

    /// The origin says the page is gone (404/410), or its data file went:
    /// remove its file. `Deleted` only when a file was really there.
    async fn gone(&self, path: &str, http_status: Option<u16>) -> Outcome {
        let rel = match self.file_of(path).await {
            Ok(rel) => rel,
            Err(e) => {
                return Outcome::Skipped(format!(
                    "not a page ({e}); the origin answered {}",
                    http_status.map_or("nothing".into(), |c| c.to_string())
                ));
            }
        };
        let exists = match self.root.has_page(&rel) {
            Ok(e) => e,
            Err(e) => {
                return self
                    .fail(path, http_status, PageError::Write(Arc::new(e)))
                    .await;
            }
        };
        if !exists {
            // Siblings a crash left behind go too (nothing else names them).
            let _ = self.root.remove_page(&rel);
            // A known page's record (a kill may have come between its
            // file's removal and its record) tells the outputs it is gone.
            // A URL never baked that the origin answers 404 for (a broken
            // link) is recorded as missing: the index then knows it, so the
            // next page linking to it does not fetch it again on every regen.
            if self.index.ever_answered(path).await.unwrap_or(false) {
                self.record(PageRecord::deleted(path, http_status)).await;
            } else if http_status.is_some() {
                self.record(PageRecord::missing(path, http_status)).await;
            }
            return Outcome::Skipped(match http_status {
                Some(code) => format!("origin answered {code}; there was no baked file"),
                None => "no baked file".into(),
            });
        }
        if self.deferred.is_some() {
            self.defer(Removal {
                url: path.to_string(),
                rel,
                http_status,
                refused: None,
            });
            return Outcome::Deleted;
        }
        let why = match http_status {
            Some(code) => format!("the origin answered {code}"),
            None => "its source is gone".to_string(),
        };
        if let Err(held) = self.may_remove(path, &rel, why).await {
            return self.fail(path, http_status, held).await;
        }
        self.remove_now(path, &rel, http_status).await
    }

    /// The daemon's mass-delete guard ([`RemovalGuard`]): Ok when `path`'s
    /// file may go now, else the error that keeps it. Only files that
    /// exist count.
    async fn may_remove(&self, path: &str, rel: &Path, why: String) -> Result<(), PageError> {
        let Some(guard) = &self.guard else {
            return Ok(());
        };
        if !self.root.has_page(rel).unwrap_or(false) {
            return Ok(());
        }
        let baked = self.index.baked_count().await.unwrap_or(0);
        let now = std::time::Instant::now();
        let limit;
        let held = {
            let Ok(mut g) = guard.lock() else {
                return Ok(());
            };
            g.recent
                .retain(|_, t| now.duration_since(*t) <= GUARD_WINDOW);
            // The site as it was before this window's removals, as a run
            // counts it before its own.
            limit = self.limit_for(baked + g.recent.len());
            if g.consented_until.is_some_and(|until| now < until) {
                return Ok(());
            }
            if g.tripped || (!g.recent.contains_key(path) && g.recent.len() >= limit) {
                let first = !g.tripped;
                g.tripped = true;
                g.held += 1;
                Some(first)
            } else {
                g.recent.insert(path.to_string(), now);
                None
            }
        };
        match held {
            None => Ok(()),
            Some(first) => {
                if first {
                    tracing::warn!(url = %path, limit, window = %humantime::format_duration(GUARD_WINDOW), "mass-delete guard tripped: the origin is removing more pages than the limit allows; their files are kept until `kiln regen --allow-mass-delete failed`");
                } else {
                    tracing::warn!(url = %path, "mass-delete guard kept a file the origin removed");
                }
                Err(PageError::RemovalHeld {
                    why,
                    limit,
                    window: humantime::format_duration(GUARD_WINDOW).to_string(),
                })
            }
        }
    }

    /// The most files one run (or one guard window) may remove.
    async fn removal_limit(&self) -> usize {
        let known = self.index.baked_count().await.unwrap_or(0);
        self.limit_for(known)
    }

    /// The mass-delete limit for a site of `known` baked pages (one rule
    /// for runs and the daemon).
    fn limit_for(&self, known: usize) -> usize {
        let s = &self.cfg.safety;
        s.max_delete_pages
            .min((known * s.max_delete_percent / 100).max(5))
    }

    /// The operator consented to a mass removal (`--allow-mass-delete` on a
    /// request): removals pass for one guard window (the request's own and
    /// any that follow it closely), then the guard counts afresh.
    pub(crate) fn consent_to_removals(&self) {
        if let Some(guard) = &self.guard {
            if let Ok(mut g) = guard.lock() {
                if g.tripped {
                    tracing::info!("mass-delete guard reset by an --allow-mass-delete request");
                }
                g.tripped = false;
                g.recent.clear();
                g.consented_until = Some(std::time::Instant::now() + GUARD_WINDOW);
            }
        }
    }

    /// The guard's state for status: (tripped, removals held so far).
    pub(crate) fn removals_held(&self) -> (bool, u64) {
        self.guard
            .as_ref()
            .and_then(|g| g.lock().ok().map(|g| (g.tripped, g.held)))
            .unwrap_or((false, 0))
    }

    async fn remove_now(&self, path: &str, rel: &Path, http_status: Option<u16>) -> Outcome {
        match self.root.remove_page(rel) {
            Ok(removed) => {
                self.record(PageRecord::deleted(path, http_status)).await;
                if removed {
                    Outcome::Deleted
                } else {
                    Outcome::Skipped("no baked file".into())
                }
            }
            Err(e) => {
                self.fail(path, http_status, PageError::Write(Arc::new(e)))
                    .await
            }
        }
    }

    /// Removes the baked file of `path` at once (an explicit `delete:`,
    /// which is its own consent and never deferred).
    pub(crate) async fn remove(&self, path: &str, http_status: Option<u16>) -> Outcome {
        match self.file_of(path).await {
            Ok(rel) => self.remove_now(path, &rel, http_status).await,
            Err(e) => Outcome::Skipped(format!("not a page: {e}")),
        }
    }

    fn defer(&self, r: Removal) {
        if let Some(d) = &self.deferred {
            if let Ok(mut d) = d.lock() {
                d.push(r);
            }
        }
    }

    /// Applies the removals a one-shot run held back, unless there are more
    /// than the mass-delete limit and `allow_mass` is false: then nothing is
    /// removed and [`MassDelete`] says why. Returns how many files went.
    pub(crate) async fn apply_removals(&self, allow_mass: bool) -> Result<usize, MassDelete> {
        let pending: Vec<Removal> = match &self.deferred {
            Some(d) => d
                .lock()
                .map(|mut d| std::mem::take(&mut *d))
                .unwrap_or_default(),
            None => return Ok(0),
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let known = self.index.baked_count().await.unwrap_or(0);
        let limit = self.removal_limit().await;
        if pending.len() > limit && !allow_mass {
            let examples: Vec<&str> = pending.iter().take(3).map(|r| r.url.as_str()).collect();
            return Err(MassDelete {
                count: pending.len(),
                known,
                limit,
                examples: format!("e.g. {}", examples.join(", ")),
            });
        }
        let mut removed = 0;
        for r in pending {
            let gone = match self.root.remove_page(&r.rel) {
                Ok(gone) => gone,
                Err(e) => {
                    tracing::error!(url = %r.url, error = %error_chain(&e), "could not remove file");
                    continue;
                }
            };
            removed += usize::from(gone);
            let record = match &r.refused {
                None => PageRecord::deleted(&r.url, r.http_status),
                Some(reason) => PageRecord::refused(&r.url, r.http_status, reason.clone()),
            };
            self.record(record).await;
        }
        Ok(removed)
    }

    /// The file a URL is baked into: the index's record, else the mapping.
    async fn file_of(&self, path: &str) -> Result<PathBuf, String> {
        let stored = self
            .index
            .page(path)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.file)
            .map(PathBuf::from);
        match stored {
            Some(r) => Ok(r),
            None => urlmap::file_for(path, true, QueryPolicy::Strip).map_err(|e| e.to_string()),
        }
    }

    async fn remove_file_of(&self, path: &str) -> Result<bool, String> {
        let rel = self.file_of(path).await?;
        self.root.remove_page(&rel).map_err(|e| error_chain(&e))
    }
}

fn rel_to_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn concurrency_of(cfg: &Config) -> usize {
    match &cfg.origin {
        Some(o) => o.concurrency,
        None => std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
    }
}

/// Runs work that may take long (a big body, a sync per file) from async
/// code with `block_in_place` on the multi-threaded runtime, so the other
/// tasks of this worker move on; inline otherwise. A typical page's work
/// (tens of microseconds) runs inline: handing the worker over costs more.
fn blocking_if<T>(long: bool, f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) if long => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A body whose parsing or compression takes long enough to hand its
/// worker thread over (a page is usually well under this).
fn is_big(body: &Body) -> bool {
    body.len() > 1 << 20
}

/// `error: cause: cause`, for one-line reports.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}
