//! The fleet as Redis sees it: each consumer group's lag and pending
//! entries on the events stream (one group per fan-out host, or one per
//! pool) and on a pool's `published` stream (one per mirror), each
//! consumer's last activity, the dead letters by host, and each pool
//! worker's heartbeat (its outbox depth). Read by `kiln status --fleet`,
//! `/metrics`, `/v1/fleet` and the daemon's status page; never written.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::Value;

/// How long a fleet read may take before it gives up (a scrape must not hang).
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Where to look.
#[derive(Debug, Clone)]
pub(crate) struct FleetSource {
    /// Redis URL.
    pub(crate) redis: String,
    /// The events stream, when this host reads one.
    pub(crate) events: Option<String>,
    /// Its dead-letter stream.
    pub(crate) dead: Option<String>,
    /// The pool's `published` stream (mirrors' groups).
    pub(crate) published: Option<String>,
    /// Key prefix of the pool's shared index (its heartbeats).
    pub(crate) pool_prefix: Option<String>,
}

impl FleetSource {
    /// What `cfg` knows of the fleet; `None` on a host without Redis.
    pub(crate) fn of(cfg: &crate::config::Config) -> Option<FleetSource> {
        if let Some(r) = &cfg.redis {
            return Some(FleetSource {
                redis: cfg
                    .pool
                    .as_ref()
                    .map_or_else(|| r.url.clone(), |p| p.redis.clone()),
                events: Some(r.stream.clone()),
                dead: Some(r.dead_stream.clone()),
                published: cfg.pool.as_ref().map(|p| p.published.clone()),
                pool_prefix: cfg.pool.as_ref().map(|p| p.key_prefix()),
            });
        }
        cfg.mirror.as_ref().map(|m| FleetSource {
            redis: m.redis.clone(),
            events: None,
            dead: None,
            published: Some(m.published.clone()),
            pool_prefix: None,
        })
    }
}

/// One consumer of a group.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ConsumerView {
    /// Its name (a host, a pool worker).
    pub(crate) name: String,
    /// Entries delivered to it and not acknowledged.
    pub(crate) pending: u64,
    /// Milliseconds since it last read or acknowledged.
    pub(crate) idle_ms: u64,
}

/// One consumer group of a stream.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct GroupView {
    /// Its name.
    pub(crate) name: String,
    /// Entries added after its position (`None`: Redis cannot tell).
    pub(crate) lag: Option<u64>,
    /// Entries delivered and not acknowledged.
    pub(crate) pending: u64,
    /// Its position.
    pub(crate) last_delivered: String,
    /// Its consumers.
    pub(crate) consumers: Vec<ConsumerView>,
}

/// One stream and its groups.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct StreamView {
    /// The stream's key.
    pub(crate) stream: String,
    /// Entries it holds.
    pub(crate) length: u64,
    /// Its consumer groups.
    pub(crate) groups: Vec<GroupView>,
}

/// A dead letter, as the fleet view lists the last few.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DeadLetter {
    /// The dead-letter entry's id.
    pub(crate) id: String,
    /// The host that gave up on it.
    pub(crate) host: String,
    /// Why.
    pub(crate) reason: String,
}

/// The dead-letter stream.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DeadView {
    /// The stream's key.
    pub(crate) stream: String,
    /// Entries it holds.
    pub(crate) length: u64,
    /// Of the last 1,000, how many each host dead-lettered.
    pub(crate) by_host: BTreeMap<String, u64>,
    /// The last five.
    pub(crate) last: Vec<DeadLetter>,
}

/// A pool worker's heartbeat.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct WorkerView {
    /// Its name.
    pub(crate) name: String,
    /// Page changes waiting in its outbox.
    pub(crate) outbox: u64,
    /// Milliseconds since its last heartbeat.
    pub(crate) seen_ms_ago: u64,
}

/// Everything the fleet view shows.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Fleet {
    /// Redis URL (without credentials).
    pub(crate) redis: String,
    /// The events stream.
    pub(crate) events: Option<StreamView>,
    /// The pool's `published` stream.
    pub(crate) published: Option<StreamView>,
    /// Dead letters.
    pub(crate) dead: Option<DeadView>,
    /// Pool workers' heartbeats.
    pub(crate) workers: Vec<WorkerView>,
}

fn text(v: &Value) -> Option<String> {
    redis::from_redis_value::<String>(v.clone()).ok()
}

fn number(m: &HashMap<String, Value>, k: &str) -> Option<u64> {
    m.get(k)
        .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
}

fn field(m: &HashMap<String, Value>, k: &str) -> String {
    m.get(k).and_then(text).unwrap_or_default()
}

/// Reads the fleet (within a few seconds, or an error).
pub(crate) async fn read(src: &FleetSource) -> Result<Fleet, String> {
    tokio::time::timeout(READ_TIMEOUT, read_now(src))
        .await
        .map_err(|_| {
            format!(
                "Redis at {} did not answer within {READ_TIMEOUT:?}",
                shown(&src.redis)
            )
        })?
        .map_err(|e| format!("Redis at {}: {e}", shown(&src.redis)))
}

/// A Redis URL without its password.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

async fn read_now(src: &FleetSource) -> redis::RedisResult<Fleet> {
    let client = redis::Client::open(src.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let events = match &src.events {
        Some(s) => Some(stream_view(&mut conn, s).await?),
        None => None,
    };
    let published = match &src.published {
        Some(s) => Some(stream_view(&mut conn, s).await?),
        None => None,
    };
    let dead = match &src.dead {
        Some(s) => Some(dead_view(&mut conn, s).await?),
        None => None,
    };
    let mut workers = Vec::new();
    if let Some(prefix) = &src.pool_prefix {
        let beats: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{prefix}workers"))
            .query_async(&mut conn)
            .await?;
        let now = crate::index::now_ms();
        for (name, beat) in beats {
            let v: serde_json::Value = serde_json::from_str(&beat).unwrap_or_default();
            workers.push(WorkerView {
                name,
                outbox: v["outbox"].as_u64().unwrap_or(0),
                seen_ms_ago: (now - v["at_ms"].as_i64().unwrap_or(0)).max(0) as u64,
            });
        }
        workers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(Fleet {
        redis: shown(&src.redis),
        events,
        published,
        dead,
        workers,
    })
}

async fn stream_view(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> redis::RedisResult<StreamView> {
    let length: u64 = redis::cmd("XLEN").arg(stream).query_async(conn).await?;
    let groups: Vec<HashMap<String, Value>> = match redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
    {
        Ok(g) => g,
        // No such stream yet: no groups.
        Err(e) if e.code() == Some("ERR") => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut views = Vec::new();
    for g in groups {
        let name = field(&g, "name");
        let consumers: Vec<HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(stream)
            .arg(&name)
            .query_async(conn)
            .await?;
        views.push(GroupView {
            lag: number(&g, "lag"),
            pending: number(&g, "pending").unwrap_or(0),
            last_delivered: field(&g, "last-delivered-id"),
            consumers: consumers
                .iter()
                .map(|c| ConsumerView {
                    name: field(c, "name"),
                    pending: number(c, "pending").unwrap_or(0),
                    idle_ms: number(c, "idle").unwrap_or(0),
                })
                .collect(),
            name,
        });
    }
    Ok(StreamView {
        stream: stream.to_string(),
        length,
        groups: views,
    })
}

async fn dead_view(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> redis::RedisResult<DeadView> {
    let length: u64 = redis::cmd("XLEN").arg(stream).query_async(conn).await?;
    let recent: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1000)
        .query_async(conn)
        .await?;
    let mut by_host = BTreeMap::new();
    let mut last = Vec::new();
    for e in recent.ids {
        let host: String = e.get("host").unwrap_or_else(|| "(unknown)".to_string());
        *by_host.entry(host.clone()).or_default() += 1;
        if last.len() < 5 {
            let reason: String = e.get("reason").unwrap_or_default();
            last.push(DeadLetter {
                id: e.id.clone(),
                host,
                reason: crate::text::excerpt(&reason, 300),
            });
        }
    }
    Ok(DeadView {
        stream: stream.to_string(),
        length,
        by_host,
        last,
    })
}

/// Milliseconds as a person reads an age.
fn age(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min", ms / 60_000)
    }
}

impl Fleet {
    /// The text `kiln status --fleet` prints.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!("fleet (Redis at {}):\n", self.redis);
        for (what, view) in [("events", &self.events), ("published", &self.published)] {
            let Some(v) = view else { continue };
            out.push_str(&format!(
                "  {what} stream {}: {} entries\n",
                v.stream, v.length
            ));
            if v.groups.is_empty() {
                out.push_str("    no consumer group reads it yet\n");
            }
            for g in &v.groups {
                let lag = g
                    .lag
                    .map_or_else(|| "unknown".to_string(), |l| l.to_string());
                out.push_str(&format!(
                    "    group {}: lag {lag}, pending {}, at {}\n",
                    g.name, g.pending, g.last_delivered
                ));
                for c in &g.consumers {
                    out.push_str(&format!(
                        "      {}: {} pending, last seen {} ago\n",
                        c.name,
                        c.pending,
                        age(c.idle_ms)
                    ));
                }
            }
        }
        if !self.workers.is_empty() {
            out.push_str("  pool workers:\n");
            for w in &self.workers {
                out.push_str(&format!(
                    "    {}: outbox {}, heartbeat {} ago\n",
                    w.name,
                    w.outbox,
                    age(w.seen_ms_ago)
                ));
            }
        }
        if let Some(d) = &self.dead {
            let hosts: Vec<String> = d.by_host.iter().map(|(h, n)| format!("{h}: {n}")).collect();
            out.push_str(&format!(
                "  dead letters {}: {}{}\n",
                d.stream,
                d.length,
                if hosts.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", hosts.join(", "))
                }
            ));
            for l in &d.last {
                out.push_str(&format!(
                    "    {} {}: {}\n",
                    l.id,
                    l.host,
                    l.reason.lines().next().unwrap_or_default()
                ));
            }
        }
        out
    }
}
