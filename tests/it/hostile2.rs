//! Hostile input, round 2 (issue #20), tried as an attacker or a careless
//! operator would. Each test failed on the commit before its fix.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::require;
use crate::util::{Nginx, Page, TestSite, built_site, client, open_up, tree, wait_until};

/// A planted absolute `current` (or a release id that is a symlink) is never
/// followed: no command writes, deletes or switches onto content outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_current_symlink_is_never_followed() {
    let (origin, site) = built_site(5, "").await;
    // Start over as a release layout.
    std::fs::remove_dir_all(site.out()).unwrap();
    let run = site.kiln(&["build", "--release"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("p/2")).unwrap();
    std::fs::write(outside.path().join("p/2/index.html"), "not kiln's").unwrap();
    std::fs::write(outside.path().join("keep.txt"), "precious").unwrap();
    let before = tree(outside.path());
    let current = site.out().join("current");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(outside.path(), &current).unwrap();

    origin.set("/p/1/", Page::html("v2"));
    for args in [
        &["regen", "/p/1/"][..],
        &["regen", "delete:/p/2/"],
        &["delete", "/p/2/"],
        &["build"],
    ] {
        let run = site.kiln(args).await;
        assert_ne!(run.code, 0, "{args:?}: {}", run.all());
        assert!(
            run.all()
                .contains("only follows the `current` link it writes"),
            "{args:?}: {}",
            run.all()
        );
    }
    // The daemon refuses to start on it rather than serve writes there.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        site.command(&["daemon", "--listen", "127.0.0.1:0"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(tree(outside.path()), before, "nothing outside changed");

    // Rollback never switches onto a release id that is a symlink.
    std::fs::remove_file(&current).unwrap();
    let live = std::fs::read_dir(site.out().join("releases"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    std::os::unix::fs::symlink(std::path::Path::new("releases").join(&live), &current).unwrap();
    std::os::unix::fs::symlink(outside.path(), site.out().join("releases/0")).unwrap();
    let run = site.kiln(&["rollback"]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert_eq!(
        std::fs::read_link(&current).unwrap(),
        std::path::Path::new("releases").join(&live)
    );
}

/// A glob built to blow up the matcher is refused where it enters (CLI,
/// HTTP, spool) with the reason, and the other targets of its spool file
/// are still applied; nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pathological_glob_is_refused_and_never_stalls_a_job() {
    let (origin, site) = built_site(3, "").await;
    let nested = format!("glob:/{}x{}", "{a,".repeat(250), "}".repeat(250));
    let stars = format!("glob:/{}", "*".repeat(90_000));
    for bad in [&nested, &stars] {
        let run = site.kiln(&["regen", bad]).await;
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(run.stderr.contains("glob"), "{}", run.all());
    }
    let d = site.daemon(&[]).await;
    let (code, v) = d
        .post(
            "/v1/regen",
            &serde_json::json!({ "targets": [nested] }).to_string(),
            None,
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].to_string().contains("glob"), "{v}");
    // As a spool line: refused into failed/, its neighbour applied.
    origin.set("/p/1/", Page::html("neighbour applied"));
    let spool = site.queue();
    std::fs::write(spool.join("tmp/poison"), format!("{nested}\n/p/1/\n")).unwrap();
    std::fs::rename(spool.join("tmp/poison"), spool.join("new/poison")).unwrap();
    wait_until(
        Duration::from_secs(20),
        "the neighbour to be applied",
        || async {
            site.read("p/1/index.html").as_deref() == Some("neighbour applied")
                && site.queue_files("new").is_empty()
        },
    )
    .await;
    let records: String = site
        .queue_files("failed")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    assert!(records.contains("glob"), "{records}");
    // The daemon is still healthy and takes the next event.
    origin.set("/p/2/", Page::html("next event"));
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/p/2/"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(site.read("p/2/index.html").unwrap(), "next event");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

/// An origin restarted empty does not wipe the site through the daemon: the
/// guard keeps the files, says so (status, metrics), a `kiln build` beside
/// the daemon restores every page once the origin is back (and the guard
/// clears), and consent removes pages that are really gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_the_mass_delete_guard() {
    const PAGES: usize = 40;
    let (origin, site) = built_site(PAGES, "").await;
    let baked = site.files();
    assert_eq!(baked.len(), PAGES + 1);
    let pages: Vec<(String, Page)> = crate::util::linked_site(PAGES);
    let d = site.daemon(&[]).await;
    // The origin comes back empty; one `all` event.
    for (path, _) in &pages {
        origin.remove(path);
    }
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["all"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    let left = site.files().len();
    // The limit is max(5, 10 % of 41) = 5 pages.
    assert!(
        left >= PAGES + 1 - 5,
        "the daemon removed {} of {} files: {job}",
        PAGES + 1 - left,
        PAGES + 1
    );
    let (_, status) = d.get("/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["mass_delete_guard"]["tripped"], true, "{status}");
    assert!(
        status["mass_delete_guard"]["removals_held"]
            .as_u64()
            .unwrap()
            >= 30,
        "{status}"
    );
    let (_, metrics) = d.get("/metrics", None).await;
    assert!(
        metrics.contains("kiln_mass_delete_guard_tripped 1"),
        "{metrics}"
    );
    assert!(
        job["report"]["failed"]
            .to_string()
            .contains("mass-delete guard"),
        "{job}"
    );

    // The origin is back: a deploy hook's `kiln build` beside the daemon
    // restores every page, the removed ones included.
    for (path, page) in &pages {
        origin.set(path, page.clone());
    }
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(site.files(), baked, "{}", run.all());
    for (path, page) in &pages {
        let rel = if path == "/" {
            "index.html".to_string()
        } else {
            format!("{}index.html", &path[1..])
        };
        assert_eq!(std::fs::read(site.file(&rel)).unwrap(), page.body, "{path}");
    }
    // Every page the guard kept is back: it is no longer tripped (the
    // count of removals it held stays, as a counter does).
    let (_, status) = d.get("/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["mass_delete_guard"]["tripped"], false, "{status}");
    let (_, metrics) = d.get("/metrics", None).await;
    assert!(
        metrics.contains("kiln_mass_delete_guard_tripped 0"),
        "{metrics}"
    );

    // The pages really are gone: consent removes them.
    for (path, _) in pages.iter().filter(|(p, _)| p != "/") {
        origin.remove(path);
    }
    let run = site
        .kiln(&["regen", "--allow-mass-delete", "glob:/p/**"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        site.files(),
        vec!["index.html".to_string()],
        "{}",
        run.all()
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

/// Two configs with their own state directories and one output: the second
/// daemon is refused, naming the first; a CLI run from elsewhere with
/// `--out` hands its work to the owner instead of writing beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_output_has_one_owner_whatever_the_state_directory() {
    let (origin, site) = built_site(3, "").await;
    let d = site.daemon(&[]).await;
    let other = TestSite::for_origin(
        &origin,
        &format!(
            "[site]\nout = \"{}\"\nstate = \"other-state/index.db\"\n{}",
            site.out().display(),
            crate::util::DAEMON_TOML
        ),
    );
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        other
            .command(&["daemon", "--listen", "127.0.0.1:0"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&d.pid().to_string()), "{err}");
    // A CLI run from another directory, naming the output by --out.
    origin.set("/p/1/", Page::html("through the owner"));
    let elsewhere = tempfile::tempdir().unwrap();
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .current_dir(elsewhere.path())
            .args(["--origin", &origin.url(), "--out"])
            .arg(site.out())
            .args(["regen", "/p/1/"])
            .env_remove("KILN_TOKEN")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text =
        String::from_utf8_lossy(&run.stderr).into_owned() + &String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{text}");
    assert!(text.contains("owns this output"), "{text}");
    assert_eq!(site.read("p/1/index.html").unwrap(), "through the owner");
    assert!(
        !elsewhere.path().join(".kiln").exists(),
        "no second index was made for the same output"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

/// A spool file of a million bad lines, and several large files at once,
/// cost memory bounded by the file size, and the failure record counts what
/// it does not list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_memory_is_bounded_by_the_file_size() {
    let (_origin, site) = built_site(2, "").await;
    let d = site.daemon(&[]).await;
    let before = d.peak_rss_kib();
    // Written as producers do: into tmp/, then renamed into new/.
    let spool = site.queue();
    let put = |name: &str, text: String| {
        std::fs::write(spool.join("tmp").join(name), text).unwrap();
        std::fs::rename(spool.join("tmp").join(name), spool.join("new").join(name)).unwrap();
    };
    put("bad-lines", "x\n".repeat(1_000_000));
    for n in 0..8 {
        let mut text = String::with_capacity(4 << 20);
        let mut i = 0;
        while text.len() < (4 << 20) - 64 {
            text.push_str(&format!("/q/{n}/{i}/\n"));
            i += 1;
        }
        put(&format!("big-{n}"), text);
    }
    wait_until(
        Duration::from_secs(60),
        "the spool files to be handled",
        || async { site.queue_files("new").is_empty() },
    )
    .await;
    let grew_mib = d.peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grew_mib < 120, "peak RSS grew by {grew_mib} MiB");
    let record = std::fs::read_to_string(site.queue().join("failed/bad-lines.bad-lines")).unwrap();
    assert!(record.contains("# ... and 999900 more"), "{record}");
    assert!(
        record.lines().count() < 200,
        "the record lists a bounded number of lines"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

/// Slowloris and idle clients are cut off by the daemon's timeouts, and
/// `/healthz` keeps answering while they hold connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_http_clients_are_cut_off() {
    let (_origin, site) = built_site(2, "").await;
    let d = site.daemon(&[]).await;
    let addr = d.http.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    for _ in 0..20 {
        slow.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let (code, body) = d.get("/healthz", None).await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // Every slow or idle connection is closed by the daemon (EOF or reset),
    // well before a minute.
    let started = std::time::Instant::now();
    for mut s in slow {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a connection was still open after {:?}",
            started.elapsed()
        );
    }
    let (code, _) = d.get("/healthz", None).await;
    assert_eq!(code, 200);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

/// The smaller holes: a foreign Host without a token, a lowercase bearer
/// scheme, credentials in the origin URL, control bytes in failure records,
/// uncapped stdin, nonsense limits, leftovers of a failed first run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smaller_holes_are_closed() {
    let (origin, site) = built_site(2, "").await;
    let d = site.daemon(&[]).await;
    // DNS rebinding: the page's own name arrives as Host.
    let r = client()
        .post(format!("{}/v1/regen", d.http))
        .header("host", "evil.example:7878")
        .header("content-type", "application/json")
        .body(r#"{"targets": ["all"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = client()
        .get(format!("{}/v1/status", d.http))
        .header("host", "localhost:1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "localhost is a local name");
    // Control bytes in a spool line are escaped in the record.
    // Written as producers do (tmp/, then a rename): a file written in
    // place can be read half-written.
    let spool = site.queue();
    std::fs::write(spool.join("tmp/esc"), "/ok\x1b[31m\r\0/\n").unwrap();
    std::fs::rename(spool.join("tmp/esc"), spool.join("new/esc")).unwrap();
    wait_until(Duration::from_secs(20), "the spool file", || async {
        site.queue_files("new").is_empty()
    })
    .await;
    let record = std::fs::read(site.queue().join("failed/esc.bad-lines")).unwrap();
    assert!(
        !record.iter().any(|b| matches!(b, 0x1b | b'\r' | 0)),
        "{}",
        String::from_utf8_lossy(&record)
    );
    assert!(String::from_utf8_lossy(&record).contains("\\u{1b}"));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));

    // A token: the scheme is case-insensitive.
    let d = site.daemon(&[("KILN_TOKEN", "s3cret")]).await;
    let r = client()
        .get(format!("{}/v1/status", d.http))
        .header("authorization", "bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));

    // Credentials in the origin URL are never printed, and still sent.
    let with_pw = origin.url().replace("http://", "http://alice:hunter2@");
    let run = site.kiln(&["--origin", &with_pw, "check"]).await;
    assert!(!run.all().contains("hunter2"), "{}", run.all());
    let dead = "http://alice:hunter2@127.0.0.1:1";
    let run = site
        .kiln(&["--force", "--origin", dead, "regen", "/p/0/"])
        .await;
    assert!(!run.all().contains("hunter2"), "{}", run.all());
    origin.reset_hits();
    let run = site.kiln(&["--origin", &with_pw, "regen", "/p/0/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(origin.hits("/p/0/"), 1);
    assert_eq!(
        origin.last_authorization().as_deref(),
        Some("Basic YWxpY2U6aHVudGVyMg=="),
        "the credentials travel as a header"
    );

    // Standalone `regen -` is capped like the daemon's intakes.
    let mut c = site.command(&["regen", "-"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let many: String = (0..50_000).map(|i| format!("/many/{i}/\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(many.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon.max-targets"));
    assert_eq!(origin.hits("/many/1/"), 0);

    // Nonsense limits are refused, naming the key.
    for (toml, key) in [
        (
            "[origin]\nurl = \"http://127.0.0.1:9\"\ntimeout = \"0s\"\n",
            "origin.timeout",
        ),
        (
            "[safety]\nmax-delete-percent = 250\n",
            "safety.max-delete-percent",
        ),
        ("[daemon]\nmax-targets = 0\n", "daemon.max-targets"),
    ] {
        let s = TestSite::new(toml);
        let run = s.kiln(&["--origin", "http://127.0.0.1:9", "check"]).await;
        assert_eq!(run.code, 2, "{toml}: {}", run.all());
        assert!(run.stderr.contains(key), "{toml}: {}", run.all());
    }

    // A failed first run leaves nothing behind.
    let empty = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(empty.path())
        .args(["build", "--origin", "http://127.0.0.1:1", "--out", "fresh"])
        .output()
        .await
        .unwrap();
    assert_ne!(run.status.code(), Some(0));
    let left: Vec<_> = std::fs::read_dir(empty.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// nginx never serves a symlink planted below the root, while the release
/// layout's own `current` keeps working.
#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_does_not_follow_a_planted_symlink() {
    require!("nginx");
    let (_origin, site) = built_site(2, "").await;
    std::fs::remove_dir_all(site.out()).unwrap();
    assert_eq!(site.kiln(&["build", "--release"]).await.code, 0);
    open_up(site.path());
    let secret = site.path().join("secret.txt");
    std::fs::write(&secret, "the server's secret").unwrap();
    let live = site.out().join("current");
    std::os::unix::fs::symlink(&secret, live.join("leak.txt")).unwrap();
    let (nginx, block) = Nginx::for_site(&site, &[], &[]).await;
    assert!(block.contains("disable_symlinks on"), "{block}");
    let http = client();
    let r = http.get(nginx.url("/p/1/")).send().await.unwrap();
    assert_eq!(r.status(), 200, "pages under `current` are served");
    let r = http.get(nginx.url("/leak.txt")).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(!body.contains("secret"), "{status}: {body}");
}

/// Under a low file-descriptor limit, a flood of slow connections cannot
/// starve the spool: connections are capped at half the limit, the rest
/// wait in the kernel's backlog, and a spool file is still applied.
#[cfg_attr(kiln_no_prlimit, ignore = "prlimit is not on PATH (util-linux)")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_under_a_low_fd_limit_leaves_the_spool_working() {
    require!("prlimit");
    let (origin, site) = built_site(2, "").await;
    let mut cmd = tokio::process::Command::new("prlimit");
    cmd.current_dir(site.path())
        .arg("--nofile=256:256")
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(["daemon", "--listen", "127.0.0.1:0"])
        .env_remove("KILN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let line = lines.next_line().await.unwrap().unwrap();
    let addr = line.replace("kiln daemon listening on http://", "");
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").await;
        slow.push(s);
    }
    origin.set("/p/1/", Page::html("through the spool"));
    let spool = site.queue();
    std::fs::write(spool.join("tmp/flood"), "/p/1/\n").unwrap();
    std::fs::rename(spool.join("tmp/flood"), spool.join("new/flood")).unwrap();
    wait_until(
        Duration::from_secs(15),
        "the spool file to be applied",
        || async { site.read("p/1/index.html").as_deref() == Some("through the spool") },
    )
    .await;
    // The listener recovers as the slow clients time out.
    wait_until(Duration::from_secs(30), "/healthz to answer", || async {
        tokio::time::timeout(
            Duration::from_secs(2),
            reqwest::get(format!("http://{addr}/healthz")),
        )
        .await
        .is_ok_and(|r| r.is_ok_and(|r| r.status() == 200))
    })
    .await;
    drop(slow);
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// The app deleting posts one by one is its own doing, not a broken
/// origin: each event names a post's pages, they answer 404, and their
/// files go however many posts are deleted in the guard's window (the
/// Django referee found deleted posts served forever after the fifth).
/// An `all` event that finds the same pages gone is still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_own_deletions_are_its_consent() {
    const PAGES: usize = 30;
    let (origin, site) = built_site(PAGES, "").await;
    let d = site.daemon(&[]).await;
    for n in 0..12 {
        let path = format!("/p/{n}/");
        origin.remove(&path);
        let (code, v) = d
            .post("/v1/regen", &format!("{{\"targets\": [\"{path}\"]}}"), None)
            .await;
        assert_eq!(code, 202, "{v}");
        d.job_done(v["job"].as_u64().unwrap(), None).await;
        assert!(
            site.read(&format!("p/{n}/index.html")).is_none(),
            "{path} removed"
        );
    }
    let (_, status) = d.get("/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["mass_delete_guard"]["tripped"], false, "{status}");
    // A broad event finding the rest gone is a broken origin: held.
    for n in 12..PAGES {
        origin.remove(&format!("/p/{n}/"));
    }
    let (_, v) = d.post("/v1/regen", r#"{"targets": ["all"]}"#, None).await;
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    let kept = (12..PAGES)
        .filter(|n| site.read(&format!("p/{n}/index.html")).is_some())
        .count();
    assert!(kept >= PAGES - 12 - 5, "only {kept} kept");
    drop(d);
}
