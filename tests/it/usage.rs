//! Messages that teach: problems found before work starts, said once, with
//! what to do.

use crate::util::{Origin, Page, TestSite, default_site_copy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_where_build_would_and_points_at_the_line() {
    let site = default_site_copy();
    assert_eq!(site.kiln(&["check"]).await.code, 0);
    // A template that does not parse.
    let nav = site.path().join("templates/partials/nav.html");
    let good = std::fs::read_to_string(&nav).unwrap();
    std::fs::write(&nav, good.replace("{% endif %}", "{% endiff %}")).unwrap();
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("partials/nav.html:4"), "{}", run.all());
    std::fs::write(&nav, good).unwrap();
    // Front matter with an error on line 4 of the file (not of the block).
    let post = site.path().join("content/posts/reclaiming-clay.md");
    let text = std::fs::read_to_string(&post).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[3].starts_with("tags:"), "{text}");
    std::fs::write(
        &post,
        text.replacen("tags: [clay, studio]", "tags: [clay, studio", 1),
    )
    .unwrap();
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    // The parser's excerpt numbers lines as the file does (line 4 is `tags:`).
    assert!(
        run.stderr.contains("reclaiming-clay.md") && run.stderr.contains("4 | tags: [clay, studio"),
        "{}",
        run.all()
    );
    std::fs::write(&post, &text).unwrap();
    // A URL placeholder the data does not have.
    let toml = site.path().join("site.toml");
    let cfg = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        cfg.replace(
            "url = \"/posts/{slug}/\"",
            "url = \"/posts/{year}/{slug}/\"",
        ),
    )
    .unwrap();
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("year"), "{}", run.all());
    // A duration without a unit says how to write one.
    std::fs::write(&toml, cfg.replace("debounce = \"100ms\"", "debounce = 100")).unwrap();
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("daemon.debounce") && run.stderr.contains("\"100ms\""),
        "{}",
        run.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_origin_and_an_unwritable_output_are_said_once() {
    let origin = Origin::start(vec![("/", Page::html("x"))]).await;
    let url = origin.url();
    drop(origin);
    let site = TestSite::new(&format!("[origin]\nurl = \"{url}\"\nretries = 0\n"));
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout.matches(&url).count(),
        1,
        "the URL once per failed page: {}",
        run.all()
    );
    assert_eq!(
        run.stderr.matches("hint: nothing answered at").count(),
        1,
        "{}",
        run.all()
    );
    // An output that cannot be written: one message before any work.
    let run = site.kiln(&["build", "--out", "/proc/self"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("output directory") && run.stderr.contains("/proc/self"),
        "{}",
        run.all()
    );
    assert!(
        !run.stdout.contains("pages in"),
        "no work started: {}",
        run.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_runs_print_nothing_on_success() {
    let site = default_site_copy();
    let run = site.kiln(&["-q", "build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout.trim(), "", "{}", run.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_named_with_the_fix_exits_2_and_leaves_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let site = TestSite::new("[[render]]\ntemplate = \"p.html\"\nurl = \"/\"\n");
    std::fs::create_dir_all(site.path().join("templates")).unwrap();
    std::fs::write(site.path().join("templates/p.html"), "<p>hi</p>").unwrap();
    let run = site
        .kiln(&["daemon", "--listen", &format!("localhost:{port}")])
        .await;
    // The user's to fix, like a config error; and a first start that
    // failed leaves no output or state directory behind.
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(!site.out().exists(), "{}", run.all());
    assert!(!site.path().join(".kiln").exists(), "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("failed to listen on 127.0.0.1:{port}"))
            && run.stderr.contains("another program listens there")
            && run.stderr.contains("--listen 127.0.0.1:PORT"),
        "{}",
        run.all()
    );
}

/// One error, one exit code: a template that does not parse stops
/// `kiln build` with 2 (the user's to fix, like a config) whether the
/// build runs itself or hands its work to a running daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_error_exits_2_with_and_without_a_daemon() {
    let site = default_site_copy();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let nav = site.path().join("templates/partials/nav.html");
    let good = std::fs::read_to_string(&nav).unwrap();
    let broken = good.replace("{% endif %}", "{% endiff %}");
    let daemon = site.daemon_logged().await;
    std::fs::write(&nav, &broken).unwrap();
    let handed = site.kiln(&["build"]).await;
    assert_eq!(handed.code, 2, "beside a daemon:\n{}", handed.all());
    assert!(
        handed.stderr.contains("partials/nav.html"),
        "{}",
        handed.all()
    );
    drop(daemon);
    let alone = site.kiln(&["build"]).await;
    assert_eq!(alone.code, 2, "{}", alone.all());
    assert!(
        alone.stderr.contains("partials/nav.html"),
        "{}",
        alone.all()
    );
}

/// `kiln check` prints every section it resolved, the intake, the pool,
/// the buckets and the purge hooks included, and never a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_shows_the_outputs_and_the_intake_without_secrets() {
    let origin = Origin::start(vec![("/", Page::html("<p>home</p>"))]).await;
    let site = TestSite::for_origin(
        &origin,
        "[site]\nurl = \"https://example.org\"\n\
         [intake]\nredis = \"redis://:hunter2@127.0.0.1:6379/0\"\n\
         [[publish]]\nkind = \"s3\"\nbucket = \"site\"\nendpoint = \"http://127.0.0.1:9000\"\n\
         [[purge]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/purge\"\n",
    );
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    for want in [
        "public:  https://example.org/",
        "intake:  redis redis://:***@127.0.0.1:6379/0",
        "publish: s3 http://127.0.0.1:9000/ bucket site",
        "purge:   Webhook http://127.0.0.1:9/purge",
    ] {
        assert!(run.stdout.contains(want), "`{want}` in:\n{}", run.all());
    }
    assert!(!run.all().contains("hunter2"), "{}", run.all());
}
