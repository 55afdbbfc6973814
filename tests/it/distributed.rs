//! The two-host picture end to end: one Redis stream, two web hosts (two
//! daemons, two outputs, two real nginx), one of them also mirroring to an
//! S3 bucket and purging a CDN; 1,000 events while the other host is killed
//! and restarted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;

use crate::publish::S3Server;
use crate::redis::Redis;
use crate::require;
use crate::util::{
    Nginx, Origin, Page, TestSite, client, free_port, linked_site, open_up, wait_until,
};

const N: usize = 25;

fn fresh(i: usize) -> String {
    format!("<html><body><p>fresh {i}</p></body></html>")
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
async fn two_hosts_one_stream_a_bucket_and_a_cdn_stay_equal_to_the_origin() {
    require!("redis-server");
    require!("s3s-fs");
    require!("nginx");
    let redis = Redis::start_on(free_port()).await;
    let s3 = S3Server::start().await;
    // The CDN's purge endpoint: records every URL it is told about.
    let purged = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = purged.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: String| {
        let sink = sink.clone();
        async move {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            for u in v["urls"].as_array().unwrap() {
                sink.lock().unwrap().push(u.as_str().unwrap().to_string());
            }
            "ok"
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cdn = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Each host has its own origin replica, so fetches are counted per host.
    let pages = linked_site(N);
    let origin_a =
        Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let origin_b =
        Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let common = |group: &str| {
        format!(
            "[intake]\nredis = \"{}\"\ngroup = \"{group}\"\n[daemon]\ndebounce = \"3s\"\nrescan = \"300ms\"\n",
            redis.url()
        )
    };
    let a = TestSite::for_origin(
        &origin_a,
        &format!(
            "{}[[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{}\"\n[[purge]]\nkind = \"webhook\"\nurl = \"{cdn}/purge\"\n",
            common("host-a"),
            s3.port
        ),
    );
    let b = TestSite::for_origin(&origin_b, &common("host-b"));
    let creds = [
        ("AWS_ACCESS_KEY_ID", "test-key"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret"),
    ];
    for site in [&a, &b] {
        open_up(site.path());
        let mut build = site.command(&["build"]);
        build.envs(creds);
        let out = build.output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut publish = a.command(&["publish"]);
    publish.envs(creds);
    assert!(publish.output().await.unwrap().status.success());
    let mut nginx = Vec::new();
    for site in [&a, &b] {
        let port = free_port();
        let conf = site
            .kiln(&["nginx", "--listen", &format!("127.0.0.1:{port}")])
            .await;
        nginx.push(Nginx::start(&conf.stdout, port).await);
    }
    for o in [&origin_a, &origin_b] {
        for i in 0..N {
            o.set(&format!("/p/{i}/"), Page::html(fresh(i)));
        }
        o.reset_hits();
    }
    let da = a.daemon(&creds).await;
    let db = b.daemon(&[]).await;

    // 1,000 events; host B is killed halfway and comes back after the rest.
    let mut conn = redis.conn().await;
    for k in 0..1000 {
        if k == 500 {
            db.signal(libc::SIGKILL);
        }
        let _: String = conn
            .xadd(
                "kiln:events",
                "*",
                &[("targets", format!("/p/{}/\n", k % N))],
            )
            .await
            .unwrap();
    }
    // Gone for good (its lock released with it) before the restart.
    db.wait(Duration::from_secs(10)).await;
    let db = b.daemon(&[]).await;

    // Both web hosts serve exactly the origin's pages, from disk.
    let http = client();
    for (host, n) in nginx.iter().enumerate() {
        wait_until(
            Duration::from_secs(40),
            &format!("host {host} to serve fresh pages"),
            || async {
                for i in 0..N {
                    let r = http.get(n.url(&format!("/p/{i}/"))).send().await.unwrap();
                    if r.headers().get("x-kiln").is_none() || r.text().await.unwrap() != fresh(i) {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    }
    // The bucket equals host A's output; the CDN was told about every page.
    wait_until(
        Duration::from_secs(20),
        "the bucket and the CDN to follow",
        || async {
            (0..N).all(|i| {
                std::fs::read_to_string(s3.object(&format!("p/{i}/index.html"))).ok()
                    == Some(fresh(i))
            }) && {
                let got = purged.lock().unwrap();
                (0..N).all(|i| got.contains(&format!("/p/{i}/")))
            }
        },
    )
    .await;
    for i in 0..N {
        let path = format!("/p/{i}/");
        assert_eq!(
            std::fs::read(s3.object(&format!("p/{i}/index.html"))).unwrap(),
            std::fs::read(a.file(&format!("p/{i}/index.html"))).unwrap()
        );
        assert!(
            origin_a.hits(&path) <= 2,
            "host a fetched {path} {} times",
            origin_a.hits(&path)
        );
        // The killed host too: once before its kill, once for the batch of
        // pending entries it reads back after the restart.
        assert!(
            origin_b.hits(&path) <= 2,
            "host b fetched {path} {} times",
            origin_b.hits(&path)
        );
    }
    drop(da);
    drop(db);
}
