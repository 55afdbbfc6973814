//! `site.toml`: the raw serde shape and its validation into a typed [`Config`].
//!
//! Parsing happens in two steps, as in mdBook and zola: [`RawConfig`] mirrors the
//! file (`deny_unknown_fields`, kebab-case keys), then [`Config::from_raw`]
//! resolves URLs, durations, byte sizes, globs and paths once, so the rest of
//! kiln never sees an unchecked value. Every error names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use url::Url;

/// Why a configuration could not be loaded. Always fatal (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("failed to read config `{path}`")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys / wrong types.
    #[error("invalid config `{path}`: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A key has a value kiln cannot use.
    #[error("invalid config `{path}`: `{key}` {message}")]
    Invalid {
        /// The config file (or `<command line>` for flags).
        path: PathBuf,
        /// Dotted key, e.g. `origin.timeout`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The file as written: every field optional, defaults filled in by [`Config::from_raw`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// `[site]`
    #[serde(default)]
    pub site: RawSite,
    /// `[origin]`
    pub origin: Option<RawOrigin>,
    /// `[crawl]`
    #[serde(default)]
    pub crawl: RawCrawl,
    /// `[safety]`
    #[serde(default)]
    pub safety: RawSafety,
    /// `[output]`
    #[serde(default)]
    pub output: RawOutput,
    /// `[[render]]`
    #[serde(default)]
    pub render: Vec<RawRender>,
    /// `[[depend]]`
    #[serde(default)]
    pub depend: Vec<RawDepend>,
    /// `[daemon]`
    #[serde(default)]
    pub daemon: RawDaemon,
}

/// `[site]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSite {
    /// Output directory served by nginx.
    pub out: Option<PathBuf>,
    /// SQLite index path.
    pub state: Option<PathBuf>,
    /// Spool directory.
    pub queue: Option<PathBuf>,
    /// Templates directory (render mode).
    pub templates: Option<PathBuf>,
    /// Releases kept by `build --release`.
    pub keep_releases: Option<usize>,
    /// Site title and other values exposed to templates as `site.*`.
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
}

/// `[origin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOrigin {
    /// Base URL of the dynamic site.
    pub url: Option<String>,
    /// Parallel requests.
    pub concurrency: Option<usize>,
    /// Per-request timeout, e.g. `10s`.
    pub timeout: Option<String>,
    /// Retries after the first attempt.
    pub retries: Option<u32>,
    /// First backoff delay, doubled each retry.
    pub backoff: Option<String>,
    /// Body size cap, e.g. `10MiB`.
    pub max_body: Option<String>,
    /// Host header override.
    pub host: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response header naming dependency tags.
    pub tags_header: Option<String>,
    /// `space` or `comma`.
    pub tags_separator: Option<String>,
    /// User-Agent sent to the origin.
    pub user_agent: Option<String>,
}

/// `[crawl]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCrawl {
    /// Start URLs (paths), `/sitemap.xml` is parsed as a sitemap.
    pub seeds: Option<Vec<String>>,
    /// URL path globs to include.
    pub include: Option<Vec<String>>,
    /// URL path globs to exclude.
    pub exclude: Option<Vec<String>>,
    /// Stop after this many URLs.
    pub max_pages: Option<usize>,
    /// Stop following links deeper than this.
    pub max_depth: Option<usize>,
    /// Also bake same-origin assets (CSS, JS, images).
    pub assets: Option<bool>,
}

/// `[safety]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSafety {
    /// Body substrings that mark a page as private.
    pub forbid_patterns: Option<Vec<String>>,
    /// URL globs where the private-response checks are waived.
    pub allow_private: Option<Vec<String>>,
    /// Cookies that mark a visitor nginx must send to the app.
    pub bypass_cookies: Option<Vec<String>>,
    /// `anonymous` (bake `Vary: Cookie` pages as the cookie-less variant) or `refuse`.
    pub vary_cookie: Option<VaryCookie>,
    /// Most files one run may remove without --allow-mass-delete.
    pub max_delete_pages: Option<usize>,
    /// Most files one run may remove, in percent of the baked pages.
    pub max_delete_percent: Option<usize>,
}

/// `[output]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOutput {
    /// `gzip`, `br`.
    pub precompress: Option<Vec<String>>,
    /// Files smaller than this get no compressed sibling.
    pub precompress_min_bytes: Option<u64>,
    /// `skip` or `strip`.
    pub query_strings: Option<String>,
}

/// `[[render]]`
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRender {
    /// Template name under the templates directory.
    pub template: String,
    /// URL or URL pattern with `{field}` placeholders.
    pub url: String,
    /// Data file glob (one page per file).
    pub data: Option<String>,
    /// Collection name these data files form.
    pub collection: Option<String>,
    /// Collections handed to the template in full (list pages).
    #[serde(default)]
    pub items: Vec<String>,
    /// One page per distinct value of this list field (e.g. `tags`).
    pub group_by: Option<String>,
}

/// `[[depend]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDepend {
    /// Tag globs, e.g. `post:*`.
    pub tags: Vec<String>,
    /// URLs regenerated with any page carrying a matching tag.
    pub urls: Vec<String>,
}

/// `[daemon]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDaemon {
    /// HTTP listen address.
    pub listen: Option<String>,
    /// Name of the environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// Debounce window.
    pub debounce: Option<String>,
    /// Periodic spool rescan interval.
    pub rescan: Option<String>,
    /// Watch templates and data files (render mode).
    pub watch: Option<bool>,
    /// Keep retrying a page that fails transiently for this long.
    pub give_up_after: Option<String>,
    /// Longest wait between two retries of one page.
    pub max_retry_delay: Option<String>,
    /// Largest spool file read; bigger ones go to `failed/` unread.
    pub max_spool_file: Option<String>,
    /// Most targets one request or spool file may name.
    pub max_targets: Option<usize>,
}

/// What a `Vary: Cookie` (or `Authorization`) response to kiln's
/// cookie-less request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VaryCookie {
    /// It is the page every visitor without cookies gets: bake it; nginx
    /// sends visitors carrying a bypass cookie to the app.
    #[default]
    Anonymous,
    /// Refuse it (the strict policy for sites that want it).
    Refuse,
}

/// Session and login cookies of Django, Rails, PHP and WordPress.
pub const DEFAULT_BYPASS_COOKIES: &[&str] = &[
    "sessionid",
    "_session_id",
    "_*_session",
    "PHPSESSID",
    "wordpress_logged_in_*",
    "wp-postpass_*",
    "comment_author_*",
];

/// How dependency tags are separated in the tags header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSeparator {
    /// `Surrogate-Key: a b c`, `xkey`.
    Space,
    /// `Cache-Tag: a,b,c`.
    Comma,
}

/// What to do with URLs that carry a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPolicy {
    /// Never bake them (nginx falls through to the origin).
    Skip,
    /// Drop the query and bake the path.
    Strip,
}

/// A compressed sibling format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `.gz`, for nginx `gzip_static`.
    Gzip,
    /// `.br`, for nginx `brotli_static`.
    Brotli,
}

impl Encoding {
    /// Every supported encoding.
    pub const ALL: [Encoding; 2] = [Encoding::Gzip, Encoding::Brotli];

    /// File name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Gzip => ".gz",
            Encoding::Brotli => ".br",
        }
    }
}

/// `[origin]`, resolved.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Base URL; only its scheme, host and port are used for same-origin checks.
    pub url: Url,
    /// Parallel requests.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff delay.
    pub backoff: Duration,
    /// Body size cap in bytes.
    pub max_body: u64,
    /// Host header override.
    pub host: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Tags header name.
    pub tags_header: String,
    /// Tags separator.
    pub tags_separator: TagSeparator,
    /// User-Agent.
    pub user_agent: String,
}

/// `[crawl]`, resolved.
#[derive(Debug, Clone)]
pub struct Crawl {
    /// Start paths.
    pub seeds: Vec<String>,
    /// Included paths.
    pub include: GlobSet,
    /// Excluded paths.
    pub exclude: GlobSet,
    /// URL budget.
    pub max_pages: usize,
    /// Link depth budget.
    pub max_depth: usize,
    /// Follow asset links.
    pub assets: bool,
}

/// `[safety]`, resolved.
#[derive(Debug, Clone)]
pub struct Safety {
    /// Forbidden body substrings.
    pub forbid_patterns: Vec<String>,
    /// Paths where private responses are allowed.
    pub allow_private: GlobSet,
    /// Session or login cookies (name globs, `*` at the end only): a
    /// request carrying one never gets a baked file.
    pub bypass_cookies: Vec<String>,
    /// What `Vary: Cookie` / `Vary: Authorization` on kiln's request means.
    pub vary_cookie: VaryCookie,
    /// Mass-delete guard: most files one run may remove...
    pub max_delete_pages: usize,
    /// ...and in percent of the baked pages (never below 5 files).
    pub max_delete_percent: usize,
}

/// `[output]`, resolved.
#[derive(Debug, Clone)]
pub struct Output {
    /// Siblings to write.
    pub precompress: Vec<Encoding>,
    /// Size threshold for siblings.
    pub precompress_min_bytes: u64,
    /// Query string policy.
    pub query_strings: QueryPolicy,
}

/// A `[[depend]]` rule, resolved.
#[derive(Debug, Clone)]
pub struct DependRule {
    /// Matches tags.
    pub tags: GlobSet,
    /// URLs to add.
    pub urls: Vec<String>,
}

/// `[daemon]`, resolved.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// HTTP listen address; `None` disables the endpoint.
    pub listen: Option<std::net::SocketAddr>,
    /// Environment variable name of the token.
    pub token_env: String,
    /// Debounce window.
    pub debounce: Duration,
    /// Spool rescan interval.
    pub rescan: Duration,
    /// Watch templates and data (render mode).
    pub watch: bool,
    /// Transient failures are retried until this age, then given up.
    pub give_up_after: Duration,
    /// Cap of the exponential retry backoff.
    pub max_retry_delay: Duration,
    /// Largest spool file read.
    pub max_spool_file: u64,
    /// Most targets per request or spool file.
    pub max_targets: usize,
}

/// The validated configuration every stage reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (for messages); `None` when flags only.
    pub file: Option<PathBuf>,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// Output root (or the parent of `current` with releases).
    pub out: PathBuf,
    /// Index database path.
    pub state: PathBuf,
    /// Spool directory.
    pub queue: PathBuf,
    /// Templates directory.
    pub templates: PathBuf,
    /// Releases to keep.
    pub keep_releases: usize,
    /// `site.*` template variables.
    pub vars: BTreeMap<String, toml::Value>,
    /// Origin, when fetching.
    pub origin: Option<Origin>,
    /// Crawl scope.
    pub crawl: Crawl,
    /// Privacy checks.
    pub safety: Safety,
    /// Output options.
    pub output: Output,
    /// Render routes.
    pub render: Vec<RawRender>,
    /// Dependency rules.
    pub depend: Vec<DependRule>,
    /// Daemon options.
    pub daemon: Daemon,
}

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--origin`
    pub origin: Option<String>,
    /// `--out`
    pub out: Option<PathBuf>,
}

impl Config {
    /// Loads `path` if given (or `./site.toml` when it exists), applies the
    /// overrides, and validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = PathBuf::from("site.toml");
                default.exists().then_some(default)
            }
        };
        let (raw, base_dir) = match &file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                let base = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                (Self::parse_raw(&text, p)?, base)
            }
            None => (RawConfig::default(), PathBuf::from(".")),
        };
        Self::from_raw(raw, file, base_dir, overrides)
    }

    /// Parses TOML text into the raw shape.
    pub fn parse_raw(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })
    }

    /// Validates a raw config. `file` is only used in messages.
    pub fn from_raw(
        raw: RawConfig,
        file: Option<PathBuf>,
        base_dir: PathBuf,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let shown = file
            .clone()
            .unwrap_or_else(|| PathBuf::from("<command line>"));
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: shown.clone(),
            key: key.to_string(),
            message,
        };
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base_dir.join(p) };

        let out = match &overrides.out {
            Some(o) => o.clone(),
            None => resolve(raw.site.out.unwrap_or_else(|| PathBuf::from("public"))),
        };
        let state = resolve(
            raw.site
                .state
                .unwrap_or_else(|| PathBuf::from(".kiln/index.db")),
        );
        let queue = resolve(
            raw.site
                .queue
                .unwrap_or_else(|| PathBuf::from(".kiln/queue")),
        );
        let templates = resolve(
            raw.site
                .templates
                .unwrap_or_else(|| PathBuf::from("templates")),
        );
        let keep_releases = raw.site.keep_releases.unwrap_or(5);
        if keep_releases == 0 {
            return Err(invalid(
                "site.keep-releases",
                "must be at least 1 (the live release)".into(),
            ));
        }

        let raw_origin = raw.origin.unwrap_or_default();
        let origin_url = overrides.origin.clone().or(raw_origin.url.clone());
        let origin = match origin_url {
            None => None,
            Some(u) => Some(parse_origin(&u, raw_origin, &invalid)?),
        };

        let seeds = raw.crawl.seeds.unwrap_or_else(|| vec!["/".to_string()]);
        for seed in &seeds {
            if !seed.starts_with('/') {
                return Err(invalid(
                    "crawl.seeds",
                    format!("has `{seed}`: seeds are URL paths starting with `/`, e.g. \"/\" or \"/sitemap.xml\""),
                ));
            }
        }
        let crawl = Crawl {
            seeds,
            include: glob_set(
                "crawl.include",
                &raw.crawl.include.unwrap_or_else(|| vec!["/**".into()]),
                &invalid,
            )?,
            exclude: glob_set(
                "crawl.exclude",
                &raw.crawl.exclude.unwrap_or_default(),
                &invalid,
            )?,
            max_pages: raw.crawl.max_pages.unwrap_or(100_000),
            max_depth: raw.crawl.max_depth.unwrap_or(32),
            assets: raw.crawl.assets.unwrap_or(false),
        };
        if crawl.max_pages == 0 {
            return Err(invalid("crawl.max-pages", "must be at least 1".into()));
        }

        let safety = Safety {
            forbid_patterns: raw
                .safety
                .forbid_patterns
                .unwrap_or_else(|| vec!["csrfmiddlewaretoken".into()]),
            allow_private: glob_set(
                "safety.allow-private",
                &raw.safety.allow_private.unwrap_or_default(),
                &invalid,
            )?,
            bypass_cookies: raw.safety.bypass_cookies.unwrap_or_else(|| {
                DEFAULT_BYPASS_COOKIES
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            }),
            vary_cookie: raw.safety.vary_cookie.unwrap_or_default(),
            max_delete_pages: raw.safety.max_delete_pages.unwrap_or(50),
            max_delete_percent: raw.safety.max_delete_percent.unwrap_or(10),
        };
        if let Some(bad) = safety.bypass_cookies.iter().find(|c| !is_cookie_glob(c)) {
            return Err(invalid(
                "safety.bypass-cookies",
                format!("has `{bad}`: a cookie name is letters, digits, `_` and `-`, with `*` for any run of them"),
            ));
        }
        if safety.forbid_patterns.iter().any(String::is_empty) {
            return Err(invalid(
                "safety.forbid-patterns",
                "contains an empty pattern, which would refuse every page".into(),
            ));
        }

        let mut precompress = Vec::new();
        for name in raw.output.precompress.unwrap_or_default() {
            let enc = match name.as_str() {
                "gzip" | "gz" => Encoding::Gzip,
                "br" | "brotli" => Encoding::Brotli,
                other => {
                    return Err(invalid(
                        "output.precompress",
                        format!("has unknown encoding `{other}`: use \"gzip\" and/or \"br\""),
                    ))
                }
            };
            if !precompress.contains(&enc) {
                precompress.push(enc);
            }
        }
        let query_strings = match raw.output.query_strings.as_deref().unwrap_or("skip") {
            "skip" => QueryPolicy::Skip,
            "strip" => QueryPolicy::Strip,
            other => {
                return Err(invalid(
                    "output.query-strings",
                    format!("is `{other}`: use \"skip\" (do not bake URLs with a query) or \"strip\" (bake the path without it)"),
                ))
            }
        };
        let output = Output {
            precompress,
            precompress_min_bytes: raw.output.precompress_min_bytes.unwrap_or(256),
            query_strings,
        };

        for (i, r) in raw.render.iter().enumerate() {
            if !r.url.starts_with('/') {
                return Err(invalid(
                    &format!("render[{i}].url"),
                    format!("is `{}`: it must be a URL path starting with `/`", r.url),
                ));
            }
            if r.data.is_none() && r.url.contains('{') && r.group_by.is_none() {
                return Err(invalid(
                    &format!("render[{i}].url"),
                    format!("`{}` has placeholders but the route has no `data` glob or `group-by` to fill them", r.url),
                ));
            }
            if let Some(d) = &r.data {
                Glob::new(d).map_err(|e| invalid(&format!("render[{i}].data"), e.to_string()))?;
            }
        }

        let mut depend = Vec::new();
        for (i, d) in raw.depend.into_iter().enumerate() {
            if let Some(u) = d.urls.iter().find(|u| !u.starts_with('/')) {
                return Err(invalid(
                    &format!("depend[{i}].urls"),
                    format!("has `{u}`: URLs are paths starting with `/`"),
                ));
            }
            depend.push(DependRule {
                tags: glob_set(&format!("depend[{i}].tags"), &d.tags, &invalid)?,
                urls: d.urls,
            });
        }

        let listen_text = raw.daemon.listen.as_deref().unwrap_or("127.0.0.1:7878");
        let listen = parse_listen(listen_text).map_err(|_| {
            invalid(
                "daemon.listen",
                format!(
                    "is `{listen_text}`: expected an address like \"127.0.0.1:7878\" or \"off\""
                ),
            )
        })?;
        let daemon = Daemon {
            listen,
            token_env: raw
                .daemon
                .token_env
                .unwrap_or_else(|| "KILN_TOKEN".to_string()),
            debounce: duration(
                "daemon.debounce",
                raw.daemon.debounce.as_deref().unwrap_or("100ms"),
                &invalid,
            )?,
            rescan: duration(
                "daemon.rescan",
                raw.daemon.rescan.as_deref().unwrap_or("5s"),
                &invalid,
            )?,
            watch: raw.daemon.watch.unwrap_or(true),
            give_up_after: duration(
                "daemon.give-up-after",
                raw.daemon.give_up_after.as_deref().unwrap_or("6h"),
                &invalid,
            )?,
            max_retry_delay: duration(
                "daemon.max-retry-delay",
                raw.daemon.max_retry_delay.as_deref().unwrap_or("30s"),
                &invalid,
            )?,
            max_spool_file: byte_size(
                "daemon.max-spool-file",
                raw.daemon.max_spool_file.as_deref().unwrap_or("4MiB"),
                &invalid,
            )?,
            max_targets: raw.daemon.max_targets.unwrap_or(10_000).max(1),
        };

        Ok(Config {
            file,
            base_dir,
            out,
            state,
            queue,
            templates,
            keep_releases,
            vars: raw.site.vars,
            origin,
            crawl,
            safety,
            output,
            render: raw.render,
            depend,
            daemon,
        })
    }

    /// True when pages come from `[[render]]` routes.
    pub fn renders(&self) -> bool {
        !self.render.is_empty()
    }
}

fn parse_origin(
    url: &str,
    raw: RawOrigin,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Origin, ConfigError> {
    let parsed = Url::parse(url).map_err(|e| {
        invalid(
            "origin.url",
            format!("is `{url}`: {e}; expected e.g. \"http://127.0.0.1:8000\""),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid(
            "origin.url",
            format!("is `{url}`: expected an http:// or https:// URL with a host"),
        ));
    }
    if parsed.scheme() == "https" {
        return Err(invalid(
            "origin.url",
            format!("is `{url}`: kiln fetches the origin over plain HTTP on the local network; point it at the app server (e.g. \"http://127.0.0.1:8000\") and set `origin.host` for the public name"),
        ));
    }
    let concurrency = raw.concurrency.unwrap_or(16);
    if concurrency == 0 || concurrency > 1024 {
        return Err(invalid(
            "origin.concurrency",
            format!("is {concurrency}: use 1 to 1024"),
        ));
    }
    let tags_header = raw
        .tags_header
        .unwrap_or_else(|| "Surrogate-Key".to_string());
    reqwest::header::HeaderName::from_bytes(tags_header.as_bytes()).map_err(|_| {
        invalid(
            "origin.tags-header",
            format!("`{tags_header}` is not a valid header name"),
        )
    })?;
    let tags_separator = match raw.tags_separator.as_deref() {
        Some("space") => TagSeparator::Space,
        Some("comma") => TagSeparator::Comma,
        Some(other) => {
            return Err(invalid(
                "origin.tags-separator",
                format!("is `{other}`: use \"space\" or \"comma\""),
            ))
        }
        None if tags_header.eq_ignore_ascii_case("cache-tag") => TagSeparator::Comma,
        None => TagSeparator::Space,
    };
    let mut headers = Vec::new();
    for (k, v) in raw.headers {
        reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            invalid(
                "origin.headers",
                format!("`{k}` is not a valid header name"),
            )
        })?;
        reqwest::header::HeaderValue::from_str(&v).map_err(|_| {
            invalid(
                "origin.headers",
                format!("value of `{k}` is not a valid header value"),
            )
        })?;
        headers.push((k, v));
    }
    Ok(Origin {
        url: parsed,
        concurrency,
        timeout: duration(
            "origin.timeout",
            raw.timeout.as_deref().unwrap_or("30s"),
            invalid,
        )?,
        retries: raw.retries.unwrap_or(2),
        backoff: duration(
            "origin.backoff",
            raw.backoff.as_deref().unwrap_or("200ms"),
            invalid,
        )?,
        max_body: byte_size(
            "origin.max-body",
            raw.max_body.as_deref().unwrap_or("32MiB"),
            invalid,
        )?,
        host: raw.host,
        headers,
        tags_header,
        tags_separator,
        user_agent: raw
            .user_agent
            .unwrap_or_else(|| concat!("kiln/", env!("CARGO_PKG_VERSION")).to_string()),
    })
}

fn duration(
    key: &str,
    text: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            key,
            format!("is `{text}`: {e}; write a duration like \"500ms\" or \"10s\""),
        )
    })
}

/// A cookie name, with `*` standing for any run of name characters.
pub fn is_cookie_glob(c: &str) -> bool {
    !c.is_empty()
        && c != "*"
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '*'))
}

/// Parses a listen address: `"off"` or empty disables the endpoint.
pub fn parse_listen(text: &str) -> Result<Option<std::net::SocketAddr>, std::net::AddrParseError> {
    match text {
        "" | "off" => Ok(None),
        s => s.parse().map(Some),
    }
}

/// Parses `512`, `64KiB`, `10MB`, `1GiB` into bytes.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn byte_size(
    key: &str,
    text: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<u64, ConfigError> {
    match parse_byte_size(text) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(invalid(
            key,
            format!("is `{text}`: write a size like \"512KiB\" or \"10MB\""),
        )),
    }
}

fn glob_set(
    key: &str,
    globs: &[String],
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<GlobSet, ConfigError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(path_glob(g).map_err(|e| invalid(key, format!("has a bad glob `{g}`: {e}")))?);
    }
    b.build().map_err(|e| invalid(key, e.to_string()))
}

/// Compiles a glob over URL paths or tags: `*` stays within a path segment, `**` crosses.
pub fn path_glob(pattern: &str) -> Result<Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
}

/// A single compiled glob matcher (for `glob:` targets).
pub fn path_matcher(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(path_glob(pattern)?.compile_matcher())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let raw = Config::parse_raw(text, Path::new("site.toml"))?;
        Config::from_raw(
            raw,
            Some("site.toml".into()),
            ".".into(),
            &Overrides::default(),
        )
    }

    #[test]
    fn empty_file_has_defaults() {
        let c = load("").unwrap();
        assert!(c.origin.is_none());
        assert_eq!(c.crawl.seeds, vec!["/"]);
        assert_eq!(c.safety.forbid_patterns, vec!["csrfmiddlewaretoken"]);
        assert_eq!(c.output.query_strings, QueryPolicy::Skip);
        assert_eq!(c.daemon.debounce, Duration::from_millis(100));
        assert!(c.out.ends_with("public"));
    }

    #[test]
    fn origin_defaults_and_tags_separator() {
        let c = load("[origin]\nurl = \"http://127.0.0.1:8000\"\ntags-header = \"Cache-Tag\"\n")
            .unwrap();
        let o = c.origin.unwrap();
        assert_eq!(o.concurrency, 16);
        assert_eq!(o.tags_separator, TagSeparator::Comma);
        assert_eq!(o.max_body, 32 << 20);
    }

    #[test]
    fn errors_name_file_and_key() {
        let cases: &[(&str, &str)] = &[
            ("[origin]\nurl = \"ftp://x\"\n", "`origin.url`"),
            (
                "[origin]\nurl = \"http://x\"\ntimeout = \"soon\"\n",
                "`origin.timeout`",
            ),
            (
                "[origin]\nurl = \"http://x\"\nmax-body = \"lots\"\n",
                "`origin.max-body`",
            ),
            (
                "[origin]\nurl = \"http://x\"\nconcurrency = 0\n",
                "`origin.concurrency`",
            ),
            ("[crawl]\nseeds = [\"index.html\"]\n", "`crawl.seeds`"),
            ("[crawl]\ninclude = [\"/a/[\"]\n", "`crawl.include`"),
            (
                "[output]\nprecompress = [\"zstd\"]\n",
                "`output.precompress`",
            ),
            (
                "[output]\nquery-strings = \"keep\"\n",
                "`output.query-strings`",
            ),
            ("[daemon]\nlisten = \"localhost\"\n", "`daemon.listen`"),
            (
                "[[depend]]\ntags = [\"post:*\"]\nurls = [\"feed.xml\"]\n",
                "`depend[0].urls`",
            ),
            (
                "[[render]]\ntemplate = \"a.html\"\nurl = \"/p/{slug}/\"\n",
                "`render[0].url`",
            ),
            ("[site]\nkeep-releases = 0\n", "`site.keep-releases`"),
        ];
        for (text, key) in cases {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains("site.toml"), "{text:?}: {err}");
            assert!(err.contains(key), "{text:?} should name {key}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = load("[crawl]\nmax-pagse = 3\n").unwrap_err().to_string();
        assert!(err.contains("max-pagse"), "{err}");
        assert!(err.contains("site.toml"), "{err}");
        let err = load("[orign]\nurl = \"http://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("orign"), "{err}");
    }

    #[test]
    fn overrides_win() {
        let raw = Config::parse_raw("[origin]\nurl = \"http://a:1\"\n", Path::new("s")).unwrap();
        let c = Config::from_raw(
            raw,
            None,
            ".".into(),
            &Overrides {
                origin: Some("http://127.0.0.1:9".into()),
                out: Some("/srv/www".into()),
            },
        )
        .unwrap();
        assert_eq!(c.origin.unwrap().url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(c.out, PathBuf::from("/srv/www"));
    }

    #[test]
    fn byte_sizes() {
        for (t, n) in [
            ("512", Some(512)),
            ("64KiB", Some(65536)),
            ("10MB", Some(10_000_000)),
            ("1 GiB", Some(1 << 30)),
            ("x", None),
            ("10XB", None),
        ] {
            assert_eq!(parse_byte_size(t), n, "{t}");
        }
    }
}
