//! The frontier: bakes seed URLs with bounded concurrency and follows the
//! links of what it baked (all of them for a build, only unknown ones for a
//! regeneration), within the crawl limits.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

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
    let mut queue: VecDeque<String> = VecDeque::new();
    // The depth of each URL waiting in the queue: pages finish out of
    // order, so a URL first found through a longer path gets the shorter
    // path's depth if that is found before the URL starts.
    let mut queued: HashMap<String, usize> = HashMap::new();
    // How many pages of each depth are being baked.
    let mut depths_in_flight: BTreeMap<usize, usize> = BTreeMap::new();
    for s in seeds {
        if seen.insert(s.clone()) {
            queued.insert(s.clone(), 0);
            queue.push_back(s);
        }
    }
    progress.set_length(queue.len() as u64);
    // Each page is its own task, so the runtime spreads parsing, hashing and
    // writing over every worker thread.
    let mut in_flight: JoinSet<(PageResult, usize)> = JoinSet::new();
    loop {
        while in_flight.len() < in_flight_max && !shutdown.is_cancelled() {
            // A URL's depth is final once no page two levels above it is
            // still being baked (one of those could link to it by a
            // shorter path): until then it waits, so `max-depth` counts
            // the shortest path whatever order pages finish in.
            let Some(next_depth) = queue.front().and_then(|u| queued.get(u)).copied() else {
                break;
            };
            if depths_in_flight
                .keys()
                .next()
                .is_some_and(|&lowest| lowest + 1 < next_depth)
            {
                break;
            }
            let Some(url) = queue.pop_front() else {
                break;
            };
            let depth = queued.remove(&url).unwrap_or(0);
            *depths_in_flight.entry(depth).or_insert(0) += 1;
            let baker = Arc::clone(baker);
            in_flight.spawn(async move { (baker.bake(&url).await, depth) });
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let (result, depth) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A panicked page's depth is unknown here: the level
                // barrier above must not wait for it forever.
                tracing::error!(error = %e, "page task failed");
                depths_in_flight.clear();
                continue;
            }
        };
        if let Some(n) = depths_in_flight.get_mut(&depth) {
            *n -= 1;
            if *n == 0 {
                depths_in_flight.remove(&depth);
            }
        }
        progress.inc(1);
        if let Some(final_path) = &result.final_path {
            seen.insert(final_path.clone());
        }
        if matches!(result.outcome, Outcome::Written | Outcome::Unchanged) {
            for l in &result.links {
                if let Some(d) = queued.get_mut(l) {
                    *d = (*d).min(depth + 1);
                }
            }
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
                    queued.insert(link.clone(), depth + 1);
                    queue.push_back(link);
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
