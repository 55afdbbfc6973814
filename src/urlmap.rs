//! URL path → file path under the output root (guarantees 4 and 6, docs/architecture.md).
//!
//! This is the gate that keeps every write inside the root: paths are
//! percent-decoded once and each segment is checked, so `..`, `%2e%2e`,
//! `%2f`, NUL, backslashes and over-long names never reach the filesystem.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use crate::config::QueryPolicy;

/// Longest file name most filesystems accept.
const MAX_SEGMENT_BYTES: usize = 255;
/// Longest relative path kiln will create.
const MAX_PATH_BYTES: usize = 1024;

/// Why a URL cannot be mapped to a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// Not an absolute path.
    #[error("URL path `{0}` does not start with `/`")]
    NotAbsolute(String),
    /// Carries a query string and the policy is to skip those.
    #[error(
        "URL `{0}` has a query string; set `output.query-strings = \"strip\"` to bake it without"
    )]
    HasQuery(String),
    /// Not valid UTF-8 after decoding.
    #[error("URL path `{0}` is not valid UTF-8 once decoded")]
    NotUtf8(String),
    /// A `.` or `..` segment, literal or encoded.
    #[error(
        "URL path `{0}` contains a `.` or `..` segment; refusing to write outside the output root"
    )]
    Traversal(String),
    /// An encoded `/` inside a segment.
    #[error("URL path `{0}` contains an encoded `/` (%2F) inside a segment")]
    EncodedSlash(String),
    /// A backslash, which Windows-style consumers treat as a separator.
    #[error("URL path `{0}` contains a backslash")]
    Backslash(String),
    /// NUL or another control character.
    #[error("URL path `{0}` contains a NUL or control character")]
    Control(String),
    /// A segment starting with `.` (hidden files; kiln's temp files are dot-named).
    #[error("URL path `{0}` names a dot-file; nginx is configured to deny those")]
    DotFile(String),
    /// `//` inside the path.
    #[error("URL path `{0}` has an empty segment (`//`)")]
    EmptySegment(String),
    /// A segment or the whole path is too long for the filesystem.
    #[error("URL path `{0}` is too long to store as a file")]
    TooLong(String),
}

/// Strips the query according to policy; returns the bare path.
pub(crate) fn apply_query_policy(url_path: &str, policy: QueryPolicy) -> Result<&str, PathError> {
    match url_path.split_once('?') {
        None => Ok(url_path),
        Some((path, _)) => match policy {
            QueryPolicy::Skip => Err(PathError::HasQuery(url_path.to_string())),
            QueryPolicy::Strip => Ok(path),
        },
    }
}

/// Decodes and validates a URL path into its segments.
pub(crate) fn segments(url_path: &str) -> Result<Vec<String>, PathError> {
    let owned = || url_path.to_string();
    let Some(rest) = url_path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute(owned()));
    };
    if url_path.len() > MAX_PATH_BYTES * 3 {
        return Err(PathError::TooLong(owned()));
    }
    let mut out = Vec::new();
    let raw_segments: Vec<&str> = rest.split('/').collect();
    let last = raw_segments.len() - 1;
    let mut total = 0;
    for (i, raw) in raw_segments.into_iter().enumerate() {
        if raw.is_empty() {
            if i == last {
                break; // trailing slash
            }
            return Err(PathError::EmptySegment(owned()));
        }
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| PathError::NotUtf8(owned()))?;
        if decoded == "." || decoded == ".." {
            return Err(PathError::Traversal(owned()));
        }
        if decoded.contains('/') {
            return Err(PathError::EncodedSlash(owned()));
        }
        if decoded.contains('\\') {
            return Err(PathError::Backslash(owned()));
        }
        if decoded.chars().any(char::is_control) {
            return Err(PathError::Control(owned()));
        }
        if decoded.starts_with('.') {
            return Err(PathError::DotFile(owned()));
        }
        // Room for `index.html`, `.gz` and the temp prefix.
        if decoded.len() > MAX_SEGMENT_BYTES - 20 {
            return Err(PathError::TooLong(owned()));
        }
        total += decoded.len() + 1;
        out.push(decoded.into_owned());
    }
    if total > MAX_PATH_BYTES {
        return Err(PathError::TooLong(owned()));
    }
    Ok(out)
}

/// The query tree: a query page (`/posts/?page=2`, a parameter the site
/// declared in `[crawl] query-params`) is baked as
/// `.kiln-query/<its query>/<its path's file>`, which the nginx block
/// serves only for exactly that query string. See [`query_page`].
pub(crate) const QUERY_TREE: &str = ".kiln-query";

/// The canonical URL of a query page: `url` when its query string holds
/// only parameters of `declared`, each once, with a plain value (1-64
/// letters, digits, `-`, `_`, `.`, `~`), written in name order; else
/// `None` (a query that is the app's to answer). Tracking parameters mixed
/// in make it the app's too: the nginx block only serves a query page for
/// its exact query string.
pub(crate) fn query_page(url: &str, declared: &[String]) -> Option<String> {
    let (path, query) = url.split_once('?')?;
    if declared.is_empty() || query.is_empty() {
        return None;
    }
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=')?;
        let plain = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
        if !plain || !declared.iter().any(|d| d == name) || pairs.iter().any(|(n, _)| *n == name) {
            return None;
        }
        pairs.push((name, value));
    }
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    Some(format!("{path}?{}", query.join("&")))
}

/// The file of a page: a declared query page's in the query tree
/// (`.kiln-query/<query>/<file of its path>`), any other's by [`file_for`].
pub(crate) fn page_file(
    url: &str,
    is_html: bool,
    policy: QueryPolicy,
    declared: &[String],
) -> Result<PathBuf, PathError> {
    match query_page(url, declared).filter(|page| page == url) {
        Some(_) => {
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            Ok(PathBuf::from(QUERY_TREE)
                .join(query)
                .join(file_for(path, is_html, policy)?))
        }
        None => file_for(url, is_html, policy),
    }
}

/// `(path, query)` of a URL whose query is in query-page form (see
/// [`query_page`]; whether its names were declared is the caller's).
fn query_page_parts(url: &str) -> Option<(&str, &str)> {
    let (path, query) = url.split_once('?')?;
    let form = !query.is_empty()
        && query.split('&').all(|pair| {
            pair.split_once('=').is_some_and(|(n, v)| {
                !n.is_empty()
                    && !v.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
                    && v.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
                    })
            })
        });
    form.then_some((path, query))
}

/// Maps a URL path to a file relative to the output root.
///
/// `/` → `index.html`; `/a/` and `/a` → `a/index.html` for HTML; a last
/// segment with an extension (`/feed.xml`) or a non-HTML response keeps its
/// path. A declared query page's file is [`page_file`]'s.
pub(crate) fn file_for(
    url_path: &str,
    is_html: bool,
    policy: QueryPolicy,
) -> Result<PathBuf, PathError> {
    let path = apply_query_policy(url_path, policy)?;
    let segs = segments(path)?;
    let mut file = PathBuf::new();
    for s in &segs {
        file.push(s);
    }
    let ends_with_slash = path.ends_with('/');
    let has_extension = segs.last().is_some_and(|s| s.contains('.'));
    if segs.is_empty() || ends_with_slash || (is_html && !has_extension) {
        file.push("index.html");
    }
    Ok(file)
}

/// The URL path a file in the output was baked from: [`file_for`] read
/// backwards (`index.html` → its directory with a slash, anything else its
/// own path), segments percent-encoded as the canonical form has them.
/// `None` for what no URL maps to (dot files, temp files, names that are
/// not UTF-8). Rebuilding the index from the output uses it.
pub(crate) fn url_for(file: &std::path::Path) -> Option<String> {
    if let Ok(rest) = file.strip_prefix(QUERY_TREE) {
        let mut parts = rest.components();
        let std::path::Component::Normal(query) = parts.next()? else {
            return None;
        };
        let page = format!("{}?{}", url_for(parts.as_path())?, query.to_str()?);
        return query_page_parts(&page).is_some().then_some(page);
    }
    let mut segs = Vec::new();
    for part in logical(file).components() {
        let std::path::Component::Normal(name) = part else {
            return None;
        };
        let name = name.to_str()?;
        if name.starts_with('.') {
            return None;
        }
        segs.push(name);
    }
    let dir_page = segs.last() == Some(&"index.html");
    if dir_page {
        segs.pop();
    }
    let mut url = String::from("/");
    for (i, seg) in segs.iter().enumerate() {
        if i > 0 {
            url.push('/');
        }
        url.extend(percent_encoding::utf8_percent_encode(seg, SEGMENT));
    }
    if dir_page && !segs.is_empty() {
        url.push('/');
    }
    crate::urlpath::canonical(&url).ok()
}

/// What a path segment percent-encodes: everything but RFC 3986's
/// unreserved characters and sub-delimiters, `:` and `@`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// The media types kiln serves with their own type whatever the file's
/// name, each with a short name: the name of its directory in the typed
/// tree ([`TYPED_TREE`]) and of its internal locations in the nginx block.
/// A fixed list, so a block generated once serves a page of any of these
/// types baked later; a page of another type is served by its extension
/// (the types map corrects that at nginx's next reload, and `kiln nginx`
/// says which).
pub(crate) const TYPED: &[(&str, &str)] = &[
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("json", "application/json"),
    ("feed-json", "application/feed+json"),
    ("ld-json", "application/ld+json"),
    ("xml", "application/xml"),
    ("text-xml", "text/xml"),
    ("text", "text/plain"),
    ("css", "text/css"),
    ("js", "application/javascript"),
    ("text-js", "text/javascript"),
    ("svg", "image/svg+xml"),
    ("manifest", "application/manifest+json"),
    ("calendar", "text/calendar"),
    ("csv", "text/csv"),
    ("pdf", "application/pdf"),
    ("xhtml", "application/xhtml+xml"),
];

/// The typed tree: a page whose file name would make nginx serve it with
/// the wrong type (a feed at `/feed/` is `feed/index.html`, JSON at
/// `/api/x` has no extension) is written under `.kiln-typed/<name>/`
/// instead, where the block's location for its type serves it with that
/// type from its first request (no reload, no map). See [`placed`].
pub(crate) const TYPED_TREE: &str = ".kiln-typed";

/// Where a page's file goes under the root: its file ([`file_for`]), or
/// that path in the typed tree ([`TYPED_TREE`]) when the page is not HTML,
/// its type is one of [`TYPED`], and the file's name says otherwise (an
/// `index.html`, or no extension at all). A file whose own extension names
/// a type (`feed.xml`) stays where it is: it is a file users expect there.
pub(crate) fn placed(file: PathBuf, content_type: &str) -> PathBuf {
    let media = media_type(content_type);
    if media == "text/html" || media == "application/xhtml+xml" || file.starts_with(QUERY_TREE) {
        return file;
    }
    let misnamed =
        file.file_name().is_some_and(|n| n == "index.html") || file.extension().is_none();
    match TYPED.iter().find(|(_, m)| *m == media) {
        Some((name, _)) if misnamed => PathBuf::from(TYPED_TREE).join(name).join(file),
        _ => file,
    }
}

/// A placed file's path as the site has it: the typed tree's prefix
/// removed (object keys in a bucket, URLs read back from the output).
pub(crate) fn logical(file: &std::path::Path) -> &std::path::Path {
    let Ok(rest) = file.strip_prefix(TYPED_TREE) else {
        return file;
    };
    let mut parts = rest.components();
    match parts.next() {
        Some(std::path::Component::Normal(name))
            if TYPED.iter().any(|(n, _)| std::ffi::OsStr::new(n) == name) =>
        {
            parts.as_path()
        }
        _ => file,
    }
}

/// The `Content-Type` a file's extension stands for (the common part of
/// nginx's `mime.types`), for rendered pages without an explicit type.
pub(crate) fn content_type_of(file: &std::path::Path) -> &'static str {
    let ext = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "application/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "atom" => "application/atom+xml",
        "rss" => "application/rss+xml",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "webmanifest" => "application/manifest+json",
        // Images, fonts, media and documents a site ships, as nginx's
        // stock mime.types names them (`kiln serve` and a bucket then give
        // them the type nginx would: a font as octet-stream is refused
        // under `X-Content-Type-Options: nosniff`).
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Whether a `Content-Type` is an asset a page loads (a style sheet, a
/// script, an image, a font, media) rather than a page of its own: a
/// crawl bakes these only with `[crawl] assets = true`, and so does a fill.
pub(crate) fn is_asset_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    ["image/", "font/", "audio/", "video/"]
        .iter()
        .any(|p| media.starts_with(p))
        || matches!(
            media.as_str(),
            "text/css" | "application/javascript" | "text/javascript" | "application/wasm"
        )
}

/// The media type of a `Content-Type` value, lowercased, without parameters.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Every path prefix of a URL path, itself included: `/a/b/` → `/`, `/a/`, `/a/b/`.
/// Stored as `path:` tags so prefix and glob lookups use the tag index.
pub(crate) fn path_prefixes(url_path: &str) -> Vec<String> {
    let path = url_path.split('?').next().unwrap_or(url_path);
    let mut out = vec!["/".to_string()];
    let mut acc = String::from("/");
    let trimmed = path.trim_start_matches('/');
    let parts: Vec<&str> = trimmed.split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() {
            continue;
        }
        acc.push_str(p);
        if i + 1 < parts.len() {
            acc.push('/');
        }
        out.push(acc.clone());
    }
    out.dedup();
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn map(p: &str, html: bool) -> Result<String, PathError> {
        file_for(p, html, QueryPolicy::Skip).map(|f| f.to_string_lossy().into_owned())
    }

    #[test]
    fn a_query_page_is_canonical_and_only_for_declared_plain_parameters() {
        let declared = vec!["page".to_string(), "sort".to_string()];
        let cases = [
            ("/posts/?page=2", Some("/posts/?page=2")),
            ("/posts/?sort=new&page=2", Some("/posts/?page=2&sort=new")),
            ("/?page=abc", Some("/?page=abc")),
            // Something else in it: the app's.
            ("/posts/?page=2&utm_source=x", None),
            ("/posts/?q=clay", None),
            ("/posts/?page=2&page=3", None),
            ("/posts/?page=", None),
            ("/posts/?page=%2e%2e", None),
            ("/posts/?page=../x", None),
            ("/posts/?page", None),
            ("/posts/", None),
        ];
        for (url, want) in cases {
            assert_eq!(query_page(url, &declared).as_deref(), want, "{url}");
        }
        assert_eq!(query_page("/posts/?page=2", &[]), None);
    }

    #[test]
    fn a_page_goes_to_the_typed_tree_only_when_its_name_would_give_the_wrong_type() {
        let cases = [
            (
                "/feed/",
                "application/rss+xml",
                ".kiln-typed/rss/feed/index.html",
            ),
            (
                "/api/x",
                "application/json; charset=utf-8",
                ".kiln-typed/json/api/x",
            ),
            ("/", "application/json", ".kiln-typed/json/index.html"),
            // The name says it already, or users expect the file there.
            ("/feed.xml", "application/rss+xml", "feed.xml"),
            ("/data.json", "application/json", "data.json"),
            // HTML, and types without a location, stay.
            ("/a/", "text/html; charset=utf-8", "a/index.html"),
            ("/x/", "application/xhtml+xml", "x/index.html"),
            ("/img", "image/png", "img"),
        ];
        for (url, ty, want) in cases {
            let html = media_type(ty) == "text/html";
            let file = placed(file_for(url, html, QueryPolicy::Skip).unwrap(), ty);
            assert_eq!(file, std::path::Path::new(want), "{url} {ty}");
            assert_eq!(
                logical(&file),
                file_for(url, html, QueryPolicy::Skip).unwrap(),
                "{url}"
            );
        }
        assert_eq!(
            logical(std::path::Path::new(".kiln-typed/x/y")),
            std::path::Path::new(".kiln-typed/x/y")
        );
    }

    #[test]
    fn a_file_maps_back_to_the_url_it_was_baked_from() {
        for (url, html) in [
            ("/", true),
            ("/a/", true),
            ("/a/b/", true),
            ("/feed.xml", false),
            ("/page.html", true),
            ("/caf%C3%A9/", true),
            ("/a%20b/c%3Fd/", true),
            ("/data/x.json", false),
            ("/~user/(1)/", true),
        ] {
            let file = file_for(url, html, QueryPolicy::Skip).unwrap();
            assert_eq!(url_for(&file).as_deref(), Some(url), "{}", file.display());
            // And the URL maps to the same file again.
            let back = url_for(&file).unwrap();
            assert_eq!(file_for(&back, html, QueryPolicy::Skip).unwrap(), file);
        }
        // A query page maps back to its URL, query included.
        let page2 = page_file("/posts/?page=2", true, QueryPolicy::Skip, &["page".into()]).unwrap();
        assert_eq!(
            page2,
            std::path::Path::new(".kiln-query/page=2/posts/index.html")
        );
        assert_eq!(url_for(&page2).as_deref(), Some("/posts/?page=2"));
        // A page in the typed tree maps back to its own URL.
        let feed = placed(
            file_for("/feed/", false, QueryPolicy::Skip).unwrap(),
            "application/rss+xml",
        );
        assert_eq!(
            feed,
            std::path::Path::new(".kiln-typed/rss/feed/index.html")
        );
        assert_eq!(url_for(&feed).as_deref(), Some("/feed/"));
        for not_a_page in [
            ".kiln-tmp-1-x",
            "a/.hidden",
            "../x",
            "/etc/passwd",
            ".kiln-typed/nosuch/x",
        ] {
            assert_eq!(
                url_for(std::path::Path::new(not_a_page)),
                None,
                "{not_a_page}"
            );
        }
    }

    #[test]
    fn maps_urls_to_files() {
        let cases = [
            ("/", true, "index.html"),
            ("/a/", true, "a/index.html"),
            ("/a", true, "a/index.html"),
            ("/a/b/", true, "a/b/index.html"),
            ("/feed.xml", false, "feed.xml"),
            ("/feed.xml", true, "feed.xml"),
            ("/page.html", true, "page.html"),
            ("/api/data", false, "api/data"),
            ("/api/data/", false, "api/data/index.html"),
            ("/caf%C3%A9/", true, "café/index.html"),
            ("/a%20b/", true, "a b/index.html"),
            ("/static/app.css", false, "static/app.css"),
        ];
        for (url, html, want) in cases {
            assert_eq!(map(url, html).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn refuses_every_traversal_trick() {
        let long = format!("/{}/", "a".repeat(300));
        let deep = format!("/{}", "abcdefghi/".repeat(120));
        let cases: Vec<(&str, fn(&PathError) -> bool)> = vec![
            ("/..", |e| matches!(e, PathError::Traversal(_))),
            ("/../etc/passwd", |e| matches!(e, PathError::Traversal(_))),
            ("/a/../../etc/", |e| matches!(e, PathError::Traversal(_))),
            ("/%2e%2e/etc/passwd", |e| {
                matches!(e, PathError::Traversal(_))
            }),
            ("/%2E%2E/", |e| matches!(e, PathError::Traversal(_))),
            ("/.%2e/x", |e| matches!(e, PathError::Traversal(_))),
            ("/a/./b", |e| matches!(e, PathError::Traversal(_))),
            ("/a/%2e/b", |e| matches!(e, PathError::Traversal(_))),
            ("/..%2fetc", |e| matches!(e, PathError::EncodedSlash(_))),
            ("/a%2F..%2F..%2Fetc", |e| {
                matches!(e, PathError::EncodedSlash(_))
            }),
            ("/..%5cwindows", |e| matches!(e, PathError::Backslash(_))),
            ("/a\\b", |e| matches!(e, PathError::Backslash(_))),
            ("/a%00.html", |e| matches!(e, PathError::Control(_))),
            ("/a%0a", |e| matches!(e, PathError::Control(_))),
            ("/.git/config", |e| matches!(e, PathError::DotFile(_))),
            ("/.kiln-tmp-x", |e| matches!(e, PathError::DotFile(_))),
            ("/a//b", |e| matches!(e, PathError::EmptySegment(_))),
            ("//etc/passwd", |e| matches!(e, PathError::EmptySegment(_))),
            ("/%ff%fe", |e| matches!(e, PathError::NotUtf8(_))),
            ("relative", |e| matches!(e, PathError::NotAbsolute(_))),
            ("/a?x=1", |e| matches!(e, PathError::HasQuery(_))),
        ];
        for (url, is_expected) in cases {
            let e = map(url, true).unwrap_err();
            assert!(is_expected(&e), "{url}: got {e:?}");
            assert!(
                e.to_string().contains("URL"),
                "{url}: message names the URL"
            );
        }
        assert!(matches!(map(&long, true), Err(PathError::TooLong(_))));
        assert!(matches!(map(&deep, true), Err(PathError::TooLong(_))));
    }

    #[test]
    fn query_policy() {
        assert_eq!(
            file_for("/a/?p=2", true, QueryPolicy::Strip).unwrap(),
            PathBuf::from("a/index.html")
        );
        assert!(file_for("/a/?p=2", true, QueryPolicy::Skip).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Whatever the bytes, a mapped file is a plain relative path: only
        /// normal components, so joined to the root it stays inside it.
        #[test]
        fn no_url_maps_outside_the_root(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            text in "[/a-z.%2eEfF5cC0\\\\?#]{0,40}",
            html in proptest::prelude::any::<bool>(),
        ) {
            let lossy = format!("/{}", String::from_utf8_lossy(&raw));
            let encoded: String = raw.iter().map(|b| format!("%{b:02x}")).collect();
            for url in [lossy, format!("/{encoded}"), text.clone(), format!("/{text}")] {
                for policy in [QueryPolicy::Skip, QueryPolicy::Strip] {
                    if let Ok(file) = file_for(&url, html, policy) {
                        proptest::prop_assert!(file.components().all(|c| matches!(c, std::path::Component::Normal(_))), "{url} -> {file:?}");
                        proptest::prop_assert!(!file.to_string_lossy().contains('\0'));
                        proptest::prop_assert!(file.components().all(|c| !c.as_os_str().to_string_lossy().starts_with('.')), "{url} -> {file:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(path_prefixes("/"), vec!["/"]);
        assert_eq!(path_prefixes("/a/b/"), vec!["/", "/a/", "/a/b/"]);
        assert_eq!(
            path_prefixes("/a/feed.xml"),
            vec!["/", "/a/", "/a/feed.xml"]
        );
    }
}
