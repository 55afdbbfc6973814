//! `[[render]]` and `[[depend]]`: pages from templates and data, and extra
//! dependencies between tags and URLs.

use std::path::{Path, PathBuf};

use globset::{GlobMatcher, GlobSet};
use serde::Deserialize;

use super::{ConfigError, Invalid, glob_set};
use crate::glob::{glob_literal_prefix, path_matcher};

/// `[[render]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRender {
    /// Template name under the templates directory.
    pub(crate) template: String,
    /// URL or URL pattern with `{field}` placeholders.
    pub(crate) url: String,
    /// Data file glob (one page per file).
    pub(crate) data: Option<String>,
    /// Collection name these data files form.
    pub(crate) collection: Option<String>,
    /// Collections handed to the template in full (list pages).
    #[serde(default)]
    pub(crate) items: Vec<String>,
    /// One page per distinct value of this list field (e.g. `tags`).
    pub(crate) group_by: Option<String>,
    /// `Content-Type` of the pages (default: from the URL's extension).
    pub(crate) content_type: Option<String>,
    /// Items per page of a list route: `/page/2/`, `/page/3/` … follow.
    pub(crate) paginate: Option<usize>,
}

/// A `[[render]]` route, resolved: its data glob compiled once.
#[derive(Debug, Clone)]
pub(crate) struct RenderRoute {
    /// Template name under the templates directory.
    pub(crate) template: String,
    /// URL or URL pattern with `{field}` placeholders.
    pub(crate) url: String,
    /// Data files (one page per file).
    pub(crate) data: Option<DataGlob>,
    /// Collection name these data files form.
    pub(crate) collection: Option<String>,
    /// Collections handed to the template in full (list pages).
    pub(crate) items: Vec<String>,
    /// One page per distinct value of this list field.
    pub(crate) group_by: Option<String>,
    /// `Content-Type` of the pages, when the URL's extension does not say it.
    pub(crate) content_type: Option<String>,
    /// Items per page of a list route (its first `items` collection).
    pub(crate) paginate: Option<usize>,
}

/// A data-file glob (relative to the config's directory).
#[derive(Debug, Clone)]
pub(crate) struct DataGlob {
    /// Compiled.
    pub(crate) matcher: GlobMatcher,
    /// The directory matches live under (watched by the daemon).
    pub(crate) dir: PathBuf,
}

/// `[[depend]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDepend {
    /// Tag globs, e.g. `post:*`.
    pub(crate) tags: Vec<String>,
    /// URLs regenerated with any page carrying a matching tag.
    pub(crate) urls: Vec<String>,
}

/// A `[[depend]]` rule, resolved.
#[derive(Debug, Clone)]
pub(crate) struct DependRule {
    /// Matches tags.
    pub(crate) tags: GlobSet,
    /// URLs to add.
    pub(crate) urls: Vec<String>,
}

pub(super) fn resolve_render(
    raw: Vec<RawRender>,
    base_dir: &Path,
    invalid: &Invalid<'_>,
) -> Result<Vec<RenderRoute>, ConfigError> {
    let mut routes = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        if !r.url.starts_with('/') {
            return Err(invalid(
                &format!("render[{i}].url"),
                format!("is `{}`: it must be a URL path starting with `/`", r.url),
            ));
        }
        if r.data.is_none() && r.url.contains('{') && r.group_by.is_none() {
            return Err(invalid(
                &format!("render[{i}].url"),
                format!(
                    "`{}` has placeholders but the route has no `data` glob or `group-by` to fill them",
                    r.url
                ),
            ));
        }
        let data = match r.data {
            Some(pattern) => {
                let matcher = path_matcher(&pattern)
                    .map_err(|e| invalid(&format!("render[{i}].data"), e.to_string()))?;
                let literal = glob_literal_prefix(&pattern).trim_end_matches('/');
                Some(DataGlob {
                    dir: base_dir.join(literal.trim_start_matches('/')),
                    matcher,
                })
            }
            None => None,
        };
        if let Some(n) = r.paginate {
            if n == 0 || r.items.is_empty() || data.is_some() || !r.url.ends_with('/') {
                return Err(invalid(
                    &format!("render[{i}].paginate"),
                    format!(
                        "= {n}: pagination splits a list route (one with `items`, no `data`, a URL ending in `/`) into pages of at least 1 item"
                    ),
                ));
            }
        }
        routes.push(RenderRoute {
            paginate: r.paginate,
            template: r.template,
            url: r.url,
            data,
            collection: r.collection,
            items: r.items,
            group_by: r.group_by,
            content_type: r.content_type,
        });
    }
    Ok(routes)
}

pub(super) fn resolve_depend(
    raw: Vec<RawDepend>,
    invalid: &Invalid<'_>,
) -> Result<Vec<DependRule>, ConfigError> {
    let mut depend = Vec::new();
    for (i, d) in raw.into_iter().enumerate() {
        if let Some(u) = d.urls.iter().find(|u| !u.starts_with('/')) {
            return Err(invalid(
                &format!("depend[{i}].urls"),
                format!("has `{u}`: URLs are paths starting with `/`"),
            ));
        }
        depend.push(DependRule {
            tags: glob_set(&format!("depend[{i}].tags"), &d.tags, invalid)?,
            urls: d.urls,
        });
    }
    Ok(depend)
}
