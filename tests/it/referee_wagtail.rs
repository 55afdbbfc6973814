//! The request referee (guarantee 12) on real Wagtail: the kiln-django test
//! site (integrations/django/tests_wagtail: a menu of pages, two blog
//! indexes, posts with tags and author snippets, routable tag pages)
//! served by `runserver`, with kiln-django's signals and automatic
//! dependency capture, behind nginx with kiln's block and a daemon. Each
//! seed publishes, unpublishes, moves, deletes, retitles, retags, renames
//! the menu page and an author through Wagtail's API; at quiescence every
//! request of a corpus goes through nginx and straight to Wagtail.
//!
//! CI runs seeds 1-3 (each makes the kinds the issues name); a campaign:
//! `KILN_REQUEST_SEEDS=1-50 cargo test --test it request_referee_wagtail`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::require;
use crate::util::{Nginx, TestSite, client, free_port, open_up, wait_for_port};
use crate::visitor::{Ask, Tally, quiet, see, seeds};

fn django_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/django")
}

fn wagtail_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import wagtail, django"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "Wagtail is required under CI=true: python3 -m pip install wagtail"
        );
        eprintln!("\n*** SKIPPED: Wagtail not importable ***\n");
    }
    ok
}

/// `python3 -m <args>` in the package's directory, on the site's database.
fn python(db: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new("python3");
    c.args(args)
        .current_dir(django_dir())
        .env("PYTHONPATH", django_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("DJANGO_SETTINGS_MODULE", "tests_wagtail.site_settings")
        .env("KILN_WAGTAIL_DB", db)
        .env_remove("KILN_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "python3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every page path the site links to from its pages, found by following
/// links from `/` at Wagtail directly (the truth kiln is compared with).
async fn site_paths(http: &reqwest::Client, origin: &str, host: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec!["/".to_string()];
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) || seen.len() > 500 {
            continue;
        }
        let ask = Ask {
            head: false,
            path,
            gzip: false,
            cookie: None,
        };
        let (page, _) = see(http, origin, host, &ask).await;
        for part in page.body.split("href=\"").skip(1) {
            if let Some(link) = part.split('"').next() {
                let link = link.trim_start_matches(&format!("http://{host}"));
                if link.starts_with('/') && !seen.contains(link) {
                    todo.push(link.to_string());
                }
            }
        }
    }
    seen
}

fn corpus(seed: u64, ever: &BTreeSet<String>) -> Vec<Ask> {
    let ask = |path: String| Ask {
        head: false,
        path,
        gzip: false,
        cookie: None,
    };
    let mut asks: Vec<Ask> = ever.iter().cloned().map(ask).collect();
    for p in ["/nope/", "/blog/nope/", "/blog/tags/nope/", "/?q=x"] {
        asks.push(ask(p.to_string()));
    }
    let all: Vec<&String> = ever.iter().collect();
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    for _ in 0..5 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let path = all[(state >> 33) as usize % all.len()].clone();
        asks.push(ask(format!("{path}?utm_source=news")));
        asks.push(ask(format!("{path}?page=2")));
        asks.push(Ask {
            gzip: true,
            ..ask(path.clone())
        });
        asks.push(Ask {
            head: true,
            ..ask(path.clone())
        });
        asks.push(Ask {
            cookie: Some("sessionid=someone".into()),
            ..ask(path)
        });
    }
    asks
}

#[cfg_attr(
    kiln_no_nginx,
    ignore = "nginx is not on PATH: install it (bash .ci/run does)"
)]
#[cfg_attr(
    kiln_no_wagtail,
    ignore = "Wagtail is not importable: python3 -m pip install wagtail (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_referee_wagtail() {
    require!("nginx");
    require!("python3");
    if !wagtail_available() {
        return;
    }
    let nginx_port = free_port();
    let host = format!("127.0.0.1:{nginx_port}");
    let wagtail_port = free_port();
    let origin = format!("http://127.0.0.1:{wagtail_port}");
    let site = TestSite::new(&format!(
        "[origin]\nurl = \"{origin}\"\nhost = \"{host}\"\n[crawl]\nseeds = [\"/\"]\n[output]\nprecompress = [\"gzip\"]\n[daemon]\ndebounce = \"20ms\"\n"
    ));
    open_up(site.path());
    let db = site.path().join("wagtail.sqlite3");
    let port = nginx_port.to_string();
    python(&db, &[], &["-m", "django", "migrate", "-v0"]);
    python(
        &db,
        &[("KILN_WAGTAIL_PORT", &port)],
        &["-m", "tests_wagtail.referee", "seed"],
    );
    let daemon = site.daemon(&[]).await;
    let _wagtail = tokio::process::Command::new("python3")
        .args(["-m", "django", "runserver", "--noreload"])
        .arg(format!("127.0.0.1:{wagtail_port}"))
        .current_dir(django_dir())
        .env("PYTHONPATH", django_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("DJANGO_SETTINGS_MODULE", "tests_wagtail.site_settings")
        .env("KILN_WAGTAIL_DB", &db)
        .env("KILN_URL", &daemon.http)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(wagtail_port, "Wagtail to listen").await;
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let (nginx, _) = Nginx::for_site_on(nginx_port, &site, &[], &["--fill", "off"]).await;
    let http = client();
    let mut ever = site_paths(&http, &origin, &host).await;
    assert!(ever.len() > 30, "the site: {ever:?}");

    let mut tally = Tally::default();
    for seed in seeds() {
        let out = python(
            &db,
            &[("KILN_URL", &daemon.http)],
            &["-m", "tests_wagtail.referee", "edit", &seed.to_string()],
        );
        let edits = String::from_utf8_lossy(&out.stdout).trim().to_string();
        quiet(&http, &daemon.http).await;
        ever.extend(site_paths(&http, &origin, &host).await);
        let context = format!("seed {seed} ({edits})");
        tally
            .ask(
                &http,
                &nginx.url(""),
                ("wagtail", &origin),
                &host,
                corpus(seed, &ever),
                4,
                &context,
            )
            .await;
        quiet(&http, &daemon.http).await;
    }
    tally.assert_clean("Wagtail", 2);
    drop(nginx);
}
