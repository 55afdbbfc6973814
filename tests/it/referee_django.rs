//! The request referee (guarantee 12, docs/architecture.md) on a real app:
//! the example Django blog (a `?page=N` Paginator, search, feeds, a
//! logged-in editor) behind nginx with kiln's block and a daemon. Each seed
//! makes random edits through the ORM (kiln-django tells the daemon); at
//! quiescence every request of a corpus goes through nginx and straight to
//! Django with the same Host and headers, and what a visitor sees must be
//! the same: status, media type, `Location`, decoded body.
//!
//! CI runs seeds 1-3; a campaign: `KILN_REQUEST_SEEDS=1-50 cargo test
//! --test it request_referee_django`.

use std::collections::BTreeSet;

use crate::django::{blog_site, django_available, manage, runserver};
use crate::require;
use crate::util::{Nginx, client, free_port};
use crate::visitor::{Ask, Tally, quiet, see, seeds};

/// The post ids the app lists now, from its own list pages.
async fn listed_posts(http: &reqwest::Client, django: &str, host: &str) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    for page in 1..100 {
        let ask = Ask {
            head: false,
            path: format!("/?page={page}"),
            gzip: false,
            cookie: None,
        };
        let (seen, _) = see(http, django, host, &ask).await;
        for part in seen.body.split("href=\"/posts/").skip(1) {
            if let Some(id) = part.split('/').next().and_then(|n| n.parse().ok()) {
                ids.insert(id);
            }
        }
        if !seen.body.contains(">older</a>") {
            break;
        }
    }
    ids
}

/// Logs the demo editor in, straight at Django: its cookies.
async fn log_in(http: &reqwest::Client, django: &str, host: &str) -> String {
    let r = http
        .get(format!("{django}/accounts/login/"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    let csrf = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let form = r.text().await.unwrap();
    let token = form
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let r = http
        .post(format!("{django}/accounts/login/"))
        .header("host", host)
        .header("cookie", &csrf)
        .header("origin", format!("http://{host}"))
        .header("referer", format!("http://{host}/accounts/login/"))
        .form(&[
            ("username", "editor"),
            ("password", "field-notes"),
            ("csrfmiddlewaretoken", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "login");
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("sessionid="))
        .expect("a session cookie");
    format!("{csrf}; {session}")
}

/// The requests a visitor might send. Every path (the site's, and each
/// post `ever` listed, deleted ones included) is asked for plainly; the
/// site's paths and a seeded sample of posts also with every variant: query
/// strings (tracking parameters, `?page=N`, an unknown parameter), gzip,
/// HEAD and the logged-in editor's cookie. Bounded per seed however many
/// posts a campaign makes.
fn corpus(seed: u64, ever: &BTreeSet<u64>, session: &str) -> Vec<Ask> {
    let ask = |path: String| Ask {
        head: false,
        path,
        gzip: false,
        cookie: None,
    };
    let site: Vec<String> = [
        "/",
        "/archive/",
        "/feed.xml",
        "/search/",
        "/nope/",
        "/posts/999999/",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let post_paths = |id: &u64| [format!("/posts/{id}/"), format!("/posts/{id}/feed/")];
    let mut asks: Vec<Ask> = site.iter().cloned().map(ask).collect();
    asks.extend(ever.iter().flat_map(post_paths).map(ask));
    // A small LCG: the same seed samples the same posts.
    let ids: Vec<&u64> = ever.iter().collect();
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut sampled = site.clone();
    for _ in 0..ids.len().min(4) {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        sampled.extend(post_paths(ids[(state >> 33) as usize % ids.len()]));
    }
    for path in &sampled {
        for query in ["?utm_source=news&fbclid=x1", "?page=2", "?x=1"] {
            asks.push(ask(format!("{path}{query}")));
        }
        asks.push(Ask {
            gzip: true,
            ..ask(path.clone())
        });
        asks.push(Ask {
            head: true,
            ..ask(path.clone())
        });
        asks.push(Ask {
            cookie: Some(session.to_string()),
            ..ask(path.clone())
        });
    }
    for query in ["?page=3", "?page=abc", "?page=2&utm_source=news"] {
        asks.push(Ask {
            gzip: true,
            ..ask(format!("/{query}"))
        });
    }
    for word in ["heron", "rain", "zzz"] {
        asks.push(ask(format!("/search/?q={word}")));
    }
    asks
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_referee_django_blog() {
    require!("nginx");
    require!("python3");
    if !django_available() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "Django is required under CI=true"
        );
        eprintln!("\n*** SKIPPED: Django not importable ***\n");
        return;
    }
    let site = blog_site();
    let nginx_port = free_port();
    let host = format!("127.0.0.1:{nginx_port}");
    // The public host is nginx's: the app writes it into feeds, and kiln
    // asks with it.
    let toml = site.path().join("site.toml");
    let config = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("[origin]\n", &format!("[origin]\nhost = \"{host}\"\n"));
    std::fs::write(&toml, config).unwrap();
    let django_port = free_port();
    let origin = format!("http://127.0.0.1:{django_port}");
    let daemon = site.daemon_with(&["--origin", &origin], &[]).await;
    let _django = runserver(&site, django_port, &daemon.http, None).await;
    let run = site.kiln(&["--origin", &origin, "build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let (nginx, _) = Nginx::for_site_on(
        nginx_port,
        &site,
        &["--origin", &origin],
        &["--fill", daemon.http.trim_start_matches("http://")],
    )
    .await;
    let http = client();
    let session = log_in(&http, &origin, &host).await;
    let mut ever = BTreeSet::new();
    let mut tally = Tally::default();
    for seed in seeds() {
        let out = manage(
            site.path(),
            &[("KILN_URL", daemon.http.clone())],
            &["referee_edit", "--seed", &seed.to_string()],
        );
        let edits = String::from_utf8_lossy(&out.stdout).trim().to_string();
        quiet(&http, &daemon.http).await;
        ever.extend(listed_posts(&http, &origin, &host).await);
        // One at a time: runserver is the app.
        let context = format!("seed {seed} ({edits})");
        let asks = corpus(seed, &ever, &session);
        tally
            .ask(
                &http,
                &nginx.url(""),
                ("django", &origin),
                &host,
                asks,
                1,
                &context,
            )
            .await;
        // A fill the corpus caused settles before the next edits.
        quiet(&http, &daemon.http).await;
    }
    tally.assert_clean("Django blog", 4);
    drop(nginx);
}
