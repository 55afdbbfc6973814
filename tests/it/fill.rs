//! Misses never stampede the app (issue 26): real nginx with the generated
//! block, the real daemon, a real origin that counts requests. What is
//! checked is what visitors get and what the origin sees.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::require;
use crate::util::{Daemon, Nginx, Origin, Page, TestSite, client, open_up, wait_until};

/// How many visitors arrive at once.
const CROWD: usize = 500;

/// A site with a daemon and nginx in front of it, misses filled.
struct Front {
    origin: Origin,
    site: TestSite,
    daemon: Option<Daemon>,
    nginx: Nginx,
}

async fn front(pages: Vec<(&str, Page)>, extra: &str) -> Front {
    let origin = Origin::start(pages).await;
    let site = TestSite::for_origin(&origin, extra);
    open_up(site.path());
    std::fs::create_dir_all(site.out()).unwrap();
    open_up(&site.out());
    let daemon = site.daemon(&[]).await;
    let fill = daemon.http.trim_start_matches("http://").to_string();
    let (nginx, block) = Nginx::for_site(&site, &[], &["--fill", &fill]).await;
    assert!(
        block.contains("@fill"),
        "the block sends misses to the daemon:\n{block}"
    );
    Front {
        origin,
        site,
        daemon: Some(daemon),
        nginx,
    }
}

/// What one visitor got.
struct Seen {
    status: u16,
    body: String,
    cookie: Option<String>,
    kiln: Option<String>,
}

/// `n` anonymous visitors ask for `path` at the same moment.
async fn crowd(nginx: &Nginx, path: &str, n: usize) -> Vec<Seen> {
    let http = client();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (http, url, start) = (http.clone(), nginx.url(path), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            let r = http.get(url).send().await.unwrap();
            let header = |k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_string());
            let (status, cookie, kiln) =
                (r.status().as_u16(), header("set-cookie"), header("x-kiln"));
            Seen {
                status,
                body: r.text().await.unwrap(),
                cookie,
                kiln,
            }
        });
    }
    tasks.join_all().await
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_on_a_page_not_baked_yet_costs_the_origin_one_request_and_bakes_it() {
    require!("nginx");
    let body = "<h1>a new post</h1><a href=\"/linked/\">more</a>";
    let f = front(
        vec![
            // Slow enough that the whole crowd arrives while it renders.
            ("/new/", Page::html(body).delay(Duration::from_millis(300))),
            ("/linked/", Page::html("<p>linked from the new post</p>")),
        ],
        "",
    )
    .await;

    let seen = crowd(&f.nginx, "/new/", CROWD).await;
    assert!(
        seen.iter().all(|s| s.status == 200 && s.body == body),
        "every visitor gets the page: {:?}",
        seen.iter()
            .find(|s| s.status != 200 || s.body != body)
            .map(|s| (s.status, &s.body))
    );
    assert_eq!(
        f.origin.hits("/new/"),
        1,
        "{CROWD} concurrent misses are one origin request"
    );
    assert!(
        seen.iter()
            .all(|s| matches!(s.kiln.as_deref(), Some("baked" | "static"))),
        "shown by the fill or, for the last few, by nginx from the new file"
    );
    assert_eq!(
        f.site.read("new/index.html").as_deref(),
        Some(body),
        "the first miss became the baked file"
    );
    // The next visitor gets the file from nginx, and the origin hears nothing.
    let r = client().get(f.nginx.url("/new/")).send().await.unwrap();
    assert_eq!(r.headers()["x-kiln"], "static");
    assert_eq!(r.text().await.unwrap(), body);
    assert_eq!(f.origin.hits("/new/"), 1);
    // It is a page like any other: indexed, and what it links to is baked.
    let d = f.daemon.as_ref().unwrap();
    wait_until(
        Duration::from_secs(10),
        "the linked page to be baked",
        || async { f.site.read("linked/index.html").is_some() },
    )
    .await;
    let (_, status) = d.get("/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["fill"]["fetches"], 1, "{status}");
    assert_eq!(status["fill"]["requests"], CROWD, "{status}");
    let (_, metrics) = d.get("/metrics", None).await;
    assert!(
        metrics.contains(&format!(
            "kiln_fill_requests_total{{answer=\"baked\"}} {CROWD}"
        )),
        "{metrics}"
    );
    // An event for it still regenerates it: the fill took nothing over.
    f.origin.set("/new/", Page::html("<h1>edited</h1>"));
    let (code, job) = d.post("/v1/regen", r#"{"targets":["/new/"]}"#, None).await;
    assert_eq!(code, 202);
    d.job_done(job["job"].as_u64().unwrap(), None).await;
    let r = client().get(f.nginx.url("/new/")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "<h1>edited</h1>");
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_on_a_private_page_gets_each_visitor_their_own_response_and_nothing_is_baked() {
    require!("nginx");
    let f = front(vec![], "").await;
    // `/visitor/account/` answers every request with its own session cookie.
    let seen = crowd(&f.nginx, "/visitor/account/", CROWD).await;
    assert!(
        seen.iter().all(|s| s.status == 200),
        "every visitor is answered"
    );
    let bodies: HashSet<&str> = seen.iter().map(|s| s.body.as_str()).collect();
    assert_eq!(
        bodies.len(),
        CROWD,
        "no visitor is shown another visitor's response"
    );
    for s in &seen {
        let n = s
            .body
            .trim_start_matches("<p>hello visitor ")
            .trim_end_matches("</p>");
        assert_eq!(
            s.cookie.as_deref(),
            Some(format!("visitor={n}; Path=/").as_str()),
            "each visitor's cookie belongs to their own response"
        );
    }
    assert!(
        f.site.read("visitor/account/index.html").is_none(),
        "a private page is never baked"
    );
    // Now known as private: the next miss goes to the app without the
    // daemon asking the origin first (one request per visit, not two).
    let before = f.origin.hits("/visitor/account/");
    let r = client()
        .get(f.nginx.url("/visitor/account/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(f.origin.hits("/visitor/account/"), before + 1);
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_in_trouble_sees_one_request_per_window_not_one_per_visitor() {
    require!("nginx");
    let f = front(
        vec![(
            "/busy/",
            Page::html("<h1>app error</h1>")
                .status(503)
                .delay(Duration::from_millis(200)),
        )],
        "[daemon]\nfill-window = \"1s\"\n",
    )
    .await;
    let seen = crowd(&f.nginx, "/busy/", CROWD).await;
    assert!(
        seen.iter().all(|s| s.status == 503),
        "the app's failure is passed on: {:?}",
        seen.iter().map(|s| s.status).collect::<HashSet<_>>()
    );
    assert_eq!(
        f.origin.hits("/busy/"),
        1,
        "{CROWD} visitors during an outage are one origin request"
    );
    // Visitors keep coming for 2.5 s: at most one origin request per 1 s
    // window (plus the one in flight when a window ends).
    let start = Instant::now();
    let mut asked = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        let r = client().get(f.nginx.url("/busy/")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        asked += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hits = f.origin.hits("/busy/");
    let windows = (start.elapsed().as_secs_f64() / 1.0).ceil() as usize + 1;
    assert!(
        hits >= 2 && hits <= windows + 1,
        "{asked} visitors over {:?} cost {hits} origin requests; the window allows {}",
        start.elapsed(),
        windows + 1
    );
    // The origin recovers: the next window's miss is baked.
    f.origin.set("/busy/", Page::html("<h1>back</h1>"));
    wait_until(
        Duration::from_secs(5),
        "the page to be baked after recovery",
        || async {
            let r = client().get(f.nginx.url("/busy/")).send().await.unwrap();
            r.status() == 200 && f.site.read("busy/index.html").as_deref() == Some("<h1>back</h1>")
        },
    )
    .await;
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_visitors_posts_and_a_stopped_daemon_go_straight_to_the_app() {
    require!("nginx");
    let mut f = front(
        vec![
            ("/draft/", Page::html("<p>draft</p>")),
            ("/later/", Page::html("<p>later</p>")),
        ],
        "",
    )
    .await;
    let http = client();
    // A visitor with a session cookie: the app answers, nothing is baked.
    let r = http
        .get(f.nginx.url("/draft/"))
        .header("cookie", "sessionid=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "<p>draft</p>");
    let r = http.post(f.nginx.url("/draft/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(f.origin.hits("/draft/"), 2);
    let (_, status) = f.daemon.as_ref().unwrap().get("/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["fill"]["requests"], 0, "{status}");
    assert!(f.site.read("draft/index.html").is_none());

    // The daemon stops: misses still reach the app, through nginx.
    let d = f.daemon.take().unwrap();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(20)).await, Some(0));
    let r = http.get(f.nginx.url("/later/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<p>later</p>");
    assert!(f.site.read("later/index.html").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_changed_without_an_event_is_fresh_within_one_interval_and_304s_write_nothing() {
    let origin = Origin::start(vec![
        (
            "/",
            Page::html("<p>latest: one</p>").with_header("etag", "\"one\""),
        ),
        (
            "/about/",
            Page::html("<p>about</p>").with_header("etag", "\"about\""),
        ),
    ])
    .await;
    let site = TestSite::for_origin(
        &origin,
        "[crawl]\nseeds = [\"/\", \"/about/\"]\n[[revalidate]]\nglob = \"/\"\nevery = \"1s\"\n",
    );
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let d = site.daemon(&[]).await;
    // Unchanged: re-checked with If-None-Match, a 304, nothing written.
    let inode = |rel: &str| {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(site.file(rel)).unwrap())
    };
    let before = inode("index.html");
    wait_until(
        Duration::from_secs(5),
        "a conditional re-check of /",
        || async { origin.total_not_modified() >= 2 },
    )
    .await;
    assert_eq!(inode("index.html"), before, "a 304 costs no write");

    // The app changes the page and sends no event: fresh within one interval.
    origin.set(
        "/",
        Page::html("<p>latest: two</p>").with_header("etag", "\"two\""),
    );
    let asked_before = origin.hits("/");
    wait_until(
        Duration::from_secs(30),
        "/ to be re-baked by the clock",
        || async { site.read("index.html").as_deref() == Some("<p>latest: two</p>") },
    )
    .await;
    // The first re-check after the change took it (one more may have been
    // in flight when the page changed): fresh within one interval.
    let rechecks = origin.hits("/") - asked_before;
    assert!(
        (1..=2).contains(&rechecks),
        "{rechecks} re-checks of / before the change was baked"
    );
    assert_eq!(
        origin.hits("/about/"),
        1,
        "a page outside the glob is not re-checked (1 = the build)"
    );
    let (_, status) = d.get("/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(status["revalidated"].as_u64().unwrap() >= 3, "{status}");
    let (_, metrics) = d.get("/metrics", None).await;
    assert!(metrics.contains("kiln_revalidations_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_honour_cache_control_a_page_is_rechecked_as_often_as_its_s_maxage_says() {
    let page = |text: &str| {
        Page::html(text)
            .with_header("etag", &format!("\"{text}\""))
            .with_header("cache-control", "public, max-age=0, s-maxage=1")
    };
    let origin = Origin::start(vec![("/", page("one")), ("/slow/", Page::html("slow"))]).await;
    let site = TestSite::for_origin(
        &origin,
        "[crawl]\nseeds = [\"/\", \"/slow/\"]\n[[revalidate]]\nglob = \"/**\"\nevery = \"60s\"\nhonour-cache-control = true\n",
    );
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let _d = site.daemon(&[]).await;
    // The cycle's first re-checks, then a change with no event.
    wait_until(
        Duration::from_secs(5),
        "the first conditional re-check",
        || async { origin.total_not_modified() >= 1 },
    )
    .await;
    origin.set("/", page("two"));
    wait_until(
        Duration::from_secs(4),
        "/ to be fresh within its s-maxage (1 s), not the rule's 60 s",
        || async { site.read("index.html").as_deref() == Some("two") },
    )
    .await;
    assert_eq!(
        origin.hits("/slow/"),
        2,
        "a page without a lifetime keeps the rule's interval (the build, then one re-check)"
    );
}

/// Fill and crawl bake pages, not script endpoints or assets. A build
/// leaves `*.php`, `/wp-admin/` and `/wp-json/` links to the app; a
/// visitor's miss for any of them, or for an image, is the app's answer
/// every time and nothing is baked (WordPress's cron used to become an
/// empty static file after one GET); a new page is baked as before.
#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_and_crawl_bake_pages_not_script_endpoints_or_assets() {
    require!("nginx");
    let f = front(
        vec![
            (
                "/",
                Page::html(
                    "<a href=\"/wp-login.php\">log in</a><a href=\"/wp-admin/\">admin</a><a href=\"/wp-json/wp/v2/posts/1\">api</a><a href=\"/post/\">post</a>",
                ),
            ),
            ("/post/", Page::html("a post")),
            ("/wp-cron.php", Page::html("")),
            ("/wp-login.php", Page::html("the login form")),
            ("/wp-admin/", Page::html("the dashboard")),
            (
                "/wp-json/wp/v2/posts/1",
                Page::html("{\"id\": 1}").typed("application/json"),
            ),
            ("/logo.png", Page::html("PNG").typed("image/png")),
            ("/new/", Page::html("a new page")),
        ],
        "",
    )
    .await;
    let run = f.site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        f.site.files(),
        ["index.html", "post/index.html"],
        "{}",
        run.all()
    );
    for (path, body) in [
        ("/wp-cron.php", ""),
        ("/wp-login.php", "the login form"),
        ("/wp-admin/", "the dashboard"),
        ("/wp-json/wp/v2/posts/1", "{\"id\": 1}"),
        ("/logo.png", "PNG"),
    ] {
        for _ in 0..2 {
            let r = client().get(f.nginx.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert_ne!(
                r.headers().get("x-kiln").map(|v| v.to_str().unwrap()),
                Some("static"),
                "{path}"
            );
            assert_eq!(r.text().await.unwrap(), body, "{path}");
        }
        assert_eq!(
            f.origin.hits(path),
            2,
            "{path}: the app answered both, once each"
        );
    }
    let r = client().get(f.nginx.url("/new/")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "a new page");
    f.daemon.as_ref().unwrap().settle(None).await;
    assert_eq!(
        f.site.files(),
        ["index.html", "new/index.html", "post/index.html"],
        "only the new page was baked"
    );
}
