//! `kiln build`, `regen`, `delete`, `status` against a real origin.

use std::time::Duration;

use crate::util::{Origin, Page, TestSite, linked_site};

async fn origin_with(n: usize, extra: Vec<(&str, Page)>) -> Origin {
    let pages = linked_site(n);
    let mut all: Vec<(&str, Page)> = pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    all.extend(extra);
    // The borrowed keys live until start() copies them.
    Origin::start(all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_crawl_is_byte_identical_to_the_origin_with_no_config_file() {
    let origin = origin_with(200, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let site = TestSite { dir };
    let out = site.out();
    let url = origin.url();
    let build_args = ["build", "--origin", &url, "--out", out.to_str().unwrap()];
    let run = site.kiln(&build_args).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("201 pages"), "{}", run.stdout);
    assert!(run.stdout.contains("201 written"), "{}", run.stdout);
    let files = site.files();
    assert_eq!(files.len(), 201, "{files:?}");
    for (path, page) in linked_site(200) {
        let rel = if path == "/" {
            "index.html".to_string()
        } else {
            format!("{}index.html", &path[1..])
        };
        let baked = std::fs::read(site.file(&rel)).unwrap();
        assert_eq!(baked, page.body, "{path} differs from the origin");
    }
    // Each page fetched exactly once, despite many links to it.
    assert_eq!(origin.hits("/p/7/"), 1);
    // Second build: everything unchanged, nothing rewritten.
    let inode = site.inode("p/7/index.html");
    let run = site.kiln(&build_args).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("201 unchanged"), "{}", run.stdout);
    assert_eq!(site.inode("p/7/index.html"), inode, "not rewritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regen_touches_only_the_named_pages_and_tags_resolve_through_the_index() {
    let origin = origin_with(20, vec![]).await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    origin.reset_hits();
    let before: Vec<_> = site
        .files()
        .iter()
        .map(|f| (f.clone(), site.inode(f)))
        .collect();
    origin.set(
        "/p/3/",
        Page::html("<p>changed 3</p>").with_header("surrogate-key", "post:3 list"),
    );
    origin.set(
        "/p/5/",
        Page::html("<p>changed 5</p>").with_header("surrogate-key", "post:5 list"),
    );

    let run = site.kiln(&["regen", "/p/3/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(origin.total_hits(), 1, "only /p/3/ fetched");
    assert_eq!(site.read("p/3/index.html").unwrap(), "<p>changed 3</p>");
    for (f, m) in &before {
        if f != "p/3/index.html" {
            assert_eq!(&site.inode(f), m, "{f} was rewritten");
        }
    }
    // tag:post:5 resolves to exactly /p/5/.
    origin.reset_hits();
    let dry = site.kiln(&["regen", "--dry-run", "tag:post:5"]).await;
    assert_eq!(
        dry.stdout.trim(),
        "regen  /p/5/\n1 to regenerate, 0 to delete; a page they link to that kiln has never seen is fetched too, and counted in the real run's summary",
        "{}",
        dry.all()
    );
    let run = site.kiln(&["regen", "tag:post:5"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(origin.total_hits(), 1);
    assert_eq!(site.read("p/5/index.html").unwrap(), "<p>changed 5</p>");
    // glob: uses the path tags.
    let dry = site.kiln(&["regen", "--dry-run", "glob:/p/1*/"]).await;
    let lines: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("regen "))
        .collect();
    assert_eq!(lines.len(), 11, "{}", dry.stdout); // /p/1/ and /p/10/../p/19/
    // explain shows the tags.
    let ex = site.kiln(&["explain", "/p/5/"]).await;
    assert!(ex.stdout.contains("tag:post:5"), "{}", ex.stdout);
    assert!(ex.stdout.contains("tag:path:/p/"), "{}", ex.stdout);
    // ...and whether the file is still what kiln baked (the stored hash).
    assert!(ex.stdout.contains("content: as baked"), "{}", ex.stdout);
    std::fs::write(site.file("p/5/index.html"), "edited by hand").unwrap();
    let ex = site.kiln(&["explain", "/p/5/"]).await;
    assert!(
        ex.stdout.contains("changed on disk since kiln baked it"),
        "{}",
        ex.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_keep_the_last_good_file_and_404_deletes_it() {
    let origin = origin_with(5, vec![]).await;
    let site = TestSite::for_origin(
        &origin,
        "[output]\nprecompress = [\"gzip\"]\nprecompress-min-bytes = 10\n",
    );
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let good = site.read("p/1/index.html").unwrap();
    assert!(site.file("p/1/index.html.gz").exists());

    origin.set("/p/1/", Page::html("oops").status(500));
    let run = site.kiln(&["regen", "/p/1/"]).await;
    assert_eq!(run.code, 1, "a failed page exits 1: {}", run.all());
    assert!(run.stdout.contains("failed  /p/1/"), "{}", run.stdout);
    assert!(run.stdout.contains("500"), "{}", run.stdout);
    assert_eq!(
        origin.hits("/p/1/"),
        1 + 2,
        "one build fetch, then two attempts (retries = 1)"
    );
    assert_eq!(
        site.read("p/1/index.html").unwrap(),
        good,
        "last good file kept"
    );

    // Origin down entirely: connection errors also keep the file.
    let status = site.kiln(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["pages"]["failed"], 1, "{}", status.stdout);

    origin.set("/p/1/", Page::html("gone").status(404));
    let run = site.kiln(&["regen", "/p/1/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("1 deleted"), "{}", run.stdout);
    assert!(!site.file("p/1/index.html").exists());
    assert!(
        !site.file("p/1/index.html.gz").exists(),
        "sibling removed too"
    );
    assert!(site.file("p/2/index.html").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_keeps_files() {
    let origin = origin_with(3, vec![]).await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let url = origin.url();
    origin.stop().await;
    let run = site.kiln(&["regen", "all", "--origin", &url]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("could not connect"), "{}", run.stdout);
    assert_eq!(site.files().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_pages_are_refused_and_reported() {
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/cookie/\">c</a><a href=\"/private/\">p</a><a href=\"/nostore/\">n</a><a href=\"/vary/\">v</a><a href=\"/form/\">f</a><a href=\"/fine/\">ok</a>")),
        ("/cookie/", Page::html("hello").with_header("set-cookie", "sessionid=abc; HttpOnly")),
        ("/private/", Page::html("hello").with_header("cache-control", "private, max-age=0")),
        ("/nostore/", Page::html("hello").with_header("cache-control", "no-store")),
        ("/vary/", Page::html("hello").with_header("vary", "Cookie")),
        ("/form/", Page::html("<form><input type=hidden name=\"csrfmiddlewaretoken\" value=\"s3cr3t\"></form>")),
        ("/fine/", Page::html("public")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "refusals are not failures: {}", run.all());
    assert!(run.stdout.contains("4 refused"), "{}", run.stdout);
    for (url, why) in [
        ("/cookie/", "Set-Cookie"),
        ("/private/", "private"),
        ("/nostore/", "no-store"),
        ("/form/", "csrfmiddlewaretoken"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(&format!("refused {url}")))
            .unwrap_or_else(|| panic!("{url} not reported: {}", run.stdout));
        assert!(line.contains(why), "{line}");
    }
    // `Vary: Cookie` on kiln's cookie-less request is the anonymous variant.
    assert_eq!(
        site.files(),
        vec!["fine/index.html", "index.html", "vary/index.html"]
    );
    let status = site.kiln(&["status"]).await;
    assert!(status.stdout.contains("refused: 4"), "{}", status.stdout);
    let json = site.kiln(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["anonymous_variants"], 1, "{v}");

    // The strict policy refuses it, and removes the file baked before.
    std::fs::write(
        site.path().join("site.toml"),
        format!(
            "[origin]\nurl = \"{}\"\n[safety]\nvary-cookie = \"refuse\"\n",
            origin.url()
        ),
    )
    .unwrap();
    let run = site.kiln(&["regen", "/vary/"]).await;
    assert!(
        run.stdout
            .contains("refused /vary/: response varies by Cookie"),
        "{}",
        run.all()
    );
    assert!(!site.file("vary/index.html").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_huge_bodies_and_slow_pages_end_with_clear_errors() {
    let huge = "x".repeat(300_000);
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/loop-a\">a</a><a href=\"/huge/\">h</a><a href=\"/slow/\">s</a><a href=\"/ok/\">ok</a>")),
        ("/loop-a", Page::html("").status(302).with_header("location", "/loop-b")),
        ("/loop-b", Page::html("").status(302).with_header("location", "/loop-a")),
        ("/huge/", Page::html(huge)),
        ("/slow/", Page::html("late").delay(Duration::from_secs(600))),
        ("/ok/", Page::html("fine")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "max-body = \"100KiB\"\n");
    // The slow page answers after 10 minutes: the run ending at all (the
    // helper gives it 2) is the origin timeout at work.
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let failed = |url: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(&format!("failed  {url}")))
            .unwrap_or_else(|| panic!("{url}: {}", run.stdout))
            .to_string()
    };
    assert!(
        failed("/loop-a").contains("redirect loop"),
        "{}",
        run.stdout
    );
    assert!(failed("/huge/").contains("max-body"), "{}", run.stdout);
    assert!(failed("/slow/").contains("timed out"), "{}", run.stdout);
    assert!(site.file("ok/index.html").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_trap_stops_at_the_configured_limits() {
    let origin = Origin::start(vec![("/", Page::html("<a href=\"/calendar/1/\">cal</a>"))]).await;
    let site = TestSite::for_origin(&origin, "[crawl]\nmax-pages = 50\n");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let n = site.files().len();
    assert!((40..=50).contains(&n), "stopped near max-pages: {n}");
    assert!(run.stdout.contains("max-pages"), "{}", run.stdout);

    // One page at a time: with parallel fetches a page can be reached first
    // by a longer path, so the depth a link is counted at depends on timing.
    let site = TestSite::for_origin(&origin, "concurrency = 1\n[crawl]\nmax-depth = 5\n");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    // depth 1 is /calendar/1/, each level adds one: depth 5 reaches /calendar/9/.
    assert_eq!(
        site.files().len(),
        1 + 9,
        "/ plus calendar pages to depth 5: {:?}",
        site.files()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_recorded_and_never_escape_the_root() {
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/a\">a</a><a href=\"/old/\">old</a><a href=\"/%2e%2e/%2e%2e/etc/\">x</a><a href=\"/ext/\">e</a><a href=\"/feed.xml\">f</a>")),
        ("/a", Page::html("").status(301).with_header("location", "/a/")),
        ("/a/", Page::html("A")),
        ("/old/", Page::html("").status(301).with_header("location", "/new/")),
        ("/new/", Page::html("NEW")),
        ("/ext/", Page::html("").status(302).with_header("location", "https://example.com/")),
        ("/feed.xml", Page::html("<rss/>").typed("application/rss+xml")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["build"]).await;
    assert_eq!(site.read("a/index.html").unwrap(), "A");
    assert_eq!(site.read("new/index.html").unwrap(), "NEW");
    assert_eq!(site.read("feed.xml").unwrap(), "<rss/>");
    assert!(!site.file("old/index.html").exists());
    assert!(!site.path().join("etc").exists());
    assert_eq!(
        site.files(),
        vec!["a/index.html", "feed.xml", "index.html", "new/index.html"],
        "{}",
        run.all()
    );
    let status = site.kiln(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["redirects"], 3, "{}", status.stdout);

    // A hostile target on the command line is refused up front, as bad
    // usage, and never reaches the index.
    let bad = site.kiln(&["regen", "/../../etc/passwd"]).await;
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("`..` segment"), "{}", bad.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_usage_exit_2_with_a_clear_message() {
    let site = TestSite::new("[origin]\nurl = \"http://127.0.0.1:1\"\ntimeout = \"forever\"\n");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("site.toml") && run.stderr.contains("origin.timeout"),
        "{}",
        run.stderr
    );

    let site = TestSite::new("[crawl]\nmax_pages = 3\n");
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("max_pages"), "{}", run.stderr);

    let site = TestSite::new("");
    let run = site.kiln(&["regen", "blog/"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("bad target `blog/`"), "{}", run.stderr);
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("--origin"),
        "no source explains the fix: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_file_and_stdin_targets_work() {
    let origin = origin_with(4, vec![]).await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let run = site.kiln(&["delete", "/p/2/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!site.file("p/2/index.html").exists());
    origin.reset_hits();
    let mut cmd = site.command(&["regen", "-"]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"# from a deploy hook\n/p/2/\ntag:post:3\n")
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(site.file("p/2/index.html").exists());
    assert_eq!(origin.hits("/p/2/"), 1);
    assert_eq!(origin.hits("/p/3/"), 1);
    assert_eq!(origin.total_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sitemap_seeds_are_followed_and_brotli_siblings_are_written() {
    let origin = Origin::start(vec![
        (
            "/sitemap.xml",
            Page::html(r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/only-in-sitemap/</loc></url></urlset>"#)
                .typed("application/xml"),
        ),
        ("/only-in-sitemap/", Page::html("found through the sitemap ".repeat(20))),
        ("/", Page::html("home, linking nowhere")),
    ])
    .await;
    let site = TestSite::for_origin(
        &origin,
        "[crawl]\nseeds = [\"/\", \"/sitemap.xml\"]\n[output]\nprecompress = [\"gzip\", \"br\"]\nprecompress-min-bytes = 100\n",
    );
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        site.read("only-in-sitemap/index.html").is_some(),
        "{:?}",
        site.files()
    );
    let br = std::fs::read(site.file("only-in-sitemap/index.html.br")).unwrap();
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut std::io::Cursor::new(br), &mut plain).unwrap();
    assert_eq!(
        plain,
        std::fs::read(site.file("only-in-sitemap/index.html")).unwrap()
    );
    assert!(
        !site.file("index.html.br").exists(),
        "tiny files get no sibling"
    );
    // Precompression turned off: siblings are removed on the next write, never left stale.
    std::fs::write(
        site.path().join("site.toml"),
        std::fs::read_to_string(site.path().join("site.toml"))
            .unwrap()
            .replace("[\"gzip\", \"br\"]", "[]"),
    )
    .unwrap();
    origin.set("/only-in-sitemap/", Page::html("changed ".repeat(30)));
    assert_eq!(site.kiln(&["regen", "/only-in-sitemap/"]).await.code, 0);
    assert!(!site.file("only-in-sitemap/index.html.br").exists());
    assert!(!site.file("only-in-sitemap/index.html.gz").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_chain_leaving_the_origin_records_every_hop() {
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/chain/\">c</a>")),
        ("/chain/", Page::html("was a page")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    assert!(site.file("chain/index.html").exists());
    origin.set(
        "/chain/",
        Page::html("").status(301).with_header("location", "/mid/"),
    );
    origin.set(
        "/mid/",
        Page::html("")
            .status(302)
            .with_header("location", "https://example.com/"),
    );
    let run = site.kiln(&["regen", "/chain/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        !site.file("chain/index.html").exists(),
        "a page that now redirects is removed"
    );
    for (url, to) in [("/chain/", "/mid/"), ("/mid/", "https://example.com/")] {
        let ex = site.kiln(&["explain", url]).await;
        assert!(
            ex.stdout.contains("status:  redirect"),
            "{url}: {}",
            ex.stdout
        );
        assert!(
            ex.stdout.contains(&format!("redirects to {to}")),
            "{url}: {}",
            ex.stdout
        );
    }
    let status = site.kiln(&["status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["redirects"], 2, "{}", status.stdout);
}

/// A re-bake asks with the baked copy's validators: an unchanged page costs
/// a 304 and no write; a changed one is fetched; a file removed by hand is
/// fetched whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_site_rebakes_with_304s_and_changes_are_still_found() {
    let mut pages = linked_site(20);
    for (path, page) in pages.iter_mut() {
        *page = page.clone().with_header(
            "etag",
            &format!(
                "\"v1-{}\"",
                path.len()
                    + path
                        .chars()
                        .filter(|c| c.is_ascii_digit())
                        .map(|c| c as usize)
                        .sum::<usize>()
            ),
        );
    }
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let before: Vec<_> = site
        .files()
        .iter()
        .map(|f| (f.clone(), site.inode(f)))
        .collect();
    origin.reset_hits();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("21 unchanged"), "{}", run.all());
    assert_eq!(origin.total_not_modified(), 21, "every page answered 304");
    let after: Vec<_> = site
        .files()
        .iter()
        .map(|f| (f.clone(), site.inode(f)))
        .collect();
    assert_eq!(before, after, "nothing rewritten");

    // A deeper page changes (new body, new ETag): found, fetched, written.
    origin.set(
        "/p/17/",
        Page::html("<p>changed</p><a href=\"/p/new/\">new</a>").with_header("etag", "\"v2\""),
    );
    origin.set("/p/new/", Page::html("<p>brand new</p>"));
    // And a file removed by hand is fetched whole, not revalidated.
    std::fs::remove_file(site.file("p/3/index.html")).unwrap();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        site.read("p/17/index.html").unwrap(),
        "<p>changed</p><a href=\"/p/new/\">new</a>"
    );
    assert_eq!(
        site.read("p/new/index.html").unwrap(),
        "<p>brand new</p>",
        "links of a changed page are followed"
    );
    assert!(site.file("p/3/index.html").exists());
    assert!(run.stdout.contains("3 written"), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sitemap_naming_another_host_is_said_not_skipped_silently() {
    let origin = Origin::start(vec![
        ("/", Page::html("<h1>home</h1>")),
        (
            "/sitemap.xml",
            Page::html("<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"><url><loc>http://localhost/blog/</loc></url></urlset>")
                .typed("application/xml"),
        ),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "[crawl]\nseeds = [\"/\", \"/sitemap.xml\"]\n");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("lists no URL on the origin")
            && run.stderr.contains("[site] url")
            && run.stderr.contains("http://localhost/blog/"),
        "{}",
        run.all()
    );
    // With the public address it names, the sitemap's pages are the site's.
    origin.set("/blog/", Page::html("<h1>blog</h1>"));
    let site = TestSite::for_origin(
        &origin,
        "[site]\nurl = \"http://localhost\"\n[crawl]\nseeds = [\"/\", \"/sitemap.xml\"]\n",
    );
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        site.read("blog/index.html").as_deref(),
        Some("<h1>blog</h1>"),
        "{}",
        run.all()
    );
}

/// A summary line's total ("N pages in …") and the sum of its parts.
fn summary_counts(stdout: &str) -> (usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.contains(" pages in "))
        .expect("a summary line");
    let head = line.split(" pages in ").next().unwrap();
    let total = head.rsplit(' ').next().unwrap().parse().unwrap();
    let parts = line.split("): ").nth(1).unwrap();
    let sum = parts
        .split(", ")
        .map(|p| p.split(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    (total, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_url_is_counted_once_and_the_daemon_reports_in_the_same_words() {
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/a/\">a</a><a href=\"/old/\">old</a><a href=\"/private/\">p</a><a href=\"/gone/\">g</a>")),
        ("/a/", Page::html("<p>a</p>")),
        ("/old/", Page::html("").status(301).with_header("location", "/a/")),
        ("/private/", Page::html("<p>mine</p>").with_header("set-cookie", "s=1")),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let (total, sum) = summary_counts(&run.stdout);
    assert_eq!(total, sum, "the parts add up: {}", run.stdout);
    assert_eq!(
        total, 5,
        "/, /a/, /old/ (a redirect), /private/ (refused), /gone/ (404): {}",
        run.stdout
    );
    // explain: the slip of a missing slash is caught, a redirect is no error.
    let run = site.kiln(&["explain", "/a"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("did you mean /a/?"), "{}", run.all());
    let run = site.kiln(&["explain", "/old/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("answer:  redirects to /a/") && !run.stdout.contains("error:"),
        "{}",
        run.stdout
    );

    // Handed to a daemon, the same run reports the same way.
    let d = site.daemon(&[]).await;
    let run = site.kiln(&["regen", "all"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.starts_with("daemon job "), "{}", run.stdout);
    let (total, sum) = summary_counts(&run.stdout);
    assert_eq!(total, sum, "the parts add up: {}", run.stdout);
    assert!(
        run.stdout.contains(" refused") && run.stdout.contains(" redirects"),
        "{}",
        run.stdout
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(20)).await, Some(0));
}

/// The public URL is not the origin's. An app that writes absolute links
/// on its public host and redirects any other Host there (WordPress's
/// `home` and its canonical redirect) used to bake one page; with `[site]
/// url` its links are the site's own, kiln asks with the public Host (and
/// `X-Forwarded-Proto`), so the app has no reason to redirect, and the
/// whole site is baked with no redirect recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_writes_its_public_url_is_baked_whole() {
    let origin = Origin::start(vec![
        (
            "/",
            Page::html(
                "<a href=\"https://example.org/a/\">a</a><a href=\"https://example.org/b/\">b</a>",
            ),
        ),
        ("/a/", Page::html("<p>a</p>")),
        (
            "/b/",
            Page::html("<a href=\"https://example.org/c/\">c</a>"),
        ),
        ("/c/", Page::html("<p>c</p>")),
    ])
    .await;
    origin.state.lock().unwrap().canonical_host = Some("example.org".into());
    let site = TestSite::for_origin(&origin, "[site]\nurl = \"https://example.org\"\n");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("4 written") && run.stdout.contains("0 redirects"),
        "{}",
        run.all()
    );
    assert_eq!(site.read("c/index.html").as_deref(), Some("<p>c</p>"));
    // The block answers for the public name.
    let block = site.kiln(&["nginx"]).await;
    assert!(
        block.stdout.contains("server_name example.org;"),
        "{}",
        block.stdout
    );
    // A bad value is named with the fix.
    let bad = TestSite::for_origin(&origin, "[site]\nurl = \"https://example.org/blog/\"\n");
    let run = bad.kiln(&["build"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.all().contains("site.url"), "{}", run.all());
}

/// A re-bake reads the known pages from the index in batches (guarantee
/// 13: its memory does not hold the site): a site of several batches is
/// asked for page by page with each page's own validators, every page
/// answers 304, none is missed or asked twice, and a page found by a link
/// before its batch is read still gets its validators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebake_of_many_batches_asks_every_known_page_once_with_its_validators() {
    const N: usize = 5000;
    let mut pages = Vec::new();
    // The home page links every page: each is found by a link in the
    // first build, and in a re-bake before its batch is read.
    let home: String = (0..N)
        .map(|i| format!("<a href=\"/p/{i}/\">{i}</a>"))
        .collect();
    pages.push((
        "/".to_string(),
        Page::html(home).with_header("etag", "\"home\""),
    ));
    for i in 0..N {
        pages.push((
            format!("/p/{i}/"),
            Page::html(format!("<p>{i}</p>")).with_header("etag", &format!("\"v-{i}\"")),
        ));
    }
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "");
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    origin.reset_hits();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("{} unchanged", N + 1)),
        "{}",
        run.all()
    );
    assert_eq!(
        origin.total_not_modified(),
        N + 1,
        "every page answered 304"
    );
    assert_eq!(origin.total_hits(), N + 1, "every page asked once");
    drop(site);
}
