//! End to end with the real parts: the Django example app, the kiln daemon,
//! and nginx with the config `kiln nginx` generates.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::require;
use crate::util::{client, free_port, open_up, wait_for_port, wait_until, Nginx, TestSite};

fn django_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import django"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn copy_example(to: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/django-blog");
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&src).unwrap();
        let s = rel.to_string_lossy();
        if s.contains("__pycache__")
            || s.ends_with(".sqlite3")
            || s.starts_with("public")
            || s.starts_with(".kiln")
        {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn manage(dir: &Path, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new("python3");
    c.arg("manage.py")
        .args(args)
        .current_dir(dir)
        .env("BLOG_DB", dir.join("db.sqlite3"));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "manage.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_blog_behind_nginx_stays_fresh_through_the_daemon() {
    require!("nginx");
    require!("python3");
    if !django_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("Django is required under CI=true: python3 -m pip install django");
        }
        eprintln!("\n*** SKIPPED: Django not importable; python3 -m pip install django ***\n");
        return;
    }
    let site = TestSite {
        dir: tempfile::tempdir().unwrap(),
    };
    copy_example(site.path());
    open_up(site.path());
    manage(site.path(), &[], &["migrate", "-v0"]);
    manage(site.path(), &[], &["seed_demo"]);

    let django_port = free_port();
    let origin = format!("http://127.0.0.1:{django_port}");
    // The daemon first: Django tells it about changes.
    let daemon = site.daemon_with(&["--origin", &origin], &[]).await;
    let kiln_bin = env!("CARGO_BIN_EXE_kiln").to_string();
    let site_toml = site.path().join("site.toml").display().to_string();
    let mut django = tokio::process::Command::new("python3")
        .args([
            "manage.py",
            "runserver",
            &format!("127.0.0.1:{django_port}"),
            "--noreload",
        ])
        .current_dir(site.path())
        .env("BLOG_DB", site.path().join("db.sqlite3"))
        .env("KILN_REGEN_URL", format!("{}/v1/regen", daemon.http))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(django_port, "Django to listen").await;

    let run = site.kiln(&["--origin", &origin, "build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("4 written"),
        "/, three posts: {}",
        run.stdout
    );

    let nginx_port = free_port();
    let snippet = site
        .kiln(&[
            "--origin",
            &origin,
            "nginx",
            "--listen",
            &format!("127.0.0.1:{nginx_port}"),
        ])
        .await;
    let nginx = Nginx::start(&snippet.stdout, nginx_port).await;
    let http = client();
    let get = |path: &str, cookie: Option<&str>| {
        let mut r = http.get(nginx.url(path));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };

    // A baked page is served by nginx from disk.
    let r = get("/posts/1/", None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kiln"], "static");
    assert!(r.headers().get("x-served-by").is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("Counting birds at dawn") && !page.contains("csrfmiddlewaretoken"));
    // An un-baked path falls through to Django.
    let r = get("/csrf/", None).await.unwrap();
    assert_eq!(r.headers()["x-served-by"], "django");
    let csrf_cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap()
        ["token"]
        .as_str()
        .unwrap()
        .to_string();
    // A visitor with a session cookie bypasses the static files.
    let r = get("/posts/1/", Some("sessionid=abc123")).await.unwrap();
    assert_eq!(r.headers()["x-served-by"], "django");
    assert!(r.headers().get("x-kiln").is_none());

    // Posting a comment through nginx: the post page shows it within 2 s.
    let started = Instant::now();
    let r = http
        .post(nginx.url("/posts/1/comment/"))
        .header("cookie", &csrf_cookie)
        .header("x-csrftoken", &token)
        .form(&[
            ("author", "Tove"),
            ("text", "Lovely morning, saw a hoopoe too."),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status() == 200,
        "comment POST: {}",
        r.status()
    );
    let mut fresh = false;
    while started.elapsed() < Duration::from_secs(2) {
        let r = get("/posts/1/", None).await.unwrap();
        if r.headers().get("x-kiln").is_some()
            && r.text().await.unwrap().contains("saw a hoopoe too")
        {
            fresh = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        fresh,
        "the baked post page did not show the comment within 2 s"
    );
    // The list page (which shows comment counts) followed too.
    wait_until(
        Duration::from_secs(5),
        "the list page to update",
        || async {
            get("/", None)
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("(2 comments)")
        },
    )
    .await;

    // Deleting a post through the ORM (a separate process, notifying via the spool).
    manage(
        site.path(),
        &[
            ("KILN_BIN", kiln_bin.clone()),
            ("KILN_CONFIG", site_toml.clone()),
        ],
        &[
            "shell",
            "-c",
            "from blog.models import Post; Post.objects.get(pk=2).delete()",
        ],
    );
    wait_until(
        Duration::from_secs(10),
        "the deleted post's page to go",
        || async { !site.file("posts/2/index.html").exists() },
    )
    .await;
    let r = get("/posts/2/", None).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["x-served-by"],
        "django",
        "nginx falls through to Django's 404"
    );
    wait_until(
        Duration::from_secs(5),
        "the list page to drop the post",
        || async {
            !get("/", None)
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("A week of rain")
        },
    )
    .await;

    // Django stops: baked pages are still served.
    django.start_kill().unwrap();
    django.wait().await.unwrap();
    let r = get("/posts/1/", None).await.unwrap();
    assert_eq!(r.status(), 200, "{}", nginx.error_log());
    assert!(r.text().await.unwrap().contains("saw a hoopoe too"));
    assert!(get("/", None).await.unwrap().status().is_success());
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(10)).await, Some(0));
}
