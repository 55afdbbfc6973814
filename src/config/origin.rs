//! `[origin]`: the app kiln fetches from, and how (timeouts, retries, headers, tags).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, HumanDuration, Invalid, Size};

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
    /// `Vary` fields whose variants are all the same page for this site
    /// (e.g. `Accept-Language` on a one-language site): baked anyway.
    #[serde(default)]
    pub(crate) vary_ignore: Vec<String>,
    /// Bake a 2xx with an empty body (default: a failure, the last good
    /// file kept: an app that answers nothing is broken, not blank).
    pub(crate) allow_empty: Option<bool>,
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
    /// `Vary` fields that do not make another page (the privacy check
    /// compares them without case).
    pub(crate) vary_ignore: Vec<String>,
    /// Whether an empty 2xx body is a page.
    pub(crate) allow_empty: bool,
    /// The site's public URL (`[site] url`): links and redirects on it are
    /// the site's own, as on `url`.
    pub(crate) public: Option<Url>,
}

impl Origin {
    /// Asks as a visitor through nginx would be proxied: with the public
    /// host (unless `[origin] host` says another) and its scheme in
    /// `X-Forwarded-Proto`, so the app writes its public links and has no
    /// reason to redirect kiln to its canonical address.
    pub(super) fn serve_as(&mut self, public: Url) {
        if self.host.is_none() {
            let authority = match public.port() {
                Some(port) => format!("{}:{port}", public.host_str().unwrap_or_default()),
                None => public.host_str().unwrap_or_default().to_string(),
            };
            self.host = HeaderValue::from_str(&authority).ok();
        }
        let proto = HeaderName::from_static("x-forwarded-proto");
        if !self.headers.contains_key(&proto) {
            if let Ok(v) = HeaderValue::from_str(public.scheme()) {
                self.headers.insert(proto, v);
            }
        }
        self.public = Some(public);
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

pub(super) fn resolve_origin(
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
    let mut vary_ignore = Vec::new();
    for field in raw.vary_ignore {
        if HeaderName::from_bytes(field.as_bytes()).is_err() || field == "*" {
            return Err(invalid(
                "origin.vary-ignore",
                format!(
                    "`{field}` is not a header name; list request headers, e.g. [\"Accept-Language\"]"
                ),
            ));
        }
        vary_ignore.push(field);
    }
    Ok(Origin {
        url: parsed,
        vary_ignore,
        allow_empty: raw.allow_empty.unwrap_or(false),
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
        public: None,
    })
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
