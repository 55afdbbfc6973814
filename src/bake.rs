//! One page through the pipeline: source (fetch or render) → privacy check →
//! URL→file mapping → atomic write → index record. Also resolves targets to
//! the URLs they name, and tallies results into a [`Summary`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::check::Checker;
use crate::config::{Config, QueryPolicy};
use crate::crawl::{self, Scope};
use crate::index::{self, Index, PageRecord, Redirect, Status};
use crate::source::fetch::{FetchError, Fetcher, Hop};
use crate::source::render::Renderer;
use crate::targets::Target;
use crate::urlmap;
use crate::write::{WebRoot, WriteOutcome};

/// What happened to one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New or changed content written.
    Written,
    /// Same content as on disk; nothing touched.
    Unchanged,
    /// Removed (origin 404/410, or `delete:`).
    Deleted,
    /// Refused by a privacy check; the reason.
    Refused(String),
    /// Failed; the last good file is kept. The error chain.
    Failed(String),
    /// The URL redirects; where to.
    Redirected(String),
    /// Not bakeable by policy (e.g. a query string); why.
    Skipped(String),
}

/// The result of baking one URL.
#[derive(Debug, Clone)]
pub struct PageResult {
    /// URL path asked for.
    pub url: String,
    /// URL path baked after redirects.
    pub final_path: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// In-scope links (or sitemap entries) found in the page.
    pub links: Vec<String>,
}

/// Tally of a run, printed at the end of `build` and `regen`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Pages written.
    pub written: usize,
    /// Pages already current.
    pub unchanged: usize,
    /// Pages removed.
    pub deleted: usize,
    /// Redirects recorded.
    pub redirected: usize,
    /// Skipped by policy.
    pub skipped: usize,
    /// Refused pages with reasons.
    pub refused: Vec<(String, String)>,
    /// Failed pages with errors.
    pub failed: Vec<(String, String)>,
    /// Whether `crawl.max-pages` stopped the crawl.
    pub hit_page_limit: bool,
    /// Wall time.
    #[serde(with = "humantime_serde_secs")]
    pub elapsed: Duration,
    #[serde(skip)]
    started: Option<Instant>,
}

mod humantime_serde_secs {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Summary {
    /// Starts the clock.
    pub fn start() -> Summary {
        Summary {
            started: Some(Instant::now()),
            ..Summary::default()
        }
    }

    /// Counts one result.
    pub fn add(&mut self, r: PageResult) {
        match r.outcome {
            Outcome::Written => self.written += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Redirected(_) => self.redirected += 1,
            Outcome::Skipped(_) => self.skipped += 1,
            Outcome::Refused(why) => self.refused.push((r.url, why)),
            Outcome::Failed(why) => self.failed.push((r.url, why)),
        }
    }

    /// Folds another summary in (for multi-step runs).
    pub fn merge(&mut self, other: Summary) {
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.redirected += other.redirected;
        self.skipped += other.skipped;
        self.refused.extend(other.refused);
        self.failed.extend(other.failed);
        self.hit_page_limit |= other.hit_page_limit;
    }

    /// Stops the clock.
    pub fn finish(&mut self) {
        if let Some(s) = self.started {
            self.elapsed = s.elapsed();
        }
    }

    /// Pages processed.
    pub fn pages(&self) -> usize {
        self.written
            + self.unchanged
            + self.deleted
            + self.redirected
            + self.skipped
            + self.refused.len()
            + self.failed.len()
    }

    /// True when any page failed (exit code 1).
    pub fn has_failures(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The human summary.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.pages() as f64 / secs
        } else {
            0.0
        };
        let mut s = format!(
            "{} pages in {:.2}s ({:.0} pages/s): {} written, {} unchanged, {} deleted, {} redirects, {} refused, {} failed",
            self.pages(),
            secs,
            rate,
            self.written,
            self.unchanged,
            self.deleted,
            self.redirected,
            self.refused.len(),
            self.failed.len()
        );
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        if self.hit_page_limit {
            s.push_str("\n  note: crawl.max-pages was reached; some links were not followed");
        }
        for (url, why) in &self.refused {
            s.push_str(&format!("\n  refused {url}: {why}"));
        }
        for (url, why) in &self.failed {
            s.push_str(&format!("\n  failed  {url}: {why}"));
        }
        s
    }
}

/// Everything a page needs to go from source to disk. Cheap to share by reference.
pub struct Baker {
    cfg: Arc<Config>,
    fetcher: Option<Fetcher>,
    renderer: RwLock<Option<Arc<Renderer>>>,
    checker: Checker,
    root: WebRoot,
    index: Index,
    scope: Scope,
}

/// A fatal setup error (bad root, index, templates).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
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
    /// Nothing to bake from.
    #[error("no page source: set `[origin] url` in site.toml (or pass --origin http://HOST:PORT), or add `[[render]]` routes")]
    NoSource,
}

impl Baker {
    /// Opens the root, the index, and the sources.
    pub fn new(cfg: Arc<Config>, out: &Path) -> Result<Baker, SetupError> {
        let root = WebRoot::open(
            out,
            cfg.output.precompress.clone(),
            cfg.output.precompress_min_bytes,
        )?;
        let index = Index::open(&cfg.state)?;
        let fetcher = match &cfg.origin {
            Some(o) => Some(Fetcher::new(o).map_err(SetupError::Client)?),
            None => None,
        };
        let renderer = if cfg.renders() {
            Some(Arc::new(Renderer::load(&cfg)?))
        } else {
            None
        };
        if fetcher.is_none() && renderer.is_none() {
            return Err(SetupError::NoSource);
        }
        let scope = Scope::new(
            &cfg.crawl,
            cfg.output.query_strings,
            cfg.origin.as_ref().map(|o| o.url.clone()),
        );
        Ok(Baker {
            checker: Checker::new(&cfg.safety),
            cfg,
            fetcher,
            renderer: RwLock::new(renderer),
            root,
            index,
            scope,
        })
    }

    /// Removes temp files a crashed kiln left in the root. Walks the whole
    /// tree, so `build` and `daemon` do it, not every `regen`.
    pub fn sweep_stale_temp_files(&self) -> Result<usize, SetupError> {
        let swept = self.root.sweep_temp_files()?;
        if swept > 0 {
            tracing::info!(swept, "removed temp files left by an earlier crash");
        }
        Ok(swept)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The index handle.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The output root.
    pub fn root(&self) -> &WebRoot {
        &self.root
    }

    /// The crawl scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The current renderer, if in render mode.
    pub fn renderer(&self) -> Option<Arc<Renderer>> {
        self.renderer.read().ok().and_then(|g| g.clone())
    }

    /// Swaps in freshly loaded templates and data (daemon watch).
    pub fn set_renderer(&self, r: Renderer) {
        if let Ok(mut g) = self.renderer.write() {
            *g = Some(Arc::new(r));
        }
    }

    /// Parallel pages.
    pub fn concurrency(&self) -> usize {
        match &self.cfg.origin {
            Some(o) => o.concurrency,
            None => std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
        }
    }

    /// Seeds of a full build: render routes' URLs, then the crawl seeds.
    pub fn build_seeds(&self) -> Vec<String> {
        let mut seeds = Vec::new();
        if let Some(r) = self.renderer() {
            seeds.extend(r.urls());
        }
        if self.fetcher.is_some() {
            seeds.extend(self.cfg.crawl.seeds.iter().cloned());
        }
        seeds
    }

    /// Bakes one URL from whichever source owns it.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn bake(&self, url: &str) -> PageResult {
        let result = self.bake_inner(url).await;
        match &result.outcome {
            Outcome::Failed(e) => {
                tracing::warn!(url, error = %e, "page failed; last good file kept")
            }
            Outcome::Refused(e) => tracing::warn!(url, reason = %e, "page refused"),
            o => tracing::debug!(url, outcome = ?o, "page done"),
        }
        result
    }

    async fn bake_inner(&self, url: &str) -> PageResult {
        let mut result = PageResult {
            url: url.to_string(),
            final_path: None,
            outcome: Outcome::Skipped(String::new()),
            links: Vec::new(),
        };
        let path = match urlmap::apply_query_policy(url, self.cfg.output.query_strings) {
            Ok(p) => p.to_string(),
            Err(e) => {
                result.outcome = Outcome::Skipped(e.to_string());
                return result;
            }
        };
        if let Some(renderer) = self.renderer() {
            if let Some(rendered) = renderer.render(&path) {
                result.final_path = Some(path.clone());
                result.outcome = match rendered {
                    Ok(page) => {
                        let tags = page.tags;
                        self.store(&path, page.body.as_bytes(), page.is_html, tags, Some(200))
                            .await
                    }
                    Err(e) => self.fail(&path, None, error_chain(&e)).await,
                };
                return result;
            }
        }
        let Some(fetcher) = &self.fetcher else {
            result.outcome = Outcome::Skipped(format!(
                "no render route produces {path} and no origin is configured"
            ));
            if self.index.knows(&path).await.unwrap_or(false) {
                // A page whose data file vanished: remove it.
                result.outcome = self.remove(&path, None).await;
            }
            return result;
        };
        let fetched = match fetcher.fetch(&path).await {
            Ok(f) => f,
            Err(e) => {
                let code = match &e {
                    FetchError::ServerError { status, .. } => Some(*status),
                    _ => None,
                };
                result.outcome = self.fail(&path, code, error_chain(&e)).await;
                return result;
            }
        };
        let final_path = fetched.final_path.clone();
        result.final_path = Some(final_path.clone());
        if fetched.left_origin() {
            // Every hop is recorded (a chain may pass through the origin first).
            self.record_hops(&fetched.hops).await;
            let to = fetched
                .hops
                .last()
                .map(|h| h.to.clone())
                .unwrap_or_default();
            result.outcome = Outcome::Redirected(to);
            return result;
        }
        match fetched.status {
            200..=299 => {}
            404 | 410 => {
                result.outcome = self.remove(&path, Some(fetched.status)).await;
                if final_path != path {
                    self.remove(&final_path, Some(fetched.status)).await;
                }
                return result;
            }
            code => {
                result.outcome = self
                    .fail(
                        &path,
                        Some(code),
                        format!("{} answered {code}", fetcher.url_of(&final_path)),
                    )
                    .await;
                return result;
            }
        }
        // Same-origin redirect hops: recorded for `kiln nginx`; the final URL is baked.
        self.record_hops(&fetched.hops).await;
        if let Err(refusal) = self
            .checker
            .check(&final_path, &fetched.headers, &fetched.body)
        {
            let why = refusal.to_string();
            self.record(
                &final_path,
                None,
                None,
                Status::Refused,
                Some(fetched.status),
                Some(why.clone()),
                None,
            )
            .await;
            result.outcome = Outcome::Refused(why);
            return result;
        }
        let is_html = fetched.is_html();
        let tags = fetcher.tags_from(&fetched.headers);
        let outcome = self
            .store(
                &final_path,
                &fetched.body,
                is_html,
                tags,
                Some(fetched.status),
            )
            .await;
        if matches!(outcome, Outcome::Written | Outcome::Unchanged) {
            result.links = self.links_of(&final_path, &fetched.body, is_html);
        }
        result.outcome = outcome;
        result
    }

    fn links_of(&self, page: &str, body: &[u8], is_html: bool) -> Vec<String> {
        if is_html {
            let (base, raw) = crawl::extract_links(body, self.cfg.crawl.assets);
            let mut out: Vec<String> = raw
                .iter()
                .filter_map(|l| self.scope.admit(page, base.as_deref(), l))
                .collect();
            out.dedup();
            out
        } else if page.ends_with(".xml") {
            crawl::sitemap_locs(body)
                .unwrap_or_default()
                .iter()
                .filter_map(|l| self.scope.admit(page, None, l))
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Writes a good body and records it with its tags.
    async fn store(
        &self,
        path: &str,
        body: &[u8],
        is_html: bool,
        mut tags: Vec<String>,
        http_status: Option<u16>,
    ) -> Outcome {
        let rel = match urlmap::file_for(path, is_html, self.cfg.output.query_strings) {
            Ok(r) => r,
            Err(e) => return self.fail(path, http_status, e.to_string()).await,
        };
        let outcome = match blocking(|| self.root.write_page(&rel, body)) {
            Ok(WriteOutcome::Written) => Outcome::Written,
            Ok(WriteOutcome::Unchanged) => Outcome::Unchanged,
            Err(e) => return self.fail(path, http_status, error_chain(&e)).await,
        };
        tags.extend(
            urlmap::path_prefixes(path)
                .into_iter()
                .map(|p| format!("path:{p}")),
        );
        tags.sort();
        tags.dedup();
        let hash = blake3::hash(body).to_hex().to_string();
        self.record(
            path,
            Some(rel_to_string(&rel)),
            Some(hash),
            Status::Ok,
            http_status,
            None,
            Some(tags),
        )
        .await;
        outcome
    }

    /// Records each redirect hop (for `kiln nginx`) and removes the baked
    /// file of a URL that now redirects, unless its target maps to the same
    /// file (`/a` → `/a/`). A target off the origin maps to no file.
    async fn record_hops(&self, hops: &[Hop]) {
        for hop in hops {
            let same_file = urlmap::file_for(&hop.from, true, QueryPolicy::Strip).ok()
                == urlmap::file_for(&hop.to, true, QueryPolicy::Strip).ok();
            if !same_file {
                self.remove_stale_file(&hop.from).await;
            }
            self.index
                .record_redirect(Redirect {
                    from: hop.from.clone(),
                    to: hop.to.clone(),
                    code: hop.code,
                })
                .await;
            self.record(
                &hop.from,
                None,
                None,
                Status::Redirect,
                Some(hop.code),
                Some(format!("redirects to {}", hop.to)),
                None,
            )
            .await;
        }
    }

    async fn fail(&self, path: &str, http_status: Option<u16>, error: String) -> Outcome {
        self.record(
            path,
            None,
            None,
            Status::Failed,
            http_status,
            Some(error.clone()),
            None,
        )
        .await;
        Outcome::Failed(error)
    }

    /// Removes the baked file of `path` (and siblings) and records the deletion.
    pub async fn remove(&self, path: &str, http_status: Option<u16>) -> Outcome {
        match self.remove_file_of(path).await {
            Ok(_) => {
                self.record(
                    path,
                    None,
                    None,
                    Status::Deleted,
                    http_status,
                    None,
                    Some(Vec::new()),
                )
                .await;
                Outcome::Deleted
            }
            Err(e) => self.fail(path, http_status, e).await,
        }
    }

    async fn remove_stale_file(&self, path: &str) {
        if let Err(e) = self.remove_file_of(path).await {
            tracing::warn!(url = path, error = %e, "could not remove the file of a redirected URL");
        }
    }

    async fn remove_file_of(&self, path: &str) -> Result<bool, String> {
        let stored = self
            .index
            .page(path)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.file)
            .map(PathBuf::from);
        let rel = match stored {
            Some(r) => r,
            None => urlmap::file_for(path, true, QueryPolicy::Strip).map_err(|e| e.to_string())?,
        };
        blocking(|| self.root.remove_page(&rel)).map_err(|e| error_chain(&e))
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        url: &str,
        file: Option<String>,
        hash: Option<String>,
        status: Status,
        http_status: Option<u16>,
        error: Option<String>,
        tags: Option<Vec<String>>,
    ) {
        self.index
            .record(PageRecord {
                url: url.to_string(),
                file,
                hash,
                status,
                http_status,
                error,
                fetched_at: index::now(),
                tags,
            })
            .await;
    }

    /// Resolves targets to URLs to bake and URLs to delete.
    pub async fn resolve(&self, targets: &[Target]) -> Result<Resolved, crate::index::IndexError> {
        let mut r = Resolved::default();
        for t in targets {
            match t {
                Target::Url(u) => {
                    r.bake.insert(u.clone());
                }
                Target::Delete(u) => {
                    r.delete.insert(u.clone());
                }
                Target::Tag(tag) => {
                    r.bake
                        .extend(self.index.urls_for_tags(vec![tag.clone()]).await?);
                    for rule in &self.cfg.depend {
                        if rule.tags.is_match(tag) {
                            r.bake.extend(rule.urls.iter().cloned());
                        }
                    }
                    if let Some(renderer) = self.renderer() {
                        r.bake.extend(renderer.urls_for_tag(tag));
                    }
                }
                Target::Glob(pattern) => {
                    let Ok(matcher) = crate::config::path_matcher(pattern) else {
                        continue;
                    };
                    let prefix = urlmap::glob_literal_prefix(pattern);
                    let candidates = self
                        .index
                        .urls_for_tags(vec![format!("path:{prefix}")])
                        .await?;
                    r.bake
                        .extend(candidates.into_iter().filter(|u| matcher.is_match(u)));
                    if let Some(renderer) = self.renderer() {
                        r.bake
                            .extend(renderer.urls().into_iter().filter(|u| matcher.is_match(u)));
                    }
                }
                Target::All => {
                    r.bake.extend(self.index.live_urls().await?);
                    r.bake.extend(self.build_seeds());
                }
            }
        }
        for d in &r.delete {
            r.bake.remove(d);
        }
        Ok(r)
    }
}

/// URLs an event set names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// To (re)generate.
    pub bake: BTreeSet<String>,
    /// To remove.
    pub delete: BTreeSet<String>,
}

fn rel_to_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs short filesystem work from async code without a thread hand-off:
/// `block_in_place` on the multi-threaded runtime (the binary's), inline otherwise.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// `error: cause: cause`, for one-line reports.
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
