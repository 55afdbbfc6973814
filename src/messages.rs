//! Snapshot tests of what users read: config errors, target errors, run
//! summaries, the mass-delete refusal. A change to any of them shows up as a
//! snapshot diff to review (`cargo insta review`), never silently.

use std::path::Path;
use std::time::Duration;

use crate::bake::{MassDelete, Outcome, PageResult, Summary};
use crate::config::{Config, Overrides};
use crate::targets::Target;

fn config_error(text: &str) -> String {
    Config::parse_raw(text, Path::new("site.toml"))
        .and_then(|raw| {
            Config::from_raw(
                raw,
                Some("site.toml".into()),
                ".".into(),
                &Overrides::default(),
            )
        })
        .unwrap_err()
        .to_string()
}

#[test]
fn config_errors() {
    insta::assert_snapshot!(
        "duration_without_unit",
        config_error("[daemon]\ndebounce = 100\n")
    );
    insta::assert_snapshot!("unknown_key", config_error("[crawl]\nmax-pagse = 3\n"));
    insta::assert_snapshot!(
        "unknown_encoding",
        config_error("[output]\nprecompress = [\"zstd\"]\n")
    );
    insta::assert_snapshot!(
        "bad_origin_scheme",
        config_error("[origin]\nurl = \"ftp://x\"\n")
    );
    insta::assert_snapshot!(
        "bad_cookie",
        config_error("[safety]\nbypass-cookies = [\"a;b\"]\n")
    );
}

#[test]
fn target_errors() {
    let lines: Vec<String> = [
        "/\\127.0.0.1:9999/x",
        "//evil.example/",
        "/../etc/passwd",
        "blog/",
        "tag:a b",
        "glob:/a/[",
    ]
    .iter()
    .map(|t| Target::parse(t).unwrap_err().to_string())
    .collect();
    insta::assert_snapshot!("target_errors", lines.join("\n"));
}

#[test]
fn run_summary() {
    let mut s = Summary::default();
    for (url, outcome, hops) in [
        ("/", Outcome::Written, 0),
        ("/a/", Outcome::Unchanged, 1),
        ("/gone/", Outcome::Deleted, 0),
        (
            "/form/",
            Outcome::Refused("body contains forbidden pattern `csrfmiddlewaretoken`".into()),
            0,
        ),
        (
            "/nothing/",
            Outcome::Skipped("origin answered 404; there was no baked file".into()),
            0,
        ),
    ] {
        let mut r = PageResult::new(url);
        r.outcome = outcome;
        r.hops = hops;
        s.add(r);
    }
    s.unmatched
        .push(("tag:nope".into(), "no baked page carries that tag".into()));
    s.elapsed = Duration::from_millis(250);
    insta::assert_snapshot!("summary", s.render());
}

#[test]
fn mass_delete_refusal() {
    let e = MassDelete {
        count: 60,
        known: 61,
        limit: 6,
        examples: "e.g. /p/0/, /p/1/, /p/2/".into(),
    };
    insta::assert_snapshot!("mass_delete", e.to_string());
}

#[test]
fn output_and_state_messages() {
    let lines = [
        crate::lock::LockError::NotADirectory {
            out: "/srv/www".into(),
        }
        .to_string(),
        crate::write::WriteError::Conflict {
            path: "/srv/www/posts/a/index.html".into(),
            conflict: "/srv/www/posts/a".into(),
        }
        .to_string(),
        crate::write::WriteError::Conflict {
            path: "/srv/www/feed.xml".into(),
            conflict: "/srv/www/feed.xml".into(),
        }
        .to_string(),
        crate::config::state_dir_for(Path::new("/srv/www"), Path::new("/proj"))
            .display()
            .to_string(),
    ];
    insta::assert_snapshot!("output_and_state", lines.join("\n"));
}
