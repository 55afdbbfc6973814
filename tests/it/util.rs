//! Test helpers: a real HTTP origin on 127.0.0.1:0 and a `TestSite` that runs
//! the real `kiln` binary against it in a temp directory.
#![allow(dead_code)] // helpers shared by test modules; not every module uses each

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Uri};
use tokio::sync::oneshot;

/// A canned response.
#[derive(Clone, Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Page {
    pub fn html(body: impl Into<String>) -> Page {
        Page {
            status: 200,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: body.into().into_bytes(),
            delay: Duration::ZERO,
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Page {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn status(mut self, s: u16) -> Page {
        self.status = s;
        self
    }
    pub fn delay(mut self, d: Duration) -> Page {
        self.delay = d;
        self
    }
    pub fn typed(mut self, ct: &str) -> Page {
        self.headers.retain(|(k, _)| k != "content-type");
        self.headers.push(("content-type".into(), ct.into()));
        self
    }
}

#[derive(Default)]
pub struct OriginState {
    pub pages: HashMap<String, Page>,
    pub hits: HashMap<String, usize>,
    /// 304 answers by path.
    pub not_modified: HashMap<String, usize>,
    /// The Authorization header of the last request that carried one.
    pub authorization: Option<String>,
    /// Requests by User-Agent.
    pub agents: HashMap<String, usize>,
    /// The app's public host: a request with another Host is redirected
    /// there (https), as WordPress redirects to its `home`.
    pub canonical_host: Option<String>,
}

/// A real HTTP server on loopback whose pages the test controls.
pub struct Origin {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<OriginState>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

async fn serve(
    State(state): State<Arc<Mutex<OriginState>>>,
    uri: Uri,
    request_headers: HeaderMap,
) -> Response<Body> {
    let key = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    if let Some(mib) = key
        .strip_prefix("/big/")
        .and_then(|n| n.trim_end_matches('/').parse::<usize>().ok())
    {
        // A page of `mib` MiB, streamed: the test process never holds it.
        *state.lock().unwrap().hits.entry(key.clone()).or_default() += 1;
        let chunk = bytes::Bytes::from(vec![b'x'; 1 << 20]);
        let stream = futures_util::stream::iter(
            (0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        let mut resp = Response::new(Body::from_stream(stream));
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/html"));
        return resp;
    }
    let canonical = state.lock().unwrap().canonical_host.clone();
    if let Some(host) = canonical {
        let asked = request_headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if asked != host {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
            resp.headers_mut().insert(
                "location",
                HeaderValue::from_str(&format!("https://{host}{key}")).unwrap(),
            );
            return resp;
        }
    }
    let page = {
        let mut s = state.lock().unwrap();
        *s.hits.entry(key.clone()).or_default() += 1;
        if let Some(a) = request_headers.get("authorization") {
            s.authorization = Some(a.to_str().unwrap_or_default().to_string());
        }
        let agent = request_headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        *s.agents.entry(agent).or_default() += 1;
        s.pages.get(&key).cloned().or_else(|| dynamic(&key))
    };
    let page = page.unwrap_or_else(|| Page::html("<h1>not found</h1>").status(404));
    if !page.delay.is_zero() {
        tokio::time::sleep(page.delay).await;
    }
    // Conditional requests, as a real app server answers them.
    let etag = page
        .headers
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone());
    let asked = request_headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if let (Some(etag), Some(asked)) = (&etag, asked) {
        if asked == etag {
            *state
                .lock()
                .unwrap()
                .not_modified
                .entry(key.clone())
                .or_default() += 1;
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
    }
    let mut resp = Response::new(Body::from(page.body));
    *resp.status_mut() = StatusCode::from_u16(page.status).unwrap();
    let headers: &mut HeaderMap = resp.headers_mut();
    for (k, v) in page.headers {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

/// Answers of the `/visitor/…` pages so far (each one is different).
static VISITORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Pages generated on the fly: an infinite calendar (a crawl trap), and
/// `/visitor/…`, a per-visitor page (a new session cookie and a body naming
/// it on every request, as an app's account page would be), slow enough
/// that concurrent visitors overlap.
fn dynamic(path: &str) -> Option<Page> {
    if path.starts_with("/visitor/") {
        let n = VISITORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Some(
            Page::html(format!("<p>hello visitor {n}</p>"))
                .with_header("set-cookie", &format!("visitor={n}; Path=/"))
                .delay(Duration::from_millis(200)),
        );
    }
    let rest = path.strip_prefix("/calendar/")?;
    let n: u64 = rest.trim_end_matches('/').parse().ok()?;
    Some(Page::html(format!(
        "<h1>day {n}</h1><a href=\"/calendar/{}/\">next</a><a href=\"/calendar/{}/\">next2</a>",
        n + 1,
        n + 2
    )))
}

impl Origin {
    pub async fn start(pages: Vec<(&str, Page)>) -> Origin {
        let state = Arc::new(Mutex::new(OriginState {
            pages: pages.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            hits: HashMap::new(),
            not_modified: HashMap::new(),
            authorization: None,
            agents: HashMap::new(),
            canonical_host: None,
        }));
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Origin {
            addr,
            state,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server and waits until its port is closed (an origin that
    /// went away).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the origin stops within 10 s")
                .unwrap();
        }
    }

    /// The Authorization header the origin last received.
    pub fn last_authorization(&self) -> Option<String> {
        self.state.lock().unwrap().authorization.clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, path: &str, page: Page) {
        self.state.lock().unwrap().pages.insert(path.into(), page);
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().pages.remove(path);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_not_modified(&self) -> usize {
        self.state.lock().unwrap().not_modified.values().sum()
    }

    pub fn total_hits(&self) -> usize {
        self.state.lock().unwrap().hits.values().sum()
    }

    /// Requests so far by User-Agent.
    pub fn hits_by_agent(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().agents.clone()
    }

    pub fn reset_hits(&self) {
        self.state.lock().unwrap().hits.clear();
        self.state.lock().unwrap().agents.clear();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Output of one kiln run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A temp directory with a site.toml, an output dir, and the kiln binary.
pub struct TestSite {
    pub dir: tempfile::TempDir,
}

impl TestSite {
    pub fn new(site_toml: &str) -> TestSite {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("site.toml"), site_toml).unwrap();
        TestSite { dir }
    }

    /// A site fetching from `origin` with fast retries.
    pub fn for_origin(origin: &Origin, extra: &str) -> TestSite {
        TestSite::new(&format!(
            "[origin]\nurl = \"{}\"\nretries = 1\nbackoff = \"10ms\"\ntimeout = \"2s\"\n{extra}",
            origin.url()
        ))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("public")
    }

    /// kiln's state directory for this site: beside the output.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".kiln/public")
    }

    /// The spool directory (`queue/` in the state directory).
    pub fn queue(&self) -> PathBuf {
        self.state_dir().join("queue")
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.out().join(rel)
    }

    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.file(rel)).ok()
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.current_dir(self.path())
            .args(args)
            .env_remove("KILN_TOKEN")
            .env("KILN_LOG", "kiln=info,warn")
            .kill_on_drop(true);
        c
    }

    pub async fn kiln(&self, args: &[&str]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .expect("kiln did not finish within 120 s")
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every file under the output root, relative, sorted.
    /// Every file of the output but kiln's own lock file (`.kiln.lock`).
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = walkdir::WalkDir::new(self.out())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && e.file_name() != ".kiln.lock")
            .map(|e| {
                e.path()
                    .strip_prefix(self.out())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }

    /// The inode of a baked file: kiln writes a changed file as a new one
    /// (temp file + rename), so the same inode means "not rewritten".
    pub fn inode(&self, rel: &str) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(self.file(rel)).unwrap())
    }

    pub fn mtime(&self, rel: &str) -> std::time::SystemTime {
        std::fs::metadata(self.file(rel))
            .unwrap()
            .modified()
            .unwrap()
    }
}

/// A seeded xorshift: random but repeatable choices for soak and crash
/// loops (a failure can be replayed).
pub fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed.max(1);
    move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    }
}

/// Fast daemon settings for tests.
pub const DAEMON_TOML: &str = "[daemon]\ndebounce = \"20ms\"\nrescan = \"300ms\"\n";

/// An origin serving a [`linked_site`] of `n` pages and a site built from
/// it (config `extra` plus [`DAEMON_TOML`]), with the origin's hits reset.
pub async fn built_site(n: usize, extra: &str) -> (Origin, TestSite) {
    let pages = linked_site(n);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, &format!("{extra}{DAEMON_TOML}"));
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    origin.reset_hits();
    (origin, site)
}

/// `/` linking to `/p/0/` … `/p/{n-1}/`, and those pages as `page` renders them.
pub fn home_and_pages(n: usize, page: impl Fn(usize) -> Page) -> Vec<(String, Page)> {
    let home = (0..n)
        .map(|i| format!("<a href=\"/p/{i}/\">{i}</a>"))
        .collect::<String>();
    let mut pages = vec![("/".to_string(), Page::html(home))];
    pages.extend((0..n).map(|i| (format!("/p/{i}/"), page(i))));
    pages
}

/// A linked site of `n` pages: `/` links to every page, each page links to its neighbours.
pub fn linked_site(n: usize) -> Vec<(String, Page)> {
    let mut pages = Vec::new();
    let mut index = String::from("<html><body><h1>Home</h1><ul>");
    for i in 0..n {
        index.push_str(&format!("<li><a href=\"/p/{i}/\">page {i}</a></li>"));
    }
    index.push_str("</ul></body></html>");
    pages.push((
        "/".to_string(),
        Page::html(index).with_header("surrogate-key", "home list"),
    ));
    for i in 0..n {
        let body = format!(
            "<html><body><h1>Page {i}</h1><p>{}</p><a href=\"/p/{}/\">next</a> <a href=\"../{}/#c\">prev</a> <a href=\"/\">home</a></body></html>",
            "lorem ipsum ".repeat(40),
            (i + 1) % n,
            (i + n - 1) % n
        );
        pages.push((
            format!("/p/{i}/"),
            Page::html(body).with_header("surrogate-key", &format!("post:{i} list")),
        ));
    }
    pages
}

pub fn has_cmd(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Skips (loudly) when a tool is missing, except under CI=true where it fails.
#[macro_export]
macro_rules! require {
    ($cmd:expr) => {
        if !$crate::util::has_cmd($cmd) {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("`{}` is required under CI=true but is not on PATH", $cmd);
            }
            eprintln!(
                "\n*** SKIPPED: `{}` not found on PATH; install it to run this test ***\n",
                $cmd
            );
            return;
        }
    };
}

/// A running `kiln daemon` child process.
pub struct Daemon {
    pub child: tokio::process::Child,
    pub http: String,
    /// Log lines, when started with [`TestSite::daemon_logged`].
    pub log: Option<Arc<Mutex<Vec<String>>>>,
}

impl TestSite {
    /// Starts `kiln daemon --listen 127.0.0.1:0` and waits for its ready line.
    pub async fn daemon(&self, env: &[(&str, &str)]) -> Daemon {
        self.daemon_with(&[], env).await
    }

    /// Like [`TestSite::daemon`], with its log lines collected in [`Daemon::log`].
    pub async fn daemon_logged(&self) -> Daemon {
        let mut d = self.daemon_with_stderr(&[], &[], true).await;
        d.log = Some(d.log.take().unwrap_or_default());
        d
    }

    /// Like [`TestSite::daemon_logged`], with environment variables (e.g. `KILN_LOG`).
    pub async fn daemon_logged_with(&self, env: &[(&str, &str)]) -> Daemon {
        let mut d = self.daemon_with_stderr(&[], env, true).await;
        d.log = Some(d.log.take().unwrap_or_default());
        d
    }

    /// Like [`TestSite::daemon`], with global flags (e.g. `--origin URL`) first.
    pub async fn daemon_with(&self, global: &[&str], env: &[(&str, &str)]) -> Daemon {
        self.daemon_with_stderr(global, env, false).await
    }

    async fn daemon_with_stderr(
        &self,
        global: &[&str],
        env: &[(&str, &str)],
        capture: bool,
    ) -> Daemon {
        let mut args = global.to_vec();
        args.extend(["daemon", "--listen", "127.0.0.1:0"]);
        let mut cmd = self.command(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::piped());
        if capture {
            cmd.stderr(std::process::Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        let log = capture.then(|| {
            let lines = Arc::new(Mutex::new(Vec::<String>::new()));
            let stderr = child.stderr.take().unwrap();
            let sink = lines.clone();
            tokio::spawn(async move {
                let mut r = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
                while let Ok(Some(l)) = r.next_line().await {
                    sink.lock().unwrap().push(l);
                }
            });
            lines
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("daemon did not start within 30 s")
            .unwrap()
            .expect("daemon exited before it was ready");
        let http = line
            .strip_prefix("kiln daemon listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Daemon { child, http, log }
    }

    pub fn queue_files(&self, sub: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.queue().join(sub))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("daemon still running")
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Waits for a log line containing every one of `parts`.
    pub async fn wait_for_log(&self, parts: &[&str]) -> String {
        let log = self.log.clone().expect("started with daemon_logged");
        let mut found = String::new();
        wait_until(
            Duration::from_secs(15),
            &format!("a log line with {parts:?}"),
            || {
                let hit = log
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|l| parts.iter().all(|p| l.contains(p)))
                    .cloned();
                if let Some(h) = &hit {
                    found = h.clone();
                }
                async move { hit.is_some() }
            },
        )
        .await;
        found
    }

    pub fn signal(&self, sig: i32) {
        signal(self.child.id().expect("daemon still running"), sig);
    }

    /// Waits for exit and returns the exit code.
    pub async fn wait(mut self, limit: Duration) -> Option<i32> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("daemon did not exit in time")
            .unwrap()
            .code()
    }

    pub async fn post(
        &self,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.http))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let v =
            serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(serde_json::Value::Null);
        (status, v)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.http));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Waits until the scheduler has nothing pending or in flight.
    pub async fn settle(&self, token: Option<&str>) {
        wait_until(Duration::from_secs(30), "daemon to settle", || async {
            let (_, body) = self.get("/v1/status", token).await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["pending_urls"] == 0 && v["in_flight_urls"] == 0 && v["queue_depth"] == 0
        })
        .await;
    }

    /// Waits for a job to be done and returns its JSON.
    pub async fn job_done(&self, id: u64, token: Option<&str>) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..1500 {
            let (_, body) = self.get(&format!("/v1/jobs/{id}"), token).await;
            last = serde_json::from_str(&body).unwrap();
            if last["state"] == "done" {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {id} not done: {last}");
    }
}

/// Sends `sig` to a child process (safely: rustix checks the pid).
pub fn signal(pid: u32, sig: i32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child's pid");
    let sig = rustix::process::Signal::from_named_raw(sig).expect("a known signal");
    // The process may have exited already: that is fine for a stop.
    let _ = rustix::process::kill_process(pid, sig);
}

/// Polls `cond` every 20 ms until true, failing after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll_until(limit, what, || {
        let fut = cond();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Polls `probe` every 20 ms until it returns a value, failing after
/// `limit` (the one poll-until-deadline loop of the tests).
pub async fn poll_until<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A temp copy of the bundled default site (site.toml, templates/, content/).
pub fn default_site_copy() -> TestSite {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in walkdir::WalkDir::new(repo) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(repo).unwrap();
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        let wanted = matches!(
            top.as_deref(),
            Some("templates") | Some("content") | Some("site.toml")
        );
        if !wanted {
            continue;
        }
        let dest = dir.path().join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
    TestSite { dir }
}

/// Every served file with its bytes (kiln's in-progress temp files excluded).
pub fn snapshot(site: &TestSite) -> std::collections::BTreeMap<String, Vec<u8>> {
    site.files()
        .into_iter()
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with(".kiln-tmp"))
        .filter_map(|f| {
            let b = std::fs::read(site.file(&f)).ok()?;
            Some((f, b))
        })
        .collect()
}

/// Files whose bytes differ (or that appeared / disappeared) between two snapshots.
pub fn changed(
    a: &std::collections::BTreeMap<String, Vec<u8>>,
    b: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// A port for a server that cannot bind port 0 and report it (nginx,
/// redis-server, s3s-fs). Taken from 20000–32767, below Linux's ephemeral
/// range (`ip_local_port_range`, 32768–60999), so no outgoing connection of
/// this or any process is handed it meanwhile; each call in this process
/// takes the next one (from a per-process random start), checked bindable.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_768;
    let _ = NEXT.compare_exchange(
        0,
        LOW + (std::process::id() % u32::from(SPAN)) as u16,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + n.wrapping_sub(LOW) % SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on the port.
pub async fn wait_for_port(port: u16, what: &str) {
    wait_until(Duration::from_secs(30), what, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
}

/// A real nginx serving a kiln-generated server block, in the foreground,
/// stopped when dropped.
pub struct Nginx {
    pub child: tokio::process::Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    pub fn write_conf(dir: &Path, snippet: &str) -> PathBuf {
        std::fs::write(dir.join("kiln.conf"), snippet).unwrap();
        for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
        }
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nworker_rlimit_nofile 8192;\nevents {{ worker_connections 4096; }}\nhttp {{\n  types {{ text/html html; text/css css; application/xml xml; application/atom+xml atom; application/json json; text/plain txt; }}\n  default_type application/octet-stream;\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/kiln.conf;\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        path
    }

    /// `nginx -t` on the snippet inside an `http {}` block.
    pub fn test_config(snippet: &str) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let conf = Self::write_conf(dir.path(), snippet);
        let out = std::process::Command::new("nginx")
            .args(["-t", "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn start(snippet: &str, port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let conf = Self::write_conf(dir.path(), snippet);
        let child = tokio::process::Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let n = Nginx { child, port, dir };
        wait_for_port(port, "nginx to listen").await;
        n
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `kiln [global] nginx --listen 127.0.0.1:PORT [flags]` for the site,
    /// checked by `nginx -t`, and a real nginx serving it; with the block.
    pub async fn for_site(site: &TestSite, global: &[&str], flags: &[&str]) -> (Nginx, String) {
        Nginx::for_site_on(free_port(), site, global, flags).await
    }

    /// [`Nginx::for_site`] on a port the caller chose (the site's public
    /// host names it).
    pub async fn for_site_on(
        port: u16,
        site: &TestSite,
        global: &[&str],
        flags: &[&str],
    ) -> (Nginx, String) {
        let listen = format!("127.0.0.1:{port}");
        let mut args = global.to_vec();
        args.extend(["nginx", "--listen", &listen]);
        args.extend(flags);
        let snippet = site.kiln(&args).await;
        assert_eq!(snippet.code, 0, "{}", snippet.all());
        let (ok, msg) = Nginx::test_config(&snippet.stdout);
        assert!(
            ok,
            "nginx -t rejected the generated config:\n{msg}\n{}",
            snippet.stdout
        );
        (Nginx::start(&snippet.stdout, port).await, snippet.stdout)
    }

    /// Fast shutdown via the master (SIGKILL would orphan the workers).
    pub fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            signal(pid, libc::SIGTERM);
            for _ in 0..250 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lets nginx workers (running as `nobody` under root) read the site.
pub fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A plain HTTP client for tests: no redirects followed, no cookie store.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every file under `dir` with its bytes, sorted (to prove nothing there changed).
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}
