//! `[safety]`: the privacy rules' settings and the mass-delete guard's limits.

use globset::GlobSet;
use serde::Deserialize;

use super::{ConfigError, Invalid, glob_set};

/// `[safety]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSafety {
    /// Body substrings that mark a page as private.
    pub(crate) forbid_patterns: Option<Vec<String>>,
    /// URL globs where the private-response checks are waived.
    pub(crate) allow_private: Option<Vec<String>>,
    /// Cookies that mark a visitor nginx must send to the app.
    pub(crate) bypass_cookies: Option<Vec<String>>,
    /// Query parameters that never change the page (name globs).
    pub(crate) tracking_params: Option<Vec<String>>,
    /// `anonymous` (bake `Vary: Cookie` pages as the cookie-less variant) or `refuse`.
    pub(crate) vary_cookie: Option<VaryCookie>,
    /// Most files one run may remove without --allow-mass-delete.
    pub(crate) max_delete_pages: Option<usize>,
    /// Most files one run may remove, in percent of the baked pages.
    pub(crate) max_delete_percent: Option<usize>,
}

/// `[safety]`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Safety {
    /// Forbidden body substrings.
    pub(crate) forbid_patterns: Vec<String>,
    /// Paths where private responses are allowed.
    pub(crate) allow_private: GlobSet,
    /// Session or login cookies (name globs, `*` at the end only): a
    /// request carrying one never gets a baked file.
    pub(crate) bypass_cookies: Vec<String>,
    /// Query parameters (name globs) that never change the page: a request
    /// whose query has only these is served the path's file; any other
    /// query goes to the app.
    pub(crate) tracking_params: Vec<String>,
    /// What `Vary: Cookie` / `Vary: Authorization` on kiln's request means.
    pub(crate) vary_cookie: VaryCookie,
    /// Mass-delete guard: most files one run may remove...
    pub(crate) max_delete_pages: usize,
    /// ...and in percent of the baked pages (never below 5 files).
    pub(crate) max_delete_percent: usize,
}

/// The mass-delete limit, the one rule every destructive path applies (a
/// run's removals, the daemon's window, a bucket's deletions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeleteLimit {
    pages: usize,
    percent: usize,
}

impl DeleteLimit {
    /// The most of `known` pages (or objects) one change may remove:
    /// `max-delete-pages`, or `max-delete-percent` of them, never below 5.
    pub(crate) fn of(self, known: usize) -> usize {
        self.pages.min((known * self.percent / 100).max(5))
    }
}

impl Safety {
    /// The mass-delete limit.
    pub(crate) fn delete_limit(&self) -> DeleteLimit {
        DeleteLimit {
            pages: self.max_delete_pages,
            percent: self.max_delete_percent,
        }
    }
}

/// What a `Vary: Cookie` (or `Authorization`) response to kiln's
/// cookie-less request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum VaryCookie {
    /// It is the page every visitor without cookies gets: bake it; nginx
    /// sends visitors carrying a bypass cookie to the app.
    #[default]
    Anonymous,
    /// Refuse it (the strict policy for sites that want it).
    Refuse,
}

/// Session and login cookies of Django, Rails, PHP, WordPress and WooCommerce.
pub(crate) const DEFAULT_BYPASS_COOKIES: &[&str] = &[
    "sessionid",
    "_session_id",
    "_*_session",
    "PHPSESSID",
    "wordpress_logged_in_*",
    "wp-postpass_*",
    "comment_author_*",
    // A shop's cart and session: a visitor with something in the cart sees
    // it on every page.
    "woocommerce_*",
    "wp_woocommerce_session_*",
    // Django's messages framework: a flash message ("Comment posted") for
    // the visitor who just posted, shown on the page they go to next.
    "messages",
];

/// Campaign and click identifiers that analytics add to links: the page is
/// the same with or without them.
pub(crate) const DEFAULT_TRACKING_PARAMS: &[&str] = &[
    "utm_*", "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid", "_ga",
    "_gl", "yclid", "igshid",
];

pub(super) fn resolve_safety(raw: RawSafety, invalid: &Invalid<'_>) -> Result<Safety, ConfigError> {
    let safety = Safety {
        forbid_patterns: raw
            .forbid_patterns
            .unwrap_or_else(|| vec!["csrfmiddlewaretoken".into()]),
        allow_private: glob_set(
            "safety.allow-private",
            &raw.allow_private.unwrap_or_default(),
            invalid,
        )?,
        bypass_cookies: raw.bypass_cookies.unwrap_or_else(|| {
            DEFAULT_BYPASS_COOKIES
                .iter()
                .map(|c| c.to_string())
                .collect()
        }),
        tracking_params: raw.tracking_params.unwrap_or_else(|| {
            DEFAULT_TRACKING_PARAMS
                .iter()
                .map(|c| c.to_string())
                .collect()
        }),
        vary_cookie: raw.vary_cookie.unwrap_or_default(),
        max_delete_pages: raw.max_delete_pages.unwrap_or(50),
        max_delete_percent: raw.max_delete_percent.unwrap_or(10),
    };
    if safety.max_delete_percent > 100 {
        return Err(invalid(
            "safety.max-delete-percent",
            format!(
                "is {}, but a percentage of the known pages is at most 100",
                safety.max_delete_percent
            ),
        ));
    }
    name_globs(
        "safety.bypass-cookies",
        "a cookie name",
        &safety.bypass_cookies,
        invalid,
    )?;
    name_globs(
        "safety.tracking-params",
        "a parameter name",
        &safety.tracking_params,
        invalid,
    )?;
    if safety.forbid_patterns.iter().any(String::is_empty) {
        return Err(invalid(
            "safety.forbid-patterns",
            "contains an empty pattern, which would refuse every page".into(),
        ));
    }
    Ok(safety)
}

/// Every entry of `key` is a name glob ([`is_cookie_glob`]), or the error
/// names the first that is not.
fn name_globs(
    key: &str,
    what: &str,
    globs: &[String],
    invalid: &Invalid<'_>,
) -> Result<(), ConfigError> {
    match globs.iter().find(|g| !is_cookie_glob(g)) {
        Some(bad) => Err(invalid(
            key,
            format!(
                "has `{bad}`: {what} is letters, digits, `_` and `-`, with `*` for any run of them"
            ),
        )),
        None => Ok(()),
    }
}

/// A cookie name, with `*` standing for any run of name characters.
pub(crate) fn is_cookie_glob(c: &str) -> bool {
    !c.is_empty()
        && c != "*"
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '*'))
}
