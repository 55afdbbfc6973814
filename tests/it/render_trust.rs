//! Render mode as trustworthy as Zola: what a build would trip on is found
//! by `kiln check` (every page rendered in memory), said where it is, and
//! silent mistakes are warned about.

use crate::util::default_site_copy;

fn edit(site: &crate::util::TestSite, rel: &str, from: &str, to: &str) -> String {
    let path = site.path().join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{rel} has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_renders_every_page_and_reports_every_failure_where_it_is() {
    let site = default_site_copy();
    let clean = site.kiln(&["check", "--strict", "--links"]).await;
    assert_eq!(clean.code, 0, "the bundled site is clean: {}", clean.all());
    // Three runtime mistakes a load does not see.
    edit(
        &site,
        "templates/post.html",
        "<h1>{{ page.title }}</h1>",
        "<h1>{{ page.title | nosuchfilter }}</h1>",
    );
    edit(
        &site,
        "templates/archive.html",
        "{% extends \"base.html\" %}",
        "{{ page.nothere.deeper }}{% extends \"base.html\" %}",
    );
    edit(
        &site,
        "templates/page.html",
        "{% extends \"base.html\" %}",
        "{% extends \"bse.html\" %}",
    );
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    let err = &run.stderr;
    for expected in [
        "templates/post.html:6:",
        "unknown filter `nosuchfilter`",
        "in 6 pages: /posts/",
        "templates/archive.html:1:",
        // The archive lists posts; it has no `page` of its own.
        "`page.nothere` looks up a field of an undefined value (`page` is not defined)",
        "templates/page.html:1:",
        "no template `bse.html`",
        "did you mean `base.html`?",
        "in 1 page: /about/",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // The caret sits under the filter name.
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("| nosuchfilter }}"))
        .unwrap();
    let col = lines[at].find("nosuchfilter").unwrap();
    assert_eq!(lines[at + 1].find('^'), Some(col), "{err}");
    assert!(run.stdout.contains("failing"), "{}", run.all());
    // Nothing was written.
    assert!(!site.out().exists(), "check wrote the output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_and_data_errors_point_at_the_real_mistake() {
    let site = default_site_copy();
    // An `{% if %}` left open on line 3: minijinja meets the endblock first.
    edit(
        &site,
        "templates/page.html",
        "{% block content %}",
        "{% if page.title %}\n{% block content %}",
    );
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("templates/page.html:3:1: `{% if %}` is never closed")
            && run.stderr.contains("add `{% endif %}`"),
        "{}",
        run.all()
    );
    let build = site.kiln(&["build"]).await;
    assert_eq!(build.code, 2, "{}", build.all());
    assert!(build.stderr.contains("page.html:3:1"), "{}", build.all());
    assert!(
        !build.all().contains("refused"),
        "a template error is not a refusal: {}",
        build.all()
    );
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/page.html"),
        site.path().join("templates/page.html"),
    )
    .unwrap();
    // Bad YAML: the file named once, no "error: error", no `<input>`.
    edit(
        &site,
        "content/posts/reclaiming-clay.md",
        "tags: [clay, studio]",
        "tags: [clay, studio",
    );
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("content/posts/reclaiming-clay.md"),
        "{}",
        run.all()
    );
    assert!(!run.stderr.contains("<input>"), "{}", run.all());
    assert_eq!(run.stderr.matches("error").count(), 1, "{}", run.all());
    edit(
        &site,
        "content/posts/reclaiming-clay.md",
        "tags: [clay, studio",
        "tags: [clay, studio]",
    );
    // Routes are counted as the file reads: the third [[render]] is #3.
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    let third = toml.match_indices("[[render]]").nth(2).unwrap().0;
    let (head, tail) = toml.split_at(third);
    let broken = format!(
        "{head}{}",
        tail.replacen("template = \"", "template = \"missing-", 1)
    );
    std::fs::write(site.path().join("site.toml"), broken).unwrap();
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("[[render]] #3 uses template `missing-"),
        "{}",
        run.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_mistakes_are_warned_and_drafts_stay_unpublished() {
    let site = default_site_copy();
    // A post without the title its template prints, a draft, a list naming
    // no collection, a data glob matching nothing.
    edit(
        &site,
        "content/posts/reclaiming-clay.md",
        "title: ",
        "headline: ",
    );
    edit(
        &site,
        "content/posts/wedging-by-hand.md",
        "---\n",
        "---\ndraft: true\n",
    );
    // An undefined value piped through a filter: named, not the filter.
    edit(
        &site,
        "templates/page.html",
        "<h1>{{ page.title }}</h1>",
        "<h1>{{ page.title }}{{ page.nosuch | upper }}</h1>",
    );
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    std::fs::write(
        site.path().join("site.toml"),
        format!(
            "{toml}\n[[render]]\ntemplate = \"archive.html\"\nurl = \"/all/\"\nitems = [\"post\"]\n\n[[render]]\ntemplate = \"page.html\"\ndata = \"content/nothing/*.md\"\nurl = \"/n/{{slug}}/\"\n"
        ),
    )
    .unwrap();
    let run = site.kiln(&["check"]).await;
    assert_eq!(run.code, 0, "warnings only: {}", run.all());
    let err = &run.stderr;
    for expected in [
        "`page.title` is undefined, so it prints nothing",
        "`page.nosuch` is undefined, so it prints nothing",
        "`{{ page.nosuch | default(",
        "/posts/reclaiming-clay/ (content/posts/reclaiming-clay.md)",
        "items = [\"post\"] names no collection",
        "collections: posts",
        "data = \"content/nothing/*.md\" matches no file",
        "1 draft(s) (`draft: true`) left out",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("`upper` is undefined"), "{err}");
    let strict = site.kiln(&["check", "--strict"]).await;
    assert_eq!(strict.code, 2, "{}", strict.all());
    // The draft is not built, unless asked for.
    let build = site.kiln(&["build"]).await;
    assert_eq!(build.code, 0, "{}", build.all());
    assert!(site.read("posts/wedging-by-hand/index.html").is_none());
    assert!(
        !site
            .read("index.html")
            .unwrap()
            .contains("/posts/wedging-by-hand/")
    );
    assert!(!site.read("feed.xml").unwrap().contains("wedging-by-hand"));
    let build = site.kiln(&["--drafts", "build"]).await;
    assert_eq!(build.code, 0, "{}", build.all());
    assert!(site.read("posts/wedging-by-hand/index.html").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_links_finds_internal_links_to_no_page() {
    let site = default_site_copy();
    edit(
        &site,
        "templates/page.html",
        "{{ page.content | safe }}",
        "{{ page.content | safe }}<a href=\"/nowhere/\">x</a><a href=\"/about\">ok</a><a href=\"https://example.org/x\">ext</a>",
    );
    let run = site.kiln(&["check", "--links"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("link to /nowhere/ reaches no page, in 1 page: /about/"),
        "{}",
        run.all()
    );
    assert!(!run.stderr.contains("/about reaches"), "{}", run.all());
    assert!(!run.stderr.contains("example.org"), "{}", run.all());
    // Without --links, links are not checked.
    assert_eq!(site.kiln(&["check"]).await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_copied_into_every_build_and_release_and_follow_edits() {
    let site = default_site_copy();
    let png: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    std::fs::create_dir_all(site.path().join("static/img")).unwrap();
    std::fs::write(site.path().join("static/img/logo.png"), &png).unwrap();
    std::fs::write(site.path().join("static/robots.txt"), "User-agent: *\n").unwrap();
    std::fs::write(site.path().join("static/.hidden"), "no").unwrap();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(std::fs::read(site.file("img/logo.png")).unwrap(), png);
    assert_eq!(site.read("robots.txt").unwrap(), "User-agent: *\n");
    assert!(site.read(".hidden").is_none());
    // A static file where a page is: one URL, two producers, said.
    std::fs::create_dir_all(site.path().join("static/about")).unwrap();
    std::fs::write(site.path().join("static/about/index.html"), "x").unwrap();
    let clash = site.kiln(&["check"]).await;
    assert_eq!(clash.code, 2, "{}", clash.all());
    std::fs::remove_dir_all(site.path().join("static/about")).unwrap();
    // Releases carry them (hard-linked when unchanged).
    let run = site
        .kiln(&["--out", "releases", "build", "--release"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let live = site.path().join("releases/current");
    assert_eq!(std::fs::read(live.join("img/logo.png")).unwrap(), png);
    let run = site
        .kiln(&["--out", "releases", "build", "--release"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        std::fs::read(live.join("robots.txt")).unwrap(),
        b"User-agent: *\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_follows_static_files_added_changed_and_removed() {
    let site = default_site_copy();
    std::fs::create_dir_all(site.path().join("static")).unwrap();
    std::fs::write(site.path().join("static/robots.txt"), "v1\n").unwrap();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon_logged().await;
    d.wait_for_log(&["daemon started"]).await;
    let wait = |rel: &'static str, want: Option<&'static str>| {
        let site = &site;
        async move {
            crate::util::wait_until(std::time::Duration::from_secs(10), rel, || async {
                site.read(rel).as_deref() == want
            })
            .await
        }
    };
    std::fs::write(site.path().join("static/robots.txt"), "v2\n").unwrap();
    wait("robots.txt", Some("v2\n")).await;
    std::fs::create_dir_all(site.path().join("static/css")).unwrap();
    std::fs::write(site.path().join("static/css/extra.css"), "p{}\n").unwrap();
    wait("css/extra.css", Some("p{}\n")).await;
    std::fs::remove_file(site.path().join("static/robots.txt")).unwrap();
    wait("robots.txt", None).await;
    // The page that was not touched stays.
    assert!(site.read("css/extra.css").is_some());
    assert!(site.read("index.html").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_included_by_a_variable_still_regenerates_its_pages() {
    let site = default_site_copy();
    edit(
        &site,
        "templates/post.html",
        "{% include \"partials/post-meta.html\" %}",
        "{% set meta = \"partials/post-meta.html\" %}{% include meta %}",
    );
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon_logged().await;
    let said = d
        .wait_for_log(&["post.html", "names a template by a variable"])
        .await;
    assert!(said.contains("INFO"), "{said}");
    let meta = site.path().join("templates/partials/post-meta.html");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, format!("{text}<span class=\"edited-meta\"></span>")).unwrap();
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "the post to show the edited partial",
        || async {
            site.read("posts/reclaiming-clay/index.html")
                .is_some_and(|p| p.contains("edited-meta"))
        },
    )
    .await;
    // Said once, not on every reload.
    let log = d.log.as_ref().unwrap().lock().unwrap().join("\n");
    assert_eq!(
        log.matches("names a template by a variable").count(),
        1,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_is_highlighted_at_build_time_and_task_lists_and_tables_render() {
    let site = default_site_copy();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let post = site
        .read("posts/reading-a-firing-schedule/index.html")
        .unwrap();
    assert!(
        post.contains("<pre class=\"highlight\"><code class=\"language-toml\">"),
        "{post}"
    );
    assert!(
        post.contains("<span class=\"hl-"),
        "highlighted spans: {post}"
    );
    assert!(!post.contains("<script"), "no highlighting script");
    assert!(
        post.contains("<input disabled=\"\" type=\"checkbox\" checked=\"\"/>"),
        "{post}"
    );
    assert!(
        post.contains("<input disabled=\"\" type=\"checkbox\"/>"),
        "{post}"
    );
    assert!(
        post.contains("<table>") && post.contains("<th>Segment</th>"),
        "{post}"
    );
    // The stylesheet colours what the highlighter marks.
    let css = site.read("style.css").unwrap();
    assert!(
        css.contains(".hl-keyword") && css.contains("pre.highlight"),
        "{css}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paginated_list_writes_its_pages_and_follows_the_collection() {
    let site = default_site_copy();
    std::fs::write(
        site.path().join("templates/paged.html"),
        "page {{ paginator.number }} of {{ paginator.pages }}:{% for p in paginator.items %} [{{ p.slug }}]{% endfor %}\
         {% if paginator.previous_url %} <a rel=\"prev\" href=\"{{ paginator.previous_url }}\">prev</a>{% endif %}\
         {% if paginator.next_url %} <a rel=\"next\" href=\"{{ paginator.next_url }}\">next</a>{% endif %}\n",
    )
    .unwrap();
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    std::fs::write(
        site.path().join("site.toml"),
        format!("{toml}\n[[render]]\ntemplate = \"paged.html\"\nurl = \"/all/\"\nitems = [\"posts\"]\npaginate = 2\n"),
    )
    .unwrap();
    let run = site.kiln(&["check", "--links", "--strict"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    // Six posts, two a page.
    let first = site.read("all/index.html").unwrap();
    assert!(first.starts_with("page 1 of 3:"), "{first}");
    assert!(
        first.contains("rel=\"next\" href=\"/all/page/2/\"") && !first.contains("rel=\"prev\""),
        "{first}"
    );
    let second = site.read("all/page/2/index.html").unwrap();
    assert!(
        second.contains("href=\"/all/\">prev") && second.contains("href=\"/all/page/3/\">next"),
        "{second}"
    );
    let third = site.read("all/page/3/index.html").unwrap();
    assert!(
        third.starts_with("page 3 of 3:") && !third.contains("rel=\"next\""),
        "{third}"
    );
    assert_eq!(first.matches(" [").count(), 2);
    assert!(site.read("all/page/4/index.html").is_none());
    // A seventh post makes a fourth page; taking two away removes it again.
    let d = site.daemon_logged().await;
    d.wait_for_log(&["daemon started"]).await;
    std::fs::write(
        site.path().join("content/posts/a-seventh.md"),
        "---\ntitle: Seventh\ndate: 2020-01-01\nsummary: s\ntags: [clay]\n---\nBody.\n",
    )
    .unwrap();
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "a fourth page",
        || async {
            site.read("all/page/4/index.html")
                .is_some_and(|p| p.contains("[a-seventh]"))
        },
    )
    .await;
    std::fs::remove_file(site.path().join("content/posts/a-seventh.md")).unwrap();
    std::fs::remove_file(site.path().join("content/posts/wedging-by-hand.md")).unwrap();
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "the fourth page to go",
        || async {
            // Five posts: three pages, the last with one.
            site.read("all/page/4/index.html").is_none()
                && site
                    .read("all/page/3/index.html")
                    .is_some_and(|p| p.starts_with("page 3 of 3:") && p.matches(" [").count() == 1)
        },
    )
    .await;
}
