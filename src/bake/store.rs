//! Storing a page: its file written through the web root, its record (tags,
//! type, validators, redirect hops) queued in the index, its links found.

use std::path::Path;
use std::sync::Arc;

use crate::body::Body;
use crate::config::QueryPolicy;
use crate::index::{PageRecord, Redirect};
use crate::links;
use crate::source::PageMeta;
use crate::source::fetch::Hop;
use crate::tag::Tag;
use crate::urlmap;
use crate::write::WriteOutcome;

use super::decision::private_redirect;
use super::outcome::{Outcome, PageError};
use super::{BAKE_STARTED, Baker};

/// Below this a page may shrink by any amount without the mass-change
/// guard counting it (a short page edited shorter).
const SHRINK_MIN_BYTES: u64 = 1024;

impl Baker {
    /// The in-scope links of a stored page (an HTML page's links, a
    /// sitemap's entries).
    pub(super) fn links_of(&self, page: &str, body: &Body, is_html: bool) -> Vec<String> {
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
                "the sitemap lists no URL on the origin: kiln follows only the site's own; set `[site] url` to the public address the app writes into it"
            );
        }
        out.dedup();
        out
    }

    /// Writes a good body and records it with its tags. A URL that cannot
    /// be a file is refused with the reason (never a failure: a hostile link
    /// must not fail every build). `previous` is the file the index had for
    /// the page: when the page now goes elsewhere (its type changed, or a
    /// kiln before the typed tree baked it), that file goes.
    pub(super) async fn store(
        &self,
        path: &str,
        body: &Body,
        meta: &PageMeta,
        previous: Option<&str>,
    ) -> Outcome {
        let PageMeta {
            is_html,
            content_type,
            validators,
            status: http_status,
            max_age,
            tags,
        } = meta;
        let (is_html, http_status) = (*is_html, *http_status);
        if !is_html && path.contains('?') {
            // The block serves a query page from the query tree as HTML.
            let why = "a query page that is not HTML is the app's to answer".to_string();
            self.record(PageRecord::refused(path, http_status, why.clone()))
                .await;
            return Outcome::Refused(why);
        }
        let file = match urlmap::page_file(
            path,
            is_html,
            self.cfg.output.query_strings,
            &self.cfg.crawl.query_params,
        ) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("cannot be stored as a file: {e}");
                self.record(PageRecord::refused(path, http_status, why.clone()))
                    .await;
                return Outcome::Refused(why);
            }
        };
        // What the origin said it is (or the route); else what the file's
        // extension says. nginx, `serve` and publishing all use this record,
        // and it decides whether the file goes to the typed tree.
        let content_type = content_type
            .clone()
            .unwrap_or_else(|| urlmap::content_type_of(&file).to_string());
        let rel = urlmap::placed(file, &content_type);
        // Temp files are written here; the wait for their durability holds
        // no thread, so concurrent pages share one sync ([`WebRoot::make_durable`]).
        let staged = blocking_if(self.root.syncs_each_file() || is_big(body), || {
            self.root.stage_page(&rel, body)
        });
        // A page that shrinks to a tenth or less of a file of some size is
        // what a broken template or app looks like: a site-wide one is held.
        let shrank = staged
            .as_ref()
            .ok()
            .and_then(|s| s.replaced_len())
            .filter(|old| *old >= SHRINK_MIN_BYTES && body.len() * 10 <= *old);
        if let Some(old) = shrank {
            if let Err(held) = self.may_shrink(path, old, body.len()).await {
                return self.fail(path, http_status, held).await;
            }
        }
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
        let tags = page_tags(path, tags);
        let hash = hash.map(|h| h.to_hex().to_string()).unwrap_or_default();
        if let Some(old) = previous.map(Path::new).filter(|old| *old != rel) {
            if let Err(e) = self.root.remove_page(old) {
                tracing::warn!(url = path, file = %old.display(), error = %e, "could not remove the page's old file");
            }
        }
        let mut record = PageRecord::baked(
            path,
            rel.to_string_lossy().into_owned(),
            hash,
            content_type,
            http_status,
            tags,
        );
        record.validators = validators.clone();
        record.max_age = *max_age;
        self.record(record).await;
        self.settle(path);
        outcome
    }

    /// Records each redirect hop (for `kiln nginx`) and removes the baked
    /// file of a URL that now redirects, unless its target maps to the same
    /// file (`/a` → `/a/`). A target off the origin maps to no file.
    pub(super) async fn record_hops(&self, hops: &[Hop]) -> usize {
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
    pub(super) async fn record(&self, mut record: PageRecord) {
        record.outbox = self.outbox;
        record.ticket = BAKE_STARTED.try_with(std::cell::Cell::get).unwrap_or(0);
        self.index.record(record).await;
    }

    pub(super) async fn fail(
        &self,
        path: &str,
        http_status: Option<u16>,
        error: PageError,
    ) -> Outcome {
        self.record(PageRecord::failed(path, http_status, error.chain()))
            .await;
        Outcome::Failed(error)
    }
}

/// The tags a page is recorded with: its source's, and a `path:` tag for
/// each prefix of its path.
pub(super) fn page_tags(path: &str, tags: &[String]) -> Vec<String> {
    let mut all = tags.to_vec();
    all.extend(
        urlmap::path_prefixes(path)
            .into_iter()
            .map(|p| Tag::Path(p).into()),
    );
    all.sort();
    all.dedup();
    all
}

/// Runs work that may take long (a big body, a sync per file) from async
/// code with `block_in_place` on the multi-threaded runtime, so the other
/// tasks of this worker move on; inline otherwise. A typical page's work
/// (tens of microseconds) runs inline: handing the worker over costs more.
pub(super) fn blocking_if<T>(long: bool, f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) if long => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A body whose parsing or compression takes long enough to hand its
/// worker thread over (a page is usually well under this).
pub(super) fn is_big(body: &Body) -> bool {
    body.len() > 1 << 20
}
