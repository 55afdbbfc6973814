//! CDN purge hooks (`[[purge]]`): after each batch of regenerations, the
//! URLs whose files changed (and their dependency tags) are sent to a CDN so
//! its copies go too: a generic JSON webhook, Fastly purge by surrogate key,
//! or Cloudflare purge by URL or by tag. Sent with retries and backoff;
//! failures are logged and counted, never lose a page.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{PurgeHook, PurgeKind};
use crate::index::Index;

/// How long changes gather before one purge is sent.
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// Attempts per purge request.
const ATTEMPTS: u32 = 4;

/// Counts for `/v1/status` and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PurgeStats {
    /// Purge requests that succeeded.
    pub(crate) sent: AtomicU64,
    /// Purge requests that failed after every attempt.
    pub(crate) failed: AtomicU64,
}

/// Gathers changed URLs from the scheduler and sends them to every hook.
pub(crate) async fn worker(
    hooks: Vec<PurgeHook>,
    mut changed: mpsc::UnboundedReceiver<String>,
    index: Index,
    stats: Arc<PurgeStats>,
    shutdown: CancellationToken,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            u = changed.recv() => match u { Some(u) => u, None => return },
        };
        let mut urls = BTreeSet::from([first]);
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                u = changed.recv() => match u { Some(u) => { urls.insert(u); } None => break },
            }
        }
        // The origin's tags of those pages (kiln's own tags mean nothing to a CDN).
        let mut tags = BTreeSet::new();
        for u in &urls {
            if let Ok(Some(page)) = index.page(u).await {
                tags.extend(page.tags.unwrap_or_default().into_iter().filter(|t| {
                    !["path:", "template:", "data:", "collection:"]
                        .iter()
                        .any(|p| t.starts_with(p))
                }));
            }
        }
        for hook in &hooks {
            let ok = send(&client, hook, &urls, &tags).await;
            let counter = if ok { &stats.sent } else { &stats.failed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends one purge with retries; true when it was accepted.
async fn send(
    client: &reqwest::Client,
    hook: &PurgeHook,
    urls: &BTreeSet<String>,
    tags: &BTreeSet<String>,
) -> bool {
    let full: Vec<String> = urls
        .iter()
        .map(|u| format!("{}{u}", hook.base_url.trim_end_matches('/')))
        .collect();
    let token = hook.token_env.as_ref().and_then(|v| std::env::var(v).ok());
    let (body, auth): (serde_json::Value, Option<(&str, String)>) = match hook.kind {
        PurgeKind::Webhook => (
            serde_json::json!({"urls": urls, "full_urls": full, "tags": tags}),
            token.map(|t| ("authorization", format!("Bearer {t}"))),
        ),
        PurgeKind::Fastly => (
            serde_json::json!({"surrogate_keys": tags}),
            token.map(|t| ("fastly-key", t)),
        ),
        PurgeKind::CloudflareUrls => (
            serde_json::json!({"files": full}),
            token.map(|t| ("authorization", format!("Bearer {t}"))),
        ),
        PurgeKind::CloudflareTags => (
            serde_json::json!({"tags": tags}),
            token.map(|t| ("authorization", format!("Bearer {t}"))),
        ),
    };
    if matches!(hook.kind, PurgeKind::Fastly | PurgeKind::CloudflareTags) && tags.is_empty() {
        return true; // nothing carries a tag: nothing to purge by tag
    }
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        let mut req = client.post(&hook.url).json(&body);
        if let Some((name, value)) = &auth {
            req = req.header(*name, value);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(hook = %hook.url, urls = urls.len(), tags = tags.len(), "CDN purge sent");
                return true;
            }
            Ok(r) => {
                tracing::warn!(hook = %hook.url, status = %r.status(), attempt, "CDN purge refused; will retry")
            }
            Err(e) => {
                tracing::warn!(hook = %hook.url, error = %e, attempt, "CDN purge failed; will retry")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(hook = %hook.url, urls = urls.len(), "CDN purge gave up; the CDN may serve old copies of these pages until they expire");
    false
}
