//! The referee (guarantee 9, docs/architecture.md): a seeded fault-injection
//! test of the whole promise, in the spirit of FoundationDB's simulation
//! tests and Jepsen. A real origin whose pages change, a real redis-server,
//! a real S3 server (s3s-fs) and a CDN purge receiver around one daemon; a
//! random schedule (from a seed) of edits, deletes, bursts, kill -9,
//! SIGTERM, restarts, Redis restarts with and without AOF, origin 5xx, S3
//! outages, bad credentials and malformed stream entries. At quiescence it
//! checks what a visitor, the bucket and the CDN would see:
//!
//! - every baked file (and its gzip sibling) equals the origin's current
//!   answer, or is absent when the origin has no page;
//! - the bucket holds exactly the output's files, byte for byte, typed;
//! - every page that changed was purged after its last upload (the purge
//!   receiver looks in the bucket when a purge arrives);
//! - the journal, the spool and the outbox are empty; an idle daemon uses
//!   no CPU; the next event still lands.
//!
//! Seeds: `tests/it/referee_seeds.txt` (fixed ones and every seed that
//! ever failed) run always; `KILN_REFEREE_SEEDS=N` adds N more from
//! `KILN_REFEREE_FROM` (default 1000). A failure prints the seed and the
//! schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;

use crate::require;
use crate::util::{Daemon, Origin, Page, TestSite, free_port, seeded};

const PAGES: usize = 12;

/// redis-server on a fixed port and data directory, restartable with or
/// without its append-only file.
struct RedisProc {
    child: Option<tokio::process::Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisProc {
    async fn start(port: u16, dir: &Path, aof: bool) -> RedisProc {
        std::fs::create_dir_all(dir).unwrap();
        let appendonly = if aof { "yes" } else { "no" };
        let child = crate::redis::spawn_redis(
            port,
            &[
                "--appendonly".as_ref(),
                appendonly.as_ref(),
                "--dir".as_ref(),
                dir.as_os_str(),
            ],
        )
        .await;
        RedisProc {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Stops it: SIGTERM with AOF on (the log is synced), kill -9 without
    /// (everything in memory is lost).
    async fn stop(&mut self, clean: bool) {
        if let Some(mut c) = self.child.take() {
            if clean {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_raw(c.id().unwrap() as i32).unwrap(),
                    rustix::process::Signal::TERM,
                );
            } else {
                let _ = c.start_kill();
            }
            let _ = c.wait().await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// s3s-fs on a fixed port over a directory that outlives restarts.
pub(crate) struct S3Proc {
    child: Option<tokio::process::Child>,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
}

impl S3Proc {
    pub(crate) async fn start(port: u16, dir: &Path) -> S3Proc {
        let child = crate::publish::spawn_s3s(port, dir).await;
        S3Proc {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// Every object: key → bytes (read from the server's directory).
    pub(crate) fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        let root = self.dir.join("kiln");
        walkdir::WalkDir::new(&root)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let key = e.path().strip_prefix(&root).unwrap().display().to_string();
                (key, std::fs::read(e.path()).unwrap_or_default())
            })
            .filter(|(k, _)| !k.starts_with("_kiln/"))
            .collect()
    }

    /// The content type the S3 API serves for `key`.
    async fn content_type(&self, key: &str) -> String {
        let r = crate::publish::signed_get(self.port, key).await;
        r.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// What the CDN was told, and what the bucket held for each URL when it was.
#[derive(Default)]
pub(crate) struct Purges {
    /// URL → the bucket's bytes for its file at each purge, in order.
    pub(crate) seen: BTreeMap<String, Vec<Option<Vec<u8>>>>,
    /// Every tag purged, in order.
    pub(crate) tags: Vec<String>,
}

pub(crate) async fn start_cdn(bucket_dir: PathBuf) -> (String, Arc<Mutex<Purges>>) {
    use axum::extract::State;
    let purges = Arc::new(Mutex::new(Purges::default()));
    type Shared = (Arc<Mutex<Purges>>, PathBuf);
    async fn receive(State((p, dir)): State<Shared>, body: String) -> axum::http::StatusCode {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let mut p = p.lock().unwrap();
        p.tags.extend(
            v["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned)),
        );
        for u in v["urls"].as_array().into_iter().flatten() {
            let url = u.as_str().unwrap_or_default().to_string();
            let held = std::fs::read(dir.join("kiln").join(file_of(&url))).ok();
            p.seen.entry(url).or_default().push(held);
        }
        axum::http::StatusCode::OK
    }
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state((purges.clone(), bucket_dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, purges)
}

pub(crate) fn file_of(url: &str) -> String {
    if url == "/" {
        "index.html".into()
    } else {
        format!("{}index.html", url.trim_start_matches('/'))
    }
}

fn page_body(i: usize, version: usize) -> String {
    format!(
        "<html><body><h1>Page {i}</h1><p>version {version}</p><a href=\"/\">home</a></body></html>"
    )
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// One run of the world for a seed.
struct World {
    seed: u64,
    log: Vec<String>,
    origin: Origin,
    site: TestSite,
    redis: RedisProc,
    s3: S3Proc,
    daemon: Option<Daemon>,
    good_credentials: bool,
    /// The origin's truth: path → body (None: no page).
    truth: BTreeMap<String, Option<String>>,
    /// Pages set to answer 503 for now (their truth is restored later).
    failing: BTreeSet<String>,
    /// Pages whose content changed since the first build.
    changed: BTreeSet<String>,
    version: usize,
    /// Set when a daemon did not stop when told to.
    stuck: Option<String>,
}

impl World {
    async fn daemon_env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test-key"),
            (
                "AWS_SECRET_ACCESS_KEY",
                if self.good_credentials {
                    "test-secret"
                } else {
                    "wrong-secret"
                },
            ),
        ]
    }

    async fn start_daemon(&mut self) {
        if self.daemon.is_none() {
            let env = self.daemon_env().await;
            self.daemon = Some(self.site.daemon(&env).await);
        }
    }

    async fn stop_daemon(&mut self, signal: i32) {
        if let Some(mut d) = self.daemon.take() {
            d.signal(signal);
            if tokio::time::timeout(Duration::from_secs(30), d.child.wait())
                .await
                .is_err()
            {
                // A daemon that does not stop is a failure of this seed,
                // reported with its schedule, not a panic of the whole run.
                self.stuck.get_or_insert(format!(
                    "the daemon did not stop within 30 s of signal {signal}"
                ));
                let _ = d.child.start_kill();
                let _ = d.child.wait().await;
            }
        }
    }

    /// Tells kiln about changed paths the way an app would: over HTTP when
    /// the daemon answers, else through Redis, else the spool (which is
    /// always there). `via` picks the first choice.
    async fn notify(&mut self, paths: &[String], via: u64) {
        let targets: Vec<String> = paths.to_vec();
        if via == 0 {
            if let Some(d) = &self.daemon {
                let body = serde_json::json!({ "targets": targets }).to_string();
                let sent = reqwest::Client::new()
                    .post(format!("{}/v1/regen", d.http))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                    return;
                }
            }
        }
        if via <= 1 {
            let text: String = targets.iter().map(|t| format!("{t}\n")).collect();
            let added = async {
                let mut c = redis::Client::open(self.redis.url())
                    .ok()?
                    .get_multiplexed_async_connection()
                    .await
                    .ok()?;
                c.xadd::<_, _, _, _, String>("kiln:events", "*", &[("targets", text.as_str())])
                    .await
                    .ok()
            };
            if tokio::time::timeout(Duration::from_secs(2), added)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return;
            }
        }
        let mut args = vec!["enqueue"];
        args.extend(targets.iter().map(String::as_str));
        let run = self.site.kiln(&args).await;
        assert_eq!(run.code, 0, "enqueue failed: {}", run.all());
    }

    fn set_page(&mut self, path: &str, body: Option<String>) {
        match &body {
            Some(b) => self.origin.set(path, Page::html(b.clone())),
            None => self.origin.remove(path),
        }
        self.truth.insert(path.to_string(), body);
        self.changed.insert(path.to_string());
    }

    /// One step of the schedule.
    async fn step(&mut self, next: &mut impl FnMut(u64) -> u64) {
        let page = |n: u64| format!("/p/{n}/");
        match next(20) {
            0..=5 => {
                let n = 1 + next(3) as usize;
                let mut paths = Vec::new();
                for _ in 0..n {
                    let i = next(PAGES as u64);
                    self.version += 1;
                    let body = page_body(i as usize, self.version);
                    self.set_page(&page(i), Some(body));
                    paths.push(page(i));
                }
                let via = next(3);
                self.log.push(format!("edit {paths:?} via {via}"));
                self.notify(&paths, via).await;
            }
            6 => {
                let i = next(PAGES as u64);
                self.set_page(&page(i), None);
                let via = next(3);
                self.log.push(format!("delete {} via {via}", page(i)));
                self.notify(&[page(i)], via).await;
            }
            7 => {
                let i = next(PAGES as u64);
                let paths = vec![page(i)];
                self.version += 1;
                self.set_page(&page(i), Some(page_body(i as usize, self.version)));
                self.log.push(format!("burst of 50 for {}", page(i)));
                for _ in 0..50 {
                    self.notify(&paths, 0).await;
                }
            }
            8 => {
                self.log.push("kill -9 the daemon".into());
                self.stop_daemon(libc::SIGKILL).await;
            }
            9 => {
                self.log.push("SIGTERM the daemon".into());
                self.stop_daemon(libc::SIGTERM).await;
            }
            10 | 11 => {
                self.log.push("start the daemon".into());
                self.start_daemon().await;
            }
            12 => {
                let aof = next(2) == 0;
                self.log.push(format!("restart redis (aof {aof})"));
                self.redis.stop(aof).await;
                let (port, dir) = (self.redis.port, self.redis.dir.clone());
                if !aof {
                    let _ = std::fs::remove_dir_all(dir.join("appendonlydir"));
                }
                self.redis = RedisProc::start(port, &dir, aof).await;
            }
            13 => {
                let i = next(PAGES as u64);
                let path = page(i);
                self.log.push(format!("origin answers 503 for {path}"));
                self.origin.set(&path, Page::html("down").status(503));
                self.failing.insert(path);
            }
            14 => {
                self.log.push("origin recovers".into());
                self.heal_origin();
            }
            15 => {
                self.log.push("S3 down".into());
                self.s3.stop().await;
            }
            16 => {
                self.log.push("S3 up".into());
                if self.s3.child.is_none() {
                    let (port, dir) = (self.s3.port, self.s3.dir.clone());
                    self.s3 = S3Proc::start(port, &dir).await;
                }
            }
            17 => {
                self.good_credentials = !self.good_credentials;
                self.log.push(format!(
                    "daemon restarted with {} S3 credentials",
                    if self.good_credentials {
                        "good"
                    } else {
                        "wrong"
                    }
                ));
                self.stop_daemon(libc::SIGTERM).await;
                self.start_daemon().await;
            }
            18 => {
                self.log.push("malformed stream entries".into());
                if let Ok(c) = redis::Client::open(self.redis.url()) {
                    if let Ok(Ok(mut c)) = tokio::time::timeout(
                        Duration::from_secs(2),
                        c.get_multiplexed_async_connection(),
                    )
                    .await
                    {
                        let _: Result<String, _> =
                            c.xadd("kiln:events", "*", &[("nothing", "here")]).await;
                        let _: Result<String, _> = c
                            .xadd("kiln:events", "*", &[("targets", &b"\xff\xfe/x\n"[..])])
                            .await;
                    }
                }
            }
            _ => {
                let ms = next(300);
                self.log.push(format!("let it run {ms} ms"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    }

    fn heal_origin(&mut self) {
        for path in std::mem::take(&mut self.failing) {
            match self.truth.get(&path).cloned().flatten() {
                Some(b) => self.origin.set(&path, Page::html(b)),
                None => self.origin.remove(&path),
            }
        }
    }

    /// Everything back up, then wait for the promise to hold; Err says
    /// what does not.
    async fn settle_and_check(&mut self) -> Result<(), String> {
        if let Some(why) = &self.stuck {
            return Err(why.clone());
        }
        self.heal_origin();
        if self.s3.child.is_none() {
            let (port, dir) = (self.s3.port, self.s3.dir.clone());
            self.s3 = S3Proc::start(port, &dir).await;
        }
        if !self.good_credentials {
            self.good_credentials = true;
            self.stop_daemon(libc::SIGTERM).await;
        }
        self.start_daemon().await;
        // A page whose event failed while the origin answered 503 is
        // retried by the daemon; a page that was never named while failing
        // needs nothing. Wait for the world to converge.
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            match self.check().await {
                Ok(()) => return self.check_idle().await,
                Err(why) => last = why,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last)
    }

    async fn check(&self) -> Result<(), String> {
        // Files: what a visitor gets from nginx.
        for (path, body) in &self.truth {
            let file = self.site.file(&file_of(path));
            let got = std::fs::read(&file).ok();
            let want = body.as_ref().map(|b| b.as_bytes().to_vec());
            if got != want {
                return Err(format!(
                    "{path}: the file holds {:?}, the origin has {:?}",
                    got.map(|g| String::from_utf8_lossy(&g).into_owned()),
                    body
                ));
            }
            let gz = std::fs::read(format!("{}.gz", file.display())).ok();
            if gz.as_deref().and_then(gunzip) != want {
                return Err(format!("{path}: the .gz sibling disagrees with the page"));
            }
        }
        // The journal, the spool and the outbox are empty.
        let d = self.daemon.as_ref().ok_or("no daemon")?;
        let status: serde_json::Value = reqwest::get(format!("{}/v1/status", d.http))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        for key in [
            "pending_urls",
            "in_flight_urls",
            "queue_depth",
            "retrying_urls",
        ] {
            if status[key] != 0 {
                return Err(format!("{key} is {} (status {status})", status[key]));
            }
        }
        if status["outputs"]["outbox"].as_u64().unwrap_or(0) != 0 {
            return Err(format!("the outbox holds {}", status["outputs"]["outbox"]));
        }
        // The bucket equals the output's pages, typed (compressed siblings
        // are for nginx's gzip_static; a CDN compresses by itself).
        let objects = self.s3.objects();
        let files: BTreeMap<String, Vec<u8>> = self
            .site
            .files()
            .into_iter()
            .filter(|f| !f.ends_with(".gz") && !f.ends_with(".br"))
            .map(|f| {
                let b = std::fs::read(self.site.file(&f)).unwrap_or_default();
                (f, b)
            })
            .collect();
        if objects != files {
            let a: BTreeSet<_> = objects.keys().collect();
            let b: BTreeSet<_> = files.keys().collect();
            let differ: Vec<_> = files
                .iter()
                .filter(|(k, v)| objects.get(*k).is_some_and(|o| o != *v))
                .map(|(k, _)| k)
                .collect();
            return Err(format!(
                "the bucket differs from the output: only in the bucket {:?}, only in the output {:?}, different {:?}",
                a.difference(&b).collect::<Vec<_>>(),
                b.difference(&a).collect::<Vec<_>>(),
                differ
            ));
        }
        for key in files.keys().filter(|k| k.ends_with(".html")) {
            let ct = self.s3.content_type(key).await;
            if ct != "text/html; charset=utf-8" {
                return Err(format!("{key} is typed `{ct}` in the bucket"));
            }
        }
        Ok(())
    }

    /// The CDN was told after the bucket had each page's last version.
    fn check_purges(&self, purges: &Purges) -> Result<(), String> {
        for path in &self.changed {
            let want = self.truth[path].as_ref().map(|b| b.as_bytes().to_vec());
            let seen = purges.seen.get(path);
            let last = seen.and_then(|s| s.last());
            if last != Some(&want) {
                return Err(format!(
                    "{path}: the last purge saw the bucket holding {:?}, not its last version {:?} ({} purges)",
                    last.map(|l| l.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())),
                    self.truth[path],
                    seen.map_or(0, Vec::len)
                ));
            }
        }
        Ok(())
    }

    async fn check_idle(&self) -> Result<(), String> {
        let d = self.daemon.as_ref().ok_or("no daemon")?;
        let cpu = |pid: u32| -> f64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let f: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            (t(11) + t(12)) as f64 / 100.0
        };
        let before = cpu(d.pid());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let used = cpu(d.pid()) - before;
        if used > 0.2 {
            return Err(format!("the idle daemon used {used:.2} s of CPU in 1 s"));
        }
        Ok(())
    }
}

async fn run_seed(seed: u64, steps: usize) -> Result<(), String> {
    let mut next = seeded(seed);
    let pages: Vec<(String, Page)> = std::iter::once((
        "/".to_string(),
        Page::html(
            (0..PAGES)
                .map(|i| format!("<a href=\"/p/{i}/\">{i}</a>"))
                .collect::<String>(),
        ),
    ))
    .chain((0..PAGES).map(|i| (format!("/p/{i}/"), Page::html(page_body(i, 0)))))
    .collect();
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let state = tempfile::tempdir().unwrap();
    let redis = RedisProc::start(free_port(), &state.path().join("redis"), true).await;
    let s3 = S3Proc::start(free_port(), &state.path().join("s3")).await;
    let (cdn, purges) = start_cdn(s3.dir.clone()).await;
    let site = TestSite::for_origin(
        &origin,
        &format!(
            "[output]\nprecompress = [\"gzip\"]\nprecompress-min-bytes = 0\n\
             [safety]\nmax-delete-percent = 100\nmax-delete-pages = 1000\n\
             [daemon]\ndebounce = \"20ms\"\nrescan = \"200ms\"\nmax-retry-delay = \"400ms\"\n\
             [intake]\nredis = \"{}\"\ngroup = \"host\"\nclaim-idle = \"1s\"\n\
             [[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{}\"\n\
             [[purge]]\nkind = \"webhook\"\nurl = \"{cdn}/purge\"\n",
            redis.url(),
            s3.port
        ),
    );
    let mut build = site.command(&["build"]);
    build.envs([
        ("AWS_ACCESS_KEY_ID", "test-key"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret"),
    ]);
    let out = build.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth = pages
        .iter()
        .map(|(k, p)| (k.clone(), Some(String::from_utf8(p.body.clone()).unwrap())))
        .collect();
    let mut world = World {
        seed,
        log: Vec::new(),
        origin,
        site,
        redis,
        s3,
        daemon: None,
        good_credentials: true,
        truth,
        failing: BTreeSet::new(),
        changed: BTreeSet::new(),
        version: 0,
        stuck: None,
    };
    world.start_daemon().await;
    // The host is deployed: its consumer group exists before the schedule
    // starts. (Entries a Redis without persistence loses before a host ever
    // made its group are beyond any host's knowledge; the host's first
    // `kiln build` covers them.)
    let redis_url = world.redis.url();
    let grouped = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(c) = redis::Client::open(redis_url.as_str()) {
                if let Ok(mut c) = c.get_multiplexed_async_connection().await {
                    let groups: redis::RedisResult<
                        Vec<std::collections::HashMap<String, redis::Value>>,
                    > = redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg("kiln:events")
                        .query_async(&mut c)
                        .await;
                    if groups.is_ok_and(|g| !g.is_empty()) {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        grouped.is_ok(),
        "seed {seed}: the daemon never made its consumer group"
    );
    for _ in 0..steps {
        world.step(&mut next).await;
    }
    let mut result = world.settle_and_check().await;
    if result.is_ok() {
        result = world.check_purges(&purges.lock().unwrap());
    }
    if result.is_ok() {
        // The next event still lands.
        world.version += 1;
        let body = page_body(0, world.version);
        world.set_page("/p/0/", Some(body.clone()));
        world.notify(&["/p/0/".to_string()], 0).await;
        result = tokio::time::timeout(Duration::from_secs(15), async {
            while world.site.read("p/0/index.html").as_deref() != Some(body.as_str()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .map_err(|_| "an event after quiescence was not applied".to_string());
    }
    world.stop_daemon(libc::SIGTERM).await;
    if let (Ok(()), Some(why)) = (&result, &world.stuck) {
        result = Err(why.clone());
    }
    world.redis.stop(false).await;
    world.s3.stop().await;
    result.map_err(|why| {
        format!(
            "seed {} failed: {why}\nschedule:\n  {}",
            world.seed,
            world.log.join("\n  ")
        )
    })
}

fn seeds() -> Vec<u64> {
    let fixed = include_str!("referee_seeds.txt");
    let mut seeds: Vec<u64> = fixed
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().expect("a seed is a number"))
        .collect();
    let extra: u64 = std::env::var("KILN_REFEREE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let from: u64 = std::env::var("KILN_REFEREE_FROM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    seeds.extend(from..from + extra);
    seeds
}

#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_referee_finds_the_promise_kept_after_random_faults() {
    require!("redis-server");
    require!("s3s-fs");
    let steps: usize = std::env::var("KILN_REFEREE_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut failures = Vec::new();
    for seed in seeds() {
        if let Err(report) = run_seed(seed, steps).await {
            eprintln!("{report}");
            failures.push(report);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
