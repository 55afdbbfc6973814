//! The generated nginx config, run by a real nginx over the baked output.

use crate::require;
use crate::util::{Nginx, Origin, Page, TestSite, client, free_port, linked_site, open_up};

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_baked_files_and_falls_through_to_the_origin() {
    require!("nginx");
    let pages = linked_site(3);
    let mut all: Vec<(&str, Page)> = pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    all.push(("/live/", Page::html("from the origin, live")));
    all.push((
        "/old/",
        Page::html("").status(301).with_header("location", "/p/0/"),
    ));
    let origin = Origin::start(all).await;
    let site = TestSite::for_origin(
        &origin,
        "[output]\nprecompress = [\"gzip\"]\n[crawl]\nseeds = [\"/\", \"/old/\"]\n",
    );
    open_up(site.path());
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    std::fs::write(site.file("p/1/.kiln-tmp-inprogress"), "partial").unwrap();

    let (nginx, _) = Nginx::for_site(&site, &[], &[]).await;
    let http = client();
    origin.reset_hits();

    // A baked page comes from disk, byte-identical.
    let r = http.get(nginx.url("/p/1/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kiln"], "static");
    let want = pages
        .iter()
        .find(|(k, _)| k == "/p/1/")
        .unwrap()
        .1
        .body
        .clone();
    assert_eq!(r.bytes().await.unwrap().to_vec(), want);
    // gzip_static serves the precompressed sibling.
    let r = http
        .get(nginx.url("/p/1/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert_eq!(origin.total_hits(), 0, "no origin traffic for baked pages");

    // Not baked: falls through to the origin.
    let r = http.get(nginx.url("/live/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-kiln").is_none());
    assert_eq!(r.text().await.unwrap(), "from the origin, live");
    // A session cookie or a POST bypasses the baked file.
    let r = http
        .get(nginx.url("/p/1/"))
        .header("cookie", "theme=dark; sessionid=abc")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("x-kiln").is_none(),
        "session visitors get the origin"
    );
    let r = http
        .post(nginx.url("/p/2/"))
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-kiln").is_none());
    assert_eq!(origin.hits("/p/1/"), 1);
    assert_eq!(origin.hits("/p/2/"), 1);
    // The default bypass cookies cover Rails, PHP and WordPress too.
    for cookie in [
        "PHPSESSID=1",
        "_myapp_session=x",
        "a=b; wordpress_logged_in_5f2=admin",
    ] {
        let r = http
            .get(nginx.url("/p/3/"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get("x-kiln").is_none(),
            "{cookie} goes to the app"
        );
    }
    assert_eq!(origin.hits("/p/3/"), 3);
    // Another cookie alone does not bypass.
    let r = http
        .get(nginx.url("/p/1/"))
        .header("cookie", "notsessionid=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-kiln"], "static");
    // Dot-files (kiln's temp files) are never served.
    let r = http
        .get(nginx.url("/p/1/.kiln-tmp-inprogress"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Recorded redirects become nginx returns.
    let r = http.get(nginx.url("/old/")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .trim_end_matches('/')
            .rsplit('/')
            .next(),
        Some("0")
    );
    assert_eq!(
        origin.hits("/old/"),
        0,
        "nginx answered the redirect itself"
    );
    // Not for a logged-in visitor: like a baked page, the app answers.
    let r = http
        .get(nginx.url("/old/"))
        .header("cookie", "sessionid=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        origin.hits("/old/"),
        1,
        "a session cookie bypasses the recorded redirect"
    );

    // The origin goes away: baked pages are still served.
    origin.stop().await;
    let r = http.get(nginx.url("/p/2/")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", nginx.error_log());
    assert_eq!(r.headers()["x-kiln"], "static");
    let r = http.get(nginx.url("/live/")).send().await.unwrap();
    assert_eq!(r.status(), 502, "un-baked paths need the origin");
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_config_passes_nginx_t_for_the_default_site_and_releases() {
    require!("nginx");
    let site = crate::util::default_site_copy();
    assert_eq!(site.kiln(&["build", "--release"]).await.code, 0);
    let snippet = site
        .kiln(&["nginx", "--server-name", "emberandclay.example"])
        .await;
    assert!(
        snippet.stdout.contains("/public/current\";"),
        "{}",
        snippet.stdout
    );
    assert!(
        snippet.stdout.contains("=404;"),
        "no origin: no fall-through"
    );
    let port = free_port();
    let conf = snippet
        .stdout
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    let (ok, msg) = Nginx::test_config(&conf);
    assert!(ok, "{msg}");
    // Served for real: the styled 404 page, and the feed's own type.
    open_up(site.path());
    let nginx = Nginx::start(&conf, port).await;
    let http = client();
    let r = http.get(nginx.url("/no-such-page/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("didn't survive the firing")
    );
    let r = http.get(nginx.url("/feed.xml")).send().await.unwrap();
    assert_eq!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("application/atom+xml")
    );
    let r = http
        .get(nginx.url("/posts/reclaiming-clay/"))
        .send()
        .await
        .unwrap();
    let post = r.text().await.unwrap();
    assert!(
        post.contains("min read") && post.contains("rel=\"next\""),
        "{post}"
    );
}

/// nginx answers every baked file with the Content-Type the origin sent,
/// whatever its extension (or lack of one).
#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_types_through_nginx_match_the_origin() {
    require!("nginx");
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "/",
            "text/html; charset=utf-8",
            "<html><head><link rel=\"stylesheet\" href=\"/style.css\"><link rel=\"alternate\" href=\"/feed.xml\"><link rel=\"alternate\" href=\"/atom.xml\"></head><body><a href=\"/data.json\">j</a><a href=\"/api/items\">i</a><a href=\"/sitemap.xml\">s</a></body></html>",
        ),
        ("/style.css", "text/css", "body { color: #333 }"),
        (
            "/feed.xml",
            "application/rss+xml",
            "<rss version=\"2.0\"><channel/></rss>",
        ),
        (
            "/atom.xml",
            "application/atom+xml",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"/>",
        ),
        ("/data.json", "application/json", "{\"a\": 1}"),
        ("/api/items", "application/json", "[1, 2, 3]"),
        (
            "/sitemap.xml",
            "application/xml",
            "<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"></urlset>",
        ),
    ];
    let origin = Origin::start(
        cases
            .iter()
            .map(|(p, ct, body)| (*p, Page::html(*body).typed(ct)))
            .collect(),
    )
    .await;
    let site = TestSite::for_origin(&origin, "[crawl]\nassets = true\n");
    open_up(site.path());
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("7 written"), "{}", run.all());
    let (nginx, _) = Nginx::for_site(&site, &[], &[]).await;
    let http = client();
    for (path, want, body) in cases {
        let r = http.get(nginx.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers()["x-kiln"],
            "static",
            "{path} is served from disk"
        );
        let got = r.headers()["content-type"].to_str().unwrap().to_string();
        let media = |ct: &str| ct.split(';').next().unwrap().trim().to_ascii_lowercase();
        assert_eq!(media(&got), media(want), "{path}: nginx said {got}");
        assert_eq!(r.text().await.unwrap(), body);
    }
    assert_eq!(origin.total_hits(), 7, "nginx never asked the origin");
    drop(nginx);
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_feed_is_served_with_its_type_from_its_first_request_without_a_reload() {
    require!("nginx");
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/posts/1/\">post</a>")),
        ("/posts/1/", Page::html("<h1>post</h1>")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    open_up(site.path());
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    // No `daemon.nginx-reload`: nginx keeps the block and the types map it
    // loaded at start.
    let (nginx, block) = Nginx::for_site(&site, &[], &["--fill", "off"]).await;
    let d = site.daemon(&[]).await;

    // The post links a new per-post feed and a JSON endpoint, neither with
    // an extension.
    let feed = "<rss version=\"2.0\"><channel><title>post 1</title></channel></rss>";
    origin.set(
        "/posts/1/feed/",
        Page::html(feed).typed("application/rss+xml"),
    );
    origin.set(
        "/posts/1/comments",
        Page::html("[1, 2]").typed("application/json"),
    );
    origin.set(
        "/posts/1/",
        Page::html(
            "<h1>post</h1><link rel=\"alternate\" href=\"/posts/1/feed/\"><a href=\"/posts/1/comments\">c</a>",
        ),
    );
    let (code, v) = d
        .post("/v1/regen", r#"{"targets":["/posts/1/"]}"#, None)
        .await;
    assert_eq!(code, 202);
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(job["report"]["written"], 3, "{job}");
    // Baked: every answer from now on is the file, with the app's type.
    let http = client();
    for (path, want, body) in [
        ("/posts/1/feed/", "application/rss+xml", feed),
        ("/posts/1/comments", "application/json", "[1, 2]"),
    ] {
        for _ in 0..3 {
            let r = http.get(nginx.url(path)).send().await.unwrap();
            let got = r.headers()["content-type"].to_str().unwrap().to_string();
            assert!(got.starts_with(want), "{path}: nginx said {got}");
            assert_eq!(r.headers()["x-kiln"], "static", "{path} from disk");
            assert_eq!(r.text().await.unwrap(), body);
        }
    }
    assert_eq!(origin.hits("/posts/1/feed/"), 1, "the feed came from disk");
    // The app turns the feed into an HTML page: its typed file goes, the
    // page is served as HTML (and back again).
    origin.set("/posts/1/feed/", Page::html("<h1>now a page</h1>"));
    let (_, v) = d
        .post("/v1/regen", r#"{"targets":["/posts/1/feed/"]}"#, None)
        .await;
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    let r = http.get(nginx.url("/posts/1/feed/")).send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(r.text().await.unwrap(), "<h1>now a page</h1>");
    assert!(
        !site
            .file(".kiln-typed/rss/posts/1/feed/index.html")
            .exists()
    );
    origin.set(
        "/posts/1/feed/",
        Page::html(feed).typed("application/rss+xml"),
    );
    let (_, v) = d
        .post("/v1/regen", r#"{"targets":["/posts/1/feed/"]}"#, None)
        .await;
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    let r = http.get(nginx.url("/posts/1/feed/")).send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/rss+xml")
    );
    assert_eq!(r.text().await.unwrap(), feed);
    assert!(
        !site.file("posts/1/feed/index.html").exists(),
        "the HTML file went"
    );
    // No location per file: the block is the same size whatever is baked.
    assert!(!block.contains("/posts/"));
}
