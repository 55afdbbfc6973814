//! The frontier: bakes seed URLs with bounded concurrency and follows the
//! links of what it baked (all of them for a build, only unknown ones for a
//! regeneration), within the crawl limits.

use std::collections::{HashSet, VecDeque};

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bake::{Baker, Outcome, PageResult, Summary};

/// Whether the frontier follows links of baked pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Full crawl: every in-scope link, up to the limits.
    All,
    /// Regeneration: only links the index has never seen (new pages).
    NewOnly,
}

/// Bakes `seeds` and, per `follow`, the pages they link to. Stops taking new
/// work when `shutdown` fires; in-flight pages finish.
pub(crate) async fn run(
    baker: &Arc<Baker>,
    seeds: Vec<String>,
    follow: Follow,
    progress: &indicatif::ProgressBar,
    shutdown: &CancellationToken,
) -> Summary {
    let limits = baker.crawl_limits();
    let in_flight_max = baker.pages_in_flight();
    let mut summary = Summary::start();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<(String, usize)> = VecDeque::new();
    for s in seeds {
        if seen.insert(s.clone()) {
            queue.push_back((s, 0));
        }
    }
    progress.set_length(queue.len() as u64);
    // Each page is its own task, so the runtime spreads parsing, hashing and
    // writing over every worker thread.
    let mut in_flight: JoinSet<(PageResult, usize)> = JoinSet::new();
    loop {
        while in_flight.len() < in_flight_max && !shutdown.is_cancelled() {
            let Some((url, depth)) = queue.pop_front() else {
                break;
            };
            let baker = Arc::clone(baker);
            in_flight.spawn(async move { (baker.bake(&url).await, depth) });
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let (result, depth) = match joined {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "page task failed");
                continue;
            }
        };
        progress.inc(1);
        if let Some(final_path) = &result.final_path {
            seen.insert(final_path.clone());
        }
        if matches!(result.outcome, Outcome::Written | Outcome::Unchanged) {
            let mut links: Vec<String> = result
                .links
                .iter()
                .filter(|l| !seen.contains(*l) && baker.in_scope(l))
                .cloned()
                .collect();
            if follow == Follow::NewOnly && !links.is_empty() {
                // One index round trip for the whole page; on error follow none.
                links = baker.unknown(links).await;
            }
            for link in links {
                if depth + 1 > limits.max_depth || seen.len() >= limits.max_pages {
                    break;
                }
                if seen.insert(link.clone()) {
                    queue.push_back((link, depth + 1));
                    progress.inc_length(1);
                }
            }
            if seen.len() >= limits.max_pages && !summary.hit_page_limit {
                summary.hit_page_limit = true;
                tracing::warn!(
                    max_pages = limits.max_pages,
                    "crawl.max-pages reached; not following more links"
                );
            }
        }
        summary.add(result);
    }
    summary.finish();
    summary
}
