//! `site.toml`: the raw serde shape and its validation into a typed [`Config`].
//!
//! Parsing happens in two steps, as in mdBook and zola: [`RawConfig`] mirrors the
//! file (`deny_unknown_fields`, kebab-case keys), then [`Config::from_raw`]
//! resolves URLs, durations, byte sizes, globs and paths once, so the rest of
//! kiln never sees an unchecked value. Every error names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobMatcher, GlobSet, GlobSetBuilder};

use crate::glob::{glob_literal_prefix, path_glob, path_matcher};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

/// Why a configuration could not be loaded. Always fatal (exit code 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
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
pub(crate) struct RawConfig {
    /// `[site]`
    #[serde(default)]
    pub(crate) site: RawSite,
    /// `[origin]`
    pub(crate) origin: Option<RawOrigin>,
    /// `[crawl]`
    #[serde(default)]
    pub(crate) crawl: RawCrawl,
    /// `[safety]`
    #[serde(default)]
    pub(crate) safety: RawSafety,
    /// `[output]`
    #[serde(default)]
    pub(crate) output: RawOutput,
    /// `[[render]]`
    #[serde(default)]
    pub(crate) render: Vec<RawRender>,
    /// `[[depend]]`
    #[serde(default)]
    pub(crate) depend: Vec<RawDepend>,
    /// `[daemon]`
    #[serde(default)]
    pub(crate) daemon: RawDaemon,
    /// `[intake]`
    #[serde(default)]
    pub(crate) intake: RawIntake,
    /// `[[purge]]`
    #[serde(default)]
    pub(crate) purge: Vec<RawPurge>,
    /// `[[publish]]`
    #[serde(default)]
    pub(crate) publish: Vec<RawPublish>,
    /// `[[revalidate]]`
    #[serde(default)]
    pub(crate) revalidate: Vec<RawRevalidate>,
}

/// `[[revalidate]]`: pages re-checked on a clock, for changes no event names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRevalidate {
    /// URL path glob, e.g. `/` or `/news/**`.
    pub(crate) glob: String,
    /// Each matching page is re-checked once per this interval.
    pub(crate) every: HumanDuration,
    /// A page whose origin said `Cache-Control: s-maxage=N` (or `max-age`)
    /// with N shorter than `every` is re-checked every N instead.
    pub(crate) honour_cache_control: Option<bool>,
}

/// A `[[revalidate]]` rule, resolved.
#[derive(Debug, Clone)]
pub(crate) struct RevalidateRule {
    /// The glob as written (for messages and status).
    pub(crate) pattern: String,
    /// Matches URL paths.
    pub(crate) glob: GlobMatcher,
    /// Interval over which every matching page is re-checked once.
    pub(crate) every: Duration,
    /// Shorter intervals from the origin's `Cache-Control` apply.
    pub(crate) honour_cache_control: bool,
}

/// `[[publish]]`: object storage the output is mirrored to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPublish {
    /// Only `s3` (any S3-compatible store).
    pub(crate) kind: String,
    /// Bucket name.
    pub(crate) bucket: String,
    /// Key prefix, e.g. `site/`.
    pub(crate) prefix: Option<String>,
    /// Endpoint; default AWS for the region.
    pub(crate) endpoint: Option<String>,
    /// Region.
    pub(crate) region: Option<String>,
    /// Path-style URLs (default: when an endpoint is given).
    pub(crate) path_style: Option<bool>,
    /// `Cache-Control` of the objects.
    pub(crate) cache_control: Option<String>,
}

/// A `[[publish]] kind = "s3"` target, resolved.
#[derive(Debug, Clone)]
pub(crate) struct PublishS3 {
    /// Bucket name.
    pub(crate) bucket: String,
    /// Key prefix.
    pub(crate) prefix: String,
    /// Endpoint.
    pub(crate) endpoint: Url,
    /// Region.
    pub(crate) region: String,
    /// Path-style addressing.
    pub(crate) path_style: bool,
    /// `Cache-Control` sent with every object.
    pub(crate) cache_control: String,
}

/// `[[purge]]`: a CDN to tell after each batch of regenerations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPurge {
    /// `webhook`, `fastly`, `cloudflare-urls` or `cloudflare-tags`.
    pub(crate) kind: Option<PurgeKind>,
    /// Endpoint (webhook); default for the presets from `service` / `zone`.
    pub(crate) url: Option<String>,
    /// Fastly service id.
    pub(crate) service: Option<String>,
    /// Cloudflare zone id.
    pub(crate) zone: Option<String>,
    /// Environment variable holding the API token.
    pub(crate) token_env: Option<String>,
    /// The public site URL paths are appended to (purge by URL).
    pub(crate) base_url: Option<String>,
}

/// What a purge hook speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PurgeKind {
    /// `POST {"urls", "full_urls", "tags"}` to any endpoint.
    Webhook,
    /// Fastly: purge by surrogate key.
    Fastly,
    /// Cloudflare: purge by URL.
    CloudflareUrls,
    /// Cloudflare: purge by cache tag.
    CloudflareTags,
}

/// A `[[purge]]` hook, resolved.
#[derive(Debug, Clone)]
pub(crate) struct PurgeHook {
    /// Its protocol.
    pub(crate) kind: PurgeKind,
    /// Where the POST goes.
    pub(crate) url: String,
    /// Environment variable with the token.
    pub(crate) token_env: Option<String>,
    /// Public base URL for full URLs.
    pub(crate) base_url: String,
}

/// `[intake]`: event sources beside the spool and the HTTP endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIntake {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/0`.
    pub(crate) redis: Option<String>,
    /// Stream name.
    pub(crate) stream: Option<String>,
    /// Consumer group (one per web host for fan-out).
    pub(crate) group: Option<String>,
    /// Consumer name within the group.
    pub(crate) consumer: Option<String>,
    /// Where entries that finally fail go.
    pub(crate) dead_stream: Option<String>,
    /// Entries pending on a consumer for longer than this are reclaimed.
    pub(crate) claim_idle: Option<HumanDuration>,
    /// Approximate stream length kept (`MAXLEN ~`).
    pub(crate) max_len: Option<usize>,
}

/// `[site]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSite {
    /// Output directory served by nginx.
    pub(crate) out: Option<PathBuf>,
    /// SQLite index path.
    pub(crate) state: Option<PathBuf>,
    /// Spool directory.
    pub(crate) queue: Option<PathBuf>,
    /// Templates directory (render mode).
    pub(crate) templates: Option<PathBuf>,
    /// Releases kept by `build --release`.
    pub(crate) keep_releases: Option<usize>,
    /// Site title and other values exposed to templates as `site.*`.
    #[serde(default)]
    pub(crate) vars: BTreeMap<String, toml::Value>,
}

/// `[origin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawOrigin {
    /// Base URL of the dynamic site.
    pub(crate) url: Option<String>,
    /// Parallel requests.
    pub(crate) concurrency: Option<usize>,
    /// Per-request timeout, e.g. `10s`.
    pub(crate) timeout: Option<HumanDuration>,
    /// Retries after the first attempt.
    pub(crate) retries: Option<u32>,
    /// First backoff delay, doubled each retry.
    pub(crate) backoff: Option<HumanDuration>,
    /// Body size cap, e.g. `10MiB`.
    pub(crate) max_body: Option<Size>,
    /// Host header override.
    pub(crate) host: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Response header naming dependency tags.
    pub(crate) tags_header: Option<String>,
    /// `space` or `comma`.
    pub(crate) tags_separator: Option<TagSeparator>,
    /// User-Agent sent to the origin.
    pub(crate) user_agent: Option<String>,
    /// A PEM file of extra CA certificates to trust for an https:// origin.
    pub(crate) ca_file: Option<PathBuf>,
}

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
    /// `anonymous` (bake `Vary: Cookie` pages as the cookie-less variant) or `refuse`.
    pub(crate) vary_cookie: Option<VaryCookie>,
    /// Most files one run may remove without --allow-mass-delete.
    pub(crate) max_delete_pages: Option<usize>,
    /// Most files one run may remove, in percent of the baked pages.
    pub(crate) max_delete_percent: Option<usize>,
}

/// `[output]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawOutput {
    /// `gzip`, `br`.
    pub(crate) precompress: Option<Vec<Encoding>>,
    /// Files smaller than this get no compressed sibling.
    pub(crate) precompress_min_bytes: Option<u64>,
    /// `skip` or `strip`.
    pub(crate) query_strings: Option<QueryPolicy>,
    /// `page`, `batch` or `none`.
    pub(crate) durability: Option<Durability>,
}

/// `[intake] redis = ...`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct RedisIntake {
    /// Redis URL.
    pub(crate) url: String,
    /// Stream of event entries.
    pub(crate) stream: String,
    /// This host's consumer group.
    pub(crate) group: String,
    /// This daemon's consumer name.
    pub(crate) consumer: String,
    /// Dead-letter stream.
    pub(crate) dead_stream: String,
    /// Idle time after which another consumer's pending entries are reclaimed.
    pub(crate) claim_idle: Duration,
    /// Approximate length the streams are trimmed to.
    pub(crate) max_len: usize,
    /// Most distinct targets one entry may name (`daemon.max-targets`).
    pub(crate) max_targets: usize,
    /// A file beside the index that says this host's group existed: a
    /// group found missing later means Redis lost it.
    pub(crate) group_marker: PathBuf,
}

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

/// `[daemon]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDaemon {
    /// HTTP listen address.
    pub(crate) listen: Option<String>,
    /// Name of the environment variable holding the bearer token.
    pub(crate) token_env: Option<String>,
    /// Debounce window.
    pub(crate) debounce: Option<HumanDuration>,
    /// Periodic spool rescan interval.
    pub(crate) rescan: Option<HumanDuration>,
    /// Watch templates and data files (render mode).
    pub(crate) watch: Option<bool>,
    /// Keep retrying a page that fails transiently for this long.
    pub(crate) give_up_after: Option<HumanDuration>,
    /// Longest wait between two retries of one page.
    pub(crate) max_retry_delay: Option<HumanDuration>,
    /// Largest spool file read; bigger ones go to `failed/` unread.
    pub(crate) max_spool_file: Option<Size>,
    /// Most targets one request or spool file may name.
    pub(crate) max_targets: Option<usize>,
    /// Answer nginx's anonymous misses (`/v1/fill`): one origin request per
    /// missed URL however many visitors ask, and the page baked.
    pub(crate) fill: Option<bool>,
    /// How long an origin failure or a 404 seen by a fill is shown to
    /// further misses of that URL before the origin is asked again.
    pub(crate) fill_window: Option<HumanDuration>,
}

/// How new files are made durable before they replace old ones
/// (`[output] durability`). In every mode nginx sees old or new complete
/// files, never partial ones (temp file + rename); they differ in what a
/// power loss can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Durability {
    /// Each file is fdatasync'd before its rename: a power loss keeps old or
    /// new complete files. One disk flush per file.
    Page,
    /// Files written at the same time are made durable by one `syncfs` of
    /// the output's filesystem, then renamed: the same guarantee as `page`
    /// (old or new complete files, never empty ones) at a fraction of the
    /// flushes. The default.
    #[default]
    Batch,
    /// No flush: a crash of kiln leaves old or new files, but a power loss
    /// may leave new files empty. For outputs on tmpfs or rebuilt anyway.
    None,
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

/// Session and login cookies of Django, Rails, PHP and WordPress.
pub(crate) const DEFAULT_BYPASS_COOKIES: &[&str] = &[
    "sessionid",
    "_session_id",
    "_*_session",
    "PHPSESSID",
    "wordpress_logged_in_*",
    "wp-postpass_*",
    "comment_author_*",
];

/// A duration written as text with a unit (`"100ms"`, `"10s"`, `"6h"`),
/// parsed by humantime; a bare number is refused with a hint, since its
/// unit would be a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration like \"500ms\" or \"10s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v)
                    .map(HumanDuration)
                    .map_err(|e| {
                        E::custom(format!(
                            "`{v}` is not a duration ({e}); write one like \"500ms\" or \"10s\""
                        ))
                    })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write a duration as text, like \"{v}ms\" or \"{v}s\""
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write a duration as text, like \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size written as `512`, `"64KiB"` or `"10MB"` (parsed by bytesize).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size like \"512KiB\" or \"10MB\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                match v.parse::<bytesize::ByteSize>() {
                    Ok(b) if b.as_u64() > 0 => Ok(Size(b.as_u64())),
                    _ => Err(E::custom(format!(
                        "`{v}` is not a size; write one like \"512KiB\" or \"10MB\""
                    ))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Size)
                    .ok_or_else(|| E::custom(format!("`{v}` is not a positive size in bytes")))
            }
        }
        d.deserialize_any(V)
    }
}

/// How dependency tags are separated in the tags header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TagSeparator {
    /// `Surrogate-Key: a b c`, `xkey`.
    Space,
    /// `Cache-Tag: a,b,c`.
    Comma,
}

/// What to do with URLs that carry a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QueryPolicy {
    /// Never bake them (nginx falls through to the origin).
    Skip,
    /// Drop the query and bake the path.
    Strip,
}

/// A compressed sibling format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Encoding {
    /// `.gz`, for nginx `gzip_static`.
    #[serde(rename = "gzip", alias = "gz")]
    Gzip,
    /// `.br`, for nginx `brotli_static`.
    #[serde(rename = "br", alias = "brotli")]
    Brotli,
}

impl Encoding {
    /// Every supported encoding.
    pub(crate) const ALL: [Encoding; 2] = [Encoding::Gzip, Encoding::Brotli];

    /// File name suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Encoding::Gzip => ".gz",
            Encoding::Brotli => ".br",
        }
    }
}

/// `[origin]`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// Base URL; only its scheme, host and port are used for same-origin checks.
    pub(crate) url: Url,
    /// Extra CA certificates trusted for https:// (beside the bundled roots).
    pub(crate) extra_ca: Vec<reqwest::Certificate>,
    /// Parallel requests.
    pub(crate) concurrency: usize,
    /// Per-request timeout.
    pub(crate) timeout: Duration,
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// First backoff delay.
    pub(crate) backoff: Duration,
    /// Body size cap in bytes.
    pub(crate) max_body: u64,
    /// Host header override.
    pub(crate) host: Option<HeaderValue>,
    /// Extra request headers, parsed once.
    pub(crate) headers: HeaderMap,
    /// Tags header name.
    pub(crate) tags_header: HeaderName,
    /// Tags separator.
    pub(crate) tags_separator: TagSeparator,
    /// User-Agent.
    pub(crate) user_agent: String,
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
    /// What `Vary: Cookie` / `Vary: Authorization` on kiln's request means.
    pub(crate) vary_cookie: VaryCookie,
    /// Mass-delete guard: most files one run may remove...
    pub(crate) max_delete_pages: usize,
    /// ...and in percent of the baked pages (never below 5 files).
    pub(crate) max_delete_percent: usize,
}

/// `[output]`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    /// Siblings to write.
    pub(crate) precompress: Vec<Encoding>,
    /// Size threshold for siblings.
    pub(crate) precompress_min_bytes: u64,
    /// Query string policy.
    pub(crate) query_strings: QueryPolicy,
    /// How new files are made durable before they are renamed into place.
    pub(crate) durability: Durability,
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
}

/// A data-file glob (relative to the config's directory).
#[derive(Debug, Clone)]
pub(crate) struct DataGlob {
    /// Compiled.
    pub(crate) matcher: GlobMatcher,
    /// The directory matches live under (watched by the daemon).
    pub(crate) dir: PathBuf,
}

/// A `[[depend]]` rule, resolved.
#[derive(Debug, Clone)]
pub(crate) struct DependRule {
    /// Matches tags.
    pub(crate) tags: GlobSet,
    /// URLs to add.
    pub(crate) urls: Vec<String>,
}

/// `[daemon]`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    /// HTTP listen address; `None` disables the endpoint.
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Environment variable name of the token.
    pub(crate) token_env: String,
    /// Debounce window.
    pub(crate) debounce: Duration,
    /// Spool rescan interval.
    pub(crate) rescan: Duration,
    /// Watch templates and data (render mode).
    pub(crate) watch: bool,
    /// Transient failures are retried until this age, then given up.
    pub(crate) give_up_after: Duration,
    /// Cap of the exponential retry backoff.
    pub(crate) max_retry_delay: Duration,
    /// Largest spool file read.
    pub(crate) max_spool_file: u64,
    /// Most targets per request or spool file.
    pub(crate) max_targets: usize,
    /// Whether `/v1/fill` answers nginx's anonymous misses.
    pub(crate) fill: bool,
    /// How long a failed or 404 fill answers further misses of its URL.
    pub(crate) fill_window: Duration,
}

/// The validated configuration every stage reads.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where the config came from (for messages); `None` when flags only.
    pub(crate) file: Option<PathBuf>,
    /// Directory relative paths are resolved against.
    pub(crate) base_dir: PathBuf,
    /// Output root (or the parent of `current` with releases).
    pub(crate) out: PathBuf,
    /// Index database path.
    pub(crate) state: PathBuf,
    /// Spool directory.
    pub(crate) queue: PathBuf,
    /// Templates directory.
    pub(crate) templates: PathBuf,
    /// Releases to keep.
    pub(crate) keep_releases: usize,
    /// `site.*` template variables.
    pub(crate) vars: BTreeMap<String, toml::Value>,
    /// Origin, when fetching.
    pub(crate) origin: Option<Origin>,
    /// Crawl scope.
    pub(crate) crawl: Crawl,
    /// Privacy checks.
    pub(crate) safety: Safety,
    /// Output options.
    pub(crate) output: Output,
    /// Render routes.
    pub(crate) render: Vec<RenderRoute>,
    /// Dependency rules.
    pub(crate) depend: Vec<DependRule>,
    /// Daemon options.
    pub(crate) daemon: Daemon,
    /// The Redis Streams intake, when configured.
    pub(crate) redis: Option<RedisIntake>,
    /// CDN purge hooks.
    pub(crate) purge: Vec<PurgeHook>,
    /// Object storage mirrors.
    pub(crate) publish: Vec<PublishS3>,
    /// Pages re-checked on a clock.
    pub(crate) revalidate: Vec<RevalidateRule>,
}

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    /// `--origin`
    pub(crate) origin: Option<String>,
    /// `--out`
    pub(crate) out: Option<PathBuf>,
}

impl Config {
    /// Loads `path` if given (or `./site.toml` when it exists), applies the
    /// overrides, and validates.
    pub(crate) fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
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

    /// Parses TOML text into the raw shape. Errors name the dotted key
    /// (`origin.timeout`) as well as toml's line and column.
    pub(crate) fn parse_raw(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message: message.trim_end().replace('\n', "\n  "),
        };
        let de = toml::Deserializer::parse(text).map_err(|e| parse_error(e.to_string()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            parse_error(if key.is_empty() || key == "." {
                inner
            } else {
                format!("`{key}`: {inner}")
            })
        })
    }

    /// Validates a raw config, one section at a time. `file` is only used
    /// in messages.
    pub(crate) fn from_raw(
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
        if overrides.origin.is_some() && !raw.render.is_empty() {
            // `--origin` means fetch mode; quietly rendering the file's
            // templates instead would bake the wrong site.
            return Err(invalid(
                "render",
                format!(
                    "defines [[render]] routes (a render site), but --origin asks to bake an origin; run from another directory, or pass --config with a fetch-mode file (`kiln init --origin {}` writes one)",
                    overrides.origin.as_deref().unwrap_or_default()
                ),
            ));
        }
        let site = resolve_site(raw.site, &base_dir, overrides, &invalid)?;
        let raw_origin = raw.origin.unwrap_or_default();
        let origin = match overrides.origin.clone().or(raw_origin.url.clone()) {
            None => None,
            Some(u) => Some(resolve_origin(&u, raw_origin, &base_dir, &invalid)?),
        };
        let daemon = resolve_daemon(raw.daemon, &invalid)?;
        let redis = resolve_intake(raw.intake, &invalid)?.map(|mut r| {
            r.max_targets = daemon.max_targets;
            r.group_marker = site
                .state
                .with_file_name(format!("redis-group-{}", sanitize_name(&r.group)));
            r
        });
        Ok(Config {
            file,
            out: site.out,
            state: site.state,
            queue: site.queue,
            templates: site.templates,
            keep_releases: site.keep_releases,
            vars: site.vars,
            origin,
            crawl: resolve_crawl(raw.crawl, &invalid)?,
            safety: resolve_safety(raw.safety, &invalid)?,
            output: resolve_output(raw.output),
            render: resolve_render(raw.render, &base_dir, &invalid)?,
            depend: resolve_depend(raw.depend, &invalid)?,
            redis,
            daemon,
            purge: resolve_purge(raw.purge, &invalid)?,
            publish: resolve_publish(raw.publish, &invalid)?,
            revalidate: resolve_revalidate(raw.revalidate, &invalid)?,
            base_dir,
        })
    }

    /// True when pages come from `[[render]]` routes.
    pub(crate) fn renders(&self) -> bool {
        !self.render.is_empty()
    }
}

type Invalid<'a> = dyn Fn(&str, String) -> ConfigError + 'a;

/// `[site]`, resolved: paths against the config's directory.
struct Site {
    out: PathBuf,
    state: PathBuf,
    queue: PathBuf,
    templates: PathBuf,
    keep_releases: usize,
    vars: BTreeMap<String, toml::Value>,
}

fn resolve_site(
    raw: RawSite,
    base_dir: &Path,
    overrides: &Overrides,
    invalid: &Invalid<'_>,
) -> Result<Site, ConfigError> {
    let resolve = |p: Option<PathBuf>, default: &str| {
        let p = p.unwrap_or_else(|| PathBuf::from(default));
        if p.is_absolute() {
            p
        } else {
            base_dir.join(p)
        }
    };
    let keep_releases = raw.keep_releases.unwrap_or(5);
    if keep_releases == 0 {
        return Err(invalid(
            "site.keep-releases",
            "must be at least 1 (the live release)".into(),
        ));
    }
    Ok(Site {
        out: match &overrides.out {
            Some(o) => o.clone(),
            None => resolve(raw.out, "public"),
        },
        state: resolve(raw.state, ".kiln/index.db"),
        queue: resolve(raw.queue, ".kiln/queue"),
        templates: resolve(raw.templates, "templates"),
        keep_releases,
        vars: raw.vars,
    })
}

fn resolve_crawl(raw: RawCrawl, invalid: &Invalid<'_>) -> Result<Crawl, ConfigError> {
    let seeds = raw.seeds.unwrap_or_else(|| vec!["/".to_string()]);
    for seed in &seeds {
        if !seed.starts_with('/') {
            return Err(invalid(
                "crawl.seeds",
                format!("has `{seed}`: seeds are URL paths starting with `/`, e.g. \"/\" or \"/sitemap.xml\""),
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

fn resolve_safety(raw: RawSafety, invalid: &Invalid<'_>) -> Result<Safety, ConfigError> {
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
    Ok(safety)
}

fn resolve_output(raw: RawOutput) -> Output {
    let mut precompress = Vec::new();
    for enc in raw.precompress.unwrap_or_default() {
        if !precompress.contains(&enc) {
            precompress.push(enc);
        }
    }
    Output {
        precompress,
        precompress_min_bytes: raw.precompress_min_bytes.unwrap_or(256),
        query_strings: raw.query_strings.unwrap_or(QueryPolicy::Skip),
        durability: raw.durability.unwrap_or_default(),
    }
}

fn resolve_render(
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
                format!("`{}` has placeholders but the route has no `data` glob or `group-by` to fill them", r.url),
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
        routes.push(RenderRoute {
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

fn resolve_depend(
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

fn resolve_publish(
    raw: Vec<RawPublish>,
    invalid: &Invalid<'_>,
) -> Result<Vec<PublishS3>, ConfigError> {
    let mut out = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("publish[{i}].{k}");
        if p.kind != "s3" {
            return Err(invalid(
                &key("kind"),
                format!(
                    "is `{}`: only \"s3\" (any S3-compatible store) is supported",
                    p.kind
                ),
            ));
        }
        let region = p.region.unwrap_or_else(|| "us-east-1".into());
        let given = p.endpoint.is_some();
        let endpoint_text = p
            .endpoint
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint = Url::parse(&endpoint_text)
            .map_err(|e| invalid(&key("endpoint"), format!("is `{endpoint_text}`: {e}")))?;
        let mut prefix = p.prefix.unwrap_or_default();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        out.push(PublishS3 {
            bucket: p.bucket,
            prefix: prefix.trim_start_matches('/').to_string(),
            endpoint,
            region,
            path_style: p.path_style.unwrap_or(given),
            cache_control: p
                .cache_control
                .unwrap_or_else(|| "public, max-age=0, must-revalidate".into()),
        });
    }
    Ok(out)
}

fn resolve_purge(raw: Vec<RawPurge>, invalid: &Invalid<'_>) -> Result<Vec<PurgeHook>, ConfigError> {
    let mut hooks = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("purge[{i}].{k}");
        let kind = p.kind.unwrap_or(PurgeKind::Webhook);
        let url = match (kind, p.url, p.service, p.zone) {
            (_, Some(u), _, _) => u,
            (PurgeKind::Fastly, None, Some(s), _) => {
                format!("https://api.fastly.com/service/{s}/purge")
            }
            (PurgeKind::CloudflareUrls | PurgeKind::CloudflareTags, None, _, Some(z)) => {
                format!("https://api.cloudflare.com/client/v4/zones/{z}/purge_cache")
            }
            _ => {
                return Err(invalid(
                    &key("url"),
                    "is missing: give `url` (or `service` for fastly, `zone` for cloudflare)"
                        .into(),
                ))
            }
        };
        Url::parse(&url).map_err(|e| invalid(&key("url"), format!("is `{url}`: {e}")))?;
        let base_url = p.base_url.unwrap_or_default();
        if kind == PurgeKind::CloudflareUrls && base_url.is_empty() {
            return Err(invalid(
                &key("base-url"),
                "is needed to purge by URL, e.g. \"https://example.org\"".into(),
            ));
        }
        hooks.push(PurgeHook {
            kind,
            url,
            token_env: p.token_env,
            base_url,
        });
    }
    Ok(hooks)
}

fn resolve_intake(
    raw: RawIntake,
    invalid: &Invalid<'_>,
) -> Result<Option<RedisIntake>, ConfigError> {
    let Some(url) = raw.redis else {
        return Ok(None);
    };
    redis::Client::open(url.as_str()).map_err(|e| {
        invalid(
            "intake.redis",
            format!("is `{url}`: {e}; expected e.g. \"redis://127.0.0.1:6379/0\""),
        )
    })?;
    // Fan-out by default: one group per web host.
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let group = raw.group.unwrap_or(host);
    Ok(Some(RedisIntake {
        url,
        stream: raw.stream.unwrap_or_else(|| "kiln:events".into()),
        consumer: raw.consumer.unwrap_or_else(|| group.clone()),
        group,
        dead_stream: raw.dead_stream.unwrap_or_else(|| "kiln:events:dead".into()),
        claim_idle: raw.claim_idle.map_or(Duration::from_secs(60), |d| d.0),
        max_len: raw.max_len.unwrap_or(100_000).max(100),
        // Set from `[daemon]` and `[site]` once those are resolved.
        max_targets: usize::MAX,
        group_marker: PathBuf::new(),
    }))
}

fn resolve_daemon(raw: RawDaemon, invalid: &Invalid<'_>) -> Result<Daemon, ConfigError> {
    let listen_text = raw.listen.as_deref().unwrap_or("127.0.0.1:7878");
    let listen = parse_listen(listen_text).map_err(|_| {
        invalid(
            "daemon.listen",
            format!("is `{listen_text}`: expected an address like \"127.0.0.1:7878\" or \"off\""),
        )
    })?;
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    if raw.max_targets == Some(0) {
        return Err(invalid(
            "daemon.max-targets",
            "is 0, so every request would be refused; use a positive number (default 10000)"
                .to_string(),
        ));
    }
    if raw.rescan.as_ref().is_some_and(|d| d.0.is_zero()) {
        return Err(invalid(
            "daemon.rescan",
            "is 0s; use a positive interval such as \"5s\"".to_string(),
        ));
    }
    Ok(Daemon {
        listen,
        token_env: raw.token_env.unwrap_or_else(|| "KILN_TOKEN".to_string()),
        debounce: raw.debounce.map_or(ms(100), |d| d.0),
        rescan: raw.rescan.map_or(secs(5), |d| d.0),
        watch: raw.watch.unwrap_or(true),
        give_up_after: raw.give_up_after.map_or(secs(6 * 3600), |d| d.0),
        max_retry_delay: raw.max_retry_delay.map_or(secs(30), |d| d.0),
        max_spool_file: raw.max_spool_file.map_or(4 << 20, |s| s.0),
        max_targets: raw.max_targets.unwrap_or(10_000),
        fill: raw.fill.unwrap_or(true),
        fill_window: raw.fill_window.map_or(secs(2), |d| d.0),
    })
}

fn resolve_revalidate(
    raw: Vec<RawRevalidate>,
    invalid: &Invalid<'_>,
) -> Result<Vec<RevalidateRule>, ConfigError> {
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let glob = path_matcher(&r.glob).map_err(|e| {
            invalid(
                &format!("revalidate[{i}].glob"),
                format!(
                    "is `{}`: {e}; write a URL path glob such as \"/\" or \"/news/**\"",
                    r.glob
                ),
            )
        })?;
        if r.every.0 < Duration::from_secs(1) {
            return Err(invalid(
                &format!("revalidate[{i}].every"),
                format!(
                    "is {:?}: re-checking a page more than once a second is a load test, not a safety net; use \"1s\" or more",
                    r.every.0
                ),
            ));
        }
        out.push(RevalidateRule {
            pattern: r.glob,
            glob,
            every: r.every.0,
            honour_cache_control: r.honour_cache_control.unwrap_or(false),
        });
    }
    Ok(out)
}

fn resolve_origin(
    url: &str,
    raw: RawOrigin,
    base_dir: &Path,
    invalid: &Invalid<'_>,
) -> Result<Origin, ConfigError> {
    let shown = redact_userinfo(url);
    let mut parsed = Url::parse(url).map_err(|e| {
        invalid(
            "origin.url",
            format!("is `{shown}`: {e}; expected e.g. \"http://127.0.0.1:8000\""),
        )
    })?;
    let url = shown.as_str();
    // `http://user:pw@host`: the credentials become an Authorization header
    // and leave the URL, so no message, log or report can print them.
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = (!parsed.username().is_empty() || parsed.password().is_some())
        .then(|| (decode(parsed.username()), parsed.password().map(decode)));
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid(
            "origin.url",
            format!("is `{url}`: expected an http:// or https:// URL with a host"),
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
    let tags_header = HeaderName::from_bytes(tags_header.as_bytes()).map_err(|_| {
        invalid(
            "origin.tags-header",
            format!("`{tags_header}` is not a valid header name"),
        )
    })?;
    let tags_separator = raw.tags_separator.unwrap_or(if tags_header == "cache-tag" {
        TagSeparator::Comma
    } else {
        TagSeparator::Space
    });
    let mut headers = HeaderMap::new();
    for (k, v) in raw.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            invalid(
                "origin.headers",
                format!("`{k}` is not a valid header name"),
            )
        })?;
        let value = HeaderValue::from_str(&v).map_err(|_| {
            invalid(
                "origin.headers",
                format!("value of `{k}` is not a valid header value"),
            )
        })?;
        headers.insert(name, value);
    }
    if let Some((user, password)) = credentials {
        if !headers.contains_key(reqwest::header::AUTHORIZATION) {
            use base64::Engine as _;
            let pair = format!("{user}:{}", password.unwrap_or_default());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
                invalid(
                    "origin.url",
                    "holds credentials that are not a valid header".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
    }
    let host = match raw.host {
        Some(h) => Some(
            HeaderValue::from_str(&h)
                .map_err(|_| invalid("origin.host", format!("`{h}` is not a valid Host header")))?,
        ),
        None => None,
    };
    let extra_ca = match raw.ca_file {
        Some(p) => {
            let path = if p.is_absolute() { p } else { base_dir.join(p) };
            let pem = std::fs::read(&path).map_err(|e| {
                invalid(
                    "origin.ca-file",
                    format!("`{}` cannot be read: {e}", path.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid(
                    "origin.ca-file",
                    format!("`{}` is not a PEM certificate bundle: {e}", path.display()),
                )
            })?;
            if certs.is_empty() {
                return Err(invalid(
                    "origin.ca-file",
                    format!("`{}` holds no certificate", path.display()),
                ));
            }
            certs
        }
        None => Vec::new(),
    };
    let timeout = raw.timeout.map_or(Duration::from_secs(30), |d| d.0);
    if timeout.is_zero() {
        return Err(invalid(
            "origin.timeout",
            "is 0s, so every request would time out at once; use e.g. \"30s\"".to_string(),
        ));
    }
    Ok(Origin {
        url: parsed,
        extra_ca,
        concurrency,
        timeout,
        retries: raw.retries.unwrap_or(2),
        backoff: raw.backoff.map_or(Duration::from_millis(200), |d| d.0),
        max_body: raw.max_body.map_or(32 << 20, |s| s.0),
        host,
        headers,
        tags_header,
        tags_separator,
        user_agent: raw
            .user_agent
            .unwrap_or_else(|| concat!("kiln/", env!("CARGO_PKG_VERSION")).to_string()),
    })
}

/// A cookie name, with `*` standing for any run of name characters.
pub(crate) fn is_cookie_glob(c: &str) -> bool {
    !c.is_empty()
        && c != "*"
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '*'))
}

/// Parses a listen address: `"off"` or empty disables the endpoint.
pub(crate) fn parse_listen(
    text: &str,
) -> Result<Option<std::net::SocketAddr>, std::net::AddrParseError> {
    match text {
        "" | "off" => Ok(None),
        s => s.parse().map(Some),
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

/// `name` with anything but ASCII letters, digits, `-` and `_` replaced,
/// for a file name.
fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `scheme://user:pw@host/…` with the credentials replaced by `***`, for
/// messages about a URL that may carry them.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
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
                "`output.precompress",
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
            ("\"512\"", Some(512)),
            ("512", Some(512)),
            ("\"64KiB\"", Some(65536)),
            ("\"10MB\"", Some(10_000_000)),
            ("\"1 GiB\"", Some(1 << 30)),
            ("\"x\"", None),
            ("\"10XB\"", None),
            ("0", None),
        ] {
            let got = load(&format!("[origin]\nurl = \"http://a:1\"\nmax-body = {t}\n"))
                .ok()
                .map(|c| c.origin.unwrap().max_body);
            assert_eq!(got, n, "{t}");
        }
    }

    #[test]
    fn durations_need_a_unit_and_say_so() {
        let err = load("[daemon]\ndebounce = 100\n").unwrap_err().to_string();
        assert!(
            err.contains("debounce") && err.contains("\"100ms\""),
            "{err}"
        );
        let err = load("[daemon]\ndebounce = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("debounce") && err.contains("not a duration"),
            "{err}"
        );
        assert_eq!(
            load("[daemon]\ndebounce = \"250ms\"\n")
                .unwrap()
                .daemon
                .debounce,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn origin_flag_on_a_render_site_is_an_error_not_a_silent_choice() {
        let raw = Config::parse_raw(
            "[[render]]\ntemplate = \"a.html\"\nurl = \"/\"\n",
            Path::new("site.toml"),
        )
        .unwrap();
        let err = Config::from_raw(
            raw,
            Some("site.toml".into()),
            ".".into(),
            &Overrides {
                origin: Some("http://127.0.0.1:8000".into()),
                out: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--origin") && err.contains("render"), "{err}");
    }

    #[test]
    fn a_data_glob_is_watched_from_its_literal_directory() {
        let c = load("[[render]]\ntemplate = \"p.html\"\nurl = \"/p/{slug}/\"\ndata = \"content/posts/*.md\"\n").unwrap();
        let data = c.render[0].data.as_ref().unwrap();
        assert_eq!(data.dir, Path::new("./content/posts"));
        assert!(data.matcher.is_match("content/posts/a.md"));
    }
}
