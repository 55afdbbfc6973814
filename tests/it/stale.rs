//! Never stale, never silently wrong: every baked file matches the origin or
//! is visibly absent. One test per defect of the issue; each failed on the
//! code before the fix.

use std::io::Read;
use std::time::Duration;

use crate::util::{Origin, Page, TestSite, built_site, linked_site, wait_until};

fn status_json(run: &crate::util::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.all()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_turns_refused_loses_its_file_and_siblings() {
    let (origin, site) = built_site(
        4,
        "[output]\nprecompress = [\"gzip\"]\nprecompress-min-bytes = 0\n",
    )
    .await;
    assert!(site.file("p/1/index.html.gz").exists());
    origin.set(
        "/p/1/",
        Page::html("<form><input name=\"csrfmiddlewaretoken\" value=\"x\"></form>"),
    );
    let run = site.kiln(&["regen", "/p/1/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("1 refused") && run.stdout.contains("refused /p/1/"),
        "{}",
        run.all()
    );
    assert!(
        !site.file("p/1/index.html").exists(),
        "nginx falls through to the app"
    );
    assert!(!site.file("p/1/index.html.gz").exists());
    let v = status_json(&site.kiln(&["status", "--json"]).await);
    assert_eq!(v["pages"]["refused"], 1, "{v}");

    // Through the daemon too, for a page that starts setting a cookie.
    let d = site.daemon(&[]).await;
    origin.set(
        "/p/2/",
        Page::html("hi").with_header("set-cookie", "sessionid=1"),
    );
    let (_, v) = d.post("/v1/regen", r#"{"targets": ["/p/2/"]}"#, None).await;
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(job["report"]["refused"][0][0], "/p/2/", "{job}");
    assert!(!site.file("p/2/index.html").exists());
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_survives_a_daemon_restart_and_regen_failed_retries() {
    let (origin, site) = built_site(4, "").await;
    for i in 0..4 {
        origin.set(
            &format!("/p/{i}/"),
            Page::html("down")
                .status(503)
                .with_header("retry-after", "0"),
        );
    }
    let d = site.daemon(&[]).await;
    let (_, v) = d
        .post("/v1/regen", r#"{"targets": ["/p/0/", "/p/1/"]}"#, None)
        .await;
    assert!(v["job"].is_u64(), "{v}");
    wait_until(Duration::from_secs(10), "both to be retrying", || async {
        let (_, s) = d.get("/v1/status", None).await;
        serde_json::from_str::<serde_json::Value>(&s).unwrap()["retrying_urls"] == 2
    })
    .await;
    // Once the failures are recorded in the index (a batch commit later)...
    wait_until(
        Duration::from_secs(10),
        "the failures to be in the index",
        || async { status_json(&site.kiln(&["status", "--json"]).await)["pages"]["failed"] == 2 },
    )
    .await;
    // ...kill -9 in the middle of the outage: the HTTP job was in memory only.
    d.signal(libc::SIGKILL);
    d.wait(Duration::from_secs(10)).await;
    for i in 0..4 {
        origin.set(&format!("/p/{i}/"), Page::html(format!("back {i}")));
    }
    let d = site.daemon(&[]).await;
    wait_until(
        Duration::from_secs(15),
        "the failed pages to be fresh after the restart",
        || async {
            site.read("p/0/index.html").as_deref() == Some("back 0")
                && site.read("p/1/index.html").as_deref() == Some("back 1")
        },
    )
    .await;
    d.signal(libc::SIGTERM);
    d.wait(Duration::from_secs(10)).await;

    // `kiln regen failed` from the CLI.
    origin.set("/p/2/", Page::html("down").status(500));
    assert_eq!(site.kiln(&["regen", "/p/2/"]).await.code, 1);
    origin.set("/p/2/", Page::html("back 2"));
    let run = site.kiln(&["regen", "failed"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("1 written"), "{}", run.all());
    assert_eq!(site.read("p/2/index.html").unwrap(), "back 2");
    let dry = site.kiln(&["regen", "--dry-run", "failed"]).await;
    assert!(
        dry.stdout
            .contains("failed matched nothing: no page is failing"),
        "{}",
        dry.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_sibling_that_disagrees_with_an_unchanged_page_is_repaired() {
    let (_origin, site) = built_site(
        3,
        "[output]\nprecompress = [\"gzip\"]\nprecompress-min-bytes = 0\n",
    )
    .await;
    // What a crash between writing p/2's new .gz and its html leaves behind,
    // here borrowed from another page.
    std::fs::copy(
        site.file("p/2/index.html.gz"),
        site.file("p/1/index.html.gz"),
    )
    .unwrap();
    let run = site.kiln(&["regen", "/p/1/"]).await;
    assert!(run.stdout.contains("1 unchanged"), "{}", run.all());
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(site.file("p/1/index.html.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, site.read("p/1/index.html").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_origin_cannot_wipe_the_site() {
    let (_origin, site) = built_site(60, "").await;
    let files = site.files();
    let wrong = Origin::start(vec![("/", Page::html("<h1>Index of /</h1>"))]).await;
    let run = site.kiln(&["regen", "all", "--origin", &wrong.url()]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("baked from") && run.stderr.contains("--force"),
        "{}",
        run.all()
    );
    assert_eq!(wrong.total_hits(), 0);
    assert_eq!(site.files(), files);
    // --force: the origin is accepted, but the mass-delete guard holds.
    let run = site
        .kiln(&["regen", "all", "--force", "--origin", &wrong.url()])
        .await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("nothing was removed") && run.stderr.contains("--allow-mass-delete"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("0 deleted"), "{}", run.all());
    for f in &files {
        assert!(site.file(f).exists(), "{f} survived");
    }
    // With consent, the pages really go.
    let run = site
        .kiln(&[
            "regen",
            "all",
            "--allow-mass-delete",
            "--origin",
            &wrong.url(),
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("60 deleted"), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_that_cannot_be_files_are_skipped_not_failures() {
    let long = format!("/{}/", "a".repeat(300));
    let origin = Origin::start(vec![
        (
            "/",
            Page::html(format!(
                "<a href=\"/..%2fetc\">1</a><a href=\"/a%5cb\">2</a><a href=\"/x%00y\">3</a><a href=\"{long}\">4</a><a href=\"/.hidden\">5</a><a href=\"/ok/\">ok</a>"
            )),
        ),
        ("/ok/", Page::html("fine")),
        ("/x%00y", Page::html("a 200 for a URL that cannot be a file")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("0 failed"), "{}", run.all());
    assert!(run.stdout.contains("skipped /..%2Fetc"), "{}", run.all());
    assert!(
        run.stdout.contains("refused /x%00y") && run.stdout.contains("cannot be stored as a file"),
        "{}",
        run.all()
    );
    assert_eq!(site.files(), vec!["index.html", "ok/index.html"]);
    // And a release still goes live.
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build", "--release"]).await.code, 0);
    let run = site.kiln(&["build", "--release"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("is live"), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_url_one_key_and_summaries_tell_the_truth() {
    let origin = Origin::start(vec![
        (
            "/",
            Page::html(
                "<a href=\"/caf%c3%a9/\">c</a><a href=\"/old\">o</a><a href=\"/new/\">n</a>",
            ),
        ),
        ("/caf%C3%A9/", Page::html("coffee")),
        ("/caf%c3%a9/", Page::html("coffee")),
        (
            "/old",
            Page::html("").status(301).with_header("location", "/new/"),
        ),
        ("/new/", Page::html("new")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("1 redirects"), "{}", run.all());
    assert_eq!(
        origin.hits("/new/"),
        1,
        "a page reached twice is fetched once: {}",
        run.all()
    );
    let run = site.kiln(&["regen", "/café/"]).await;
    assert!(run.stdout.contains("1 unchanged"), "{}", run.all());
    let v = status_json(&site.kiln(&["status", "--json"]).await);
    assert_eq!(v["pages"]["ok"], 3, "/, /café/ once, /new/: {v}");
    // A URL that never had a file is not "deleted": it is known as missing
    // (so links to it are not fetched again on every regen).
    let run = site.kiln(&["regen", "/nonexistent/"]).await;
    assert!(
        run.stdout.contains("0 deleted")
            && run
                .stdout
                .contains("skipped /nonexistent/: origin answered 404"),
        "{}",
        run.all()
    );
    let v = status_json(&site.kiln(&["status", "--json"]).await);
    assert!(v["pages"].get("deleted").is_none(), "{v}");
    assert_eq!(v["pages"]["missing"], 1, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_that_match_nothing_say_so() {
    let origin = Origin::start(
        linked_site(3)
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
    )
    .await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["regen", "tag:post:1"]).await;
    assert!(
        run.stdout
            .contains("tag:post:1 matched nothing: the index is empty"),
        "{}",
        run.all()
    );
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let run = site.kiln(&["regen", "tag:nope"]).await;
    assert!(
        run.stdout
            .contains("tag:nope matched nothing: no baked page carries that tag"),
        "{}",
        run.all()
    );
    let run = site.kiln(&["regen", "--dry-run", "glob:/zzz/*"]).await;
    assert!(
        run.stdout.contains("glob:/zzz/* matched nothing"),
        "{}",
        run.all()
    );
    let run = site.kiln(&["regen", "--dry-run", "glob:/p/*"]).await;
    for i in 0..3 {
        assert!(
            run.stdout.contains(&format!("regen  /p/{i}/")),
            "{}",
            run.all()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_output_quietly() {
    let (_origin, site) = built_site(30, "").await;
    for cmd in ["status", "regen --dry-run all", "nginx"] {
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; '{}' {cmd} | true; echo \"exit=${{PIPESTATUS[0]}}\"",
                env!("CARGO_BIN_EXE_kiln")
            ))
            .current_dir(site.path())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{cmd}: {stderr}"
        );
        assert!(!stdout.contains("exit=101"), "{cmd}: {stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_logs_one_line_per_job_and_each_page_at_debug() {
    let (origin, site) = built_site(3, "").await;
    let d = site.daemon_logged().await;
    origin.set("/p/1/", Page::html("new"));
    assert_eq!(site.kiln(&["enqueue", "/p/1/", "/p/2/"]).await.code, 0);
    let line = d.wait_for_log(&["job done", "targets=/p/1/ /p/2/"]).await;
    assert!(
        line.contains("INFO") && line.contains("written=1") && line.contains("unchanged=1"),
        "{line}"
    );
    let log = d.log.as_ref().unwrap().lock().unwrap().join("\n");
    assert!(!log.contains("regenerated"), "pages are at debug: {log}");
    assert!(
        !log.contains("None") && !log.contains("Some("),
        "no Debug formatting: {log}"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(20)).await, Some(0));
    // At debug, each page.
    let d = site.daemon_logged_with(&[("KILN_LOG", "kiln=debug")]).await;
    origin.set("/p/1/", Page::html("newer"));
    assert_eq!(site.kiln(&["enqueue", "/p/1/"]).await.code, 0);
    let line = d.wait_for_log(&["regenerated", "url=/p/1/"]).await;
    assert!(
        line.contains("outcome=\"written\"") && line.contains("ms="),
        "{line}"
    );
}

/// A bounded soak: an origin flapping between fresh answers, 503 and slow
/// answers, random events; at the end every file equals the origin's
/// answer, with no orphan sibling, no temp file, and no more fetches than
/// events plus retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_a_flapping_origin_converges_to_exactly_its_pages() {
    const PAGES: usize = 20;
    let (origin, site) = built_site(
        PAGES,
        // Every page may come and go: the mass-delete guard allows it.
        "[output]\nprecompress = [\"gzip\"]\nprecompress-min-bytes = 0\n[safety]\nmax-delete-percent = 100\n",
    )
    .await;
    let d = site.daemon(&[]).await;
    let mut next = crate::util::seeded(0x2545F4914F6CDD1Du64);
    let mut events = 0usize;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(8) && round < 400 {
        round += 1;
        let p = next(PAGES as u64);
        let path = format!("/p/{p}/");
        match next(10) {
            0..=4 => origin.set(&path, Page::html(format!("page {p} v{round}"))),
            5 | 6 => origin.set(&path, Page::html("unavailable").status(503)),
            7 => origin.set(
                &path,
                Page::html(format!("slow {p} v{round}")).delay(Duration::from_millis(300)),
            ),
            8 => origin.set(&path, Page::html("gone").status(404)),
            _ => {}
        }
        let targets: Vec<String> = (0..1 + next(3))
            .map(|_| format!("/p/{}/", next(PAGES as u64)))
            .chain([path])
            .collect();
        events += targets.len();
        let resp = client
            .post(format!("{}/v1/regen", d.http))
            .json(&serde_json::json!({ "targets": targets }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        tokio::time::sleep(Duration::from_millis(next(30))).await;
    }
    // The origin settles: each page answers for good (fresh or gone).
    let mut want = std::collections::BTreeMap::new();
    for p in 0..PAGES {
        let path = format!("/p/{p}/");
        if next(5) == 0 {
            origin.set(&path, Page::html("gone").status(404));
            want.insert(p, None);
        } else {
            origin.set(&path, Page::html(format!("final {p}")));
            want.insert(p, Some(format!("final {p}")));
        }
    }
    let all: Vec<String> = (0..PAGES).map(|p| format!("/p/{p}/")).collect();
    events += all.len();
    let (_, v) = d
        .post(
            "/v1/regen",
            &serde_json::json!({ "targets": all }).to_string(),
            None,
        )
        .await;
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    d.settle(None).await;
    for (p, content) in &want {
        assert_eq!(site.read(&format!("p/{p}/index.html")), *content, "/p/{p}/");
    }
    for f in site.files() {
        assert!(!f.contains(".kiln-tmp"), "temp file left: {f}");
        if let Some(page) = f.strip_suffix(".gz") {
            assert!(site.file(page).exists(), "orphan sibling {f}");
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(site.file(&f)).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(Some(text), site.read(page), "{f} disagrees with its page");
        }
    }
    let (_, metrics) = d.get("/metrics", None).await;
    let errors: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kiln_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fetches = (0..PAGES)
        .map(|p| origin.hits(&format!("/p/{p}/")))
        .sum::<usize>();
    assert!(
        fetches <= events + errors,
        "{fetches} fetches for {events} events and {errors} failed attempts"
    );
    drop(d);
}

/// A page waiting out a retry backoff is tried at once when a new event
/// names it: the origin is back and the edit is visible without waiting
/// for the scheduled retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_event_for_a_page_in_retry_backoff_is_tried_now() {
    let (origin, site) = built_site(3, "").await;
    // A backoff of an hour: the first retry is due 30-60 min after the
    // failure, far beyond the test.
    let toml = std::fs::read_to_string(site.path().join("site.toml"))
        .unwrap()
        .replace("backoff = \"10ms\"", "backoff = \"1h\"")
        .replace("[daemon]\n", "[daemon]\nmax-retry-delay = \"2h\"\n");
    std::fs::write(site.path().join("site.toml"), toml).unwrap();
    let d = site.daemon(&[]).await;
    origin.set("/p/1/", Page::html("down").status(503));
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/p/1/"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    wait_until(
        Duration::from_secs(10),
        "the failure to be retried later",
        || async {
            let (_, s) = d.get("/v1/status", None).await;
            serde_json::from_str::<serde_json::Value>(&s).unwrap()["retrying_urls"] == 1
        },
    )
    .await;
    // The origin recovers and the page is edited: a new event.
    origin.set("/p/1/", Page::html("edited after the outage"));
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/p/1/"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    // The scheduled retry is an hour away: the edit lands only if the new
    // event is tried now.
    wait_until(Duration::from_secs(30), "the edit to be baked", || async {
        site.read("p/1/index.html").as_deref() == Some("edited after the outage")
    })
    .await;
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}
