//! Crash safety of the writer: `kill -9` at random points of builds never
//! leaves a partial or empty page or sibling, and the next complete build
//! repairs whatever a crash left mismatched.

use std::io::Read;
use std::time::Duration;

use crate::util::{Origin, Page, TestSite};

const PAGES: usize = 150;

fn body(i: usize, version: usize) -> String {
    let line = format!("<p>page {i} version {version}</p>\n");
    line.repeat(8192 / line.len() + 1)
}

fn gunzip(bytes: &[u8]) -> Option<String> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_never_leaves_a_partial_or_empty_file() {
    let pages = crate::util::home_and_pages(PAGES, |i| Page::html(body(i, 0)));
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(
        &origin,
        "[output]\nprecompress = [\"gzip\"]\ndurability = \"batch\"\n",
    );
    assert_eq!(site.kiln(&["build"]).await.code, 0);
    let mut next = crate::util::seeded(0x9E3779B97F4A7C15u64);
    for round in 1..=12usize {
        for i in 0..PAGES {
            origin.set(&format!("/p/{i}/"), Page::html(body(i, round)));
        }
        let mut child = site.command(&["-q", "build"]).spawn().unwrap();
        // A random point of the build: before, during or after the writes.
        tokio::time::sleep(Duration::from_millis(2 + next(120))).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        for f in site.files() {
            if f.rsplit('/').next().unwrap().starts_with(".kiln-tmp")
                || f == "index.html"
                || f == "index.html.gz"
            {
                continue;
            }
            let i: usize = f.split('/').nth(1).unwrap().parse().unwrap();
            let bytes = std::fs::read(site.file(&f)).unwrap();
            let text = if f.ends_with(".gz") {
                gunzip(&bytes).unwrap_or_else(|| panic!("round {round}: {f} is a partial gzip"))
            } else {
                String::from_utf8(bytes).unwrap()
            };
            let complete = (0..=round).any(|v| text == body(i, v));
            assert!(
                complete,
                "round {round}: {f} is partial or empty ({} bytes)",
                text.len()
            );
            // A `.gz` beside a page is that page's own, whatever the kill
            // interrupted (gzip clients and others see the same version).
            if let Some(page) = f.strip_suffix(".gz") {
                assert_eq!(
                    site.read(page).as_deref(),
                    Some(text.as_str()),
                    "round {round}: {f} is another version than its page"
                );
            }
        }
    }
    // A build that runs to the end puts everything right: pages current,
    // every sibling matching its page, no temp file left.
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    for i in 0..PAGES {
        let page = site.read(&format!("p/{i}/index.html")).unwrap();
        assert_eq!(page, body(i, 12));
        let gz = std::fs::read(site.file(&format!("p/{i}/index.html.gz"))).unwrap();
        assert_eq!(gunzip(&gz).unwrap(), page, "p/{i} sibling repaired");
    }
    assert!(
        site.files().iter().all(|f| !f.contains(".kiln-tmp")),
        "{:?}",
        site.files()
    );
}
