//! Guarantee 12, request by request: what a visitor gets through nginx
//! with kiln's block equals what the app answers the same request, for
//! requests that carry more than a path (a query, a cookie, another site
//! in the same nginx).

use crate::require;
use crate::util::{Nginx, Origin, Page, TestSite, client, free_port, open_up, wait_for_port};

/// Status, type and body of an answer: what a visitor sees.
async fn seen(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let ty = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    (status, ty, r.text().await.unwrap_or_default())
}

/// A site whose list paginates by `?page=N` and searches by `?s=`, as
/// Django's Paginator and WordPress do; `name` tells two sites apart.
fn paginated_site(name: &str, feed_type: &str) -> Vec<(String, Page)> {
    let mut pages = vec![
        (
            "/".to_string(),
            Page::html(format!(
                "<h1>{name} home</h1><a href=\"/posts/\">posts</a><a href=\"/feed/\">feed</a>"
            )),
        ),
        (
            "/feed/".to_string(),
            Page::html(format!("<feed>{name}</feed>")).typed(feed_type),
        ),
    ];
    for (key, body) in [
        ("/posts/", format!("{name} posts page 1")),
        ("/posts/?page=2", format!("{name} posts page 2")),
        ("/posts/?page=3", format!("{name} posts page 3")),
        // The app ignores tracking parameters: the same page.
        (
            "/posts/?utm_source=news&fbclid=x1",
            format!("{name} posts page 1"),
        ),
        ("/?s=clay", format!("{name} search results for clay")),
        (
            "/posts/?page=2&utm_source=news",
            format!("{name} posts page 2"),
        ),
    ] {
        pages.push((key.to_string(), Page::html(body)));
    }
    pages
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_through_nginx_equals_the_apps_answer_across_queries_cookies_and_two_sites() {
    require!("nginx");
    let a_pages = paginated_site("alpha", "application/rss+xml");
    let b_pages = paginated_site("beta", "application/atom+xml");
    let origin_a = Origin::start(
        a_pages
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
    )
    .await;
    let origin_b = Origin::start(
        b_pages
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
    )
    .await;
    let site_a = TestSite::for_origin(&origin_a, "");
    let site_b = TestSite::for_origin(&origin_b, "[safety]\nbypass-cookies = [\"beta_session\"]\n");
    let mut blocks = String::new();
    let mut ports = Vec::new();
    for site in [&site_a, &site_b] {
        open_up(site.path());
        let run = site.kiln(&["build"]).await;
        assert_eq!(run.code, 0, "{}", run.all());
        let port = free_port();
        let block = site
            .kiln(&[
                "nginx",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--fill",
                "off",
            ])
            .await;
        assert_eq!(block.code, 0, "{}", block.all());
        blocks.push_str(&block.stdout);
        ports.push(port);
    }
    // Both sites' blocks in one nginx, as two files in conf.d/ would be.
    let (ok, msg) = Nginx::test_config(&blocks);
    assert!(ok, "nginx -t rejected two kiln sites in one nginx:\n{msg}");
    let nginx = Nginx::start(&blocks, ports[0]).await;
    wait_for_port(ports[1], "the second site").await;
    let http = client();
    let through = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");

    let requests: &[(&str, Option<&str>)] = &[
        ("/posts/", None),
        ("/posts/?page=2", None),
        ("/posts/?page=3", None),
        ("/?s=clay", None),
        ("/posts/?utm_source=news&fbclid=x1", None),
        ("/posts/?page=2&utm_source=news", None),
        ("/feed/", None),
        ("/", None),
        ("/posts/", Some("sessionid=alpha-user")),
        ("/posts/", Some("beta_session=beta-user")),
    ];
    let mut mismatches = Vec::new();
    for (port, origin) in [(ports[0], &origin_a), (ports[1], &origin_b)] {
        for (path, cookie) in requests {
            let mut via_nginx = http.get(through(port, path));
            let mut direct = http.get(format!("{}{path}", origin.url()));
            if let Some(c) = cookie {
                via_nginx = via_nginx.header("cookie", *c);
                direct = direct.header("cookie", *c);
            }
            let got = seen(via_nginx.send().await.unwrap()).await;
            let want = seen(direct.send().await.unwrap()).await;
            if got != want {
                mismatches.push(format!(
                    "{port} {path} cookie={cookie:?}: nginx {got:?}, app {want:?}"
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "requests answered unlike the app:\n{}",
        mismatches.join("\n")
    );

    // What may be served from disk is: the path alone, or with tracking
    // parameters only; each site's own cookie sends its visitor to its app.
    let from_disk = |r: &reqwest::Response| r.headers().get("x-kiln").is_some();
    for (path, cookie, port, want) in [
        ("/posts/", None, ports[0], true),
        ("/posts/?utm_source=news&fbclid=x1", None, ports[0], true),
        ("/posts/?page=2", None, ports[0], false),
        ("/posts/", Some("sessionid=u"), ports[0], false),
        ("/posts/", Some("beta_session=u"), ports[0], true),
        ("/posts/", Some("sessionid=u"), ports[1], true),
        ("/posts/", Some("beta_session=u"), ports[1], false),
    ] {
        let mut req = http.get(through(port, path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(from_disk(&r), want, "{port} {path} {cookie:?}");
    }
    drop(nginx);
}

/// The body a visitor's client shows: decoded as its Content-Encoding says.
fn decoded(encoding: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match encoding {
        Some("gzip") => {
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        _ => out = bytes.to_vec(),
    }
    out
}

/// What a visitor sees of an answer: status, type, decoded body.
async fn seen_decoded(r: reqwest::Response) -> (u16, String, Vec<u8>) {
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let ty = header("content-type").unwrap_or_default();
    let encoding = header("content-encoding");
    let bytes = r.bytes().await.unwrap();
    (status, ty, decoded(encoding.as_deref(), &bytes))
}

fn gzipped(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn brotlied(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        w.write_all(bytes).unwrap();
    }
    out
}

fn encoded(bytes: Vec<u8>, encoding: &str) -> Page {
    let mut p = Page::html("").with_header("content-encoding", encoding);
    p.body = bytes;
    p
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_varying_and_no_longer_public_answers_are_served_as_the_app_serves_them() {
    require!("nginx");
    let links = [
        "/gz/",
        "/br/",
        "/zstd/",
        "/accept/",
        "/lang/",
        "/members/",
        "/bomb/",
    ]
    .map(|l| format!("<a href=\"{l}\">{l}</a>"))
    .join("");
    let origin = Origin::start(vec![
        ("/", Page::html(format!("<h1>home</h1>{links}"))),
        // Compressed whether asked or not, as some app servers do.
        ("/gz/", encoded(gzipped("<h1>gzipped page</h1>"), "gzip")),
        ("/br/", encoded(brotlied(b"<h1>brotli page</h1>"), "br")),
        ("/zstd/", encoded(b"(zstd frame)".to_vec(), "zstd")),
        // Another answer for another Accept: not one page.
        (
            "/accept/",
            Page::html("<h1>html variant</h1>").with_header("vary", "Accept"),
        ),
        // Listed in origin.vary-ignore: one page whatever the language.
        (
            "/lang/",
            Page::html("<h1>one language</h1>")
                .with_header("vary", "Accept-Language, Accept-Encoding"),
        ),
        ("/members/", Page::html("<h1>members, public for now</h1>")),
        // 8 MiB of zeros in a few hundred bytes.
        ("/bomb/", encoded(brotlied(&vec![0u8; 8 << 20]), "br")),
    ])
    .await;
    let site = TestSite::for_origin(
        &origin,
        "vary-ignore = [\"Accept-Language\"]\n[output]\nprecompress = [\"gzip\"]\n",
    );
    open_up(site.path());
    let run = site.kiln(&["build"]).await;
    let report = run.all();
    for reason in [
        "Content-Encoding: zstd, which kiln cannot decode",
        "varies by Accept (Vary header)",
        "origin.vary-ignore",
        "inflates more than",
    ] {
        assert!(
            report.contains(reason),
            "the summary names `{reason}`:\n{report}"
        );
    }
    // Decoded pages are baked decoded, and their .gz made from the decoded page.
    assert_eq!(
        site.read("gz/index.html").as_deref(),
        Some("<h1>gzipped page</h1>")
    );
    assert_eq!(
        site.read("br/index.html").as_deref(),
        Some("<h1>brotli page</h1>")
    );
    assert_eq!(
        site.read("lang/index.html").as_deref(),
        Some("<h1>one language</h1>")
    );
    for nothing in ["zstd/index.html", "accept/index.html", "bomb/index.html"] {
        assert!(site.read(nothing).is_none(), "{nothing} is not baked");
    }
    let explain = site.kiln(&["explain", "/accept/"]).await;
    assert!(
        explain.all().contains("varies by Accept"),
        "{}",
        explain.all()
    );

    let (nginx, _) = Nginx::for_site(&site, &[], &["--fill", "off"]).await;
    let http = client();
    let compare = |label: &'static str| {
        let http = http.clone();
        let nginx_url = nginx.url("");
        let origin_url = origin.url();
        async move {
            let mut mismatches = Vec::new();
            for path in [
                "/",
                "/gz/",
                "/br/",
                "/zstd/",
                "/accept/",
                "/lang/",
                "/members/",
            ] {
                for accept in [None, Some("gzip"), Some("gzip, br")] {
                    let mut a = http.get(format!("{nginx_url}{path}"));
                    let mut b = http.get(format!("{origin_url}{path}"));
                    if let Some(enc) = accept {
                        a = a.header("accept-encoding", enc);
                        b = b.header("accept-encoding", enc);
                    }
                    let got = seen_decoded(a.send().await.unwrap()).await;
                    let want = seen_decoded(b.send().await.unwrap()).await;
                    if got != want {
                        mismatches.push(format!(
                            "{label} {path} accept-encoding={accept:?}: nginx {got:?}, app {want:?}"
                        ));
                    }
                }
            }
            mismatches
        }
    };
    let mismatches = compare("after the build").await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let r = http.get(nginx.url("/gz/")).send().await.unwrap();
    assert!(
        r.headers().get("x-kiln").is_some(),
        "a decoded page is served from disk"
    );

    // A page that now needs credentials is no longer public: it goes, and
    // the app answers its visitors (not the last public copy).
    origin.set("/members/", Page::html("<h1>log in</h1>").status(401));
    let run = site.kiln(&["regen", "/members/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        site.read("members/index.html").is_none(),
        "{}",
        site.files().join("\n")
    );
    let mismatches = compare("after the 401").await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// `[crawl] query-params = ["page"]`: the pages of `?page=N` are pages of
/// their own. The crawl follows their links and bakes each in the query
/// tree; nginx serves one only for exactly its query string, tagged and
/// regenerated like any page; anything else with a query is the app's.
#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_query_pages_are_baked_and_served_for_exactly_their_query() {
    require!("nginx");
    let list = |n: u32, version: &str| {
        let next = if n < 3 {
            format!("<a href=\"?page={}\">older</a>", n + 1)
        } else {
            String::new()
        };
        Page::html(format!("<h1>posts page {n} {version}</h1>{next}"))
            .with_header("surrogate-key", "post-list")
    };
    let mut pages = [
        ("/".to_string(), Page::html("<a href=\"/posts/\">posts</a>")),
        ("/posts/".to_string(), list(1, "v1")),
        ("/posts/?page=2".to_string(), list(2, "v1")),
        ("/posts/?page=3".to_string(), list(3, "v1")),
        ("/posts/?page=9".to_string(), list(3, "v1")),
        (
            "/posts/?page=2&sort=new".to_string(),
            Page::html("sorted page 2"),
        ),
        ("/posts/?page=2&utm_source=x".to_string(), list(2, "v1")),
    ];
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "[crawl]\nquery-params = [\"page\"]\n");
    open_up(site.path());
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("4 written"),
        "/, /posts/ and pages 2 and 3: {}",
        run.all()
    );
    assert_eq!(
        site.read(".kiln-query/page=2/posts/index.html").as_deref(),
        Some("<h1>posts page 2 v1</h1><a href=\"?page=3\">older</a>")
    );
    let d = site.daemon(&[]).await;
    let fill = d.http.trim_start_matches("http://").to_string();
    let (nginx, _) = Nginx::for_site(&site, &[], &["--fill", &fill]).await;
    let http = client();
    let compare = |path: &'static str, want_static: bool| {
        let (http, nginx, origin) = (http.clone(), nginx.url(path), origin.url());
        async move {
            let r = http.get(&nginx).send().await.unwrap();
            let from_disk = r.headers().get("x-kiln").is_some_and(|v| v == "static");
            let got = seen(r).await;
            let want = seen(http.get(format!("{origin}{path}")).send().await.unwrap()).await;
            assert_eq!(got, want, "{path}");
            assert_eq!(from_disk, want_static, "{path} from disk");
        }
    };
    compare("/posts/?page=2", true).await;
    compare("/posts/?page=3", true).await;
    compare("/posts/", true).await;
    // Another parameter, or a tracking one mixed in: the app's.
    compare("/posts/?page=2&sort=new", false).await;
    compare("/posts/?page=2&utm_source=x", false).await;
    // A page nobody linked: the fill bakes it, then nginx serves it.
    compare("/posts/?page=9", false).await;
    d.settle(None).await;
    compare("/posts/?page=9", true).await;

    // An event for the list's tag regenerates every page of it.
    for (key, page) in pages.iter_mut() {
        if let Some(n) = key
            .strip_prefix("/posts/?page=")
            .and_then(|n| n.parse().ok())
        {
            *page = list(n, "v2");
            origin.set(key, page.clone());
        }
    }
    origin.set("/posts/", list(1, "v2"));
    let (code, v) = d
        .post("/v1/regen", r#"{"targets": ["tag:post-list"]}"#, None)
        .await;
    assert_eq!(code, 202, "{v}");
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(job["report"]["urls"], 4, "{job}");
    compare("/posts/?page=2", true).await;
    compare("/posts/?page=9", true).await;
    drop(nginx);
    drop(d);
}
