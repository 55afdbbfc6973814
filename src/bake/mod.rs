//! One page through the pipeline: source (fetch or render, with its
//! [`PageMeta`] read once) → a pure [`decision::Decision`] (privacy rules
//! included) → URL→file mapping and atomic write ([`store`]) or removal
//! under the mass-delete guard ([`removal`]) → index record (and, through
//! it, the outputs). Target resolution lives in [`crate::targets::resolve`],
//! the run's tally in [`summary`], what became of a page in [`outcome`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::body::Body;
use crate::config::{Config, QueryPolicy};
use crate::index::{Index, IndexError};
use crate::links::Scope;
use crate::privacy::Checker;
use crate::source::PageMeta;
use crate::source::fetch::{FetchError, Fetched, Fetcher, Validators};
use crate::source::render::Renderer;
use crate::targets::Target;
use crate::urlmap;
use crate::write::WebRoot;

mod decision;
mod locks;
mod outcome;
mod removal;
mod setup;
mod store;
mod summary;

use decision::{Decision, decide, private_redirect};
use locks::PathLocks;
use removal::RunMode;
use store::{blocking_if, is_big, page_tags};

pub(crate) use crate::targets::resolve::Resolved;
pub(crate) use outcome::{Outcome, PageError, PageResult, Retry, error_chain};
pub(crate) use removal::MassDelete;
pub(crate) use setup::{RunOptions, SetupError};
pub(crate) use summary::Summary;

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

tokio::task_local! {
    /// Whether a removal this bake leads to is the app's consent: an event
    /// named the page narrowly (its path, or a tag on a few pages: a saved
    /// or deleted object's own), so the guard, there for a broken origin
    /// answering 404 for everything, does not count it.
    static APP_CONSENTS: bool;
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
    /// A one-shot run or a long-running baker: how removals are guarded
    /// and whether a page is baked once per run.
    mode: RunMode,
    /// Which page records queue their outputs (a bucket, a CDN) in the
    /// same transaction ([`crate::output`]).
    outbox: crate::index::OutboxRule,
    /// In pool mode, the index every worker shares ([`crate::pool`]).
    shared: Option<crate::pool::SharedIndex>,
    /// In a full build, the validators of the known pages the crawl has
    /// read from the index ([`Baker::next_known`]) and not baked yet: each
    /// leaves the map when its page is baked, so it holds a batch or two,
    /// never the site. `None` outside a full build.
    known: std::sync::Mutex<Option<KnownBatches>>,
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

/// What a full build has read of the index's known pages, in URL order
/// ([`Baker::next_known`]).
#[derive(Debug, Default)]
pub(crate) struct KnownBatches {
    /// Validators of read pages not baked yet.
    validators: std::collections::HashMap<String, (String, Validators)>,
    /// The last URL read.
    read_up_to: Option<String>,
    /// Every known page is read.
    exhausted: bool,
}

impl KnownBatches {
    /// Whether the batches covered `url` (read in URL order): a URL they
    /// did not hold is then not a known page.
    fn has_read(&self, url: &str) -> bool {
        self.exhausted || self.read_up_to.as_deref().is_some_and(|last| url <= last)
    }
}

impl Baker {
    /// Writes to the index that failed since it was opened: a job during
    /// which this grew runs again ([`crate::index::Index::write_failures`]).
    pub(crate) fn index_write_failures(&self) -> u64 {
        self.index.write_failures()
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
        if let Some(page) = urlmap::query_page(&canonical, &self.cfg.crawl.query_params) {
            let path = page.split('?').next().unwrap_or(&page);
            urlmap::file_for(path, true, QueryPolicy::Strip).ok()?;
            return self.in_scope(path).then_some(page);
        }
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
        setup::concurrency_of(&self.cfg)
    }

    /// Pages a crawl keeps in flight: more than [`Baker::concurrency`], so
    /// pages waiting for the disk (a shared sync) or the CPU overlap with
    /// the requests, which stay bounded by the concurrency.
    pub(crate) fn pages_in_flight(&self) -> usize {
        self.concurrency() * 4
    }

    /// Starts a full build: its listed seeds (render routes' URLs, the
    /// crawl seeds). Every page the index knows is a seed too (an
    /// unchanged page answers 304 and has no body to find links in; a
    /// changed one does, so new pages are found), read from the index in
    /// batches as the crawl goes ([`Baker::next_known`]): every known page
    /// is asked for again, so a build is authoritative: what no route or
    /// origin produces any more is removed (under the mass-delete guard),
    /// in render mode too.
    pub(crate) fn start_full_build(&self) -> Vec<String> {
        if let Ok(mut known) = self.known.lock() {
            *known = Some(KnownBatches::default());
        }
        self.build_seeds()
    }

    /// The next batch of pages the index knows, after `after` in URL
    /// order, with their baked files and validators (fewer than `limit`:
    /// the last batch). The crawl hands the validators of the pages it
    /// will bake to [`Baker::expect`]. On an index error, none: the pages
    /// the crawl reaches are still baked, and the error is said.
    pub(crate) async fn next_known(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Vec<(String, Option<(String, Validators)>)> {
        let batch = match self.index.known_after(after, limit).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "could not read the known pages from the index; the build bakes what it reaches");
                Vec::new()
            }
        };
        if let Ok(mut known) = self.known.lock() {
            let read = known.get_or_insert_with(KnownBatches::default);
            if let Some((last, _)) = batch.last() {
                read.read_up_to = Some(last.clone());
            }
            read.exhausted |= batch.len() < limit;
        }
        batch
    }

    /// The validators a known page will be baked with (from
    /// [`Baker::next_known`]), kept until it is.
    pub(crate) fn expect(&self, url: &str, validators: (String, Validators)) {
        if self.fetcher.is_none() {
            return;
        }
        if let Ok(mut known) = self.known.lock() {
            known
                .get_or_insert_with(KnownBatches::default)
                .validators
                .insert(url.to_string(), validators);
        }
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

    /// The baked file and validators of a page: from the batch a full
    /// build read (taken out: a page is baked once per build), else from
    /// the index (a page the crawl reached by a link before its batch,
    /// or outside a full build). Asking the index per page ends its write
    /// batch each time, which the batches avoid for all but a few pages.
    async fn validators_of(
        &self,
        path: &str,
    ) -> Result<Option<(String, Validators)>, crate::index::IndexError> {
        if let Ok(mut known) = self.known.lock() {
            if let Some(read) = known.as_mut() {
                if let Some(found) = read.validators.remove(path) {
                    return Ok(Some(found));
                }
                if read.has_read(path) {
                    // Read and not there: a new page (or baked already).
                    return Ok(None);
                }
            }
        }
        self.index.validators(path).await
    }

    /// Whether a fill bakes a response: what a crawl would bake (pages,
    /// feeds, documents; assets only with `[crawl] assets`).
    fn fill_bakes(&self, meta: &PageMeta) -> bool {
        meta.is_html
            || self.cfg.crawl.assets
            || !meta
                .content_type
                .as_deref()
                .is_some_and(urlmap::is_asset_type)
    }

    /// [`Baker::bake`] for an event; with `app_consents`, a removal it
    /// leads to bypasses the mass-delete guard ([`APP_CONSENTS`]).
    pub(crate) async fn bake_as(&self, url: &str, app_consents: bool) -> PageResult {
        APP_CONSENTS.scope(app_consents, self.bake(url)).await
    }

    /// Bakes one URL from whichever source owns it.
    #[tracing::instrument(level = "debug", skip(self))]
    pub(crate) async fn bake(&self, url: &str) -> PageResult {
        let _one_at_a_time = self.baking.lock(url).await;
        // In a pool another worker may hold a newer copy than this one's:
        // only a full response can be compared with the shared index.
        let conditional = self.cfg.pool.is_none();
        let (result, _) = BAKE_STARTED
            .scope(now_us().into(), self.bake_inner(url, conditional, false))
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
            .scope(now_us().into(), self.bake_inner(url, false, true))
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
    /// A fill (`filling`) bakes what a crawl would: pages, not assets.
    async fn bake_inner(
        &self,
        url: &str,
        conditional: bool,
        filling: bool,
    ) -> (PageResult, Option<Fetched>) {
        let mut result = PageResult::new(url);
        let path = match urlmap::query_page(url, &self.cfg.crawl.query_params) {
            // A declared query page (`?page=2`), fetched with its query.
            Some(page) => page,
            None => match urlmap::apply_query_policy(url, self.cfg.output.query_strings) {
                Ok(p) => p.to_string(),
                Err(e) => {
                    result.outcome = Outcome::Skipped(e.to_string());
                    return (result, None);
                }
            },
        };
        if let Some(renderer) = self.renderer() {
            if let Some(rendered) = renderer.render(&path) {
                result.final_path = Some(path.clone());
                result.outcome = match rendered {
                    Ok(page) => {
                        let body = Body::from(page.body);
                        let meta = PageMeta {
                            is_html: page.is_html,
                            content_type: page.content_type,
                            status: Some(200),
                            tags: page.tags,
                            ..PageMeta::default()
                        };
                        result.tags = page_tags(&path, &meta.tags);
                        self.store(&path, &body, &meta, None).await
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
        let (recorded, known) = match self.validators_of(&path).await {
            Ok(Some((file, v))) => {
                let there = conditional && self.root.has_page(Path::new(&file)).unwrap_or(false);
                let any = v.etag.is_some() || v.last_modified.is_some();
                (Some(file), (there && any).then_some(v))
            }
            _ => (None, None),
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
        self.classify(&mut result, &path, &fetched, recorded.as_deref(), filling)
            .await;
        (result, Some(fetched))
    }

    /// Decides what a complete response means for the page and stores it.
    async fn classify(
        &self,
        result: &mut PageResult,
        path: &str,
        fetched: &Fetched,
        recorded: Option<&str>,
        filling: bool,
    ) {
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
            Decision::Unchanged => {
                self.settle(path);
                Outcome::Unchanged
            }
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
            Decision::Store { .. } if filling && !self.fill_bakes(&fetched.meta) => {
                Outcome::Skipped(format!(
                    "an asset ({}): a fill bakes pages, as a crawl does; `[crawl] assets = true` bakes assets too",
                    fetched.meta.content_type.as_deref().unwrap_or("no type")
                ))
            }
            Decision::Store { anonymous } => {
                // The recorded file is the page's own only when no
                // redirect led elsewhere.
                let previous = recorded.filter(|_| final_path == path);
                let outcome = self
                    .store(&final_path, &fetched.body, &fetched.meta, previous)
                    .await;
                let stored = matches!(outcome, Outcome::Written | Outcome::Unchanged);
                if stored && anonymous {
                    self.index.mark_anonymous_variant(&final_path).await;
                }
                if stored {
                    result.tags = page_tags(&final_path, &fetched.meta.tags);
                    let is_html = fetched.meta.is_html;
                    result.links = blocking_if(is_big(&fetched.body), || {
                        self.links_of(&final_path, &fetched.body, is_html)
                    });
                }
                outcome
            }
        };
    }
}
