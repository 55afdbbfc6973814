//! `[daemon]`, `[intake]` and `[[revalidate]]`: the long-running process, its
//! Redis intake, and the clock for pages no event names.

use std::path::PathBuf;
use std::time::Duration;

use globset::GlobMatcher;
use serde::Deserialize;

use super::{ConfigError, HumanDuration, Invalid, Size};
use crate::glob::path_matcher;

/// `[daemon]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDaemon {
    /// HTTP listen address.
    pub(crate) listen: Option<String>,
    /// Name of the environment variable holding the bearer token.
    pub(crate) token_env: Option<String>,
    /// Debounce window.
    pub(crate) debounce: Option<HumanDuration>,
    /// Periodic spool rescan interval.
    pub(crate) rescan: Option<HumanDuration>,
    /// Watch templates and data files (render mode).
    pub(crate) watch: Option<bool>,
    /// Keep retrying a page that fails transiently for this long.
    pub(crate) give_up_after: Option<HumanDuration>,
    /// Longest wait between two retries of one page.
    pub(crate) max_retry_delay: Option<HumanDuration>,
    /// Largest spool file read; bigger ones go to `failed/` unread.
    pub(crate) max_spool_file: Option<Size>,
    /// Most targets one request or spool file may name.
    pub(crate) max_targets: Option<usize>,
    /// Answer nginx's anonymous misses (`/v1/fill`): one origin request per
    /// missed URL however many visitors ask, and the page baked.
    pub(crate) fill: Option<bool>,
    /// How long an origin failure or a 404 seen by a fill is shown to
    /// further misses of that URL before the origin is asked again.
    pub(crate) fill_window: Option<HumanDuration>,
    /// Command that reloads nginx when the types map changed (run with
    /// `sh -c`), e.g. `systemctl reload nginx`.
    pub(crate) nginx_reload: Option<String>,
}

/// `[daemon]`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    /// HTTP listen address; `None` disables the endpoint.
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Environment variable name of the token.
    pub(crate) token_env: String,
    /// Debounce window.
    pub(crate) debounce: Duration,
    /// Spool rescan interval.
    pub(crate) rescan: Duration,
    /// Watch templates and data (render mode).
    pub(crate) watch: bool,
    /// Transient failures are retried until this age, then given up.
    pub(crate) give_up_after: Duration,
    /// Cap of the exponential retry backoff.
    pub(crate) max_retry_delay: Duration,
    /// Largest spool file read.
    pub(crate) max_spool_file: u64,
    /// Most targets per request or spool file.
    pub(crate) max_targets: usize,
    /// Whether `/v1/fill` answers nginx's anonymous misses.
    pub(crate) fill: bool,
    /// How long a failed or 404 fill answers further misses of its URL.
    pub(crate) fill_window: Duration,
    /// Reloads nginx after the types map changed.
    pub(crate) nginx_reload: Option<String>,
}

pub(super) fn resolve_daemon(raw: RawDaemon, invalid: &Invalid<'_>) -> Result<Daemon, ConfigError> {
    let listen_text = raw.listen.as_deref().unwrap_or("127.0.0.1:7878");
    let listen = parse_listen(listen_text).map_err(|_| {
        invalid(
            "daemon.listen",
            format!("is `{listen_text}`: expected an address like \"127.0.0.1:7878\" or \"off\""),
        )
    })?;
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    if raw.max_targets == Some(0) {
        return Err(invalid(
            "daemon.max-targets",
            "is 0, so every request would be refused; use a positive number (default 10000)"
                .to_string(),
        ));
    }
    if raw.rescan.as_ref().is_some_and(|d| d.0.is_zero()) {
        return Err(invalid(
            "daemon.rescan",
            "is 0s; use a positive interval such as \"5s\"".to_string(),
        ));
    }
    Ok(Daemon {
        listen,
        token_env: raw.token_env.unwrap_or_else(|| "KILN_TOKEN".to_string()),
        debounce: raw.debounce.map_or(ms(100), |d| d.0),
        rescan: raw.rescan.map_or(secs(5), |d| d.0),
        watch: raw.watch.unwrap_or(true),
        give_up_after: raw.give_up_after.map_or(secs(6 * 3600), |d| d.0),
        max_retry_delay: raw.max_retry_delay.map_or(secs(30), |d| d.0),
        max_spool_file: raw.max_spool_file.map_or(4 << 20, |s| s.0),
        max_targets: raw.max_targets.unwrap_or(10_000),
        fill: raw.fill.unwrap_or(true),
        fill_window: raw.fill_window.map_or(secs(2), |d| d.0),
        nginx_reload: raw.nginx_reload.filter(|c| !c.trim().is_empty()),
    })
}

/// Parses a listen address: `"off"` or empty disables the endpoint.
pub(crate) fn parse_listen(
    text: &str,
) -> Result<Option<std::net::SocketAddr>, std::net::AddrParseError> {
    match text {
        "" | "off" => Ok(None),
        // `localhost:7878` is what people type: the loopback address.
        s => match s.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}").parse().map(Some),
            None => s.parse().map(Some),
        },
    }
}

/// `[intake]`: event sources beside the spool and the HTTP endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIntake {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/0`.
    pub(crate) redis: Option<String>,
    /// Stream name.
    pub(crate) stream: Option<String>,
    /// Consumer group (one per web host for fan-out).
    pub(crate) group: Option<String>,
    /// Consumer name within the group.
    pub(crate) consumer: Option<String>,
    /// Where entries that finally fail go.
    pub(crate) dead_stream: Option<String>,
    /// Entries pending on a consumer for longer than this are reclaimed.
    pub(crate) claim_idle: Option<HumanDuration>,
    /// Approximate stream length kept (`MAXLEN ~`).
    pub(crate) max_len: Option<usize>,
}

/// `[intake] redis = ...`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct RedisIntake {
    /// Redis URL.
    pub(crate) url: String,
    /// Stream of event entries.
    pub(crate) stream: String,
    /// This host's consumer group.
    pub(crate) group: String,
    /// This daemon's consumer name.
    pub(crate) consumer: String,
    /// Dead-letter stream.
    pub(crate) dead_stream: String,
    /// Idle time after which another consumer's pending entries are reclaimed.
    pub(crate) claim_idle: Duration,
    /// Approximate length the streams are trimmed to.
    pub(crate) max_len: usize,
    /// Most distinct targets one entry may name (`daemon.max-targets`).
    pub(crate) max_targets: usize,
    /// A file beside the index that says this host's group existed: a
    /// group found missing later means Redis lost it.
    pub(crate) group_marker: PathBuf,
}

pub(super) fn resolve_intake(
    raw: RawIntake,
    invalid: &Invalid<'_>,
) -> Result<Option<RedisIntake>, ConfigError> {
    let Some(url) = raw.redis else {
        return Ok(None);
    };
    redis::Client::open(url.as_str()).map_err(|e| {
        invalid(
            "intake.redis",
            format!("is `{url}`: {e}; expected e.g. \"redis://127.0.0.1:6379/0\""),
        )
    })?;
    // Fan-out by default: one group per web host.
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let group = raw.group.unwrap_or(host);
    Ok(Some(RedisIntake {
        url,
        stream: raw.stream.unwrap_or_else(|| "kiln:events".into()),
        consumer: raw.consumer.unwrap_or_else(|| group.clone()),
        group,
        dead_stream: raw.dead_stream.unwrap_or_else(|| "kiln:events:dead".into()),
        claim_idle: raw.claim_idle.map_or(Duration::from_secs(60), |d| d.0),
        max_len: raw.max_len.unwrap_or(100_000).max(100),
        // Set from `[daemon]` and `[site]` once those are resolved.
        max_targets: usize::MAX,
        group_marker: PathBuf::new(),
    }))
}

/// `[[revalidate]]`: pages re-checked on a clock, for changes no event names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRevalidate {
    /// URL path glob, e.g. `/` or `/news/**`.
    pub(crate) glob: String,
    /// Each matching page is re-checked once per this interval.
    pub(crate) every: HumanDuration,
    /// A page whose origin said `Cache-Control: s-maxage=N` (or `max-age`)
    /// with N shorter than `every` is re-checked every N instead.
    pub(crate) honour_cache_control: Option<bool>,
}

/// A `[[revalidate]]` rule, resolved.
#[derive(Debug, Clone)]
pub(crate) struct RevalidateRule {
    /// The glob as written (for messages and status).
    pub(crate) pattern: String,
    /// Matches URL paths.
    pub(crate) glob: GlobMatcher,
    /// Interval over which every matching page is re-checked once.
    pub(crate) every: Duration,
    /// Shorter intervals from the origin's `Cache-Control` apply.
    pub(crate) honour_cache_control: bool,
}

pub(super) fn resolve_revalidate(
    raw: Vec<RawRevalidate>,
    invalid: &Invalid<'_>,
) -> Result<Vec<RevalidateRule>, ConfigError> {
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let glob = path_matcher(&r.glob).map_err(|e| {
            invalid(
                &format!("revalidate[{i}].glob"),
                format!(
                    "is `{}`: {e}; write a URL path glob such as \"/\" or \"/news/**\"",
                    r.glob
                ),
            )
        })?;
        if r.every.0 < Duration::from_secs(1) {
            return Err(invalid(
                &format!("revalidate[{i}].every"),
                format!(
                    "is {:?}: re-checking a page more than once a second is a load test, not a safety net; use \"1s\" or more",
                    r.every.0
                ),
            ));
        }
        out.push(RevalidateRule {
            pattern: r.glob,
            glob,
            every: r.every.0,
            honour_cache_control: r.honour_cache_control.unwrap_or(false),
        });
    }
    Ok(out)
}
