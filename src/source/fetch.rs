//! Fetching pages from the origin: anonymous GETs with keep-alive reuse,
//! retries with exponential backoff, a body size cap, and same-origin
//! redirects followed by hand so each hop can be recorded and loops caught.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING as ACCEPT_ENCODING_HEADER, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER,
};
use url::Url;

use super::PageMeta;
use crate::body::{Body, BodyBuilder};
use crate::config::{Origin, TagSeparator};
use crate::urlpath::{self, UrlPathError};

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 10;

/// What kiln asks the origin for: it decodes both, and bakes (and
/// precompresses) only decoded bytes.
const ACCEPT_ENCODING: &str = "gzip, br";

/// How many times its encoded size a body may grow when decoded. Real
/// pages stay far below (HTML gzips 5–20x; gzip itself cannot exceed
/// ~1,030x); a bomb goes far past it. The decoded size is capped by
/// `origin.max-body` in any case.
const MAX_INFLATION: u64 = 1_100;

/// A fetch that produced no usable response. Decides retry vs give up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// TCP connect failed (origin down?).
    #[error("could not connect to {url}")]
    Connect {
        /// Full URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// No complete response within the timeout.
    #[error("{url} timed out after {timeout:?}")]
    Timeout {
        /// Full URL.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The origin answered 5xx or 429 on every attempt.
    #[error("{url} answered {status}{}", attempts_note(*attempts))]
    ServerError {
        /// Full URL.
        url: String,
        /// Last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// What the origin asked for in `Retry-After` (seconds form).
        retry_after: Option<Duration>,
    },
    /// The path does not make a URL on the origin; nothing was sent.
    #[error("refusing to fetch: {0}")]
    NotOnOrigin(#[from] UrlPathError),
    /// A large body could not be kept in its temp file.
    #[error("failed to store the body of {url} in a temp file")]
    Spill {
        /// Full URL.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The body exceeded `origin.max-body`.
    #[error("{url} body exceeds origin.max-body ({limit} bytes)")]
    TooLarge {
        /// Full URL.
        url: String,
        /// The cap.
        limit: u64,
    },
    /// The encoded body inflated past [`MAX_INFLATION`] times its size:
    /// a decompression bomb, refused before it costs more.
    #[error(
        "{url} body inflates more than {MAX_INFLATION}x when decoded ({encoding}); refusing it"
    )]
    Inflation {
        /// Full URL.
        url: String,
        /// The Content-Encoding.
        encoding: &'static str,
    },
    /// The encoded body is not valid in its Content-Encoding.
    #[error("{url} body is not valid {encoding}")]
    Undecodable {
        /// Full URL.
        url: String,
        /// The Content-Encoding.
        encoding: &'static str,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// Redirects came back to a URL already visited.
    #[error("{url} redirect loop: {chain}")]
    RedirectLoop {
        /// Start URL.
        url: String,
        /// The hops.
        chain: String,
    },
    /// Too many redirect hops.
    #[error("{url} redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects {
        /// Start URL.
        url: String,
    },
    /// A redirect without a usable Location.
    #[error("{url} sent a redirect with a missing or invalid Location header")]
    BadRedirect {
        /// The URL.
        url: String,
    },
    /// Any other transport error.
    #[error("request to {url} failed")]
    Other {
        /// Full URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" on each of {attempts} attempts")
    } else {
        String::new()
    }
}

impl FetchError {
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            FetchError::Connect { .. } | FetchError::Timeout { .. } | FetchError::Other { .. }
        )
    }

    /// True for failures that may go away by themselves (origin down, slow,
    /// overloaded): retried with backoff, never a reason to touch the file.
    pub(crate) fn is_transient(&self) -> bool {
        self.is_retryable() || matches!(self, FetchError::ServerError { .. })
    }

    /// How long the origin asked kiln to wait (429/503 `Retry-After`).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::ServerError { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What the origin said identifies the baked copy of a page: sent back as
/// `If-None-Match` / `If-Modified-Since`, so an unchanged page costs a 304.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    /// `ETag` of the response that was baked.
    pub(crate) etag: Option<String>,
    /// `Last-Modified` of the response that was baked.
    pub(crate) last_modified: Option<String>,
}

impl Validators {
    /// The validators of a response, if it has any.
    pub(crate) fn of(headers: &HeaderMap) -> Option<Validators> {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let v = Validators {
            etag: get(reqwest::header::ETAG),
            last_modified: get(reqwest::header::LAST_MODIFIED),
        };
        (v.etag.is_some() || v.last_modified.is_some()).then_some(v)
    }

    fn request_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = self.etag.as_deref().and_then(|e| e.parse().ok()) {
            h.insert(reqwest::header::IF_NONE_MATCH, v);
        }
        if let Some(v) = self.last_modified.as_deref().and_then(|e| e.parse().ok()) {
            h.insert(reqwest::header::IF_MODIFIED_SINCE, v);
        }
        h
    }
}

/// How long a shared cache may keep a response, in seconds: `s-maxage`,
/// else `max-age`, from `Cache-Control`; none for `no-cache`, `no-store`
/// or `private` (such a response must be checked every time, or is never
/// baked).
pub(crate) fn shared_max_age(headers: &HeaderMap) -> Option<u32> {
    let mut s_maxage = None;
    let mut max_age = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        for directive in value.to_str().ok()?.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (
                    n.trim().to_string(),
                    Some(a.trim().trim_matches('"').to_string()),
                ),
                None => (directive.clone(), None),
            };
            let seconds = || arg.as_deref().and_then(|a| a.parse::<u32>().ok());
            match name.as_str() {
                "no-cache" | "no-store" | "private" => return None,
                "s-maxage" => s_maxage = seconds(),
                "max-age" => max_age = seconds(),
                _ => {}
            }
        }
    }
    s_maxage.or(max_age)
}

/// A redirect hop the origin sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    /// Path requested.
    pub(crate) from: String,
    /// Where it points: a path for same-origin, a full URL otherwise.
    pub(crate) to: String,
    /// Status code.
    pub(crate) code: u16,
    /// True when `to` is on the origin.
    pub(crate) same_origin: bool,
    /// The redirect's own headers: a redirect can be private too
    /// (`Set-Cookie`, `Cache-Control: private`), and then it is not kiln's
    /// to record ([`crate::bake`]).
    pub(crate) headers: HeaderMap,
}

/// A complete response.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// Final path on the origin (after same-origin redirects).
    pub(crate) final_path: String,
    /// HTTP status of the final response.
    pub(crate) status: u16,
    /// Its headers.
    pub(crate) headers: HeaderMap,
    /// Its body (spilled to disk when large).
    pub(crate) body: Body,
    /// Redirect hops followed (same-origin) or stopped at (cross-origin, last).
    pub(crate) hops: Vec<Hop>,
    /// What its headers say about the page, read once here.
    pub(crate) meta: PageMeta,
}

impl Fetched {
    /// True when the last hop left the origin, or was not followed because
    /// its page is baked elsewhere in this run (nothing to bake here).
    pub(crate) fn left_origin(&self) -> bool {
        self.status != 304 && (300..400).contains(&self.status) && !self.hops.is_empty()
    }
}

/// 5xx and 429: the origin cannot answer now.
fn is_unavailable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// True for `text/html` and `application/xhtml+xml`.
pub(crate) fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("text/html") || v.starts_with("application/xhtml+xml")
        })
        .unwrap_or(false)
}

/// Client for one origin. Clone is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    origin: Origin,
    spill_dir: std::path::PathBuf,
    attempts: u32,
}

impl Fetcher {
    /// Builds the pooled client: no cookie store, no automatic redirects.
    /// Bodies over [`crate::body::SPILL_BYTES`] go to a temp file in `spill_dir`.
    ///
    /// `attempts` is how many requests one fetch may make (`retries + 1` for
    /// a one-shot run; 1 in the daemon, whose scheduler retries without
    /// holding a fetch slot).
    pub(crate) fn new(
        origin: &Origin,
        spill_dir: &std::path::Path,
        attempts: u32,
    ) -> Result<Fetcher, reqwest::Error> {
        let mut headers = origin.headers.clone();
        if let Some(host) = &origin.host {
            headers.insert(reqwest::header::HOST, host.clone());
        }
        let mut builder = reqwest::Client::builder();
        for ca in &origin.extra_ca {
            builder = builder.add_root_certificate(ca.clone());
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(origin.timeout)
            .connect_timeout(origin.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(origin.concurrency)
            .tcp_nodelay(true)
            .user_agent(origin.user_agent.clone())
            .default_headers(headers)
            .build()?;
        Ok(Fetcher {
            client,
            origin: origin.clone(),
            spill_dir: spill_dir.to_path_buf(),
            attempts: attempts.max(1),
        })
    }

    /// The full origin URL of a path, for messages.
    pub(crate) fn url_of(&self, path: &str) -> String {
        match urlpath::request_url(&self.origin.url, path) {
            Ok(u) => u.to_string(),
            Err(_) => format!("{}{}", self.origin.url.as_str().trim_end_matches('/'), path),
        }
    }

    /// What a response's headers say about its page: the one place they
    /// are read for tags, type, validators and lifetime.
    fn meta_of(&self, status: u16, headers: &HeaderMap) -> PageMeta {
        PageMeta {
            is_html: is_html(headers),
            content_type: headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            validators: Validators::of(headers),
            status: Some(status),
            max_age: shared_max_age(headers),
            tags: self.tags_from(headers),
        }
    }

    /// Parses the configured tags header of a response.
    fn tags_from(&self, headers: &HeaderMap) -> Vec<String> {
        let mut tags = Vec::new();
        for v in headers.get_all(&self.origin.tags_header) {
            let Ok(v) = v.to_str() else { continue };
            match self.origin.tags_separator {
                TagSeparator::Space => tags.extend(v.split_whitespace().map(str::to_string)),
                TagSeparator::Comma => tags.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string),
                ),
            }
        }
        tags
    }

    /// If `url` is on the origin, its canonical path (with query); otherwise `None`.
    pub(crate) fn same_origin_path(&self, url: &Url) -> Option<String> {
        urlpath::site_path(&self.origin.url, self.origin.public.as_ref(), url)
    }

    /// GETs `path`, following same-origin redirects, retrying transient failures.
    ///
    /// `claim` is asked before following a redirect to another path: when it
    /// says no (a one-shot run already baked or is baking that page), the
    /// chain stops there and the response is the redirect itself, so a page
    /// reached twice is fetched once.
    ///
    /// `validators` (the `ETag` and `Last-Modified` of the baked copy) make
    /// the first request conditional: a `304` comes back as such.
    pub(crate) async fn fetch(
        &self,
        path: &str,
        claim: &(dyn Fn(&str) -> bool + Sync),
        validators: Option<&Validators>,
    ) -> Result<Fetched, FetchError> {
        let mut current = path.to_string();
        let mut hops: Vec<Hop> = Vec::new();
        let mut visited = vec![current.clone()];
        loop {
            // Only the page itself is asked conditionally, not redirect targets.
            let conditional = if hops.is_empty() { validators } else { None };
            let (status, headers, body) = self.get_with_retries(&current, conditional).await?;
            let code = status.as_u16();
            if !status.is_redirection() || code == 304 {
                return Ok(Fetched {
                    final_path: current,
                    status: code,
                    meta: self.meta_of(code, &headers),
                    headers,
                    body,
                    hops,
                });
            }
            let full = self.url_of(&current);
            let location = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|loc| Url::parse(&full).ok()?.join(loc).ok())
                .ok_or_else(|| FetchError::BadRedirect { url: full.clone() })?;
            let next = self.same_origin_path(&location);
            hops.push(Hop {
                from: current.clone(),
                to: next.clone().unwrap_or_else(|| location.to_string()),
                code,
                same_origin: next.is_some(),
                headers: headers.clone(),
            });
            // Not followed: off the origin, or its page is baked elsewhere in
            // this run (a page reached twice is fetched once). A page seen
            // in this chain goes on to the loop check.
            let Some(next) = next.filter(|n| visited.contains(n) || claim(n)) else {
                return Ok(Fetched {
                    final_path: current,
                    status: code,
                    meta: self.meta_of(code, &headers),
                    headers,
                    body,
                    hops,
                });
            };
            if visited.contains(&next) {
                let chain = visited
                    .iter()
                    .chain(std::iter::once(&next))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" -> ");
                return Err(FetchError::RedirectLoop {
                    url: self.url_of(path),
                    chain,
                });
            }
            if hops.len() >= MAX_REDIRECTS {
                return Err(FetchError::TooManyRedirects {
                    url: self.url_of(path),
                });
            }
            visited.push(next.clone());
            current = next;
        }
    }

    async fn get_with_retries(
        &self,
        path: &str,
        validators: Option<&Validators>,
    ) -> Result<(StatusCode, HeaderMap, Body), FetchError> {
        let attempts = self.attempts;
        let mut delay = self.origin.backoff;
        for attempt in 1..=attempts {
            let last = attempt == attempts;
            match self.get_once(path, validators).await {
                Ok((status, _, _)) if is_unavailable(status) && !last => {
                    tracing::debug!(path, %status, attempt, "server error, retrying");
                }
                Ok((status, headers, _)) if is_unavailable(status) => {
                    return Err(FetchError::ServerError {
                        url: self.url_of(path),
                        status: status.as_u16(),
                        attempts,
                        retry_after: headers
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs),
                    });
                }
                Ok(ok) => return Ok(ok),
                Err(e) if e.is_retryable() && !last => {
                    tracing::debug!(path, error = %e, attempt, "transient failure, retrying");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        unreachable!("the last attempt always returns")
    }

    async fn get_once(
        &self,
        path: &str,
        validators: Option<&Validators>,
    ) -> Result<(StatusCode, HeaderMap, Body), FetchError> {
        // The one place a request URL is made: on the origin, or nothing is sent.
        let target = urlpath::request_url(&self.origin.url, path)?;
        let url = target.to_string();
        let classify = |e: reqwest::Error, url: &str| {
            // The URL is in our message once; reqwest's would repeat it.
            let e = e.without_url();
            if e.is_timeout() {
                FetchError::Timeout {
                    url: url.to_string(),
                    timeout: self.origin.timeout,
                }
            } else if e.is_connect() {
                FetchError::Connect {
                    url: url.to_string(),
                    source: e,
                }
            } else {
                FetchError::Other {
                    url: url.to_string(),
                    source: e,
                }
            }
        };
        let mut request_headers = validators
            .map(Validators::request_headers)
            .unwrap_or_default();
        if !self.origin.headers.contains_key(ACCEPT_ENCODING_HEADER) {
            request_headers.insert(
                ACCEPT_ENCODING_HEADER,
                reqwest::header::HeaderValue::from_static(ACCEPT_ENCODING),
            );
        }
        let mut resp = self
            .client
            .get(target)
            .headers(request_headers)
            .send()
            .await
            .map_err(|e| classify(e, &url))?;
        let limit = self.origin.max_body;
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { url, limit });
        }
        let status = resp.status();
        let mut headers = std::mem::take(resp.headers_mut());
        let coding = Coding::of(&headers);
        let mut decoding = Decoding::new(
            coding,
            DecodedSink {
                body: BodyBuilder::new(&self.spill_dir),
                limit,
                encoded: 0,
                overflow: None,
            },
        );
        let encoding = coding.map_or("identity", Coding::name);
        let failed = |e: std::io::Error, overflow: Option<Overflow>, url: String| match overflow {
            Some(Overflow::TooLarge) => FetchError::TooLarge { url, limit },
            Some(Overflow::Inflation) => FetchError::Inflation { url, encoding },
            Some(Overflow::Spill) => FetchError::Spill { url, source: e },
            None => FetchError::Undecodable {
                url,
                encoding,
                source: e,
            },
        };
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, &url))? {
            if let Err(e) = decoding.write_encoded(&chunk) {
                return Err(failed(e, decoding.sink().overflow, url));
            }
        }
        let body = match decoding.finish() {
            Ok(sink) => sink.body.finish(),
            Err((e, overflow)) => return Err(failed(e, overflow, url)),
        };
        if coding.is_some() {
            // What is stored and served is the decoded page.
            headers.remove(reqwest::header::CONTENT_ENCODING);
            headers.remove(reqwest::header::CONTENT_LENGTH);
        }
        Ok((status, headers, body))
    }
}

/// A `Content-Encoding` kiln decodes. Any other is left on the response,
/// and the privacy check refuses it ([`crate::privacy::Refusal::Encoding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    fn of(headers: &HeaderMap) -> Option<Coding> {
        let value = headers
            .get(reqwest::header::CONTENT_ENCODING)?
            .to_str()
            .ok()?;
        match value.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// Why the sink stopped taking bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// Past `origin.max-body` decoded.
    TooLarge,
    /// Past [`MAX_INFLATION`] times the encoded bytes so far.
    Inflation,
    /// The spill file could not be written.
    Spill,
}

/// Where decoded bytes go: the body, under its caps.
struct DecodedSink {
    body: BodyBuilder,
    limit: u64,
    /// Encoded bytes received so far (for the inflation cap).
    encoded: u64,
    overflow: Option<Overflow>,
}

impl std::io::Write for DecodedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let after = self.body.len() + buf.len() as u64;
        if after > self.limit {
            self.overflow = Some(Overflow::TooLarge);
        } else if self.encoded > 0
            && after > self.encoded.saturating_mul(MAX_INFLATION) + (64 << 10)
        {
            self.overflow = Some(Overflow::Inflation);
        }
        if self.overflow.is_some() {
            return Err(std::io::Error::other("body over its cap"));
        }
        self.body.push(buf).inspect_err(|_| {
            self.overflow = Some(Overflow::Spill);
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A body on its way in: decoded as it streams, so an encoded page is
/// never held twice and a bomb stops at its first chunk past the caps.
enum Decoding {
    Identity(DecodedSink),
    Gzip(Box<flate2::write::MultiGzDecoder<DecodedSink>>),
    Deflate(Box<flate2::write::ZlibDecoder<DecodedSink>>),
    Brotli(Box<brotli::DecompressorWriter<DecodedSink>>),
}

impl Decoding {
    fn new(coding: Option<Coding>, sink: DecodedSink) -> Decoding {
        match coding {
            None => Decoding::Identity(sink),
            Some(Coding::Gzip) => {
                Decoding::Gzip(Box::new(flate2::write::MultiGzDecoder::new(sink)))
            }
            Some(Coding::Deflate) => {
                Decoding::Deflate(Box::new(flate2::write::ZlibDecoder::new(sink)))
            }
            Some(Coding::Brotli) => {
                Decoding::Brotli(Box::new(brotli::DecompressorWriter::new(sink, 4096)))
            }
        }
    }

    fn sink(&self) -> &DecodedSink {
        match self {
            Decoding::Identity(s) => s,
            Decoding::Gzip(d) => d.get_ref(),
            Decoding::Deflate(d) => d.get_ref(),
            Decoding::Brotli(d) => d.get_ref(),
        }
    }

    /// Where encoded bytes are written: the decoder, or the sink itself.
    fn writer(&mut self) -> &mut dyn std::io::Write {
        match self {
            Decoding::Identity(s) => s,
            Decoding::Gzip(d) => &mut **d,
            Decoding::Deflate(d) => &mut **d,
            Decoding::Brotli(d) => &mut **d,
        }
    }

    fn sink_mut(&mut self) -> &mut DecodedSink {
        match self {
            Decoding::Identity(s) => s,
            Decoding::Gzip(d) => d.get_mut(),
            Decoding::Deflate(d) => d.get_mut(),
            Decoding::Brotli(d) => d.get_mut(),
        }
    }

    /// Counted first, so the inflation cap knows what came in. (An
    /// identity body never inflates: it is its own encoded size.)
    fn write_encoded(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.sink_mut().encoded += chunk.len() as u64;
        self.writer().write_all(chunk)
    }

    /// The decoded body, or why the stream did not end as a whole one.
    fn finish(self) -> Result<DecodedSink, (std::io::Error, Option<Overflow>)> {
        match self {
            Decoding::Identity(s) => Ok(s),
            Decoding::Gzip(mut d) => match d.try_finish() {
                Ok(()) => d.finish().map_err(|e| (e, None)),
                Err(e) => Err((e, d.get_ref().overflow)),
            },
            Decoding::Deflate(mut d) => match d.try_finish() {
                Ok(()) => d.finish().map_err(|e| (e, None)),
                Err(e) => Err((e, d.get_ref().overflow)),
            },
            Decoding::Brotli(mut d) => match d.close() {
                Ok(()) => d
                    .into_inner()
                    .map_err(|_| (std::io::Error::other("truncated brotli stream"), None)),
                Err(e) => Err((e, d.get_ref().overflow)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Overrides};
    use reqwest::header::{HeaderName, HeaderValue};

    fn fetcher(extra: &str) -> Fetcher {
        let raw = Config::parse_raw(
            &format!("[origin]\nurl = \"http://127.0.0.1:8000\"\n{extra}"),
            std::path::Path::new("site.toml"),
        )
        .unwrap();
        let cfg = Config::from_raw(raw, None, ".".into(), &Overrides::default()).unwrap();
        Fetcher::new(cfg.origin.as_ref().unwrap(), std::path::Path::new("."), 1).unwrap()
    }

    #[test]
    fn the_shared_cache_lifetime_comes_from_s_maxage_then_max_age() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(reqwest::header::CACHE_CONTROL, v.parse().unwrap());
            m
        };
        assert_eq!(shared_max_age(&h("public, max-age=60")), Some(60));
        assert_eq!(shared_max_age(&h("max-age=600, s-maxage=30")), Some(30));
        assert_eq!(
            shared_max_age(&h("S-MaxAge=\"45\", stale-while-revalidate=30")),
            Some(45)
        );
        assert_eq!(shared_max_age(&h("no-cache, max-age=60")), None);
        assert_eq!(shared_max_age(&h("max-age=soon")), None);
        assert_eq!(shared_max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn tags_headers_in_every_dialect() {
        let cases = [
            (
                "",
                "surrogate-key",
                "post:1  comments:1 ",
                vec!["post:1", "comments:1"],
            ),
            (
                "tags-header = \"Cache-Tag\"\n",
                "cache-tag",
                "post:1, comments:1,,",
                vec!["post:1", "comments:1"],
            ),
            (
                "tags-header = \"xkey\"\n",
                "xkey",
                "post:1 list",
                vec!["post:1", "list"],
            ),
            ("", "x-other", "post:1", vec![]),
        ];
        for (cfg, header, value, want) in cases {
            let f = fetcher(cfg);
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static(header),
                HeaderValue::from_static(value),
            );
            assert_eq!(f.tags_from(&h), want, "{cfg} {header}");
        }
    }

    #[test]
    fn same_origin_means_scheme_host_and_port() {
        let f = fetcher("");
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            f.same_origin_path(&u("http://127.0.0.1:8000/a/?q=1"))
                .as_deref(),
            Some("/a/?q=1")
        );
        assert_eq!(f.same_origin_path(&u("http://127.0.0.1:8001/a/")), None);
        assert_eq!(f.same_origin_path(&u("https://127.0.0.1:8000/a/")), None);
        assert_eq!(f.same_origin_path(&u("http://localhost:8000/a/")), None);
    }
}
