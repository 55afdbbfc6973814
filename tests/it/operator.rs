//! The operator's day: where kiln keeps its state, whether the counts add
//! up, what the logs say, run from wherever the operator happens to be.

use std::path::Path;

use crate::util::{Origin, Page, Run, TestSite, linked_site};

/// Runs the kiln binary in `dir` (no site.toml there).
async fn kiln_in(dir: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .current_dir(dir)
        .args(args)
        .env_remove("KILN_TOKEN")
        .env("KILN_LOG", "kiln=info,warn")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every entry under `dir`, relative, sorted (to see what a command made).
fn tree(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_lives_beside_the_output_and_reading_it_creates_nothing() {
    let pages = linked_site(3);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let srv = tempfile::tempdir().unwrap();
    let www = srv.path().join("www");
    let www_arg = www.to_str().unwrap();
    // Baked from one working directory ...
    let here = tempfile::tempdir().unwrap();
    let run = kiln_in(
        here.path(),
        &["build", "--origin", &origin.url(), "--out", www_arg],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        tree(here.path()),
        Vec::<String>::new(),
        "nothing left in the working directory"
    );
    let state = srv.path().join(".kiln/www/index.db");
    assert!(
        state.is_file(),
        "the index is beside the output: {:?}",
        tree(srv.path())
    );
    assert!(
        run.stdout.contains(&format!(
            "state: {}",
            srv.path().join(".kiln/www").display()
        )),
        "the summary says where the state is: {}",
        run.all()
    );
    // ... and read from another one.
    let elsewhere = tempfile::tempdir().unwrap();
    let status = kiln_in(elsewhere.path(), &["--out", www_arg, "status"]).await;
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stdout.contains("ok: 4") && status.stdout.contains(state.to_str().unwrap()),
        "{}",
        status.all()
    );
    // A tag whose page an earlier target already named still matched it.
    let both = kiln_in(
        elsewhere.path(),
        &[
            "--out",
            www_arg,
            "--origin",
            &origin.url(),
            "regen",
            "/p/1/",
            "tag:post:1",
        ],
    )
    .await;
    assert_eq!(both.code, 0, "{}", both.all());
    assert!(!both.all().contains("matched nothing"), "{}", both.all());
    assert_eq!(summary_numbers(&both.stdout), (1, 1), "{}", both.all());
    let explain = kiln_in(elsewhere.path(), &["--out", www_arg, "explain", "/p/1/"]).await;
    assert_eq!(explain.code, 0, "{}", explain.all());
    assert!(explain.stdout.contains("as baked"), "{}", explain.all());
    assert_eq!(tree(elsewhere.path()), Vec::<String>::new());

    // Read-only commands on an output nothing was baked into create nothing
    // and say where they looked.
    let empty = tempfile::tempdir().unwrap();
    let other = empty.path().join("other");
    let other_arg = other.to_str().unwrap();
    let status = kiln_in(elsewhere.path(), &["--out", other_arg, "status"]).await;
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stdout.contains("nothing has been baked into")
            && status.stdout.contains(&format!(
                "{}",
                empty.path().join(".kiln/other/index.db").display()
            )),
        "{}",
        status.all()
    );
    let explain = kiln_in(elsewhere.path(), &["--out", other_arg, "explain", "/"]).await;
    assert_eq!(explain.code, 2, "{}", explain.all());
    assert!(
        explain.stderr.contains("nothing has been baked into"),
        "{}",
        explain.all()
    );
    let releases = kiln_in(elsewhere.path(), &["--out", other_arg, "releases"]).await;
    assert_ne!(releases.code, 101, "{}", releases.all());
    let json = kiln_in(elsewhere.path(), &["--out", other_arg, "status", "--json"]).await;
    assert_eq!(json.code, 0, "{}", json.all());
    assert_eq!(
        tree(empty.path()),
        Vec::<String>::new(),
        "read-only commands created state"
    );
    assert_eq!(tree(elsewhere.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_where_earlier_versions_kept_it_is_still_used_and_named() {
    let pages = linked_site(2);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let old = format!(
        "[site]\nstate = \".kiln/index.db\"\nqueue = \".kiln/queue\"\n[origin]\nurl = \"{}\"\n",
        origin.url()
    );
    let site = TestSite::new(&old);
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    assert!(site.path().join(".kiln/index.db").is_file());
    // The keys the old defaults filled in are gone from the file.
    std::fs::write(
        site.path().join("site.toml"),
        format!("[origin]\nurl = \"{}\"\n", origin.url()),
    )
    .unwrap();
    let status = site.kiln(&["status"]).await;
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stdout.contains("ok: 3"),
        "the old index is read: {}",
        status.all()
    );
    assert!(
        status
            .stderr
            .contains("where earlier kiln versions kept it")
            && status.stderr.contains(".kiln/public"),
        "{}",
        status.all()
    );
    assert!(
        !site.state_dir().exists(),
        "no second, empty index was started"
    );
}

/// The numbers of a summary line: (total, sum of the parts).
fn summary_numbers(text: &str) -> (usize, usize) {
    let line = text
        .lines()
        .find(|l| l.contains(" pages in "))
        .unwrap_or_else(|| panic!("no summary line in {text}"));
    let number = |p: &str| -> usize {
        p.trim()
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a count in {line:?}"))
    };
    // A job handed to the daemon says whose it was first.
    let at = line.find(" pages in ").unwrap();
    let total = number(line[..at].rsplit(' ').next().unwrap());
    let (_, parts) = line.split_once("): ").unwrap();
    let sum = parts.split(", ").map(number).sum();
    (total, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_add_up_and_a_known_404_is_not_fetched_again() {
    let origin = Origin::start(vec![
        (
            "/",
            Page::html(
                r#"<a href="/a/">a</a> <a href="/b/">b</a> <a href="/gone/">gone</a>
                   <a href="/old/">old</a> <a href="/private/">private</a>"#,
            ),
        ),
        ("/a/", Page::html("a")),
        ("/b/", Page::html("b")),
        (
            "/old/",
            Page::html("").status(301).with_header("location", "/a/"),
        ),
        (
            "/private/",
            Page::html("p").with_header("set-cookie", "s=1"),
        ),
    ])
    .await;
    let site = TestSite::for_origin(&origin, "");
    let build = site.kiln(&["build"]).await;
    assert_eq!(build.code, 0, "{}", build.all());
    let (total, sum) = summary_numbers(&build.stdout);
    assert_eq!((total, sum), (6, 6), "every URL once: {}", build.all());

    // The dry run names what the real run does.
    let dry = site.kiln(&["regen", "--dry-run", "all"]).await;
    let listed = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("regen ") || l.starts_with("delete "))
        .count();
    origin.reset_hits();
    let run = site.kiln(&["regen", "all"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let (total, sum) = summary_numbers(&run.stdout);
    assert_eq!(total, sum, "{}", run.all());
    assert_eq!(
        listed, total,
        "dry run:\n{}\nreal run:\n{}",
        dry.stdout, run.stdout
    );

    // A page linking to a URL the origin said 404 for does not make kiln
    // ask again, one-shot or through the daemon.
    origin.reset_hits();
    let run = site.kiln(&["regen", "/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(origin.hits("/gone/"), 0, "{}", run.all());
    assert_eq!(summary_numbers(&run.stdout), (1, 1), "{}", run.all());
    let d = site.daemon(&[]).await;
    let handed = site.kiln(&["regen", "/"]).await;
    assert_eq!(handed.code, 0, "{}", handed.all());
    assert!(
        handed.all().contains("owns this output"),
        "{}",
        handed.all()
    );
    assert_eq!(summary_numbers(&handed.stdout), (1, 1), "{}", handed.all());
    assert_eq!(origin.hits("/gone/"), 0, "{}", handed.all());
    // Asked for by name, it is fetched (and still not there).
    let run = site.kiln(&["regen", "/gone/"]).await;
    assert_eq!(origin.hits("/gone/"), 1, "{}", run.all());
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_handed_to_the_daemon_shows_how_far_its_job_is() {
    let origin = Origin::start(vec![
        ("/", Page::html("home")),
        (
            "/slow/",
            Page::html("slow").delay(std::time::Duration::from_millis(4500)),
        ),
    ])
    .await;
    let site = TestSite::new(&format!(
        "[origin]\nurl = \"{}\"\ntimeout = \"10s\"\n",
        origin.url()
    ));
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon(&[]).await;
    // stderr is a pipe here, as in a deploy hook's log: lines, not a bar.
    let run = site.kiln(&["regen", "/slow/"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("pages done") && run.stderr.contains("0 of 1 pages done"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("1 pages in"), "{}", run.all());
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temp_file_that_comes_and_goes_is_not_a_change() {
    let site = crate::util::default_site_copy();
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon_logged().await;
    d.wait_for_log(&["daemon started"]).await;
    // What `sed -i` does: a temp file beside the template, renamed over it.
    let partials = site.path().join("templates/partials");
    let temp = partials.join("sedrmGOFR");
    let footer = std::fs::read_to_string(partials.join("footer.html")).unwrap();
    std::fs::write(
        &temp,
        footer.replace("</footer>", "<!-- edited --></footer>"),
    )
    .unwrap();
    std::fs::rename(&temp, partials.join("footer.html")).unwrap();
    let line = d.wait_for_log(&["templates or data changed"]).await;
    assert!(line.contains("partials/footer.html"), "{line}");
    assert!(!line.contains("sedrmGOFR"), "{line}");
    let log = d.log.as_ref().unwrap().lock().unwrap().join("\n");
    assert!(!log.contains("sedrmGOFR"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_the_way_is_named_once_with_the_fix() {
    let site = crate::util::default_site_copy();
    std::fs::write(site.out(), "not a directory").unwrap();
    for cmd in [&["check"][..], &["build"][..]] {
        let run = site.kiln(cmd).await;
        assert_eq!(run.code, 2, "{cmd:?}: {}", run.all());
        assert!(
            run.stderr
                .contains("is a file, not a directory: move it away"),
            "{cmd:?}: {}",
            run.all()
        );
        assert_eq!(run.stderr.matches("public").count(), 1, "{}", run.all());
    }
    assert_eq!(
        std::fs::read_to_string(site.out()).unwrap(),
        "not a directory"
    );
    // A file where a page needs its directory: the page fails, the file stays.
    std::fs::remove_file(site.out()).unwrap();
    std::fs::create_dir_all(site.out().join("posts")).unwrap();
    std::fs::write(site.out().join("posts/reclaiming-clay"), "mine").unwrap();
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("failed  /posts/reclaiming-clay/"))
        .unwrap_or_else(|| panic!("{}", run.all()));
    assert!(
        line.contains(
            "is a file where kiln needs a directory (to write `index.html` in it): move it away"
        ),
        "{line}"
    );
    assert_eq!(
        line.matches("public/posts/reclaiming-clay").count(),
        1,
        "{line}"
    );
    assert_eq!(site.read("posts/reclaiming-clay").unwrap(), "mine");
}

/// An app that saves 40 new objects sends 40 tags no page carries yet:
/// one log line says so, not 40 (issue: "596 INFO lines").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_that_match_nothing_are_logged_once_per_job() {
    let pages = linked_site(3);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(&origin, "");
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let d = site.daemon_logged().await;
    d.wait_for_log(&["daemon started"]).await;
    let targets: Vec<String> = (0..40).map(|i| format!("tag:post:{}", 1000 + i)).collect();
    let r = crate::util::client()
        .post(format!("{}/v1/regen", d.http))
        .json(&serde_json::json!({ "targets": targets }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let line = d.wait_for_log(&["matched nothing"]).await;
    assert!(line.contains("count=40"), "{line}");
    let log = d.log.as_ref().unwrap().lock().unwrap().join("\n");
    assert_eq!(log.matches("matched nothing").count(), 1, "{log}");
}
