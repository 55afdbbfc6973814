//! Links and scope: what a page points to (streaming link extraction from
//! HTML with [`crate::linkscan`], `<loc>` entries of sitemaps with quick-xml) and which
//! of those URLs kiln may bake. Below both `bake` (which finds a page's links)
//! and `crawl` (which follows them), so neither imports the other.

use url::Url;

use crate::body::Body;
use crate::config::{Crawl, QueryPolicy};
use crate::linkscan;

/// Extracts raw link targets from an HTML page: `a[href]`,
/// `link[rel=alternate|next|prev]`, and with `assets` also stylesheets,
/// icons, scripts and images. Honors `<base href>`.
pub(crate) fn extract_links(html: &Body, assets: bool) -> (Option<String>, Vec<String>) {
    let found = match html.as_bytes() {
        Some(bytes) => linkscan::scan(bytes, assets),
        None => {
            // A large page streams through in chunks: memory stays flat.
            let mut scanner = linkscan::Scanner::new(assets);
            let mut reader = html.reader();
            let mut chunk = vec![0u8; crate::body::CHUNK];
            // Unreadable or done: keep what was found.
            while let Ok(n @ 1..) = std::io::Read::read(&mut reader, &mut chunk) {
                scanner.feed(&chunk[..n], false);
            }
            scanner.feed(&[], true);
            scanner.found
        }
    };
    (found.base, found.links)
}

/// Extracts `<loc>` entries of a sitemap or sitemap index. `None` when the
/// document is not a sitemap.
pub(crate) fn sitemap_locs(xml: &Body) -> Option<Vec<String>> {
    let mut reader = quick_xml::Reader::from_reader(std::io::BufReader::new(xml.reader()));
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut locs = Vec::new();
    let mut in_loc = false;
    let mut is_sitemap = false;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Start(e)) => {
                let name = e.local_name();
                let name = name.as_ref();
                if name == b"urlset" || name == b"sitemapindex" {
                    is_sitemap = true;
                }
                in_loc = name == b"loc";
            }
            Ok(quick_xml::events::Event::Text(t)) if in_loc => {
                if let Ok(s) = t.decode() {
                    locs.push(s.trim().to_string());
                }
            }
            Ok(quick_xml::events::Event::End(_)) => in_loc = false,
            Ok(quick_xml::events::Event::Eof) => break,
            Err(_) => return None,
            _ => {}
        }
        buf.clear();
    }
    is_sitemap.then_some(locs)
}

/// Which URLs the frontier may enqueue.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    crawl: Crawl,
    query: QueryPolicy,
    origin: Option<Url>,
    /// The site's public URL: its links are the site's own too.
    public: Option<Url>,
}

impl Scope {
    /// Scope from config.
    pub(crate) fn new(crawl: &Crawl, query: QueryPolicy, origin: Option<Url>) -> Scope {
        Scope {
            crawl: crawl.clone(),
            query,
            origin,
            public: None,
        }
    }

    /// Links on the site's public URL (`[site] url`) are the site's too.
    pub(crate) fn with_public(mut self, public: Option<Url>) -> Scope {
        self.public = public;
        self
    }

    /// Resolves a raw link found on `page_path` to an in-scope origin path.
    #[cfg(test)]
    pub(crate) fn admit(&self, page_path: &str, base: Option<&str>, raw: &str) -> Option<String> {
        self.page(page_path, base)?.admit(raw)
    }

    /// The links of one page, resolved against its URL (and `<base href>`),
    /// which is parsed once for all of them.
    pub(crate) fn page(&self, page_path: &str, base: Option<&str>) -> Option<PageScope<'_>> {
        let origin = match &self.origin {
            Some(o) => std::borrow::Cow::Borrowed(o),
            None => std::borrow::Cow::Owned(
                Url::parse("http://kiln.invalid/").expect("static URL parses"),
            ),
        };
        let page = origin.join(page_path).ok()?;
        let base = match base {
            Some(b) => page.join(b).ok()?,
            None => page,
        };
        Some(PageScope {
            scope: self,
            origin,
            base,
        })
    }

    /// True when a path passes include/exclude.
    pub(crate) fn allows(&self, path: &str) -> bool {
        self.crawl.allows(path)
    }
}

/// [`Scope`] for the links of one page.
pub(crate) struct PageScope<'a> {
    scope: &'a Scope,
    origin: std::borrow::Cow<'a, Url>,
    base: Url,
}

impl PageScope<'_> {
    /// Resolves a raw link of the page to an in-scope origin path.
    pub(crate) fn admit(&self, raw: &str) -> Option<String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            return None;
        }
        if let Some(path) = plain_absolute_path(raw) {
            // Most links: already the canonical path whatever the page's URL.
            return self.scope.allows(path).then(|| path.to_string());
        }
        let mut url = self.base.join(raw).ok()?;
        url.set_fragment(None);
        if url.query().is_some() {
            // A query page the site declared (`?page=2`) is a page of its own.
            let with_query =
                crate::urlpath::site_path(&self.origin, self.scope.public.as_ref(), &url)?;
            if let Some(page) =
                crate::urlmap::query_page(&with_query, &self.scope.crawl.query_params)
            {
                let path = page.split('?').next().unwrap_or(&page);
                return self.scope.allows(path).then_some(page);
            }
            if self.scope.query == QueryPolicy::Skip {
                return None;
            }
        }
        url.set_query(None);
        let path = crate::urlpath::site_path(&self.origin, self.scope.public.as_ref(), &url)?;
        self.scope.allows(&path).then_some(path)
    }
}

/// `raw` itself when it is an absolute path that resolves to itself on any
/// base and is already canonical: `/`, then unreserved characters and `/`
/// only, no `//` authority, no `.` or `..` segment. The URL parser is then
/// not needed (it was a third of link handling).
fn plain_absolute_path(raw: &str) -> Option<&str> {
    let plain = raw.starts_with('/')
        && !raw.starts_with("//")
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
        && !raw.split('/').any(|seg| seg == "." || seg == "..");
    plain.then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Body;

    #[test]
    fn extracts_page_links_and_optionally_assets() {
        let html = br#"<html><head><link rel="stylesheet" href="/s.css"><link rel="alternate" href="/feed.xml"></head>
            <body><a href="/a/">A</a><a href="b">B</a><a>none</a><img src="/i.png" srcset="/i2.png 2x, /i3.png 3x"><script src="/app.js"></script></body></html>"#;
        let html = &Body::from(html.to_vec());
        let (_, pages) = extract_links(html, false);
        assert_eq!(pages, vec!["/feed.xml", "/a/", "b"]);
        let (_, all) = extract_links(html, true);
        for want in ["/s.css", "/i.png", "/i2.png", "/i3.png", "/app.js"] {
            assert!(all.contains(&want.to_string()), "{want} in {all:?}");
        }
    }

    #[test]
    fn scope_resolves_and_filters() {
        let crawl = crate::config::Config::from_raw(
            crate::config::Config::parse_raw(
                "[crawl]\nexclude = [\"/admin/**\"]\n",
                std::path::Path::new("s"),
            )
            .unwrap(),
            None,
            ".".into(),
            &Default::default(),
        )
        .unwrap()
        .crawl;
        let scope = Scope::new(
            &crawl,
            QueryPolicy::Skip,
            Url::parse("http://127.0.0.1:8000/").ok(),
        );
        let cases = [
            ("/blog/", "post-1/", Some("/blog/post-1/")),
            ("/blog/", "../about/", Some("/about/")),
            ("/blog/", "/x/#frag", Some("/x/")),
            ("/blog/", "#top", None),
            ("/blog/", "http://127.0.0.1:8000/y/", Some("/y/")),
            ("/blog/", "http://127.0.0.1:9000/y/", None),
            ("/blog/", "https://example.com/", None),
            ("/blog/", "mailto:a@b.c", None),
            ("/blog/", "/admin/users/", None),
            ("/blog/", "/search?q=x", None),
            ("/blog/", "javascript:void(0)", None),
            ("/blog/", "/caf\u{e9}/", Some("/caf%C3%A9/")),
            ("/blog/", "/caf%c3%a9/", Some("/caf%C3%A9/")),
            ("/blog/", "/\\127.0.0.1:9999/x", None),
            ("/blog/", "//127.0.0.1:9999/x", None),
        ];
        for (page, raw, want) in cases {
            assert_eq!(scope.admit(page, None, raw).as_deref(), want, "{raw}");
        }
        assert_eq!(
            scope.admit("/a/b/", Some("/base/"), "c/").as_deref(),
            Some("/base/c/")
        );
    }

    proptest::proptest! {
        /// The shortcut for plain paths gives what the URL parser gives.
        #[test]
        fn plain_paths_resolve_as_the_url_parser_does(
            raw in "/[a-zA-Z0-9./_~-]{0,12}(/[a-zA-Z0-9./_~-]{0,6}){0,3}",
            page in "/[a-z]{1,3}/([a-z]{1,3}/)?",
        ) {
            let crawl = crate::config::Config::from_raw(
                crate::config::Config::parse_raw("", std::path::Path::new("s")).unwrap(),
                None,
                ".".into(),
                &Default::default(),
            )
            .unwrap()
            .crawl;
            let scope = Scope::new(&crawl, QueryPolicy::Skip, Url::parse("http://127.0.0.1:8000/").ok());
            let page = scope.page(&page, None).unwrap();
            if let Some(fast) = plain_absolute_path(&raw) {
                let mut url = page.base.join(&raw).unwrap();
                url.set_fragment(None);
                let slow = crate::urlpath::origin_path(&page.origin, &url);
                proptest::prop_assert_eq!(Some(fast.to_string()), slow);
            }
        }
    }

    #[test]
    fn sitemaps() {
        let xml =
            br#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc>http://h/a/</loc></url><url><loc> http://h/b/ </loc></url></urlset>"#;
        assert_eq!(
            sitemap_locs(&Body::from(xml.to_vec())).unwrap(),
            vec!["http://h/a/", "http://h/b/"]
        );
        assert!(sitemap_locs(&Body::from(b"<rss><channel/></rss>".to_vec())).is_none());
    }
}
