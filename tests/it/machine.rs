//! The machine's own faults (guarantee 2, docs/architecture.md): a disk
//! that fills up (under the output or under the index) and an app that
//! answers nothing never cost an acknowledged change or a good page.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::referee::start_cdn;
use crate::util::{Origin, Page, TestSite, home_and_pages, wait_until};

/// A small tmpfs mounted over `dir` (root only), unmounted when dropped:
/// a real filesystem that really fills up.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// `None` (and a notice) where mounting is not possible; under
    /// `CI=true`, where `.ci/run` runs as root, that is a failure.
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "mounting a small tmpfs needs root, which CI has"
            );
            eprintln!("\n*** SKIPPED: cannot mount a tmpfs here (needs root) ***\n");
            return None;
        }
        Some(SmallDisk {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills what is left with one file; returns it.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.dir.join("filler.bin");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![b'f'; 4096];
        while f.write_all(&chunk).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

fn page(n: usize, version: &str) -> Page {
    Page::html(format!(
        "<h1>page {n} {version}</h1>{}",
        "x".repeat(8 << 10)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_every_acknowledged_change_until_space_is_freed() {
    let pages = home_and_pages(20, |n| page(n, "v1"));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "[daemon]\nmax-retry-delay = \"300ms\"\n");
    let Some(disk) = SmallDisk::mount(&site.out(), "1m") else {
        return;
    };
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(site.read("p/3/index.html").unwrap().contains("v1"));

    // The disk fills up; then every page changes and the app says so.
    let filler = disk.fill();
    for n in 0..20 {
        origin.set(&format!("/p/{n}/"), page(n, "v2"));
    }
    let d = site.daemon_logged().await;
    let urls: Vec<String> = (0..20).map(|n| format!("\"/p/{n}/\"")).collect();
    let (code, _) = d
        .post(
            "/v1/regen",
            &format!("{{\"targets\": [{}]}}", urls.join(",")),
            None,
        )
        .await;
    assert_eq!(code, 202, "acknowledged");
    d.wait_for_log(&["No space left on device"]).await;
    // Nothing is given up while the disk is full: the last good files stay.
    for n in 0..20 {
        let text = site.read(&format!("p/{n}/index.html")).unwrap_or_default();
        assert!(
            text.contains(&format!("page {n} v")),
            "p/{n} keeps a whole page: {text:.40}"
        );
    }
    assert!(
        site.queue_files("failed").is_empty(),
        "nothing sent to failed/"
    );

    // Space comes back: every acknowledged change lands by itself.
    std::fs::remove_file(filler).unwrap();
    wait_until(
        Duration::from_secs(60),
        "every page fresh after the disk recovered",
        || async {
            (0..20).all(|n| {
                site.read(&format!("p/{n}/index.html"))
                    .is_some_and(|t| t.contains(&format!("page {n} v2")))
            })
        },
    )
    .await;
    d.settle(None).await;
    assert!(
        site.queue_files("failed").is_empty(),
        "{:?}",
        site.queue_files("failed")
    );
    assert!(
        site.queue_files("journal").is_empty(),
        "the journal is empty once done"
    );
    drop(d);
    drop(disk);
}

/// The index's disk fills up: the pages' files are written but their
/// records (and the outbox rows that tell the CDN) cannot be committed.
/// The job is not reported done, its journal entry stays, and it runs
/// again until everything is committed; then the CDN hears of every page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_index_commit_keeps_the_job_until_its_records_are_committed() {
    let pages = home_and_pages(10, |n| page(n, "v1"));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let cdn_dir = tempfile::tempdir().unwrap();
    let (cdn, purges) = start_cdn(cdn_dir.path().to_path_buf()).await;
    let index_disk = tempfile::tempdir().unwrap();
    let site = TestSite::for_origin(&origin, "");
    let toml = site.path().join("site.toml");
    let mut config = std::fs::read_to_string(&toml).unwrap();
    config.push_str(&format!(
        "[site]\nstate = \"{}/index.db\"\nqueue = \"{}\"\n\
         [daemon]\nmax-retry-delay = \"300ms\"\n\
         [[purge]]\nkind = \"webhook\"\nurl = \"{cdn}/purge\"\n",
        index_disk.path().display(),
        site.queue().display()
    ));
    std::fs::write(&toml, config).unwrap();
    let Some(disk) = SmallDisk::mount(index_disk.path(), "4m") else {
        return;
    };
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let d = site.daemon_logged().await;
    purges.lock().unwrap().seen.clear();

    // The index's disk fills up; every page changes and the app says so.
    let filler = disk.fill();
    for n in 0..10 {
        origin.set(&format!("/p/{n}/"), page(n, "v2"));
    }
    let urls: Vec<String> = (0..10).map(|n| format!("\"/p/{n}/\"")).collect();
    let (code, v) = d
        .post(
            "/v1/regen",
            &format!("{{\"targets\": [{}]}}", urls.join(",")),
            None,
        )
        .await;
    assert_eq!(code, 202, "acknowledged: {v}");
    let job = v["job"].as_u64().unwrap();
    d.wait_for_log(&["index commit failed"]).await;
    // The job runs again (its pages are asked for again) rather than
    // being reported done with its records lost.
    let hits = origin.hits("/p/0/");
    wait_until(Duration::from_secs(30), "the job to run again", || async {
        origin.hits("/p/0/") > hits
    })
    .await;
    let (_, info) = d.get(&format!("/v1/jobs/{job}"), None).await;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_ne!(info["state"], "done", "{info}");
    assert!(
        !site.queue_files("journal").is_empty(),
        "the journal keeps the acknowledged request"
    );

    // Space comes back: the job lands, records and outputs included.
    std::fs::remove_file(filler).unwrap();
    let done = d.job_done(job, None).await;
    assert_eq!(done["report"]["failed"], serde_json::json!([]), "{done}");
    wait_until(
        Duration::from_secs(30),
        "the CDN to hear of every changed page",
        || async {
            let p = purges.lock().unwrap();
            (0..10).all(|n| p.seen.contains_key(&format!("/p/{n}/")))
        },
    )
    .await;
    for n in 0..10 {
        assert!(
            site.read(&format!("p/{n}/index.html"))
                .unwrap()
                .contains("v2")
        );
    }
    assert!(site.queue_files("journal").is_empty(), "journal emptied");
    assert!(site.queue_files("failed").is_empty());
    drop(d);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_answers_never_blank_a_page() {
    let pages = home_and_pages(6, |n| page(n, "v1"));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "[daemon]\nmax-retry-delay = \"200ms\"\n");
    assert_eq!(site.kiln(&["build"]).await.code, 0);

    // The app breaks: every page answers 200 with nothing in it.
    for n in 0..6 {
        origin.set(&format!("/p/{n}/"), Page::html(""));
    }
    let run = site.kiln(&["build"]).await;
    assert_eq!(
        run.code,
        1,
        "a build of empty answers fails:\n{}",
        run.all()
    );
    assert!(run.all().contains("empty body"), "{}", run.all());
    for n in 0..6 {
        assert!(
            site.read(&format!("p/{n}/index.html"))
                .unwrap()
                .contains("v1")
        );
    }

    // The same in the daemon, for an `all` event: retried, never written,
    // and the pages come back when the app does.
    let d = site.daemon(&[]).await;
    let (code, _) = d.post("/v1/regen", "{\"targets\": [\"all\"]}", None).await;
    assert_eq!(code, 202);
    wait_until(
        Duration::from_secs(30),
        "the empty answers to be seen",
        || async { origin.hits("/p/5/") >= 4 },
    )
    .await;
    for n in 0..6 {
        assert!(
            site.read(&format!("p/{n}/index.html"))
                .unwrap()
                .contains("v1"),
            "p/{n}"
        );
    }
    for n in 0..6 {
        origin.set(&format!("/p/{n}/"), page(n, "v3"));
    }
    wait_until(
        Duration::from_secs(30),
        "the pages back once the app is",
        || async {
            (0..6).all(|n| {
                site.read(&format!("p/{n}/index.html"))
                    .is_some_and(|t| t.contains("v3"))
            })
        },
    )
    .await;

    // A site whose empty pages are real says so.
    origin.set("/p/0/", Page::html(""));
    let allowed = TestSite::for_origin(&origin, "allow-empty = true\n");
    assert_eq!(allowed.kiln(&["build"]).await.code, 0);
    assert_eq!(allowed.read("p/0/index.html").as_deref(), Some(""));
    drop(d);
}

/// Damages every page of the index after its first (the schema stays, so
/// SQLite opens it and fails on the first read of any table).
fn damage_index(site: &TestSite) {
    let db = site.state_dir().join("index.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 4096 * 3, "an index of several pages");
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&db, bytes).unwrap();
}

fn tagged(n: usize, version: &str) -> Page {
    page(n, version).with_header("surrogate-key", &format!("post:{n}"))
}

/// A damaged index loses nothing. `kiln regen` names the damage and the
/// fix; `kiln index rebuild` rebuilds it from the output and the origin,
/// tags included (a tag event lands afterwards); and a daemon started on a
/// damaged index rebuilds it itself and takes the next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_is_rebuilt_from_the_output_and_the_origin() {
    let pages = home_and_pages(30, |n| tagged(n, "v1"));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let before = crate::util::snapshot(&site);
    damage_index(&site);
    let damaged = std::fs::read(site.state_dir().join("index.db")).unwrap();

    // A one-shot command says what is wrong and what to do.
    let run = site.kiln(&["regen", "/p/3/"]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("is corrupt") && run.all().contains("kiln index rebuild"),
        "{}",
        run.all()
    );

    // `kiln index rebuild`: every page kept, the tags known again.
    let run = site.kiln(&["index", "rebuild"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(crate::util::snapshot(&site), before, "{}", run.all());
    origin.set("/p/3/", tagged(3, "v2"));
    let run = site.kiln(&["regen", "tag:post:3"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        site.read("p/3/index.html").unwrap().contains("v2"),
        "{}",
        run.all()
    );

    // The same damage under a daemon: it starts, rebuilds, and a tag event
    // then lands.
    std::fs::write(site.state_dir().join("index.db"), &damaged).unwrap();
    let _ = std::fs::remove_file(site.state_dir().join("index.db-wal"));
    let _ = std::fs::remove_file(site.state_dir().join("index.db-shm"));
    let d = site.daemon(&[]).await;
    let (code, health) = d.get("/healthz", None).await;
    assert_eq!(code, 200, "{health}");
    d.settle(None).await;
    wait_until(Duration::from_secs(30), "the rebuild to finish", || async {
        site.queue_files("new").is_empty() && site.queue_files("journal").is_empty()
    })
    .await;
    d.settle(None).await;
    origin.set("/p/5/", tagged(5, "v3"));
    let (code, v) = d
        .post("/v1/regen", r#"{"targets": ["tag:post:5"]}"#, None)
        .await;
    assert_eq!(code, 202, "{v}");
    let job = d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(job["report"]["urls"], 1, "{job}");
    assert!(site.read("p/5/index.html").unwrap().contains("v3"));
    for file in before.keys() {
        assert!(site.file(file).exists(), "{file} kept");
    }
    assert!(site.queue_files("failed").is_empty());
    drop(d);
}

/// A broken template or app blanks a site by shrinking its pages, not by
/// removing them: a site-wide shrink to a tenth or less is held like a mass
/// removal, in a build (exit 1, the files past the limit kept, the reason)
/// and in the daemon (status and metric), and consent lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_wide_shrink_is_held_like_a_mass_removal() {
    let pages = home_and_pages(30, |n| page(n, "v1"));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let stubs = || {
        (0..30)
            .filter(|n| {
                site.read(&format!("p/{n}/index.html"))
                    .is_some_and(|t| t.starts_with("<p>stub"))
            })
            .count()
    };

    // The app breaks: every page is a stub of itself.
    for n in 0..30 {
        origin.set(&format!("/p/{n}/"), Page::html(format!("<p>stub {n}</p>")));
    }
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("mass-change guard"), "{}", run.all());
    // The limit is max(5, 10 % of 31) = 5 pages.
    assert!(
        stubs() <= 5,
        "{} pages became stubs:\n{}",
        stubs(),
        run.all()
    );

    // The daemon holds the same within its window, and says so.
    let d = site.daemon(&[]).await;
    let (_, v) = d.post("/v1/regen", r#"{"targets": ["all"]}"#, None).await;
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert!(stubs() <= 10, "{} pages became stubs", stubs());
    let (_, status) = d.get("/v1/status", None).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["mass_delete_guard"]["tripped"], true, "{status}");

    // Consent: the pages really are this small now.
    let run = site.kiln(&["regen", "--allow-mass-delete", "failed"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(stubs(), 30, "{}", run.all());
    drop(d);
}

/// What writers abandoned in the spool's `tmp/` (a producer killed between
/// its write and its rename) is swept when the daemon starts; a file a
/// producer is writing right now is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sweeps_what_writers_abandoned_in_the_spool() {
    let pages = home_and_pages(2, |n| page(n, "v1"));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let tmp = site.queue().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let abandoned = tmp.join("producer-killed-mid-write");
    std::fs::write(&abandoned, "/p/1/\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    let writing = tmp.join("being-written-now");
    std::fs::write(&writing, "/p/0/\n").unwrap();
    let d = site.daemon(&[]).await;
    assert!(!abandoned.exists(), "an abandoned temp file is swept");
    assert!(writing.exists(), "a file being written is left alone");
    drop(d);
}

/// A daemon started while a one-shot build holds the output (a deploy
/// hook's build, systemd starting the daemon meanwhile) waits for it and
/// then starts, instead of exiting at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_during_a_build_waits_for_it() {
    let mut pages = home_and_pages(3, |n| page(n, "v1"));
    // The build holds the output while this page answers.
    pages[1].1 = page(0, "v1").delay(Duration::from_millis(1500));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "");
    let build = site.command(&["build"]).output();
    let build = tokio::spawn(build);
    wait_until(
        Duration::from_secs(30),
        "the build to hold the output",
        || async { origin.hits("/p/0/") > 0 },
    )
    .await;
    let d = site.daemon(&[]).await;
    let built = build.await.unwrap().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // The daemon took over once the build was done, and works.
    origin.set("/p/1/", page(1, "v2"));
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/p/1/"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert!(site.read("p/1/index.html").unwrap().contains("v2"));
    drop(d);
}
