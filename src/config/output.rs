//! `[output]`, `[[publish]]` and `[[purge]]`: how files are written, and where
//! changes go beside the local root.

use serde::Deserialize;
use url::Url;

use super::{ConfigError, Invalid};

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

pub(super) fn resolve_output(raw: RawOutput) -> Output {
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
    /// Requests in flight at once (default 16).
    pub(crate) concurrency: Option<usize>,
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
    /// Requests in flight at once (`kiln publish`, the outbox).
    pub(crate) concurrency: usize,
}

pub(super) fn resolve_publish(
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
            concurrency: match p.concurrency {
                Some(0) => {
                    return Err(invalid(
                        &key("concurrency"),
                        "= 0: at least 1 request must be allowed in flight".into(),
                    ));
                }
                Some(n) => n,
                None => 16,
            },
        });
    }
    Ok(out)
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

pub(super) fn resolve_purge(
    raw: Vec<RawPurge>,
    invalid: &Invalid<'_>,
) -> Result<Vec<PurgeHook>, ConfigError> {
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
                ));
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

/// `name` with anything but ASCII letters, digits, `-` and `_` replaced,
/// for a file name.
pub(super) fn sanitize_name(name: &str) -> String {
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
