//! CDN purge hooks (`[[purge]]`): the URLs whose files changed (and the
//! origin's tags they had and have) are sent to a CDN so its copies go too:
//! a generic JSON webhook, Fastly purge by surrogate key, or Cloudflare
//! purge by URL or by tag. One request per call: the outbox
//! ([`crate::output`]) retries it, in order after the bucket, across
//! restarts.

use std::collections::BTreeSet;

use crate::config::{PurgeHook, PurgeKind};

/// Sends one purge; Err says why it was not accepted.
pub(crate) async fn send(
    client: &reqwest::Client,
    hook: &PurgeHook,
    urls: &BTreeSet<String>,
    tags: &BTreeSet<String>,
) -> Result<(), String> {
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
        return Ok(()); // nothing carries a tag: nothing to purge by tag
    }
    let mut req = client.post(&hook.url).json(&body);
    if let Some((name, value)) = &auth {
        req = req.header(*name, value);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => {
            tracing::debug!(hook = %hook.url, urls = urls.len(), tags = tags.len(), "CDN purge sent");
            Ok(())
        }
        Ok(r) => Err(format!("{} answered {}", hook.url, r.status())),
        Err(e) => Err(format!("{}: {e}", hook.url)),
    }
}
