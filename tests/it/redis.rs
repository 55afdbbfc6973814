//! The Redis Streams intake against a real `redis-server` on loopback:
//! fan-out to two web hosts, a host killed and restarted, Redis down and
//! back, dead letters, and a stream trimmed past a host.

use std::time::Duration;

use redis::AsyncCommands;

use crate::require;
use crate::util::{Origin, Page, TestSite, free_port, linked_site, wait_for_port, wait_until};

/// `redis-server` on a free port, no persistence; killed when dropped.
pub(crate) struct Redis {
    child: tokio::process::Child,
    pub(crate) port: u16,
}

impl Redis {
    pub(crate) async fn start_on(port: u16) -> Redis {
        let child = spawn_redis(port, &["--appendonly".as_ref(), "no".as_ref()]).await;
        Redis { child, port }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(crate) async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// Starts redis-server on loopback `port` without snapshots, with `extra`
/// arguments, and waits until it accepts connections.
pub(crate) async fn spawn_redis(port: u16, extra: &[&std::ffi::OsStr]) -> tokio::process::Child {
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port, "redis-server").await;
    child
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn intake_toml(url: &str, group: &str) -> String {
    format!(
        "[intake]\nredis = \"{url}\"\ngroup = \"{group}\"\nclaim-idle = \"1s\"\n[daemon]\ndebounce = \"2s\"\nrescan = \"300ms\"\n"
    )
}

async fn xadd(conn: &mut redis::aio::MultiplexedConnection, targets: &str) -> String {
    conn.xadd("kiln:events", "*", &[("targets", targets)])
        .await
        .unwrap()
}

/// Entries the group has read and not acknowledged; `usize::MAX` while the
/// group does not exist yet (the daemon creates it after it starts
/// listening, so a test polling right away can ask first).
async fn pending(conn: &mut redis::aio::MultiplexedConnection, group: &str) -> usize {
    match conn
        .xpending::<_, _, redis::streams::StreamPendingReply>("kiln:events", group)
        .await
    {
        Ok(v) => v.count(),
        Err(e) if e.code() == Some("NOGROUP") => usize::MAX,
        Err(e) => panic!("XPENDING {group}: {e}"),
    }
}

#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_applies_every_event_even_across_a_kill_9() {
    require!("redis-server");
    let redis = Redis::start_on(free_port()).await;
    const N: usize = 40;
    let pages = linked_site(N);
    let origin_a =
        Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let origin_b =
        Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let a = TestSite::for_origin(&origin_a, &intake_toml(&redis.url(), "host-a"));
    let b = TestSite::for_origin(&origin_b, &intake_toml(&redis.url(), "host-b"));
    assert_eq!(a.kiln(&["build"]).await.code, 0);
    assert_eq!(b.kiln(&["build"]).await.code, 0);
    for o in [&origin_a, &origin_b] {
        for i in 0..N {
            o.set(&format!("/p/{i}/"), Page::html(format!("<p>fresh {i}</p>")));
        }
        o.reset_hits();
    }
    let da = a.daemon(&[]).await;
    let db = b.daemon(&[]).await;
    let mut conn = redis.conn().await;
    // 200 entries; host B is killed halfway and comes back after the rest.
    for k in 0..200 {
        if k == 100 {
            db.signal(libc::SIGKILL);
        }
        xadd(&mut conn, &format!("/p/{}/\n", k % N)).await;
    }
    // Gone for good (its lock released with it) before the restart.
    db.wait(Duration::from_secs(10)).await;
    let db = b.daemon(&[]).await;
    for (site, name) in [(&a, "a"), (&b, "b")] {
        wait_until(
            Duration::from_secs(30),
            &format!("host {name} to be fresh"),
            || async {
                (0..N).all(|i| {
                    site.read(&format!("p/{i}/index.html")).as_deref()
                        == Some(&format!("<p>fresh {i}</p>")[..])
                })
            },
        )
        .await;
    }
    // Every entry acknowledged by both groups: nothing lost, nothing pending.
    wait_until(
        Duration::from_secs(15),
        "both groups to acknowledge everything",
        || {
            let redis = &redis;
            async move {
                let mut c = redis.conn().await;
                pending(&mut c, "host-a").await == 0 && pending(&mut c, "host-b").await == 0
            }
        },
    )
    .await;
    for i in 0..N {
        let path = format!("/p/{i}/");
        assert!(
            origin_a.hits(&path) <= 2,
            "host a fetched {path} {} times",
            origin_a.hits(&path)
        );
        // Host B, across its kill: up to twice before it (the leading edge,
        // and one more for an event that arrived during that fetch), and
        // once after the restart, where its pending entries and those sent
        // while it was down are read back as one request.
        assert!(
            origin_b.hits(&path) <= 3,
            "host b fetched {path} {} times",
            origin_b.hits(&path)
        );
    }
    let (_, status) = da.get("/v1/status", None).await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["redis"]["connected"], true, "{status}");
    // The restarted host is back on new entries, not stuck re-reading its
    // old pending list: it sits idle, and the next event still lands.
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    };
    let before = cpu(db.pid());
    let window = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu(db.pid()) - before;
    assert!(
        used < 0.3 * window.elapsed().as_secs_f64(),
        "the idle restarted host used {used:.2} s of CPU in {:?}",
        window.elapsed()
    );
    for o in [&origin_a, &origin_b] {
        o.set("/p/0/", Page::html("<p>after the restart</p>"));
    }
    xadd(&mut conn, "/p/0/\n").await;
    for (site, name) in [(&a, "a"), (&b, "b")] {
        wait_until(
            Duration::from_secs(15),
            &format!("host {name} to apply an event sent after the restart"),
            || async { site.read("p/0/index.html").as_deref() == Some("<p>after the restart</p>") },
        )
        .await;
    }
    drop(da);
    drop(db);
}

#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_leaves_other_intakes_working_and_events_wait_for_it() {
    require!("redis-server");
    let port = free_port();
    let pages = linked_site(3);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(
        &origin,
        &intake_toml(&format!("redis://127.0.0.1:{port}/0"), "host"),
    );
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon(&[]).await;
    // No Redis: the HTTP intake still works; status and metrics say why.
    origin.set("/p/1/", Page::html("via http"));
    let (_, v) = d.post("/v1/regen", r#"{"targets": ["/p/1/"]}"#, None).await;
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(site.read("p/1/index.html").unwrap(), "via http");
    let (_, status) = d.get("/v1/status", None).await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["redis"]["connected"], false, "{status}");
    assert!(v["redis"]["error"].is_string(), "{status}");
    let (_, metrics) = d.get("/metrics", None).await;
    assert!(metrics.contains("kiln_redis_connected 0"), "{metrics}");
    // Redis comes up; an event added there is applied.
    let redis = Redis::start_on(port).await;
    origin.set("/p/2/", Page::html("via redis"));
    let run = site.kiln(&["enqueue", "--redis", "/p/2/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    wait_until(
        Duration::from_secs(20),
        "the stream event to be applied",
        || async { site.read("p/2/index.html").as_deref() == Some("via redis") },
    )
    .await;
    let (_, metrics) = d.get("/metrics", None).await;
    assert!(metrics.contains("kiln_redis_connected 1"), "{metrics}");
    drop(redis);
    drop(d);
}

#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_go_to_the_dead_letter_stream_and_a_trimmed_stream_rebakes_everything() {
    require!("redis-server");
    let redis = Redis::start_on(free_port()).await;
    let pages = linked_site(3);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, &intake_toml(&redis.url(), "host"));
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    origin.set("/p/0/", Page::html("unprocessable").status(422));
    let d = site.daemon(&[]).await;
    let mut conn = redis.conn().await;
    let id = xadd(&mut conn, "nonsense\n/p/0/\n").await;
    wait_until(Duration::from_secs(20), "a dead letter", || {
        let redis = &redis;
        async move {
            let mut c = redis.conn().await;
            let n: usize = c.xlen("kiln:events:dead").await.unwrap();
            n == 1 && pending(&mut c, "host").await == 0
        }
    })
    .await;
    let dead: redis::streams::StreamRangeReply = conn.xrange_all("kiln:events:dead").await.unwrap();
    let entry = &dead.ids[0];
    let field = |k: &str| -> String { redis::from_redis_value(entry.map[k].clone()).unwrap() };
    assert_eq!(field("id"), id);
    let reason = field("reason");
    assert!(
        reason.contains("nonsense") && reason.contains("/p/0/") && reason.contains("422"),
        "{reason}"
    );
    d.signal(libc::SIGTERM);
    d.wait(Duration::from_secs(10)).await;

    // While the host is down, its unread entries are trimmed away.
    for _ in 0..5 {
        xadd(&mut conn, "/p/1/\n").await;
    }
    let _: usize = redis::cmd("XTRIM")
        .arg("kiln:events")
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    origin.reset_hits();
    let d = site.daemon_logged().await;
    d.wait_for_log(&["trimmed past this host's position"]).await;
    wait_until(Duration::from_secs(20), "every page rebaked", || async {
        (0..3).all(|i| origin.hits(&format!("/p/{i}/")) >= 1) && origin.hits("/") >= 1
    })
    .await;
    drop(d);
}

/// Entries kiln cannot use are never acknowledged silently: no `targets`
/// field, bytes that are not UTF-8, more targets than `daemon.max-targets`
/// each go to the dead-letter stream with their own reason, and a good
/// entry read in the same batch as a failing one is not charged with it.
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_dead_lettered_each_with_its_own_reason() {
    require!("redis-server");
    let redis = Redis::start_on(free_port()).await;
    let pages = linked_site(3);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(
        &origin,
        &format!("{}max-targets = 100\n", intake_toml(&redis.url(), "host")),
    );
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    origin.set("/p/0/", Page::html("unprocessable").status(422));
    origin.set(
        "/p/1/",
        Page::html("fresh 1").with_header("surrogate-key", "one"),
    );
    let mut conn = redis.conn().await;
    // Written before the daemon starts: one read, one batch.
    let no_field: String = conn
        .xadd("kiln:events", "*", &[("target", "/p/1/")])
        .await
        .unwrap();
    let not_utf8: String = conn
        .xadd("kiln:events", "*", &[("targets", &b"/p/1/\xff\xfe\n"[..])])
        .await
        .unwrap();
    let many: String = (0..60_000).map(|i| format!("/many/{i}/\n")).collect();
    let too_many = xadd(&mut conn, &many).await;
    let failing = xadd(&mut conn, "/p/0/\n").await;
    let good = xadd(&mut conn, "glob:/p/1/\n").await;
    let d = site.daemon(&[]).await;
    wait_until(Duration::from_secs(20), "every entry handled", || {
        let redis = &redis;
        async move {
            let mut c = redis.conn().await;
            pending(&mut c, "host").await == 0
                && c.xlen::<_, usize>("kiln:events:dead").await.unwrap() >= 4
        }
    })
    .await;
    let dead: redis::streams::StreamRangeReply = conn.xrange_all("kiln:events:dead").await.unwrap();
    let reasons: std::collections::HashMap<String, String> = dead
        .ids
        .iter()
        .map(|e| {
            let f = |k: &str| -> String { redis::from_redis_value(e.map[k].clone()).unwrap() };
            (f("id"), f("reason"))
        })
        .collect();
    assert!(
        reasons[&no_field].contains("no `targets` field"),
        "{reasons:?}"
    );
    assert!(reasons[&not_utf8].contains("not UTF-8"), "{reasons:?}");
    assert!(
        reasons[&too_many].contains("daemon.max-targets"),
        "{reasons:?}"
    );
    assert!(reasons[&failing].contains("422"), "{reasons:?}");
    assert!(
        !reasons.contains_key(&good),
        "the good entry was charged: {reasons:?}"
    );
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(site.read("p/1/index.html").unwrap(), "fresh 1");
    assert_eq!(
        origin.hits("/many/1/"),
        0,
        "the oversized entry was not applied"
    );
    drop(d);
}

/// Redis restarted without persistence loses the stream and this host's
/// group: the host says so and rebakes everything (the events of the outage
/// are gone), and after that outage the next one reconnects at once.
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_comes_back_empty_is_noticed_and_reconnects_fast() {
    require!("redis-server");
    let port = free_port();
    let redis = Redis::start_on(port).await;
    let pages = linked_site(3);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, &intake_toml(&redis.url(), "host"));
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon_logged().await;
    d.wait_for_log(&["reading the redis stream"]).await;
    // A long outage (the reconnect delay grows to its cap), during which
    // an event is lost with the server's memory.
    drop(redis);
    d.wait_for_log(&["redis intake lost its connection"]).await;
    d.wait_for_log(&["redis intake unavailable", "retry_in=5s"])
        .await;
    origin.set("/p/2/", Page::html("changed while redis was down"));
    origin.reset_hits();
    let redis = Redis::start_on(port).await;
    d.wait_for_log(&["consumer group is gone"]).await;
    wait_until(Duration::from_secs(20), "every page rebaked", || async {
        site.read("p/2/index.html").as_deref() == Some("changed while redis was down")
    })
    .await;
    // A second outage starts again from the short delay (200 ms, then
    // 400 ms), not from the first outage's 5 s.
    drop(redis);
    let lost = d.log.as_ref().unwrap().lock().unwrap().len();
    let mut retry = String::new();
    wait_until(
        Duration::from_secs(10),
        "the second outage's first retry",
        || {
            let log = d.log.as_ref().unwrap().lock().unwrap();
            if let Some(l) = log[lost..]
                .iter()
                .find(|l| l.contains("redis intake unavailable"))
            {
                retry = l.clone();
            }
            let seen = !retry.is_empty();
            async move { seen }
        },
    )
    .await;
    assert!(retry.contains("retry_in=400ms"), "{retry}");
    let _redis = Redis::start_on(port).await;
    let mut conn = _redis.conn().await;
    origin.set("/p/1/", Page::html("after the second outage"));
    xadd(&mut conn, "/p/1/\n").await;
    wait_until(
        Duration::from_secs(10),
        "the event after the second outage",
        || async { site.read("p/1/index.html").as_deref() == Some("after the second outage") },
    )
    .await;
    drop(d);
}

/// A new web host joining a stream with a long history builds once and
/// then reads only what came after its build started: the retained
/// entries its pages already reflect are not replayed against the origin
/// (the issue measured 4,572 fetches for 1,022 retained entries), and the
/// next event still lands.
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_host_starts_its_group_where_its_build_started() {
    require!("redis-server");
    let redis = Redis::start_on(free_port()).await;
    const N: usize = 20;
    let pages = linked_site(N);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    // The fleet's history: 300 events other hosts applied long ago.
    let mut conn = redis.conn().await;
    for k in 0..300 {
        xadd(&mut conn, &format!("/p/{}/\ntag:list\n", k % N)).await;
    }
    let site = TestSite::for_origin(&origin, &intake_toml(&redis.url(), "new-host"));
    let build = site.kiln(&["build"]).await;
    assert_eq!(build.code, 0, "{}", build.all());
    origin.reset_hits();
    let d = site.daemon(&[]).await;
    wait_until(Duration::from_secs(10), "the new host's group", || {
        let redis = &redis;
        async move { pending(&mut redis.conn().await, "new-host").await != usize::MAX }
    })
    .await;
    origin.set("/p/3/", Page::html("<p>after the build</p>"));
    xadd(&mut conn, "/p/3/\n").await;
    wait_until(Duration::from_secs(20), "the new event to land", || async {
        site.read("p/3/index.html").as_deref() == Some("<p>after the build</p>")
    })
    .await;
    d.settle(None).await;
    assert_eq!(
        origin.total_hits(),
        1,
        "only the new event's page is fetched: {:?}",
        origin.state.lock().unwrap().hits
    );
    drop(d);
}

/// Redis restarted with its data intact (AOF on) costs nothing: after the
/// reload Redis no longer knows the group's lag, which used to read as
/// "trimmed past this host", and every host rebaked the whole site. Now
/// only a deletion after the group's position counts as a trim.
#[cfg_attr(
    kiln_no_redis,
    ignore = "redis-server is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_its_data_intact_rebakes_nothing() {
    require!("redis-server");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let args: [&std::ffi::OsStr; 4] = [
        "--appendonly".as_ref(),
        "yes".as_ref(),
        "--dir".as_ref(),
        dir.path().as_os_str(),
    ];
    let aof = || spawn_redis(port, &args);
    let mut redis = aof().await;
    let url = format!("redis://127.0.0.1:{port}/0");
    let connect = || async {
        redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    };
    let pages = linked_site(20);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, &intake_toml(&url, "host"));
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon(&[]).await;
    // Two events read and acknowledged: the group's position is past the
    // stream's first entry (where Redis cannot tell the lag after a reload).
    let mut conn = connect().await;
    for n in [1, 3] {
        origin.set(&format!("/p/{n}/"), Page::html("after the event"));
        xadd(&mut conn, &format!("/p/{n}/\n")).await;
        wait_until(Duration::from_secs(20), "an event", || async {
            site.read(&format!("p/{n}/index.html")).as_deref() == Some("after the event")
        })
        .await;
    }
    wait_until(Duration::from_secs(20), "its acknowledgement", || async {
        pending(&mut connect().await, "host").await == 0
    })
    .await;

    // The host stops; an event arrives for it; Redis stops cleanly (its
    // AOF synced) and comes back with its data; the host starts again and
    // finds the group behind the stream, its lag unknown since the reload.
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
    origin.set("/p/2/", Page::html("two, after the restart"));
    xadd(&mut conn, "/p/2/\n").await;
    crate::util::signal(redis.id().unwrap(), libc::SIGTERM);
    redis.wait().await.unwrap();
    redis = aof().await;
    let before = origin.total_hits();
    let d = site.daemon(&[]).await;
    wait_until(
        Duration::from_secs(30),
        "the event after the restart",
        || async { site.read("p/2/index.html").as_deref() == Some("two, after the restart") },
    )
    .await;
    d.settle(None).await;
    let asked = origin.total_hits() - before;
    assert!(
        asked <= 2,
        "{asked} origin requests after a restart that lost nothing (a rebake asks all 21)"
    );
    drop(d);
    drop(redis);
}
