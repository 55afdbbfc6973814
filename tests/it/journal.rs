//! Nothing acknowledged is lost (guarantee 9): what the HTTP endpoint
//! answered 202 for survives a kill -9 of the daemon at once.

use std::time::Duration;

use crate::util::{Page, built_site, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_202_survives_kill_9_and_the_restart_applies_it() {
    const PAGES: usize = 60;
    let (origin, site) = built_site(PAGES, "").await;
    // The app saves every post; each page is slow to render, so most of
    // the work is still ahead when the daemon dies.
    for i in 0..PAGES {
        origin.set(
            &format!("/p/{i}/"),
            Page::html(format!("saved {i}")).delay(Duration::from_millis(200)),
        );
    }
    let d = site.daemon(&[]).await;
    for i in 0..PAGES {
        let (code, v) = d
            .post(
                "/v1/regen",
                &serde_json::json!({ "targets": [format!("/p/{i}/")] }).to_string(),
                None,
            )
            .await;
        assert_eq!(code, 202, "{v}");
    }
    d.signal(libc::SIGKILL);
    d.wait(Duration::from_secs(10)).await;
    let stale = (0..PAGES)
        .filter(|i| site.read(&format!("p/{i}/index.html")) != Some(format!("saved {i}")))
        .count();
    assert!(
        stale > 0,
        "the kill came after all the work: the test proves nothing"
    );

    let d = site.daemon(&[]).await;
    wait_until(
        Duration::from_secs(60),
        "every acknowledged page to be fresh",
        || async {
            (0..PAGES)
                .all(|i| site.read(&format!("p/{i}/index.html")) == Some(format!("saved {i}")))
        },
    )
    .await;
    d.settle(None).await;
    assert!(
        site.queue()
            .join("journal")
            .read_dir()
            .unwrap()
            .next()
            .is_none(),
        "the journal is empty once the work is done"
    );
    // The next event still lands.
    origin.set("/p/0/", Page::html("next"));
    let (code, v) = d.post("/v1/regen", r#"{"targets": ["/p/0/"]}"#, None).await;
    assert_eq!(code, 202, "{v}");
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    assert_eq!(site.read("p/0/index.html").unwrap(), "next");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}
