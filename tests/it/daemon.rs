//! `kiln daemon` as a real process: spool, HTTP, coalescing, crash safety, shutdown.

use std::time::Duration;

use crate::util::{DAEMON_TOML, Origin, Page, TestSite, built_site, linked_site, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_and_http_make_pages_fresh() {
    let (origin, site) = built_site(5, "").await;
    let d = site.daemon(&[]).await;
    origin.set("/p/1/", Page::html("fresh one"));
    let run = site.kiln(&["enqueue", "/p/1/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    wait_until(Duration::from_secs(10), "/p/1/ to be fresh", || async {
        site.read("p/1/index.html").as_deref() == Some("fresh one")
    })
    .await;

    origin.set("/p/2/", Page::html("fresh two"));
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/p/2/"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(job["report"]["written"], 1, "{job}");
    assert_eq!(site.read("p/2/index.html").unwrap(), "fresh two");
    d.settle(None).await;
    assert!(site.queue_files("new").is_empty());

    let (code, metrics) = d.get("/metrics", None).await;
    assert_eq!(code, 200);
    assert!(metrics.contains("kiln_fetches_total"), "{metrics}");
    assert!(
        metrics.contains("kiln_event_to_fresh_seconds_bucket"),
        "{metrics}"
    );
    let (code, health) = d.get("/healthz", None).await;
    assert_eq!((code, health.trim()), (200, "ok"));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

/// Regression: notify reports absolute paths; a relative spool path made the
/// daemon ignore them and wait for the periodic rescan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_files_are_picked_up_by_notify_without_waiting_for_a_rescan() {
    let pages = linked_site(3);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "[daemon]\ndebounce = \"10ms\"\nrescan = \"1h\"\n");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon_logged_with(&[("KILN_LOG", "kiln=debug")]).await;
    // After the start-up scan only notify can see the next file.
    d.wait_for_log(&["spool start-up scan done"]).await;
    origin.set("/p/2/", Page::html("seen by notify"));
    assert_eq!(site.kiln(&["enqueue", "/p/2/"]).await.code, 0);
    wait_until(
        Duration::from_secs(5),
        "the spool file to be processed via notify",
        || async { site.read("p/2/index.html").as_deref() == Some("seen by notify") },
    )
    .await;
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_events_for_one_url_costs_at_most_two_fetches() {
    let (origin, site) = built_site(3, "").await;
    // A slow page, so the whole burst lands while the first fetch is in flight.
    origin.set(
        "/p/1/",
        Page::html("burst").delay(Duration::from_millis(1000)),
    );
    let d = site.daemon(&[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/regen", d.http);
    let mut sent = 0;
    for chunk in 0..4 {
        let futs = (0..250).map(|_| {
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"targets": ["/p/1/"]}"#)
                .send()
        });
        for r in futures_util::future::join_all(futs).await {
            assert_eq!(r.unwrap().status().as_u16(), 202, "chunk {chunk}");
            sent += 1;
        }
    }
    assert_eq!(sent, 1000);
    d.settle(None).await;
    let hits = origin.hits("/p/1/");
    assert!((1..=2).contains(&hits), "1000 events cost {hits} fetches");
    assert_eq!(site.read("p/1/index.html").unwrap(), "burst");
    assert_eq!(origin.total_hits(), hits, "no other page fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_regenerates_exactly_the_pages_that_carry_it() {
    let pages = linked_site(12);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    // /p/9/ also shows post 1 (say, a "related posts" box).
    origin.set(
        "/p/9/",
        Page::html("nine").with_header("surrogate-key", "post:9 post:1"),
    );
    let site = TestSite::for_origin(&origin, DAEMON_TOML);
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    origin.reset_hits();
    let d = site.daemon(&[]).await;
    let (code, v) = d
        .post("/v1/regen", r#"{"targets": ["tag:post:1"]}"#, None)
        .await;
    assert_eq!(code, 202);
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(job["report"]["urls"], 2, "{job}");
    let mut hit: Vec<String> = origin.state.lock().unwrap().hits.keys().cloned().collect();
    hit.sort();
    assert_eq!(hit, vec!["/p/1/", "/p/9/"]);
    assert_eq!(origin.total_hits(), 2);
    // [[depend]] rules and the dry run answer "what if".
    let dry = site.kiln(&["regen", "--dry-run", "tag:list"]).await;
    assert_eq!(
        dry.stdout
            .lines()
            .filter(|l| l.starts_with("regen "))
            .count(),
        1 + 11,
        "{}",
        dry.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_queue_loses_no_event() {
    let (origin, site) = built_site(10, "concurrency = 1\n").await;
    for i in 0..10 {
        origin.set(
            &format!("/p/{i}/"),
            Page::html(format!("v2 of {i}")).delay(Duration::from_millis(150)),
        );
        assert_eq!(site.kiln(&["enqueue", &format!("/p/{i}/")]).await.code, 0);
    }
    assert_eq!(site.queue_files("new").len(), 10);
    let mut d = site.daemon(&[]).await;
    wait_until(Duration::from_secs(10), "the first fetch", || async {
        origin.total_hits() >= 1
    })
    .await;
    d.child.start_kill().unwrap(); // SIGKILL
    d.child.wait().await.unwrap();
    let left = site.queue_files("new").len();
    assert!(left > 0, "kill -9 came too late to test anything");
    let d = site.daemon(&[]).await;
    d.settle(None).await;
    for i in 0..10 {
        assert_eq!(
            site.read(&format!("p/{i}/index.html")).unwrap(),
            format!("v2 of {i}"),
            "page {i}"
        );
    }
    assert!(site.queue_files("new").is_empty());
    assert!(site.queue_files("failed").is_empty());
    let temp: Vec<_> = site
        .files()
        .into_iter()
        .filter(|f| f.contains(".kiln-tmp"))
        .collect();
    assert!(temp.is_empty(), "{temp:?}");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_spool_file_keeps_good_lines_and_records_bad_ones() {
    let (origin, site) = built_site(3, "").await;
    origin.set("/p/1/", Page::html("good line done"));
    let d = site.daemon(&[]).await;
    let q = site.queue();
    std::fs::write(
        q.join("tmp/123.hand"),
        "# written by hand\n/p/1/\nthis is bogus\ntag:\n",
    )
    .unwrap();
    std::fs::rename(q.join("tmp/123.hand"), q.join("new/123.hand")).unwrap();
    wait_until(Duration::from_secs(10), "spool file processed", || async {
        site.queue_files("new").is_empty()
    })
    .await;
    assert_eq!(site.read("p/1/index.html").unwrap(), "good line done");
    let failed = site.queue_files("failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let text = std::fs::read_to_string(&failed[0]).unwrap();
    assert!(text.contains("line 3: this is bogus"), "{text}");
    assert!(text.contains("line 4: tag:"), "{text}");
    assert!(text.contains("expected /path/"), "reason recorded: {text}");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_when_configured() {
    let (_origin, site) = built_site(2, "").await;
    let d = site.daemon(&[("KILN_TOKEN", "s3cret")]).await;
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/"]}"#, None).await;
    assert_eq!(code, 401, "{v}");
    let (code, _) = d
        .post("/v1/regen", r#"{"targets": ["/"]}"#, Some("wrong"))
        .await;
    assert_eq!(code, 401);
    assert_eq!(d.get("/v1/status", None).await.0, 401);
    assert_eq!(d.get("/metrics", None).await.0, 401);
    // The status page shows jobs and failures: the token guards it too.
    assert_eq!(d.get("/status", None).await.0, 401);
    assert_eq!(d.get("/status", Some("wrong")).await.0, 401);
    let (code, page) = d.get("/status", Some("s3cret")).await;
    assert_eq!(code, 200);
    assert!(page.contains("<table id=backlog>"), "{page}");
    // Every number is a number (a key the JSON does not have showed `null`).
    assert!(!page.contains(">null<"), "{page}");
    assert!(page.contains("accepted HTTP requests not done"), "{page}");
    // Not in a fleet: said, not an empty answer.
    let (code, body) = d.get("/v1/fleet", Some("s3cret")).await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no `[intake] redis`"), "{body}");
    assert_eq!(d.get("/healthz", None).await.0, 200);
    let (code, _) = d
        .post("/v1/regen", r#"{"targets": ["/"]}"#, Some("s3cret"))
        .await;
    assert_eq!(code, 202);
    let (code, v) = d
        .post("/v1/regen", r#"{"targets": ["nope"]}"#, Some("s3cret"))
        .await;
    assert_eq!(code, 400);
    assert!(
        v["error"].as_str().unwrap().contains("bad target `nope`"),
        "{v}"
    );
    let (code, v) = d.post("/v1/regen", "{not json", Some("s3cret")).await;
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("JSON"), "{v}");

    // Off loopback without a token: refuses to start.
    let run = site.kiln(&["daemon", "--listen", "0.0.0.0:0"]).await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("without a token"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_pages_finish() {
    let (origin, site) = built_site(3, "").await;
    origin.set(
        "/p/1/",
        Page::html("finished during shutdown").delay(Duration::from_millis(1500)),
    );
    let d = site.daemon(&[]).await;
    let (code, _) = d.post("/v1/regen", r#"{"targets": ["/p/1/"]}"#, None).await;
    assert_eq!(code, 202);
    wait_until(Duration::from_secs(10), "the fetch to start", || async {
        origin.hits("/p/1/") == 1
    })
    .await;
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(15)).await, Some(0));
    assert_eq!(
        site.read("p/1/index.html").unwrap(),
        "finished during shutdown"
    );
    let temp: Vec<_> = site
        .files()
        .into_iter()
        .filter(|f| f.contains(".kiln-tmp"))
        .collect();
    assert!(temp.is_empty(), "{temp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_links_on_a_regenerated_page_are_baked_too() {
    let (origin, site) = built_site(3, "").await;
    origin.set("/new-post/", Page::html("brand new"));
    origin.set(
        "/p/1/",
        Page::html("<a href=\"/new-post/\">new</a> <a href=\"/p/2/\">old</a>"),
    );
    let d = site.daemon(&[]).await;
    let (code, _) = d.post("/v1/regen", r#"{"targets": ["/p/1/"]}"#, None).await;
    assert_eq!(code, 202);
    wait_until(Duration::from_secs(10), "the newly linked page", || async {
        site.read("new-post/index.html").as_deref() == Some("brand new")
    })
    .await;
    d.settle(None).await;
    assert_eq!(origin.hits("/p/2/"), 0, "known pages are not refetched");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_until_the_origin_recovers_and_permanent_failures_are_recorded() {
    let (origin, site) = built_site(3, "").await;
    let good = site.read("p/1/index.html").unwrap();
    origin.set("/p/1/", Page::html("down").status(503));
    origin.set("/p/2/", Page::html("fresh two"));
    origin.set("/p/0/", Page::html("unprocessable").status(422));
    let d = site.daemon(&[]).await;
    assert_eq!(site.kiln(&["enqueue", "/p/1/"]).await.code, 0);
    assert_eq!(site.kiln(&["enqueue", "/p/2/", "/p/0/"]).await.code, 0);
    // /p/2/ does not wait for /p/1/'s retries.
    wait_until(Duration::from_secs(5), "/p/2/ to be fresh", || async {
        site.read("p/2/index.html").as_deref() == Some("fresh two")
    })
    .await;
    // A permanent failure (422): `retries = 1`, two attempts, then recorded
    // in failed/ with a reason that counts them truly.
    wait_until(Duration::from_secs(15), "the failure record", || async {
        !site.queue_files("failed").is_empty()
    })
    .await;
    let record = std::fs::read_to_string(&site.queue_files("failed")[0]).unwrap();
    assert!(
        record.contains("/p/0/") && record.contains("422") && record.contains("after 2 attempts"),
        "{record}"
    );
    assert_eq!(origin.hits("/p/0/"), 2);
    // The outage: retried past the old attempt limit, the spool file stays,
    // the last good file is served, and status says it is retrying.
    wait_until(
        Duration::from_secs(15),
        "several retries of /p/1/",
        || async { origin.hits("/p/1/") >= 4 },
    )
    .await;
    assert_eq!(site.read("p/1/index.html").unwrap(), good);
    assert_eq!(
        site.queue_files("new").len(),
        1,
        "the outage's spool file is kept"
    );
    let (_, status) = d.get("/v1/status", None).await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["retrying_urls"], 1, "{status}");
    let (_, metrics) = d.get("/metrics", None).await;
    assert!(metrics.contains("kiln_retrying_urls 1"), "{metrics}");
    let cli = site.kiln(&["status"]).await;
    assert!(
        cli.stdout.contains("1 retrying after failures"),
        "{}",
        cli.all()
    );
    // The origin recovers: the page becomes fresh and the spool file goes.
    origin.set("/p/1/", Page::html("back"));
    wait_until(
        Duration::from_secs(40),
        "/p/1/ to be fresh after the outage",
        || async {
            site.read("p/1/index.html").as_deref() == Some("back")
                && site.queue_files("new").is_empty()
        },
    )
    .await;
    assert!(
        !site
            .queue_files("failed")
            .iter()
            .any(|f| std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("/p/1/")),
        "the outage left no failure record"
    );
    drop(d);
}
