//! `kiln init`: a working site from nothing, never over existing files.

use crate::util::{Origin, Page, TestSite};

fn empty() -> TestSite {
    TestSite {
        dir: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_render_makes_a_site_that_builds_and_never_overwrites() {
    let site = empty();
    let run = site.kiln(&["init", "--render"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(site.kiln(&["check"]).await.code, 0);
    let build = site.kiln(&["build"]).await;
    assert_eq!(build.code, 0, "{}", build.all());
    // The starter is the bundled site, file for file (its first comment
    // aside), so a newcomer starts from the styled one.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bundled: Vec<String> = walkdir::WalkDir::new(root.join("templates"))
        .into_iter()
        .chain(walkdir::WalkDir::new(root.join("content")))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).unwrap().display().to_string())
        .collect();
    bundled.sort();
    let mut written: Vec<String> = walkdir::WalkDir::new(site.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(site.path())
                .unwrap()
                .display()
                .to_string()
        })
        .filter(|p| p.starts_with("templates/") || p.starts_with("content/"))
        .collect();
    written.sort();
    assert_eq!(
        written, bundled,
        "kiln init --render writes the bundled site"
    );
    for rel in &bundled {
        assert_eq!(
            std::fs::read(site.path().join(rel)).unwrap(),
            std::fs::read(root.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert!(
        site.read("posts/reading-a-firing-schedule/index.html")
            .is_some()
    );
    assert!(site.read("404.html").is_some());
    assert!(site.read("feed.xml").is_some());
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    let again = site.kiln(&["init", "--render"]).await;
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again.stderr.contains("refusing to overwrite site.toml"),
        "{}",
        again.all()
    );
    assert_eq!(
        std::fs::read_to_string(site.path().join("site.toml")).unwrap(),
        toml
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_origin_writes_a_commented_fetch_config() {
    let origin = Origin::start(vec![("/", Page::html("<p>app</p>"))]).await;
    let site = empty();
    let run = site.kiln(&["init", "--origin", &origin.url()]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    assert!(
        toml.contains(&format!("url = \"{}\"", origin.url())) && toml.contains("# "),
        "{toml}"
    );
    assert!(!site.path().join("templates").exists());
    let build = site.kiln(&["build"]).await;
    assert_eq!(build.code, 0, "{}", build.all());
    assert_eq!(site.read("index.html").unwrap(), "<p>app</p>");
    // Without a choice and without a terminal: say what to pass.
    let other = empty();
    let run = other.kiln(&["init"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--origin URL") && run.stderr.contains("--render"),
        "{}",
        run.all()
    );
}

/// `kiln init --origin` finds the site's public address when it is not the
/// origin's (an app that redirects any other Host to its `home`, as
/// WordPress does, or a home page whose canonical link names it), writes it
/// as `[site] url`, and the site then builds whole as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_origin_finds_the_public_address() {
    let origin = Origin::start(vec![
        (
            "/",
            Page::html("<a href=\"https://example.org/about/\">about</a>"),
        ),
        ("/about/", Page::html("<p>about</p>")),
    ])
    .await;
    origin.state.lock().unwrap().canonical_host = Some("example.org".into());
    let site = empty();
    let run = site.kiln(&["init", "--origin", &origin.url()]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    assert!(toml.contains("\nurl = \"https://example.org\""), "{toml}");
    let build = site.kiln(&["build"]).await;
    assert_eq!(build.code, 0, "{}", build.all());
    assert_eq!(
        site.read("about/index.html").as_deref(),
        Some("<p>about</p>")
    );

    // A canonical link on the home page names it too.
    let origin = Origin::start(vec![(
        "/",
        Page::html("<head><link rel=\"canonical\" href=\"https://blog.example.net/\"></head>"),
    )])
    .await;
    let site = empty();
    let run = site.kiln(&["init", "--origin", &origin.url()]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    assert!(
        toml.contains("\nurl = \"https://blog.example.net\""),
        "{toml}"
    );
}
