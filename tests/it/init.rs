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
    assert!(
        site.read("posts/hello/index.html")
            .unwrap()
            .contains("Hello, kiln")
    );
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
