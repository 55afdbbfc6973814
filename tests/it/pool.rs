//! Pool mode end to end ("bake once, serve many"): three bake workers in one
//! consumer group sharing an index in Redis, publishing to a real S3 server
//! and purging a CDN; two mirror hosts copying the bucket into web roots
//! that real nginx serves. 1,000 events (URLs and tags) while a worker is
//! killed with SIGKILL and restarted and a second mirror starts from empty.
//! Checked as a visitor, the bucket and the CDN see it: each change fetched
//! once fleet-wide, the bucket equal to the origin, both mirrors equal to
//! the bucket, each published change purged once, by its publisher, after
//! its upload, and the mirrors never asking the origin.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;

use crate::publish::S3Server;
use crate::redis::Redis;
use crate::require;
use crate::util::{Nginx, Origin, Page, TestSite, client, free_port, open_up, wait_until};

/// Pages of the site (besides `/`).
const N: usize = 40;
/// Events sent.
const EVENTS: usize = 1000;
const CREDS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "test-key"),
    ("AWS_SECRET_ACCESS_KEY", "test-secret"),
];

/// Page `i` at version `v`: its links and tags as the app renders them.
fn page(i: usize, v: usize) -> Page {
    page_tagged(i, v, &format!("post:{i} list"))
}

fn page_tagged(i: usize, v: usize, tags: &str) -> Page {
    Page::html(format!(
        "<html><body><h1>Page {i}</h1><p>version {v}</p><a href=\"/p/{}/\">next</a> <a href=\"/\">home</a></body></html>",
        (i + 1) % N
    ))
    .with_header("surrogate-key", tags)
}

fn home() -> Page {
    let mut html = String::from("<html><body><ul>");
    for i in 0..N {
        html.push_str(&format!("<li><a href=\"/p/{i}/\">{i}</a></li>"));
    }
    html.push_str("</ul></body></html>");
    Page::html(html).with_header("surrogate-key", "home")
}

/// The version number in a page body.
fn version_of(body: &str) -> Option<usize> {
    body.split("version ")
        .nth(1)?
        .split('<')
        .next()?
        .parse()
        .ok()
}

/// A running `kiln mirror`.
struct MirrorProc {
    /// Killed when dropped.
    _child: tokio::process::Child,
}

async fn start_mirror(site: &TestSite) -> MirrorProc {
    let mut cmd = site.command(&["mirror"]);
    let log = std::fs::File::create(site.path().join("mirror.log")).unwrap();
    cmd.envs(CREDS)
        .stdout(std::process::Stdio::piped())
        .stderr(log);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the mirror did not bootstrap within 60 s")
        .unwrap()
        .expect("the mirror exited before it was ready");
    assert!(line.starts_with("kiln mirror following"), "{line}");
    MirrorProc { _child: child }
}

/// nginx serving a mirror's web root as static files.
async fn serve_root(site: &TestSite) -> Nginx {
    let port = free_port();
    let snippet = format!(
        "server {{\n  listen 127.0.0.1:{port};\n  root {};\n  location / {{ try_files $uri $uri/index.html =404; }}\n}}\n",
        site.out().display()
    );
    Nginx::start(&snippet, port).await
}

/// A bake worker of pool `www` on `origin`, publishing to `s3`: its
/// user agent, extra `[intake]` lines and sections after `[[publish]]`.
fn pool_worker(
    origin: &Origin,
    redis: &Redis,
    s3: &S3Server,
    agent: &str,
    intake: &str,
    after: &str,
) -> TestSite {
    TestSite::for_origin(
        origin,
        &format!(
            "user-agent = \"{agent}\"\n[intake]\nredis = \"{}\"\n{intake}[pool]\nname = \"www\"\n[[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{}\"\n{after}",
            redis.url(),
            s3.port
        ),
    )
}

/// A web host mirroring pool `www` from `s3`, in consumer group `group`.
fn mirror_site(redis: &Redis, s3: &S3Server, group: &str) -> TestSite {
    let site = TestSite::new(&format!(
        "[mirror]\nredis = \"{}\"\npool = \"www\"\ngroup = \"{group}\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{}\"\n",
        redis.url(),
        s3.port
    ));
    open_up(site.path());
    site
}

/// A full build of `worker`, into the bucket; it must succeed.
async fn build_into_bucket(worker: &TestSite) {
    let out = worker
        .command(&["build"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_two_mirrors_bake_each_change_once_and_everyone_ends_equal() {
    require!("redis-server");
    require!("s3s-fs");
    require!("nginx");
    let redis = Redis::start_on(free_port()).await;
    let s3 = S3Server::start().await;

    // The CDN: each purge request's URLs, with the version the bucket held
    // for each when the purge arrived.
    let purges = Arc::new(Mutex::new(Vec::<(String, Option<usize>)>::new()));
    let sink = purges.clone();
    let bucket_dir = s3.object("");
    let app = axum::Router::new().fallback(axum::routing::post(move |body: String| {
        let sink = sink.clone();
        let bucket_dir = bucket_dir.clone();
        async move {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            for u in v["urls"].as_array().unwrap() {
                let url = u.as_str().unwrap().to_string();
                let file = bucket_dir.join(format!("{}index.html", url.trim_start_matches('/')));
                let version = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|b| version_of(&b));
                sink.lock().unwrap().push((url, version));
            }
            "ok"
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cdn = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut pages: Vec<(String, Page)> = vec![("/".to_string(), home())];
    pages.extend((0..N).map(|i| (format!("/p/{i}/"), page(i, 0))));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;

    let workers: Vec<TestSite> = (0..3)
        .map(|i| {
            pool_worker(
                &origin,
                &redis,
                &s3,
                &format!("kiln-pool-w{i}"),
                &format!("consumer = \"w{i}\"\nclaim-idle = \"2s\"\n"),
                &format!("[[purge]]\nkind = \"webhook\"\nurl = \"{cdn}/purge\"\n"),
            )
        })
        .collect();
    // Two web hosts: one consumer group each (their host names, in production).
    // One worker bakes the site into the bucket (and the shared index).
    build_into_bucket(&workers[0]).await;
    origin.reset_hits();
    let purged_by_build = purges.lock().unwrap().len();
    assert!(
        purged_by_build > N,
        "the build's pages were purged once each: {purged_by_build}"
    );
    purges.lock().unwrap().clear();

    let mirror_a = mirror_site(&redis, &s3, "web-a");
    let ma = start_mirror(&mirror_a).await;
    let nginx_a = serve_root(&mirror_a).await;
    let http = client();
    let body = http
        .get(nginx_a.url("/p/3/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        version_of(&body),
        Some(0),
        "the new mirror serves the bucket: {body}"
    );

    let mut daemons = Vec::new();
    for w in &workers {
        daemons.push(Some(w.daemon(&CREDS).await));
    }

    // 1,000 changes, each an edit at the origin then its event: a URL, or
    // (every other one) the page's tag, which only the shared index can
    // resolve when another worker baked the page.
    let mut conn = redis.conn().await;
    let mut changes: HashMap<String, usize> = HashMap::new();
    let mut version = vec![0usize; N];
    let mut pending_at_kill: Vec<String> = Vec::new();
    let mut mirror_b = None;
    for k in 0..EVENTS {
        if k == 300 {
            daemons[1].as_ref().unwrap().signal(libc::SIGKILL);
            daemons[1]
                .take()
                .unwrap()
                .wait(Duration::from_secs(10))
                .await;
            // What the killed worker had taken and not finished: baked
            // again (by it after its restart, or by a worker that claims
            // it), so fetched once more.
            let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
                .arg("kiln:events")
                .arg("pool-www")
                .arg("-")
                .arg("+")
                .arg(10_000)
                .arg("w1")
                .query_async(&mut conn)
                .await
                .unwrap();
            for p in pending.ids {
                let range: redis::streams::StreamRangeReply =
                    conn.xrange("kiln:events", &p.id, &p.id).await.unwrap();
                for e in range.ids {
                    let t: String = e.get("targets").unwrap();
                    pending_at_kill.push(t.trim().to_string());
                }
            }
        }
        if k == 500 {
            // A new web host, started from nothing while events flow.
            let site = mirror_site(&redis, &s3, "web-b");
            let proc = start_mirror(&site).await;
            mirror_b = Some((site, proc));
        }
        if k == 600 {
            daemons[1] = Some(workers[1].daemon(&CREDS).await);
        }
        let i = (k * 7) % N;
        version[i] = k + 1;
        origin.set(&format!("/p/{i}/"), page(i, k + 1));
        *changes.entry(format!("/p/{i}/")).or_default() += 1;
        let target = if k % 2 == 0 {
            format!("/p/{i}/\n")
        } else {
            format!("tag:post:{i}\n")
        };
        let _: String = conn
            .xadd("kiln:events", "*", &[("targets", target)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (mirror_b, _mb) = mirror_b.unwrap();
    let nginx_b = serve_root(&mirror_b).await;

    // The bucket ends equal to the origin.
    let bucket_version = |i: usize| {
        std::fs::read_to_string(s3.object(&format!("p/{i}/index.html")))
            .ok()
            .and_then(|b| version_of(&b))
    };
    wait_until(
        Duration::from_secs(60),
        "the bucket to equal the origin",
        || async { (0..N).all(|i| bucket_version(i) == Some(version[i])) },
    )
    .await;
    for i in 0..N {
        let origin_body = origin.state.lock().unwrap().pages[&format!("/p/{i}/")]
            .body
            .clone();
        assert_eq!(
            std::fs::read(s3.object(&format!("p/{i}/index.html"))).unwrap(),
            origin_body,
            "/p/{i}/ in the bucket"
        );
    }
    // Both mirrors serve exactly the bucket, through nginx.
    for (name, nginx, site) in [
        ("mirror a", &nginx_a, &mirror_a),
        ("mirror b", &nginx_b, &mirror_b),
    ] {
        let differs = || async {
            let mut differs = Vec::new();
            for i in 0..N {
                let r = http
                    .get(nginx.url(&format!("/p/{i}/")))
                    .send()
                    .await
                    .unwrap();
                let served = (r.status() == 200).then_some(r.bytes().await.unwrap());
                let stored = std::fs::read(s3.object(&format!("p/{i}/index.html"))).unwrap();
                if served.as_deref() != Some(&stored[..]) {
                    differs.push(format!(
                        "/p/{i}/ serves {:?}, bucket {:?}",
                        served.map(|b| version_of(&String::from_utf8_lossy(&b))),
                        version_of(&String::from_utf8_lossy(&stored))
                    ));
                }
            }
            let home = http
                .get(nginx.url("/"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            if std::fs::read(s3.object("index.html")).unwrap() != home {
                differs.push("/".into());
            }
            differs
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let d = differs().await;
            if d.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{name} differs from the bucket at {d:?}; its log:\n{}",
                    std::fs::read_to_string(site.path().join("mirror.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Each change fetched once fleet-wide: per page, no more fetches than
    // changes, plus the entries the killed worker held (baked again).
    let hits_by_agent = origin.hits_by_agent();
    let mut redelivered: HashMap<String, usize> = HashMap::new();
    for t in &pending_at_kill {
        let url = match t.strip_prefix("tag:post:") {
            Some(i) => format!("/p/{i}/"),
            None => t.clone(),
        };
        *redelivered.entry(url).or_default() += 1;
    }
    for i in 0..N {
        let url = format!("/p/{i}/");
        let allowed = changes[&url] + redelivered.get(&url).copied().unwrap_or(0);
        assert!(
            origin.hits(&url) <= allowed,
            "{url} fetched {} times for {} changes ({} redelivered after the kill)",
            origin.hits(&url),
            changes[&url],
            redelivered.get(&url).copied().unwrap_or(0)
        );
    }
    let total: usize = hits_by_agent.values().sum();
    assert!(
        total <= EVENTS + pending_at_kill.len(),
        "{total} fetches for {EVENTS} changes and {} redelivered ({:?}), {} events: {hits_by_agent:?} {:?}",
        pending_at_kill.len(),
        pending_at_kill,
        conn.xlen::<_, usize>("kiln:events").await.unwrap(),
        origin.state.lock().unwrap().hits
    );
    // The work was shared, and nobody but the workers asked the origin
    // (the mirrors, the new one's bootstrap included, never do).
    for (agent, n) in &hits_by_agent {
        assert!(
            agent.starts_with("kiln-pool-w"),
            "{agent} asked the origin {n} times"
        );
    }
    let busy = (0..3)
        .filter(|w| {
            hits_by_agent
                .get(&format!("kiln-pool-w{w}"))
                .copied()
                .unwrap_or(0)
                > 0
        })
        .count();
    assert!(
        busy >= 2,
        "one consumer group spreads the work: {hits_by_agent:?}"
    );

    // Purged once per published change, by whoever published it, after
    // the bucket had it: per page, the purges are no more than the changes
    // announced, each saw a bucket at least as new as the previous one, and
    // the last saw the final version.
    let announced: redis::streams::StreamRangeReply =
        conn.xrange_all("kiln:www:published").await.unwrap();
    let mut published: HashMap<String, usize> = HashMap::new();
    for e in &announced.ids {
        let url: String = e.get("url").unwrap();
        *published.entry(url).or_default() += 1;
    }
    let purges = purges.lock().unwrap().clone();
    let mut by_url: BTreeMap<String, Vec<Option<usize>>> = BTreeMap::new();
    for (url, v) in purges {
        by_url.entry(url).or_default().push(v);
    }
    for (i, last) in version.iter().enumerate() {
        let url = format!("/p/{i}/");
        let seen = by_url.get(&url).cloned().unwrap_or_default();
        assert!(!seen.is_empty(), "{url} changed and was never purged");
        assert!(
            seen.len() <= published[&url],
            "{url} purged {} times for {} published changes",
            seen.len(),
            published[&url]
        );
        assert!(
            seen.iter().all(Option::is_some),
            "{url} purged before the bucket had it: {seen:?}"
        );
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "{url}: a purge saw an older bucket than the one before it: {seen:?}"
        );
        assert_eq!(seen.last().copied().flatten(), Some(*last), "{url}");
    }
    assert!(
        by_url.keys().all(|u| changes.contains_key(u)),
        "only changed pages are purged: {:?}",
        by_url.keys().collect::<Vec<_>>()
    );

    // A tag the app adds without changing the page's content reaches the
    // shared index too: the next event for that tag finds the page,
    // whichever worker takes it.
    origin.set("/p/0/", page_tagged(0, version[0], "post:0 list featured"));
    let _: String = conn
        .xadd("kiln:events", "*", &[("targets", "/p/0/\n")])
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "the new tag in the shared index",
        || async {
            redis
                .conn()
                .await
                .sismember::<_, _, bool>("kiln:pool:www:tag:featured", "/p/0/")
                .await
                .unwrap()
        },
    )
    .await;
    for _ in 0..3 {
        let before = origin.hits("/p/0/");
        let _: String = conn
            .xadd("kiln:events", "*", &[("targets", "tag:featured\n")])
            .await
            .unwrap();
        wait_until(
            Duration::from_secs(20),
            "tag:featured to bake /p/0/",
            || async { origin.hits("/p/0/") > before },
        )
        .await;
    }

    // The fleet view: a poison entry goes to the dead letters naming the
    // worker that gave up on it; every group is caught up.
    let _: String = conn
        .xadd("kiln:events", "*", &[("oops", "no targets field")])
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "the poison entry to be dead-lettered",
        || async {
            redis
                .conn()
                .await
                .xlen::<_, usize>("kiln:events:dead")
                .await
                .unwrap()
                == 1
        },
    )
    .await;
    let fleet = poll_fleet(&workers[0], |f| {
        f["events"]["groups"][0]["pending"] == 0
            && f["events"]["groups"][0]["lag"] == 0
            && f["workers"]
                .as_array()
                .is_some_and(|w| w.iter().all(|w| w["outbox"] == 0))
    })
    .await;
    let group = &fleet["events"]["groups"][0];
    assert_eq!(group["name"], "pool-www", "{fleet}");
    let consumers: Vec<&str> = group["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(consumers, ["w0", "w1", "w2"], "{fleet}");
    let mirrors: Vec<(&str, u64)> = fleet["published"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["lag"].as_u64().unwrap()))
        .collect();
    assert_eq!(mirrors, [("web-a", 0), ("web-b", 0)], "{fleet}");
    let workers_seen: Vec<&str> = fleet["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(workers_seen, ["w0", "w1", "w2"], "{fleet}");
    let dead_host = fleet["dead"]["last"][0]["host"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(dead_host.starts_with('w'), "{fleet}");
    assert!(
        fleet["dead"]["last"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no `targets` field"),
        "{fleet}"
    );
    let text = workers[0].kiln(&["status", "--fleet"]).await;
    assert_eq!(text.code, 0, "{}", text.all());
    for part in [
        "group pool-www: lag 0, pending 0",
        "group web-a: lag 0",
        "w1: outbox 0",
        &format!("dead letters kiln:events:dead: 1 ({dead_host}: 1)"),
    ] {
        assert!(text.stdout.contains(part), "{part} in\n{}", text.stdout);
    }

    // /metrics of a worker, with Prometheus names.
    let w0 = daemons[0].as_ref().unwrap();
    let metrics = http
        .get(format!("{}/metrics", w0.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "kiln_stream_lag_entries{stream=\"kiln:events\",group=\"pool-www\"} 0",
        "kiln_stream_pending_entries{stream=\"kiln:www:published\",group=\"web-b\"} 0",
        "kiln_pool_worker_outbox_entries{host=\"w2\"} 0",
        &format!("kiln_dead_letters{{host=\"{dead_host}\"}} 1"),
        "kiln_output_changes_total{kind=\"announced\"}",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // The status page, as a person opens it.
    if crate::util::has_cmd("chromium") || std::env::var("CI").as_deref() == Ok("true") {
        let browser = crate::browser::Browser::open(&format!("{}/status", w0.http)).await;
        let mut page = browser.page().await;
        let shown = page
            .wait_for(
                "the fleet on the status page",
                "(() => { const t = id => { const e = document.getElementById(id); return e ? e.innerText : ''; };
                         return [t('fleet'), t('workers'), t('dead'), t('jobs'), t('outputs')]; })()",
                |v| v[0].as_str().is_some_and(|t| t.contains("web-b")),
            )
            .await;
        let [fleet_t, workers_t, dead_t, jobs_t, outputs_t] =
            [0, 1, 2, 3, 4].map(|i| shown[i].as_str().unwrap().to_string());
        assert!(
            fleet_t.contains("pool-www") && fleet_t.contains("web-a"),
            "{fleet_t}"
        );
        assert!(
            ["w0", "w1", "w2"].iter().all(|w| workers_t.contains(w)),
            "{workers_t}"
        );
        assert!(
            dead_t.contains(&dead_host) && dead_t.contains("targets"),
            "{dead_t}"
        );
        assert!(
            jobs_t.contains("/p/") || jobs_t.contains("tag:post:"),
            "{jobs_t}"
        );
        assert!(outputs_t.contains("announced"), "{outputs_t}");
    } else {
        eprintln!("SKIPPED the status page in a browser: chromium is not on PATH");
    }
    drop(ma);
    drop(daemons);
}

/// `kiln status --fleet --json` from `site`, until `ok` holds.
async fn poll_fleet(site: &TestSite, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let run = site.kiln(&["status", "--fleet", "--json"]).await;
        assert_eq!(run.code, 0, "{}", run.all());
        last = serde_json::from_str(&run.stdout).unwrap();
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the fleet never settled: {last}");
}

/// What a pool or a mirror needs and does not have is said, naming the
/// thing and the fix, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_without_its_redis_and_a_mirror_without_its_section_say_so() {
    let origin = Origin::start(vec![("/", Page::html("<p>home</p>"))]).await;
    let closed = free_port();
    let worker = TestSite::for_origin(
        &origin,
        &format!(
            "[intake]\nredis = \"redis://127.0.0.1:{closed}\"\n[pool]\nname = \"www\"\n[[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{closed}\"\n"
        ),
    );
    let run = worker.kiln(&["build"]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "pool mode needs its shared index in Redis at redis://127.0.0.1:{closed}"
        )) && run.stderr.contains("start Redis"),
        "{}",
        run.all()
    );
    assert_eq!(
        origin.total_hits(),
        0,
        "nothing is fetched without the pool's index"
    );

    let plain = TestSite::for_origin(&origin, "");
    let run = plain.kiln(&["mirror"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("add a [mirror] section"),
        "{}",
        run.all()
    );
    let run = plain.kiln(&["status", "--fleet"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("no fleet to show") && run.stderr.contains("[intake] redis"),
        "{}",
        run.all()
    );
}

/// A symlink planted in a mirror's web root (guarantee 11: kiln follows
/// only its own) is refused by name, nothing is written where it points,
/// the rest of the bucket still lands, and once it is removed the next run
/// copies what it had held up.
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_never_follows_a_symlink_planted_in_its_root() {
    require!("redis-server");
    require!("s3s-fs");
    let redis = Redis::start_on(free_port()).await;
    let s3 = S3Server::start().await;
    let origin = Origin::start(vec![
        (
            "/",
            Page::html(
                "<a href=\"/p/0/\">0</a> <a href=\"/p/1/\">1</a> <a href=\"/about/\">about</a>",
            ),
        ),
        ("/p/0/", page(0, 7)),
        ("/p/1/", page(1, 7)),
        ("/about/", Page::html("<p>about us</p>")),
    ])
    .await;
    let worker = pool_worker(&origin, &redis, &s3, "worker", "", "");
    build_into_bucket(&worker).await;
    assert!(
        s3.object("p/0/index.html").exists(),
        "the bucket has the page"
    );
    origin.reset_hits();

    let web = mirror_site(&redis, &s3, "web");
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(web.out()).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), web.out().join("p")).unwrap();

    let run = web
        .command(&["mirror", "--once"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("is a symlink") && stderr.contains("remove it"),
        "names the symlink and the fix: {stderr}"
    );
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing written through the symlink"
    );
    assert_eq!(
        std::fs::read_to_string(web.out().join("about/index.html")).unwrap(),
        "<p>about us</p>",
        "the rest of the bucket landed"
    );

    std::fs::remove_file(web.out().join("p")).unwrap();
    let run = web
        .command(&["mirror", "--once"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for i in 0..2 {
        let body = std::fs::read_to_string(web.out().join(format!("p/{i}/index.html"))).unwrap();
        assert_eq!(version_of(&body), Some(7), "{body}");
    }
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    assert_eq!(origin.total_hits(), 0, "the mirror never asks the origin");
}

/// The body of mirrored page `i` at `version`: big enough (~32 KB) that a
/// copy of the whole bucket takes a while.
fn big_body(i: usize, version: usize) -> String {
    let line = format!("<p>page {i} version {version}</p>\n");
    line.repeat(32 * 1024 / line.len() + 1)
}

/// A mirror killed with SIGKILL at random points of its copy never leaves
/// its web root a partial or empty file (each is some version's complete
/// body), and the next run leaves the root equal to the bucket with no
/// temp file behind, without asking the origin.
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_killed_mid_copy_never_leaves_a_partial_file() {
    require!("redis-server");
    require!("s3s-fs");
    const PAGES: usize = 60;
    let redis = Redis::start_on(free_port()).await;
    let s3 = S3Server::start().await;
    let pages = crate::util::home_and_pages(PAGES, |i| Page::html(big_body(i, 0)));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let worker = pool_worker(&origin, &redis, &s3, "worker", "", "");
    let web = mirror_site(&redis, &s3, "web");
    let mut next = crate::util::seeded(0xC0FFEE);
    let mut last = 0;
    for round in 0..8usize {
        for i in 0..PAGES {
            origin.set(&format!("/p/{i}/"), Page::html(big_body(i, round)));
        }
        build_into_bucket(&worker).await;
        last = round;
        let mut child = web
            .command(&["-q", "mirror", "--once"])
            .envs(CREDS)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // A random point of the copy: before, during or after the writes.
        tokio::time::sleep(Duration::from_millis(2 + next(150))).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        for f in web.files() {
            if f.rsplit('/').next().unwrap().starts_with(".kiln-tmp") || f == "index.html" {
                continue;
            }
            let i: usize = f.split('/').nth(1).unwrap().parse().unwrap();
            let body = std::fs::read_to_string(web.file(&f)).unwrap();
            assert!(
                (0..=round).any(|v| body == big_body(i, v)),
                "round {round}: {f} is not a complete version ({} bytes)",
                body.len()
            );
        }
    }
    let run = web
        .command(&["mirror", "--once"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for i in 0..PAGES {
        assert_eq!(
            web.read(&format!("p/{i}/index.html")).as_deref(),
            Some(big_body(i, last).as_str()),
            "page {i} equals the bucket"
        );
    }
    let leftovers: Vec<String> = web
        .files()
        .into_iter()
        .filter(|f| f.contains(".kiln-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files swept: {leftovers:?}");
    let agents: Vec<String> = origin.hits_by_agent().into_keys().collect();
    assert_eq!(agents, ["worker"], "only the worker asked the origin");
}

/// A mirror pointed at an empty listing (a typo in the prefix, an empty
/// bucket) does not blank its web root: the bootstrap removes nothing and
/// exits 1 with the reason; `--allow-mass-delete` is the consent.
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_keeps_its_root_when_the_bucket_lists_nothing() {
    require!("s3s-fs");
    let s3 = S3Server::start().await;
    // No Redis needed: --once only copies the bucket.
    let web = TestSite::new(&format!(
        "[mirror]\nredis = \"redis://127.0.0.1:1\"\npool = \"www\"\nbucket = \"kiln\"\nprefix = \"wrong/\"\nendpoint = \"http://127.0.0.1:{}\"\n",
        s3.port
    ));
    for n in 0..30 {
        let file = web.file(&format!("p/{n}/index.html"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, format!("page {n}")).unwrap();
    }
    let run = web
        .command(&["mirror", "--once"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("none was removed") && stderr.contains("--allow-mass-delete"),
        "{stderr}"
    );
    assert_eq!(web.files().len(), 30, "the web root is kept");
    let run = web
        .command(&["mirror", "--once", "--allow-mass-delete"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(web.files().is_empty(), "{:?}", web.files());
}

/// A mirror serves what a baking host serves: a feed at `/feed/` (its
/// bucket key `feed/index.html`, typed by the object's Content-Type) is
/// placed into the typed tree, so the mirror's nginx answers it as RSS, as
/// the app does; a page the bucket no longer has goes from there too.
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_serves_a_feed_with_its_type() {
    require!("redis-server");
    require!("s3s-fs");
    require!("nginx");
    let redis = Redis::start_on(free_port()).await;
    let s3 = S3Server::start().await;
    let feed = "<rss version=\"2.0\"><channel><title>feed</title></channel></rss>";
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/feed/\">feed</a>")),
        ("/feed/", Page::html(feed).typed("application/rss+xml")),
    ])
    .await;
    let worker = pool_worker(&origin, &redis, &s3, "worker", "", "");
    build_into_bucket(&worker).await;
    assert!(
        s3.object("feed/index.html").exists(),
        "its own key in the bucket"
    );
    let web = mirror_site(&redis, &s3, "web");
    let run = web
        .command(&["mirror", "--once"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (nginx, _) = crate::util::Nginx::for_site(&web, &[], &[]).await;
    let r = crate::util::client()
        .get(nginx.url("/feed/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ty = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ty.starts_with("application/rss+xml"),
        "the mirror's nginx said {ty}"
    );
    assert_eq!(r.text().await.unwrap(), feed);
    // Gone from the bucket: gone from the mirror.
    std::fs::remove_file(s3.object("feed/index.html")).unwrap();
    let run = web
        .command(&["mirror", "--once"])
        .envs(CREDS)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = crate::util::client()
        .get(nginx.url("/feed/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
