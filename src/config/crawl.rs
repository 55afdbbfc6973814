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
    })
}
