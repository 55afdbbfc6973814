//! Render mode on the bundled default site: correctness, template and data
//! dependency tracking through the daemon's watcher, syntax errors, releases.

use std::time::Duration;

use crate::util::{changed, default_site_copy, snapshot, wait_until};

fn parse_xml(text: &str) -> Vec<String> {
    // A real XML parser: any well-formedness error fails the test.
    let mut reader = quick_xml::Reader::from_str(text);
    let mut locs = Vec::new();
    let mut in_loc = false;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) => {
                in_loc = e.local_name().as_ref() == b"loc" || e.local_name().as_ref() == b"id"
            }
            quick_xml::events::Event::Text(t) if in_loc => {
                locs.push(t.decode().unwrap().into_owned())
            }
            quick_xml::events::Event::End(_) => in_loc = false,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    locs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_site_renders_correctly() {
    let site = default_site_copy();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("0 failed"), "{}", run.stdout);
    let posts = std::fs::read_dir(site.path().join("content/posts"))
        .unwrap()
        .count();
    let index = site.read("index.html").unwrap();
    assert!(index.contains("<title>Ember &amp; Clay</title>"), "{index}");
    assert!(index.contains("href=\"/posts/reading-a-firing-schedule/\""));
    assert!(index.contains(&format!("All {posts} posts")));
    let post = site
        .read("posts/why-our-celadon-crazes/index.html")
        .unwrap();
    assert!(post.contains("<h1>Why our celadon crazes (and how we fixed it)</h1>"));
    assert!(
        post.contains("<li>Replacing 5% of the nepheline"),
        "markdown rendered: {post}"
    );
    assert!(post.contains("href=\"/tags/glazes/\""));
    let tag = site.read("tags/kilns/index.html").unwrap();
    assert!(tag.contains("The new kiln controller") && !tag.contains("Wedging by hand"));
    assert!(
        site.read("about/index.html")
            .unwrap()
            .contains("two-wheel, one-kiln studio")
    );
    assert!(site.read("style.css").unwrap().contains("--clay"));

    let feed_ids = parse_xml(&site.read("feed.xml").unwrap());
    assert_eq!(
        feed_ids.len(),
        1 + posts,
        "feed id + one per entry: {feed_ids:?}"
    );
    let sitemap = parse_xml(&site.read("sitemap.xml").unwrap());
    let html_pages = site
        .files()
        .iter()
        .filter(|f| f.ends_with("index.html"))
        .count();
    assert_eq!(sitemap.len(), html_pages, "{sitemap:?}");
    for loc in &sitemap {
        let path = loc.strip_prefix("https://emberandclay.example").unwrap();
        let file = format!("{}index.html", &path[1..]);
        assert!(
            site.file(&file).exists(),
            "sitemap lists {loc} but {file} is missing"
        );
    }
    // Every internal link resolves to a baked file.
    for f in site.files().iter().filter(|f| f.ends_with(".html")) {
        let html = site.read(f).unwrap();
        for part in html.split("href=\"/").skip(1) {
            let target = part.split('"').next().unwrap();
            let file = if target.is_empty() || target.ends_with('/') {
                format!("{target}index.html")
            } else {
                target.to_string()
            };
            assert!(
                site.file(&file).exists(),
                "{f} links to /{target}, which was not baked"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_partial_regenerates_exactly_the_pages_that_use_it() {
    let site = default_site_copy();
    std::fs::write(
        site.path().join("site.toml"),
        std::fs::read_to_string(site.path().join("site.toml"))
            .unwrap()
            .replace("debounce = \"100ms\"", "debounce = \"50ms\""),
    )
    .unwrap();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let before = snapshot(&site);
    let d = site.daemon_logged().await;

    // post-meta is used by post.html directly and by macros.html (index, tag pages).
    let partial = site.path().join("templates/partials/post-meta.html");
    let text = std::fs::read_to_string(&partial).unwrap();
    std::fs::write(
        &partial,
        text.replace("<p class=\"meta\">", "<p class=\"meta byline\">"),
    )
    .unwrap();
    let mut expected: Vec<String> = before
        .keys()
        .filter(|f| f.starts_with("posts/") || f.starts_with("tags/") || *f == "index.html")
        .filter(|f| f.ends_with(".html"))
        .cloned()
        .collect();
    let gz: Vec<String> = expected.iter().map(|f| format!("{f}.gz")).collect();
    expected.extend(gz);
    expected.sort();
    wait_until(
        Duration::from_secs(15),
        "pages using the partial to change",
        || async { changed(&before, &snapshot(&site)).len() >= expected.len() },
    )
    .await;
    d.settle(None).await;
    let after = snapshot(&site);
    assert_eq!(
        changed(&before, &after),
        expected,
        "exactly the dependent pages (and their .gz) changed"
    );
    assert!(
        site.read("archive/index.html").unwrap()
            == String::from_utf8(before["archive/index.html"].clone()).unwrap()
    );

    // A syntax error: reported with file and line, every file kept.
    let nav = site.path().join("templates/partials/nav.html");
    let good_nav = std::fs::read_to_string(&nav).unwrap();
    std::fs::write(&nav, good_nav.replace("{% endif %}", "{% endiff %}")).unwrap();
    // Proof the watcher saw the edit, not a sleep: its error line.
    let line = d
        .wait_for_log(&["do not load", "partials/nav.html:4"])
        .await;
    assert!(line.contains("ERROR"), "{line}");
    d.settle(None).await;
    assert!(
        changed(&after, &snapshot(&site)).is_empty(),
        "a broken template changes nothing"
    );
    let run = site.kiln(&["build"]).await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("partials/nav.html:4"), "{}", run.stderr);
    assert!(changed(&after, &snapshot(&site)).is_empty());

    // Fixing it recovers on the next save: every page includes nav.
    std::fs::write(&nav, good_nav.replace("Archive</a>", "All posts</a>")).unwrap();
    wait_until(
        Duration::from_secs(15),
        "the fix to be picked up",
        || async {
            site.read("about/index.html")
                .is_some_and(|a| a.contains("All posts</a>"))
        },
    )
    .await;
    d.settle(None).await;
    assert!(
        site.read("posts/wedging-by-hand/index.html")
            .unwrap()
            .contains("All posts</a>")
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_add_update_and_remove_their_pages() {
    let site = default_site_copy();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let before = snapshot(&site);
    let d = site.daemon(&[]).await;
    std::fs::write(
        site.path().join("content/posts/glaze-safety.md"),
        "---\ntitle: Glaze safety basics\ndate: 2026-04-01\ntags: [glazes, safety]\nsummary: Masks, wet cleaning, and food-safe tests.\n---\nWear a mask when mixing dry materials.\n",
    )
    .unwrap();
    wait_until(Duration::from_secs(15), "the new post", || async {
        site.file("posts/glaze-safety/index.html").exists()
            && site.file("tags/safety/index.html").exists()
    })
    .await;
    d.settle(None).await;
    assert!(
        site.read("index.html")
            .unwrap()
            .contains("Glaze safety basics")
    );
    assert!(
        site.read("feed.xml")
            .unwrap()
            .contains("Glaze safety basics")
    );
    assert!(
        site.read("tags/glazes/index.html")
            .unwrap()
            .contains("Glaze safety basics")
    );
    // Pages that do not list posts are untouched.
    assert_eq!(
        std::fs::read(site.file("about/index.html")).unwrap(),
        before["about/index.html"]
    );

    std::fs::remove_file(site.path().join("content/posts/glaze-safety.md")).unwrap();
    wait_until(Duration::from_secs(15), "the post to go", || async {
        !site.file("posts/glaze-safety/index.html").exists()
            && !site.file("tags/safety/index.html").exists()
    })
    .await;
    d.settle(None).await;
    assert!(!site.file("posts/glaze-safety/index.html.gz").exists());
    assert!(
        !site
            .read("index.html")
            .unwrap()
            .contains("Glaze safety basics")
    );
    assert_eq!(snapshot(&site), before, "back to the original site");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_switch_is_atomic_and_rollback_works() {
    let site = default_site_copy();
    assert_eq!(site.kiln(&["build", "--release"]).await.code, 0);
    let current = site.out().join("current");
    assert!(
        std::fs::symlink_metadata(&current)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let v1 = std::fs::read_to_string(current.join("index.html")).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let current = current.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for f in [
                    "index.html",
                    "about/index.html",
                    "posts/reclaiming-clay/index.html",
                    "feed.xml",
                ] {
                    let body = std::fs::read(current.join(f))
                        .unwrap_or_else(|e| panic!("{f} missing during a release switch: {e}"));
                    assert!(!body.is_empty(), "{f} empty");
                    reads += 1;
                }
            }
            reads
        })
    };
    let about = site.path().join("content/pages/about.md");
    for n in 0..3 {
        let text = std::fs::read_to_string(&about).unwrap();
        std::fs::write(&about, format!("{text}\nRevision {n}.\n")).unwrap();
        let run = site.kiln(&["build", "--release"]).await;
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(run.stdout.contains("hard-linked"), "{}", run.stdout);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("the reader never saw a missing file");
    assert!(reads > 100, "reader ran ({reads} reads)");
    assert!(
        std::fs::read_to_string(current.join("about/index.html"))
            .unwrap()
            .contains("Revision 2.")
    );
    // Unchanged files are shared between releases (same inode).
    use std::os::unix::fs::MetadataExt;
    let releases: Vec<_> = std::fs::read_dir(site.out().join("releases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(releases.len(), 4);
    let inodes: std::collections::BTreeSet<u64> = releases
        .iter()
        .map(|r| {
            std::fs::metadata(r.join("posts/reclaiming-clay/index.html"))
                .unwrap()
                .ino()
        })
        .collect();
    assert_eq!(
        inodes.len(),
        1,
        "unchanged page hard-linked across releases"
    );

    // The releases, readable, the newest live.
    let run = site.kiln(&["releases"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("20") && l.contains("files")),
        "{}",
        run.stdout
    );
    assert!(
        lines[3].ends_with("* live") && !lines[2].contains("live"),
        "{}",
        run.stdout
    );

    let run = site.kiln(&["rollback"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let listed = site.kiln(&["releases"]).await;
    assert!(
        listed
            .stdout
            .lines()
            .nth(2)
            .is_some_and(|l| l.ends_with("* live")),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("current was rolled back"),
        "{}",
        listed.stdout
    );
    // explain knows: the page is the rolled-back release's, not "changed on disk".
    let explained = site.kiln(&["explain", "/about/"]).await;
    assert!(
        explained.stdout.contains("current was rolled back")
            && !explained.stdout.contains("changed on disk"),
        "{}",
        explained.stdout
    );
    let about_now = std::fs::read_to_string(current.join("about/index.html")).unwrap();
    assert!(about_now.contains("Revision 1.") && !about_now.contains("Revision 2."));
    // It says where `current` points now, and that is where it points.
    let target = std::fs::read_link(&current).unwrap();
    assert!(
        run.stdout
            .contains(&format!("current -> {}", target.display())),
        "{} vs {target:?}",
        run.stdout
    );
    // The first release's pages are still what they were (hard links never
    // let a later build change an earlier release).
    let first = releases.iter().min().unwrap();
    assert_eq!(
        std::fs::read_to_string(first.join("index.html")).unwrap(),
        v1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_is_not_switched_live_and_leaves_nothing_behind() {
    let site = default_site_copy();
    assert_eq!(site.kiln(&["build", "--release"]).await.code, 0);
    let releases = || {
        std::fs::read_dir(site.out().join("releases"))
            .unwrap()
            .count()
    };
    let live = std::fs::read_link(site.out().join("current")).unwrap();
    let post = site.path().join("templates/post.html");
    let good = std::fs::read_to_string(&post).unwrap();

    // Pages fail to render: the new release is removed, `current` stays.
    std::fs::write(
        &post,
        good.replace(
            "{{ page.title }}</h1>",
            "{{ page.title | no_such_filter }}</h1>",
        ),
    )
    .unwrap();
    let run = site.kiln(&["build", "--release"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.contains("NOT switched live"), "{}", run.stdout);
    assert_eq!(releases(), 1);
    assert_eq!(
        std::fs::read_link(site.out().join("current")).unwrap(),
        live
    );

    // Templates do not even load: same.
    std::fs::write(&post, good.replace("{% endblock %}", "{% endblok %}")).unwrap();
    let run = site.kiln(&["build", "--release"]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert_eq!(releases(), 1);
    assert_eq!(
        std::fs::read_link(site.out().join("current")).unwrap(),
        live
    );
}

/// A build is authoritative (guarantee 10): a post whose source file was
/// deleted is removed by the next `kiln build`, not kept forever; deleting
/// most of the site at once is held by the mass-delete guard; two routes
/// that write one file are an error, not a silent overwrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_removes_what_no_route_produces_any_more() {
    let site = default_site_copy();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let post = "posts/wedging-by-hand/index.html";
    assert!(site.read(post).is_some());
    std::fs::remove_file(site.path().join("content/posts/wedging-by-hand.md")).unwrap();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(site.read(post).is_none(), "{}", run.all());
    // The post, and a tag page only it used.
    assert!(!run.stdout.contains(" 0 deleted"), "{}", run.all());
    let explain = site.kiln(&["explain", "/posts/wedging-by-hand/"]).await;
    assert!(!explain.stdout.contains("as baked"), "{}", explain.all());

    // Every post gone at once looks like a mistake: nothing is removed.
    let posts = site.path().join("content/posts");
    let moved = site.path().join("posts-aside");
    std::fs::rename(&posts, &moved).unwrap();
    std::fs::create_dir(&posts).unwrap();
    let before = site.files().len();
    let run = site.kiln(&["build"]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.all().contains("--allow-mass-delete"), "{}", run.all());
    assert_eq!(site.files().len(), before);
    std::fs::remove_dir(&posts).unwrap();
    std::fs::rename(&moved, &posts).unwrap();

    // `/about` and `/about/` are one file.
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    std::fs::write(
        site.path().join("site.toml"),
        format!("{toml}\n[[render]]\ntemplate = \"page.html\"\nurl = \"/{{slug}}\"\ndata = \"content/pages/*.md\"\n"),
    )
    .unwrap();
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("are the same file"), "{}", run.all());
}
