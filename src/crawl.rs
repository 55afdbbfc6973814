//! The frontier: bakes seed URLs with bounded concurrency and follows the
//! links of what it baked (all of them for a build, only unknown ones for a
//! regeneration), within the crawl limits.
//!
//! Its memory does not hold the site (guarantee 13): the pages the index
//! knows are read in batches as the crawl goes, not listed up front, and a
//! URL the crawl has seen is remembered by 16 bytes of its hash, not by
//! its text. What it holds per page is the queue of pages found but not
//! baked yet.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bake::{Baker, Outcome, PageResult, Summary};
use crate::urlpath::UrlKey;

/// Whether the frontier follows links of baked pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Full crawl: every in-scope link, up to the limits.
    All,
    /// Regeneration: only links the index has never seen (new pages).
    NewOnly,
}

/// Where a crawl starts.
#[derive(Debug, Default)]
pub(crate) struct Seeds {
    /// URLs named: render routes, crawl seeds, a regeneration's targets.
    pub(crate) listed: Vec<String>,
    /// Also every page the index knows (a full build), read in batches
    /// ([`Baker::next_known`]).
    pub(crate) known: bool,
}

impl Seeds {
    /// Only these URLs.
    pub(crate) fn listed(listed: Vec<String>) -> Seeds {
        Seeds {
            listed,
            known: false,
        }
    }
}

/// The depth of a URL in the crawl's seen map once it has started.
const STARTED: u32 = u32::MAX;

/// Known pages read from the index at a time.
const KNOWN_BATCH: usize = 2048;

/// Bakes `seeds` and, per `follow`, the pages they link to. Stops taking new
/// work when `shutdown` fires; in-flight pages finish.
pub(crate) async fn run(
    baker: &Arc<Baker>,
    seeds: Seeds,
    follow: Follow,
    progress: &indicatif::ProgressBar,
    shutdown: &CancellationToken,
) -> Summary {
    let limits = baker.crawl_limits();
    let in_flight_max = baker.pages_in_flight();
    let mut summary = Summary::start();
    // Every URL the crawl has seen, with its depth while it waits in a
    // queue (pages finish out of order, so a URL first found through a
    // longer path gets the shorter path's depth if that is found before
    // it starts), `STARTED` once it has. One map: a million pages' keys
    // are held once.
    let mut seen: HashMap<UrlKey, u32> = HashMap::new();
    // Seeds (depth 0) start before any page found by a link, as if all
    // were listed first; the known pages come from the index in batches
    // while `known_after` says where the next batch starts.
    let mut seed_queue: VecDeque<String> = VecDeque::new();
    let mut known_after: Option<Option<String>> = seeds.known.then_some(None);
    let mut queue: VecDeque<String> = VecDeque::new();
    // How many pages of each depth are being baked.
    let mut depths_in_flight: BTreeMap<usize, usize> = BTreeMap::new();
    for s in seeds.listed {
        let key = UrlKey::of(&s);
        if let Entry::Vacant(e) = seen.entry(key) {
            e.insert(0);
            seed_queue.push_back(s);
        }
    }
    progress.set_length(seed_queue.len() as u64);
    // Each page is its own task, so the runtime spreads parsing, hashing and
    // writing over every worker thread.
    let mut in_flight: JoinSet<(PageResult, usize)> = JoinSet::new();
    loop {
        while in_flight.len() < in_flight_max && !shutdown.is_cancelled() {
            if seed_queue.len() < in_flight_max {
                if let Some(after) = known_after.take() {
                    let batch = baker.next_known(after, KNOWN_BATCH).await;
                    if batch.len() == KNOWN_BATCH {
                        known_after = Some(batch.last().map(|(url, _)| url.clone()));
                    }
                    for (url, validators) in batch {
                        let key = UrlKey::of(&url);
                        let waiting = match seen.entry(key) {
                            Entry::Vacant(e) => {
                                e.insert(0);
                                seed_queue.push_back(url.clone());
                                progress.inc_length(1);
                                true
                            }
                            // Baked already, or being baked.
                            Entry::Occupied(e) if *e.get() == STARTED => false,
                            // Waiting (a listed seed, or found by a link
                            // first: a seed's depth then).
                            Entry::Occupied(mut e) => {
                                e.insert(0);
                                true
                            }
                        };
                        if let (true, Some(v)) = (waiting, validators) {
                            baker.expect(&url, v);
                        }
                    }
                }
            }
            let (url, depth) = if let Some(url) = seed_queue.pop_front() {
                seen.insert(UrlKey::of(&url), STARTED);
                (url, 0)
            } else {
                // A URL's depth is final once no page two levels above it
                // is still being baked (one of those could link to it by a
                // shorter path): until then it waits, so `max-depth` counts
                // the shortest path whatever order pages finish in.
                let Some(next_depth) = queue
                    .front()
                    .and_then(|u| seen.get(&UrlKey::of(u)))
                    .map(|&d| d as usize)
                else {
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
                let depth = seen
                    .insert(UrlKey::of(&url), STARTED)
                    .filter(|&d| d != STARTED)
                    .unwrap_or(0) as usize;
                (url, depth)
            };
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
            seen.entry(UrlKey::of(final_path)).or_insert(STARTED);
        }
        if matches!(result.outcome, Outcome::Written | Outcome::Unchanged) {
            // One look per link: a waiting one may get a shorter depth,
            // an unseen one in scope is followed.
            let mut links: Vec<String> = Vec::new();
            for l in &result.links {
                match seen.get_mut(&UrlKey::of(l)) {
                    Some(d) if *d != STARTED => *d = (*d).min(depth as u32 + 1),
                    Some(_) => {}
                    None if baker.in_scope(l) => links.push(l.clone()),
                    None => {}
                }
            }
            if follow == Follow::NewOnly && !links.is_empty() {
                // One index round trip for the whole page; on error follow none.
                links = baker.unknown(links).await;
            }
            for link in links {
                if depth + 1 > limits.max_depth || seen.len() >= limits.max_pages {
                    break;
                }
                if let Entry::Vacant(e) = seen.entry(UrlKey::of(&link)) {
                    e.insert(depth as u32 + 1);
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
