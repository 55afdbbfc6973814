//! Outputs are an outbox (guarantee 9): the CDN is never told before the
//! bucket has the page, a failed upload survives a kill -9, a removed
//! page's last tags are purged, a one-shot `kiln regen` publishes too, and
//! a second `[[publish]]` target gets every page.

use std::time::Duration;

use crate::referee::{S3Proc, file_of, start_cdn};
use crate::require;
use crate::util::{Origin, Page, TestSite, free_port, wait_until};

#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdn_hears_of_a_page_only_after_the_bucket_has_it_across_kills() {
    require!("s3s-fs");
    let state = tempfile::tempdir().unwrap();
    let mut s3 = S3Proc::start(free_port(), &state.path().join("s3")).await;
    let mut second = S3Proc::start(free_port(), &state.path().join("s3-second")).await;
    let (cdn, purges) = start_cdn(s3.dir.clone()).await;
    let origin = Origin::start(vec![
        (
            "/",
            Page::html("<a href=\"/a/\">a</a><a href=\"/b/\">b</a>"),
        ),
        (
            "/a/",
            Page::html("a v1").with_header("surrogate-key", "post:a"),
        ),
        (
            "/b/",
            Page::html("b v1").with_header("surrogate-key", "post:b"),
        ),
    ])
    .await;
    let site = TestSite::for_origin(
        &origin,
        &format!(
            "[daemon]\ndebounce = \"20ms\"\nmax-retry-delay = \"300ms\"\n\
             [[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{}\"\n\
             [[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{}\"\n\
             [[purge]]\nkind = \"webhook\"\nurl = \"{cdn}/purge\"\n",
            s3.port, second.port
        ),
    );
    let creds = [
        ("AWS_ACCESS_KEY_ID", "test-key"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret"),
    ];
    let kiln = |args: &[&str]| {
        let mut c = site.command(args);
        c.envs(creds);
        c
    };
    // A one-shot build publishes to both buckets and tells the CDN.
    let out = kiln(&["build"]).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bucket in [&s3, &second] {
        assert_eq!(bucket.objects()["a/index.html"], b"a v1");
    }
    assert!(purges.lock().unwrap().seen.contains_key("/a/"));

    // The bucket is down; the page changes; the daemon is killed.
    s3.stop().await;
    origin.set(
        "/a/",
        Page::html("a v2").with_header("surrogate-key", "post:a"),
    );
    let d = site.daemon(&creds).await;
    let http = d.http.clone();
    let r = reqwest::Client::new()
        .post(format!("{http}/v1/regen"))
        .header("content-type", "application/json")
        .body(r#"{"targets": ["/a/"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    wait_until(Duration::from_secs(15), "the page to be baked", || async {
        site.read("a/index.html").as_deref() == Some("a v2")
    })
    .await;
    // The upload keeps failing for a while: the CDN hears nothing of v2.
    let status = || async {
        let v: serde_json::Value = reqwest::get(format!("{http}/v1/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v
    };
    wait_until(Duration::from_secs(15), "a failed upload", || async {
        status().await["outputs"]["publish_failed"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    assert_eq!(status().await["outputs"]["outbox"], 1);
    let metrics = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kiln_outbox_entries 1"), "{metrics}");
    assert!(
        metrics.contains("kiln_output_changes_total{kind=\"publish_failed\"}"),
        "{metrics}"
    );
    let told = purges.lock().unwrap().seen["/a/"].len();
    assert_eq!(
        told, 1,
        "the CDN was told about v2 before the bucket had it"
    );
    d.signal(libc::SIGKILL);
    d.wait(Duration::from_secs(10)).await;

    // The bucket is back, the daemon starts again: the change is delivered
    // (both buckets), then purged once, with the bucket already holding v2.
    let (port, dir) = (s3.port, s3.dir.clone());
    s3 = S3Proc::start(port, &dir).await;
    let d = site.daemon(&creds).await;
    wait_until(
        Duration::from_secs(20),
        "the CDN to be told after the upload",
        || async { purges.lock().unwrap().seen["/a/"].len() >= 2 },
    )
    .await;
    {
        let p = purges.lock().unwrap();
        assert_eq!(p.seen["/a/"].last().unwrap().as_deref(), Some(&b"a v2"[..]));
        assert_eq!(p.seen["/a/"].len(), 2, "told once per change");
    }
    for bucket in [&s3, &second] {
        assert_eq!(bucket.objects()["a/index.html"], b"a v2");
    }
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));

    // A one-shot regen of a page the origin removed: both buckets drop it
    // and the CDN purges its last tag (the page has no tags any more).
    origin.remove("/b/");
    let out = kiln(&["regen", "/b/"]).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bucket in [&s3, &second] {
        assert!(!bucket.objects().contains_key(&file_of("/b/")));
    }
    {
        let p = purges.lock().unwrap();
        assert_eq!(p.seen["/b/"].last().unwrap(), &None);
        assert!(p.tags.contains(&"post:b".to_string()), "{:?}", p.tags);
    }
    second.stop().await;
    s3.stop().await;
}
