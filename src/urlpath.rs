//! URL paths as kiln keys them, and the one rule for where requests may go.
//!
//! Every URL path entering kiln (a CLI, stdin, spool or HTTP target, a link
//! found in a page, a redirect hop) passes [`canonical`] once, at the
//! boundary: percent-encoding is normalised, so `/café/` and `/caf%C3%A9/`
//! are one page with one index row; anything that could name another host
//! (`//host`, backslashes, which WHATWG URL parsers read as `/`), or that
//! is not a path at all (`..` segments, control characters) is rejected with
//! the reason. [`request_url`] is the only way a path becomes a URL to fetch,
//! and it checks the result is on the origin (guarantee 4, docs/architecture.md).

use percent_encoding::percent_decode_str;
use url::Url;

/// Longest URL path (with query) kiln accepts.
pub(crate) const MAX_URL_BYTES: usize = 4096;

/// A URL path as a set remembers it: 128 bits of its BLAKE3 hash, 16
/// bytes whatever the URL's length (two paths sharing one would take
/// ~2^64 paths). What a full pass remembers per page (the crawl's seen
/// set, a run's claimed pages), so its memory does not hold the URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct UrlKey(u128);

impl UrlKey {
    /// The key of a path.
    pub(crate) fn of(url: &str) -> UrlKey {
        let hash = blake3::hash(url.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash.as_bytes()[..16]);
        UrlKey(u128::from_le_bytes(first))
    }
}

/// Why a text is not a URL path on the origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlPathError {
    /// Not an absolute path.
    #[error("`{0}` is not a URL path: it must start with `/`")]
    NotAbsolute(String),
    /// `//host/...`: a scheme-relative URL naming another host.
    #[error("`{0}` starts with `//`, which names another host; give a path on the origin")]
    Authority(String),
    /// A backslash, which URL parsers treat as `/` (so `/\\host` names a host).
    #[error(
        "`{0}` contains a backslash, which URL parsers read as `/`; encode it as %5C if the origin really has it"
    )]
    Backslash(String),
    /// NUL, newline or another control character, or a raw space.
    #[error("`{0}` contains a control character or a raw space; percent-encode it")]
    Control(String),
    /// A `.` or `..` segment, literal or encoded.
    #[error("`{0}` contains a `.` or `..` segment; give the resolved path")]
    Traversal(String),
    /// Longer than [`MAX_URL_BYTES`].
    #[error("URL path is longer than {MAX_URL_BYTES} bytes")]
    TooLong,
    /// The URL built from the path is not on the origin (a last line of defence).
    #[error("`{0}` does not resolve to a URL on the origin")]
    OffOrigin(String),
}

/// Bytes kept literal in a canonical path segment: RFC 3986 unreserved,
/// sub-delims, `:` and `@`. Everything else is percent-encoded, uppercase.
fn keep_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

fn encode_into(out: &mut String, bytes: &[u8], keep: impl Fn(u8) -> bool) {
    for &b in bytes {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The canonical form of a URL path with optional query; the fragment is dropped.
pub(crate) fn canonical(raw: &str) -> Result<String, UrlPathError> {
    let owned = || raw.to_string();
    if raw.len() > MAX_URL_BYTES {
        return Err(UrlPathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(UrlPathError::NotAbsolute(owned()));
    }
    if raw.starts_with("//") {
        return Err(UrlPathError::Authority(owned()));
    }
    if raw.contains('\\') {
        return Err(UrlPathError::Backslash(owned()));
    }
    if raw.chars().any(|c| c.is_control() || c == ' ') {
        return Err(UrlPathError::Control(owned()));
    }
    let without_fragment = raw.split('#').next().unwrap_or(raw);
    let (path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (without_fragment, None),
    };
    let mut out = String::with_capacity(path.len() + 8);
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let bytes: Vec<u8> = percent_decode_str(seg).collect();
        if bytes == b"." || bytes == b".." {
            return Err(UrlPathError::Traversal(owned()));
        }
        encode_into(&mut out, &bytes, keep_literal);
    }
    if let Some(q) = query {
        out.push('?');
        // The query is the origin's business: keep its encoding, only make
        // non-ASCII bytes explicit.
        encode_into(&mut out, q.as_bytes(), |b| b.is_ascii());
    }
    if out.len() > MAX_URL_BYTES {
        return Err(UrlPathError::TooLong);
    }
    Ok(out)
}

/// The canonical path of `url` when it is the site's own: on the origin,
/// or on its public URL (`[site] url`). The one same-site rule for links,
/// sitemaps and redirects.
pub(crate) fn site_path(origin: &Url, public: Option<&Url>, url: &Url) -> Option<String> {
    origin_path(origin, url).or_else(|| origin_path(public?, url))
}

/// True when two URLs share scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The path (with query) of `url` in canonical form, if it is on `origin`.
pub(crate) fn origin_path(origin: &Url, url: &Url) -> Option<String> {
    if !same_origin(origin, url) {
        return None;
    }
    let mut p = url.path().to_string();
    if let Some(q) = url.query() {
        p.push('?');
        p.push_str(q);
    }
    canonical(&p).ok()
}

/// The URL to request for a canonical `path` on `origin`. The only place a
/// path becomes a URL kiln sends a request to: whatever the path, the result
/// is on the origin or an error.
pub(crate) fn request_url(origin: &Url, path: &str) -> Result<Url, UrlPathError> {
    let path = canonical(path)?;
    let mut url = origin.clone();
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path.as_str(), None),
    };
    url.set_path(p);
    url.set_query(q);
    url.set_fragment(None);
    if !same_origin(origin, &url) || url.path() != p {
        return Err(UrlPathError::OffOrigin(path));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("/", "/"),
            ("/a/", "/a/"),
            ("/café/", "/caf%C3%A9/"),
            ("/caf%c3%a9/", "/caf%C3%A9/"),
            ("/caf%C3%A9/", "/caf%C3%A9/"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%7Euser/", "/~user/"),
            ("/a#frag", "/a"),
            ("/s?q=1&x=%20", "/s?q=1&x=%20"),
            ("/a//b", "/a//b"),
            ("/%5C", "/%5C"),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical(raw).unwrap(), want, "{raw}");
            assert_eq!(canonical(want).unwrap(), want, "idempotent for {want}");
        }
    }

    #[test]
    fn rejects_what_could_leave_the_origin() {
        for raw in [
            "//evil.example/x",
            "/\\127.0.0.1:9999/x",
            "/a\\b",
            "/../../etc/passwd",
            "/a/%2e%2e/b",
            "/a/./b",
            "/a\nb",
            "/a b",
            "relative",
            "http://evil.example/",
        ] {
            assert!(canonical(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn requests_stay_on_the_origin() {
        let origin = Url::parse("http://127.0.0.1:8000/").unwrap();
        assert_eq!(
            request_url(&origin, "/caf%C3%A9/?p=2").unwrap().as_str(),
            "http://127.0.0.1:8000/caf%C3%A9/?p=2"
        );
        assert!(request_url(&origin, "/\\127.0.0.1:9999/x").is_err());
        assert!(request_url(&origin, "//127.0.0.1:9999/x").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn no_path_requests_another_host(s in "\\PC{0,40}", raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let origin = Url::parse("http://127.0.0.1:8000/base/").unwrap();
            let from_bytes = format!("/{}", String::from_utf8_lossy(&raw));
            for text in [s.clone(), format!("/{s}"), from_bytes] {
                if let Ok(url) = request_url(&origin, &text) {
                    prop_assert!(same_origin(&origin, &url), "{text} -> {url}");
                    prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
                    prop_assert_eq!(url.port(), Some(8000));
                }
                if let Ok(c) = canonical(&text) {
                    prop_assert_eq!(canonical(&c), Ok(c.clone()), "canonical is idempotent");
                }
            }
        }
    }
}
