//! `kiln serve` in a real headless browser (Debian's chromium, driven over
//! the DevTools protocol): an edited template shows up in the open page
//! without anyone reloading it; a broken one shows an overlay with file and
//! line over the last good page. Also screenshots of the default site.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::browser::{Browser, chromium_args};
use crate::require;
use crate::util::{TestSite, default_site_copy, free_port};

/// A running `kiln serve`.
struct Serve {
    child: tokio::process::Child,
    url: String,
}

impl Serve {
    async fn start(site: &TestSite, args: &[&str]) -> Serve {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = args.to_vec();
        all.extend(["serve", "--listen", &listen]);
        let mut cmd = site.command(&all);
        cmd.stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if let Some(rest) = l.strip_prefix("kiln serve: ") {
                    return rest
                        .split(' ')
                        .next()
                        .unwrap()
                        .trim_end_matches('/')
                        .to_string();
                }
            }
            panic!("kiln serve exited before it was ready");
        })
        .await
        .expect("kiln serve did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Serve { child, url }
    }
}

/// The about page open in chromium, with `window.kilnMarker` set: gone
/// once the page reloads itself.
async fn open_about_marked(serve: &Serve) -> (Browser, crate::browser::Page) {
    let browser = Browser::open(&format!("{}/about/", serve.url)).await;
    let mut page = browser.page().await;
    page.wait_for(
        "the about page",
        "document.querySelector('h1') && document.querySelector('h1').textContent",
        |v| v.as_str().is_some_and(|s| s.contains("About")),
    )
    .await;
    page.eval("window.kilnMarker = 1").await;
    (browser, page)
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            crate::util::signal(pid, libc::SIGTERM);
        }
    }
}

#[cfg_attr(
    kiln_no_chromium,
    ignore = "chromium is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_template_changes_the_open_page_without_a_reload_and_errors_show_an_overlay() {
    require!("chromium");
    let site = default_site_copy();
    let serve = Serve::start(&site, &[]).await;
    // A marker that a reload by the test would wipe: the page must reload itself.
    let (browser, mut page) = open_about_marked(&serve).await;
    let template = site.path().join("templates/page.html");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replace(
            "<h1>{{ page.title }}</h1>",
            "<h1>{{ page.title }} (edited)</h1>",
        ),
    )
    .unwrap();
    page.wait_for(
        "the edit in the open page",
        "document.querySelector('h1') && document.querySelector('h1').textContent",
        |v| v.as_str().is_some_and(|s| s.contains("(edited)")),
    )
    .await;
    assert_eq!(
        page.eval("window.kilnMarker === undefined").await,
        true,
        "the page reloaded itself"
    );
    // The script is in the response, never in the file on disk (the
    // preview's own output: serve never writes into public/).
    let preview = site.state_dir().join("preview/public/about/index.html");
    assert!(
        !std::fs::read_to_string(preview)
            .unwrap()
            .contains("kiln-live-reload")
    );
    assert!(site.read("about/index.html").is_none());

    // A syntax error: an overlay with file and line, the last good page under it.
    let nav = site.path().join("templates/partials/nav.html");
    let good = std::fs::read_to_string(&nav).unwrap();
    std::fs::write(&nav, good.replace("{% endif %}", "{% endiff %}")).unwrap();
    let overlay = page
        .wait_for("the error overlay", "document.getElementById('kiln-error') && document.getElementById('kiln-error').textContent", |v| {
            v.as_str().is_some_and(|s| s.contains("partials/nav.html"))
        })
        .await;
    let overlay = overlay.as_str().unwrap();
    assert!(
        overlay.contains("partials/nav.html:4")
            && overlay.contains("unknown tag `{% endiff %}`")
            && overlay.contains("did you mean `{% endif %}`?")
            && overlay.contains("^^^"),
        "{overlay}"
    );
    let h1 = page.eval("document.querySelector('h1').textContent").await;
    assert!(
        h1.as_str().unwrap().contains("(edited)"),
        "the last good page stays: {h1}"
    );
    // Fixed: the overlay goes.
    std::fs::write(&nav, good).unwrap();
    page.wait_for(
        "the overlay to go",
        "document.getElementById('kiln-error') === null",
        |v| v == &serde_json::Value::Bool(true),
    )
    .await;
    // An error only rendering shows (an unknown filter): the same overlay,
    // pointing at the line, and gone once fixed.
    let with_filter = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        with_filter.replace(
            "{{ page.title }} (edited)",
            "{{ page.title | shout }} (edited)",
        ),
    )
    .unwrap();
    let overlay = page
        .wait_for("the render error overlay", "document.getElementById('kiln-error') && document.getElementById('kiln-error').textContent", |v| {
            v.as_str().is_some_and(|s| s.contains("unknown filter"))
        })
        .await;
    let overlay = overlay.as_str().unwrap();
    assert!(
        overlay.contains("/about/ does not render")
            && overlay.contains("page.html:")
            && overlay.contains("unknown filter `shout`")
            && overlay.contains("^^^"),
        "{overlay}"
    );
    std::fs::write(&template, with_filter).unwrap();
    page.wait_for(
        "the render error overlay to go",
        "document.getElementById('kiln-error') === null",
        |v| v == &serde_json::Value::Bool(true),
    )
    .await;
    drop(browser);
    drop(serve);
}

#[cfg_attr(
    kiln_no_chromium,
    ignore = "chromium is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starter_looks_right_at_desktop_and_mobile_widths() {
    require!("chromium");
    // What a newcomer gets: `kiln init --render` in an empty directory.
    let site = TestSite {
        dir: tempfile::tempdir().unwrap(),
    };
    let init = site.kiln(&["init", "--render"]).await;
    assert_eq!(init.code, 0, "{}", init.all());
    let serve = Serve::start(&site, &[]).await;
    let shots = tempfile::tempdir().unwrap();
    for (name, size, width, height) in [
        ("desktop", "1280,900", 1280, 900),
        ("mobile", "390,844", 390, 844),
    ] {
        for (page, path) in [
            ("home", "/"),
            ("post", "/posts/reading-a-firing-schedule/"),
            ("404", "/no-such-page/"),
        ] {
            // Measured in the page: styled, nothing wider than the screen,
            // the navigation and the heading visible.
            let browser = Browser::open_sized(&format!("{}{path}", serve.url), size).await;
            let mut tab = browser.page().await;
            tab.emulate_screen(width, height, name == "mobile").await;
            let facts = tab
                .wait_for(
                    "the page's layout",
                    "document.readyState === 'complete' && document.querySelector('h1') ? JSON.stringify({
                        inner: window.innerWidth,
                        scroll: document.documentElement.scrollWidth,
                        rules: Array.from(document.styleSheets).reduce((n, s) => n + s.cssRules.length, 0),
                        font: getComputedStyle(document.body).fontFamily,
                        nav: (document.querySelector('nav') || {}).offsetHeight || 0,
                        h1: parseFloat(getComputedStyle(document.querySelector('h1')).fontSize),
                        body: parseFloat(getComputedStyle(document.body).fontSize),
                    }) : null",
                    // Loaded and styled: a page that reloads itself while
                    // it loads (the preview settling) is waited for, and
                    // one whose stylesheet never applies times out here
                    // with its last measurements.
                    |v| {
                        v.as_str()
                            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                            .is_some_and(|f| f["rules"].as_u64().unwrap_or(0) > 0)
                    },
                )
                .await;
            let f: serde_json::Value = serde_json::from_str(facts.as_str().unwrap()).unwrap();
            let at = format!("{page} at {name}: {f}");
            assert_eq!(f["inner"], width, "{at}");
            assert!(
                f["scroll"].as_u64() <= f["inner"].as_u64(),
                "wider than the screen: {at}"
            );
            assert!(
                f["rules"].as_u64().unwrap() > 20,
                "the stylesheet applies: {at}"
            );
            assert!(!f["font"].as_str().unwrap().starts_with("\"Times"), "{at}");
            assert!(f["nav"].as_u64().unwrap() > 0, "the navigation shows: {at}");
            assert!(
                f["h1"].as_f64().unwrap() > f["body"].as_f64().unwrap() * 1.3,
                "{at}"
            );
            drop(browser);
            let png = shots.path().join(format!("{page}-{name}.png"));
            let profile = tempfile::tempdir().unwrap();
            let out = tokio::process::Command::new("chromium")
                .args(chromium_args(profile.path()))
                .arg(format!("--window-size={size}"))
                .arg(format!("--screenshot={}", png.display()))
                .arg(format!("{}{path}", serve.url))
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let bytes = std::fs::read(&png).unwrap();
            assert_eq!(
                &bytes[..8],
                b"\x89PNG\r\n\x1a\n",
                "{page} at {name} is a PNG"
            );
            if let Ok(dir) = std::env::var("KILN_SCREENSHOTS") {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::copy(
                    &png,
                    std::path::Path::new(&dir).join(png.file_name().unwrap()),
                )
                .unwrap();
            }
        }
    }
    drop(serve);
}

/// Fetch mode: baked files from disk, recorded redirects as redirects,
/// everything else from the app, as the nginx block would do it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_mode_serves_baked_files_and_proxies_the_rest() {
    let origin = crate::util::Origin::start(vec![
        (
            "/",
            crate::util::Page::html("<a href=\"/old\">o</a><a href=\"/feed.xml\">f</a>"),
        ),
        (
            "/old",
            crate::util::Page::html("")
                .status(301)
                .with_header("location", "/new/"),
        ),
        ("/new/", crate::util::Page::html("<p>new</p>")),
        (
            "/feed.xml",
            crate::util::Page::html("<rss/>").typed("application/rss+xml"),
        ),
        (
            "/live/",
            crate::util::Page::html("<p>live from the app</p>"),
        ),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    origin.reset_hits();
    let serve = Serve::start(&site, &[]).await;
    let http = crate::util::client();
    let r = http
        .get(format!("{}/new/", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-kiln"], "static");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<p>new</p><script data-kiln-live-reload>")
    );
    let r = http.get(format!("{}/old", serve.url)).send().await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (301, "/new/")
    );
    let r = http
        .get(format!("{}/feed.xml", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/rss+xml");
    assert_eq!(origin.total_hits(), 0, "baked pages come from disk");
    let r = http
        .get(format!("{}/live/", serve.url))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-kiln").is_none());
    assert!(r.text().await.unwrap().contains("live from the app"));
    assert_eq!(origin.hits("/live/"), 1);
    assert!(
        !site
            .read("new/index.html")
            .unwrap()
            .contains("kiln-live-reload"),
        "never written to the output"
    );
    drop(serve);
}

#[cfg_attr(
    kiln_no_chromium,
    ignore = "chromium is not on PATH: install it (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_site_toml_is_applied_and_a_broken_one_is_shown() {
    require!("chromium");
    let site = default_site_copy();
    let serve = Serve::start(&site, &[]).await;
    let get = |path: &str| {
        let url = format!("{}{path}", serve.url);
        async move {
            match reqwest::get(&url).await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            }
        }
    };
    assert_eq!(get("/all/").await, 404);
    let (browser, mut page) = open_about_marked(&serve).await;
    // A new route: served once site.toml is saved, and the open page reloads.
    let toml_path = site.path().join("site.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    let with_route = format!(
        "{toml}\n[[render]]\ntemplate = \"archive.html\"\nurl = \"/all/\"\nitems = [\"posts\"]\n"
    );
    std::fs::write(&toml_path, &with_route).unwrap();
    crate::util::wait_until(
        Duration::from_secs(30),
        "the new route to be served",
        || async { get("/all/").await == 200 },
    )
    .await;
    page.wait_for(
        "the open page to reload after the restart",
        "window.kilnMarker === undefined",
        |v| v == &serde_json::Value::Bool(true),
    )
    .await;
    // A broken site.toml: shown over the page, the site still served.
    std::fs::write(&toml_path, format!("{with_route}\n[nosuchkey]\nx = 1\n")).unwrap();
    let overlay = page
        .wait_for(
            "the config error overlay",
            "document.getElementById('kiln-error') && document.getElementById('kiln-error').textContent",
            |v| v.as_str().is_some_and(|s| s.contains("site.toml")),
        )
        .await;
    assert!(overlay.as_str().unwrap().contains("nosuchkey"), "{overlay}");
    assert_eq!(get("/all/").await, 200);
    std::fs::write(&toml_path, &with_route).unwrap();
    page.wait_for(
        "the overlay to go",
        "document.getElementById('kiln-error') === null",
        |v| v == &serde_json::Value::Bool(true),
    )
    .await;
    drop(browser);
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_site_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no site.toml in") && err.contains("kiln init --render"),
        "{err}"
    );
}

/// `kiln serve` previews into a place of its own: a draft shown with
/// `--drafts` never reaches the output nginx serves, which it does not
/// touch at all (it used to render into it, drafts included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_previews_drafts_without_touching_the_served_output() {
    let site = default_site_copy();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let before = crate::util::snapshot(&site);
    std::fs::write(
        site.path().join("content/posts/secret-plans.md"),
        "---\ntitle: Secret plans\ndate: 2026-04-01\ntags: [kilns]\ndraft: true\n---\nNot yet.\n",
    )
    .unwrap();
    let serve = Serve::start(&site, &["--drafts"]).await;
    let r = reqwest::get(format!("{}/posts/secret-plans/", serve.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Secret plans"));
    let changed = crate::util::changed(&before, &crate::util::snapshot(&site));
    assert!(changed.is_empty(), "the served output changed: {changed:?}");
    drop(serve);
    // A build afterwards publishes no draft either.
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(site.read("posts/secret-plans/index.html").is_none());
}

/// `kiln serve` gives a site's images, fonts, media and documents the
/// types nginx's own mime.types gives them (it served PNG, WebP and WOFF2
/// as application/octet-stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_types_static_files_as_nginx_does() {
    let Ok(mime) = std::fs::read_to_string("/etc/nginx/mime.types") else {
        require!("nginx");
        return;
    };
    // extension → type, from nginx's own map.
    let mut nginx = std::collections::HashMap::new();
    for line in mime.lines() {
        let mut words = line.trim().trim_end_matches(';').split_whitespace();
        if let Some(media) = words.next().filter(|m| m.contains('/')) {
            for ext in words {
                nginx.insert(ext.to_string(), media.to_string());
            }
        }
    }
    let site = crate::util::default_site_copy();
    let exts = [
        "png", "jpg", "gif", "webp", "avif", "ico", "woff", "woff2", "pdf", "wasm", "mp4", "webm",
        "mp3", "ogg", "zip", "svg", "css", "js", "json", "txt",
    ];
    std::fs::create_dir_all(site.path().join("static/files")).unwrap();
    for ext in exts {
        std::fs::write(site.path().join(format!("static/files/a.{ext}")), b"x").unwrap();
    }
    let serve = Serve::start(&site, &[]).await;
    let http = crate::util::client();
    for ext in exts {
        let r = http
            .get(format!("{}/files/a.{ext}", serve.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ext}");
        let got = r.headers()["content-type"].to_str().unwrap().to_string();
        let media = got.split(';').next().unwrap().trim();
        assert_eq!(
            Some(media),
            nginx.get(ext).map(String::as_str),
            "a.{ext}: {got}"
        );
    }
}
