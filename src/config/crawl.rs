//! `[crawl]`: which links a crawl follows.

use globset::GlobSet;
use serde::Deserialize;

use super::{ConfigError, Invalid, glob_set};

/// `[crawl]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCrawl {
    /// Start URLs (paths), `/sitemap.xml` is parsed as a sitemap.
    pub(crate) seeds: Option<Vec<String>>,
    /// URL path globs to include.
    pub(crate) include: Option<Vec<String>>,
    /// URL path globs to exclude.
    pub(crate) exclude: Option<Vec<String>>,
    /// Stop after this many URLs.
    pub(crate) max_pages: Option<usize>,
    /// Stop following links deeper than this.
    pub(crate) max_depth: Option<usize>,
    /// Also bake same-origin assets (CSS, JS, images).
    pub(crate) assets: Option<bool>,
    /// Also bake script endpoints (`*.php`, `/wp-admin/`, `/wp-json/`).
    pub(crate) script_endpoints: Option<bool>,
    /// Query parameters whose values are pages of their own (`page`).
    pub(crate) query_params: Option<Vec<String>>,
}

/// `[crawl]`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Crawl {
    /// Start paths.
    pub(crate) seeds: Vec<String>,
    /// Included paths.
    pub(crate) include: GlobSet,
    /// Excluded paths.
    pub(crate) exclude: GlobSet,
    /// URL budget.
    pub(crate) max_pages: usize,
    /// Link depth budget.
    pub(crate) max_depth: usize,
    /// Follow asset links.
    pub(crate) assets: bool,
    /// Bake script endpoints too ([`is_script_endpoint`]).
    pub(crate) script_endpoints: bool,
    /// Query parameters whose values are pages of their own, sorted
    /// ([`crate::urlmap::query_page`]).
    pub(crate) query_params: Vec<String>,
}

impl Crawl {
    /// Whether a crawl (or a fill) may bake `path`: inside `include`,
    /// outside `exclude`, and not a script endpoint unless asked.
    pub(crate) fn allows(&self, path: &str) -> bool {
        self.include.is_match(path)
            && !self.exclude.is_match(path)
            && (self.script_endpoints || !is_script_endpoint(path))
    }
}

/// Query parameters a site may declare as pages of their own (the nginx
/// block matches their canonical combinations, one regex alternative each).
pub(crate) const MAX_QUERY_PARAMS: usize = 3;

/// A URL that runs a script rather than shows a page: a `*.php` file (a
/// pretty URL never ends so), WordPress's `/wp-admin/` and its REST API
/// `/wp-json/`. Baked, `/wp-cron.php` becomes an empty file and WordPress's
/// cron stops; `/xmlrpc.php` and the admin answer per visitor. The app
/// answers them unless `[crawl] script-endpoints = true`.
pub(crate) fn is_script_endpoint(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let lower = path.to_ascii_lowercase();
    let last = lower.rsplit('/').next().unwrap_or("");
    last.ends_with(".php")
        || lower == "/wp-admin"
        || lower.starts_with("/wp-admin/")
        || lower == "/wp-json"
        || lower.starts_with("/wp-json/")
}

pub(super) fn resolve_crawl(raw: RawCrawl, invalid: &Invalid<'_>) -> Result<Crawl, ConfigError> {
    let seeds = raw.seeds.unwrap_or_else(|| vec!["/".to_string()]);
    for seed in &seeds {
        if !seed.starts_with('/') {
            return Err(invalid(
                "crawl.seeds",
                format!(
                    "has `{seed}`: seeds are URL paths starting with `/`, e.g. \"/\" or \"/sitemap.xml\""
                ),
            ));
        }
    }
    let mut query_params = raw.query_params.unwrap_or_default();
    query_params.sort();
    query_params.dedup();
    if query_params.len() > MAX_QUERY_PARAMS {
        return Err(invalid(
            "crawl.query-params",
            format!(
                "names {} parameters: at most {MAX_QUERY_PARAMS} (pagination needs one, `page` or `paged`)",
                query_params.len()
            ),
        ));
    }
    if let Some(bad) = query_params.iter().find(|p| {
        p.is_empty()
            || p.len() > 32
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    }) {
        return Err(invalid(
            "crawl.query-params",
            format!(
                "has `{bad}`: a parameter name is 1-32 letters, digits, `_` or `-`, e.g. \"page\""
            ),
        ));
    }
    let max_pages = raw.max_pages.unwrap_or(100_000);
    if max_pages == 0 {
        return Err(invalid("crawl.max-pages", "must be at least 1".into()));
    }
    Ok(Crawl {
        seeds,
        include: glob_set(
            "crawl.include",
            &raw.include.unwrap_or_else(|| vec!["/**".into()]),
            invalid,
        )?,
        exclude: glob_set("crawl.exclude", &raw.exclude.unwrap_or_default(), invalid)?,
        max_pages,
        max_depth: raw.max_depth.unwrap_or(32),
        assets: raw.assets.unwrap_or(false),
        script_endpoints: raw.script_endpoints.unwrap_or(false),
        query_params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_endpoints_are_the_apps() {
        for yes in [
            "/wp-cron.php",
            "/xmlrpc.php",
            "/wp-login.php",
            "/wp-config.php",
            "/wp-admin/",
            "/wp-admin",
            "/wp-admin/install.php",
            "/wp-json/wp/v2/posts/66",
            "/index.php",
            "/shop/cart.PHP",
        ] {
            assert!(is_script_endpoint(yes), "{yes}");
        }
        for no in [
            "/",
            "/2026/12/hello-world/",
            "/php/",
            "/docs/php-tips/",
            "/wp-content/uploads/a.png",
            "/feed/",
            "/wp-adminx/",
        ] {
            assert!(!is_script_endpoint(no), "{no}");
        }
    }
}
