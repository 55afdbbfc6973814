//! Tried as an attacker would (issue: hostile input). One test per hole:
//! each failed on the code before the fix.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::util::{DAEMON_TOML, Origin, Page, TestSite, built_site, tree, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_symlink_is_never_written_or_deleted_through() {
    let (origin, site) = built_site(10, "").await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("index.html"), "not kiln's").unwrap();
    std::fs::write(outside.path().join("keep.txt"), "precious").unwrap();
    let before = tree(outside.path());
    let swap = |n: u32| {
        let dir = site.file(&format!("p/{n}"));
        std::fs::remove_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(outside.path(), &dir).unwrap();
    };

    // The daemon bakes /p/7/ once (its directory cache warm), then the
    // directory becomes a symlink and the page is regenerated.
    let d = site.daemon(&[]).await;
    origin.set("/p/7/", Page::html("v2"));
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/p/7/"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    swap(7);
    origin.set("/p/7/", Page::html("v3 written outside?"));
    let (_, v) = d.post("/v1/regen", r#"{"targets": ["/p/7/"]}"#, None).await;
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    let failed = job["report"]["failed"].to_string();
    assert!(failed.contains("symlink"), "{job}");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));

    // A fresh CLI: explicit delete, and an origin 404, through symlinks.
    swap(8);
    let run = site.kiln(&["regen", "delete:/p/8/"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("symlink"), "{}", run.all());
    swap(9);
    origin.remove("/p/9/");
    let run = site.kiln(&["regen", "/p/9/"]).await;
    assert!(run.all().contains("symlink"), "{}", run.all());

    assert_eq!(
        tree(outside.path()),
        before,
        "nothing outside the root changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_and_links_naming_another_host_are_never_fetched() {
    let evil = Origin::start(vec![("/x", Page::html("evil"))]).await;
    let sneaky = format!("/\\{}/x", evil.addr);
    let origin = Origin::start(vec![(
        "/",
        Page::html(format!(
            "<a href=\"{sneaky}\">x</a><a href=\"//{}/x\">y</a>",
            evil.addr
        )),
    )])
    .await;
    let site = TestSite::for_origin(
        &origin,
        &format!("[origin.headers]\nauthorization = \"Bearer secret\"\n{DAEMON_TOML}"),
    );
    // Links in a page.
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    // The CLI, stdin.
    let run = site.kiln(&["regen", &sneaky]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("backslash"), "{}", run.all());
    let mut c = site.command(&["regen", "-"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    tokio::io::AsyncWriteExt::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{sneaky}\n").as_bytes(),
    )
    .await
    .unwrap();
    drop(child.stdin.take());
    assert_eq!(child.wait().await.unwrap().code(), Some(2));
    // The HTTP API and the spool.
    let d = site.daemon(&[]).await;
    let (code, v) = d
        .post(
            "/v1/regen",
            &serde_json::json!({"targets": [sneaky]}).to_string(),
            None,
        )
        .await;
    assert_eq!(code, 400, "{v}");
    // Written as producers do (tmp/, then a rename).
    let queue = site.queue();
    std::fs::write(
        queue.join("tmp/1.hostile"),
        format!("{sneaky}\ndelete:{sneaky}\n"),
    )
    .unwrap();
    std::fs::rename(queue.join("tmp/1.hostile"), queue.join("new/1.hostile")).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the spool file to be processed",
        || async { !queue.join("new/1.hostile").exists() },
    )
    .await;
    d.settle(None).await;
    assert_eq!(
        evil.total_hits(),
        0,
        "no request ever reached the other host"
    );

    // Junk is not kept in the index.
    assert_eq!(site.kiln(&["regen", "/../../etc/passwd"]).await.code, 2);
    drop(d);
    let status = site.kiln(&["status", "--json"]).await;
    assert!(!status.stdout.contains("passwd"), "{}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_symlinks_fifos_and_huge_files_are_not_read_and_memory_stays_bounded() {
    let (_origin, site) = built_site(3, "").await;
    let secret = site.path().join("secret.txt");
    std::fs::write(&secret, "root-password-hunter2\n").unwrap();
    let new = site.queue().join("new");
    std::fs::create_dir_all(&new).unwrap();
    std::os::unix::fs::symlink(&secret, new.join("1.link")).unwrap();
    let fifo = std::ffi::CString::new(new.join("2.fifo").as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    // 50 MB of garbage without a newline.
    std::fs::write(new.join("3.huge"), vec![b'z'; 50 << 20]).unwrap();
    // A bad line that is long: quoted as a short excerpt.
    std::fs::write(new.join("4.bad"), format!("/ok/\n{}\n", "q".repeat(5000))).unwrap();

    let d = site.daemon(&[]).await;
    wait_until(
        Duration::from_secs(15),
        "every spool file to be handled",
        || async { site.queue_files("new").is_empty() },
    )
    .await;
    let failed = site.queue_files("failed");
    assert!(!failed.is_empty());
    let mut saw_reason = 0;
    for f in &failed {
        let meta = std::fs::symlink_metadata(f).unwrap();
        if !meta.is_file() || f.extension().is_some_and(|e| e == "huge") {
            continue; // the rejected entries themselves, moved as they were
        }
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains("hunter2"), "{f:?} quotes the secret: {text}");
        assert!(text.len() < 4096, "{f:?} is {} bytes", text.len());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f:?}");
        saw_reason += 1;
    }
    assert!(saw_reason >= 4, "{failed:?}");
    let peak_mib = d.peak_rss_kib() / 1024;
    assert!(
        peak_mib < 120,
        "daemon peaked at {peak_mib} MiB reading a 50 MB spool file"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "root-password-hunter2\n"
    );
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_target_lists_are_capped_and_never_starve_other_events() {
    let (origin, site) = built_site(50, "").await;
    let d = site.daemon(&[]).await;
    // 20,000 copies of `all` are one target.
    let all = serde_json::json!({"targets": vec!["all"; 20_000]}).to_string();
    let (code, v) = d.post("/v1/regen", &all, None).await;
    assert_eq!(code, 202, "{v}");
    let big = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(big["report"]["urls"], 51, "{big}");
    // Too many distinct targets, or too big a body: 413 with a JSON error.
    let many: Vec<String> = (0..10_001).map(|i| format!("/many/{i}/")).collect();
    let (code, v) = d
        .post(
            "/v1/regen",
            &serde_json::json!({ "targets": many }).to_string(),
            None,
        )
        .await;
    assert_eq!(code, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("max-targets"), "{v}");
    let huge = format!("{{\"targets\": [\"/{}/\"]}}", "a".repeat(2 << 20));
    let (code, v) = d.post("/v1/regen", &huge, None).await;
    assert_eq!(code, 413, "{v}");
    assert!(v["error"].is_string(), "{v}");
    // A request of 5,000 tags is resolved beside the event loop: an event
    // sent after it is done long before the tags are.
    let tags: Vec<String> = (0..5_000).map(|i| format!("tag:nothing:{i}")).collect();
    let (code, _) = d
        .post(
            "/v1/regen",
            &serde_json::json!({ "targets": tags }).to_string(),
            None,
        )
        .await;
    assert_eq!(code, 202);
    origin.set("/p/3/", Page::html("quick"));
    let (_, v) = d.post("/v1/regen", r#"{"targets": ["/p/3/"]}"#, None).await;
    let quick = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(quick["report"]["written"], 1, "{quick}");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_page_is_streamed_to_disk_with_flat_memory() {
    let origin = Origin::start(vec![("/", Page::html("<a href=\"/big/200/\">big</a>"))]).await;
    let site = TestSite::new(&format!(
        "[origin]\nurl = \"{}\"\nmax-body = \"400MiB\"\ntimeout = \"60s\"\n{DAEMON_TOML}",
        origin.url()
    ));
    let d = site.daemon(&[]).await;
    let (code, v) = d
        .post("/v1/regen", r#"{"targets": ["/big/200/"]}"#, None)
        .await;
    assert_eq!(code, 202, "{v}");
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(job["report"]["written"], 1, "{job}");
    assert_eq!(
        std::fs::metadata(site.file("big/200/index.html"))
            .unwrap()
            .len(),
        200 << 20
    );
    let peak_mib = d.peak_rss_kib() / 1024;
    assert!(peak_mib < 100, "a 200 MiB page cost {peak_mib} MiB of RSS");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_owns_an_output_and_the_cli_hands_work_to_it() {
    let (origin, site) = built_site(5, "").await;
    let d = site.daemon(&[]).await;
    let second = site.kiln(&["daemon", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(second.code, 2, "{}", second.all());
    assert!(
        second.stderr.contains(&format!("PID {}", d.pid())),
        "{}",
        second.all()
    );
    // A CLI regen goes through the daemon, never beside it.
    origin.set("/p/2/", Page::html("via the daemon"));
    let run = site.kiln(&["regen", "/p/2/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("handed the targets"), "{}", run.all());
    assert!(run.stdout.contains("1 written"), "{}", run.all());
    assert_eq!(site.read("p/2/index.html").unwrap(), "via the daemon");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_files_of_a_dead_writer_are_swept_whatever_its_pid() {
    let (_origin, site) = built_site(3, "").await;
    // A kiln that ran as PID 1 in a container and was killed mid-write.
    let stale = site.file("p/1/.kiln-tmp-1-w-abc");
    std::fs::write(&stale, "partial").unwrap();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    assert!(!stale.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_is_exit_2_and_the_api_wants_json() {
    let (_origin, site) = built_site(3, "").await;
    let run = site.kiln(&["daemon", "--listen", "0.0.0.0:0"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    let d = site.daemon(&[]).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/regen", d.http))
        .header("content-type", "text/plain")
        .body(r#"{"targets": ["all"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("application/json"),
        "{v}"
    );
    drop(d);
}
