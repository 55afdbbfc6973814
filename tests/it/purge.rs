//! CDN purge hooks after each batch, against a local HTTP receiver that
//! records what it got (and refuses the first request, to prove retries).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

use crate::util::{Page, built_site, wait_until};

#[derive(Default)]
struct Received {
    requests: Vec<(String, HeaderMap, serde_json::Value)>,
    refused: usize,
}

async fn receive(
    State(r): State<Arc<Mutex<Received>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mut r = r.lock().unwrap();
    if r.refused == 0 {
        r.refused += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.requests.push((
        uri.path().to_string(),
        headers,
        serde_json::from_str(&body).unwrap(),
    ));
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_pages_are_purged_from_the_cdn_by_url_and_by_tag() {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cdn = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hooks = format!(
        "[[purge]]\nkind = \"webhook\"\nurl = \"{cdn}/hook\"\n\
         [[purge]]\nkind = \"fastly\"\nurl = \"{cdn}/fastly\"\ntoken-env = \"TEST_FASTLY_TOKEN\"\n\
         [[purge]]\nkind = \"cloudflare-urls\"\nurl = \"{cdn}/cf\"\nbase-url = \"https://example.org\"\n"
    );
    let (origin, site) = built_site(5, &hooks).await;
    // The build purged what it wrote (its first request refused and
    // retried); what follows looks at the daemon's purges only.
    assert_eq!(received.lock().unwrap().refused, 1);
    received.lock().unwrap().requests.clear();
    let d = site.daemon(&[("TEST_FASTLY_TOKEN", "s3cret")]).await;
    origin.set(
        "/p/1/",
        Page::html("one, changed").with_header("surrogate-key", "post:1 list"),
    );
    origin.set(
        "/p/2/",
        Page::html("two, changed").with_header("surrogate-key", "post:2 list"),
    );
    let (_, v) = d
        .post(
            "/v1/regen",
            r#"{"targets": ["/p/1/", "/p/2/", "/p/3/"]}"#,
            None,
        )
        .await;
    d.job_done(v["job"].as_u64().unwrap(), None).await;
    wait_until(
        Duration::from_secs(15),
        "purges at all three hooks",
        || async {
            let r = received.lock().unwrap();
            ["/hook", "/fastly", "/cf"]
                .iter()
                .all(|p| r.requests.iter().any(|(path, _, _)| path == p))
        },
    )
    .await;
    let (requests, refused) = {
        let r = received.lock().unwrap();
        (r.requests.clone(), r.refused)
    };
    let body = |p: &str| {
        requests
            .iter()
            .filter(|(path, _, _)| path == p)
            .map(|(_, h, b)| (h.clone(), b.clone()))
            .collect::<Vec<_>>()
    };
    // Only the pages whose files changed (/p/3/ was unchanged).
    let hook = body("/hook");
    let urls: Vec<String> = hook
        .iter()
        .flat_map(|(_, b)| {
            b["urls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        urls.contains(&"/p/1/".to_string()) && urls.contains(&"/p/2/".to_string()),
        "{urls:?}"
    );
    assert!(!urls.contains(&"/p/3/".to_string()), "{urls:?}");
    let fastly = body("/fastly");
    assert_eq!(fastly[0].0["fastly-key"], "s3cret");
    let keys = fastly[0].1["surrogate_keys"].to_string();
    assert!(
        keys.contains("post:1") && keys.contains("post:2") && !keys.contains("path:"),
        "{keys}"
    );
    let cf = body("/cf")[0].1["files"].to_string();
    assert!(cf.contains("https://example.org/p/1/"), "{cf}");
    assert_eq!(refused, 1, "the first request was refused and retried");
    let (_, status) = d.get("/v1/status", None).await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["outputs"]["purge_failed"], 0, "{status}");
    assert!(
        v["outputs"]["purges_sent"].as_u64().unwrap() >= 3,
        "{status}"
    );
    assert_eq!(v["outputs"]["outbox"], 0, "{status}");
    drop(d);
}
