//! `[pool]` and `[mirror]`: baking once for many web hosts
//! (docs/distributed.md).
//!
//! A pool worker reads the events stream in the pool's one consumer group,
//! publishes to the bucket and keeps the pool's shared index in Redis; a
//! mirror follows the pool's `published` stream and copies changed objects
//! from the bucket into its own web root, never asking the origin.

use serde::Deserialize;

use super::{ConfigError, Invalid, PublishS3, RawPublish, resolve_publish};

/// `[pool]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPool {
    /// The pool's name: its consumer group, its shared index's key prefix.
    pub(crate) name: Option<String>,
    /// Stream the pool announces published changes on.
    pub(crate) published: Option<String>,
}

/// A bake worker of a pool.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    /// The pool's name.
    pub(crate) name: String,
    /// Redis URL of the shared index: the events stream's Redis (one
    /// dependency, failing as one: docs/distributed.md).
    pub(crate) redis: String,
    /// The `published` stream.
    pub(crate) published: String,
    /// This worker's name (its consumer name in the events group).
    pub(crate) worker: String,
    /// The events stream the pool reads (`intake.stream`).
    pub(crate) events: String,
}

impl Pool {
    /// Prefix of every key of the shared index.
    pub(crate) fn key_prefix(&self) -> String {
        format!("kiln:pool:{}:", self.name)
    }
}

/// `[mirror]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMirror {
    /// Redis holding the pool's `published` stream.
    pub(crate) redis: Option<String>,
    /// The pool followed (names the stream by default).
    pub(crate) pool: Option<String>,
    /// The `published` stream, when not the pool's default.
    pub(crate) published: Option<String>,
    /// This mirror's consumer group; default the host name.
    pub(crate) group: Option<String>,
    /// The bucket the pool publishes to.
    pub(crate) bucket: Option<String>,
    /// Its endpoint.
    pub(crate) endpoint: Option<String>,
    /// Its region.
    pub(crate) region: Option<String>,
    /// Its key prefix.
    pub(crate) prefix: Option<String>,
    /// Path-style addressing.
    pub(crate) path_style: Option<bool>,
    /// Downloads in flight at once while bootstrapping (default 16).
    pub(crate) concurrency: Option<usize>,
}

/// A web host that copies the pool's output from the bucket.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    /// Redis URL.
    pub(crate) redis: String,
    /// The `published` stream.
    pub(crate) published: String,
    /// This mirror's consumer group.
    pub(crate) group: String,
    /// The bucket.
    pub(crate) bucket: PublishS3,
}

/// The machine's host name: the default consumer group or name.
pub(crate) fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn published_default(pool: &str) -> String {
    format!("kiln:{pool}:published")
}

fn check_redis(key: &str, url: &str, invalid: &Invalid<'_>) -> Result<(), ConfigError> {
    redis::Client::open(url).map(|_| ()).map_err(|e| {
        invalid(
            key,
            format!("is `{url}`: {e}; expected e.g. \"redis://127.0.0.1:6379/0\""),
        )
    })
}

/// `[pool]`: needs the events stream (`[intake] redis`) and a bucket
/// (`[[publish]]`), since a pool's pages reach the web hosts through it.
pub(super) fn resolve_pool(
    raw: Option<RawPool>,
    intake_redis: Option<&str>,
    events: Option<&str>,
    consumer: Option<&str>,
    publish: &[PublishS3],
    invalid: &Invalid<'_>,
) -> Result<Option<Pool>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let name = raw.name.unwrap_or_else(|| "kiln".to_string());
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(invalid(
            "pool.name",
            format!("is `{name}`: use a short name without spaces, such as \"www\""),
        ));
    }
    let Some(events_redis) = intake_redis else {
        return Err(invalid(
            "pool",
            "needs the events stream: add `[intake] redis = \"redis://…\"` (the pool's workers share its consumer group)".into(),
        ));
    };
    if publish.is_empty() {
        return Err(invalid(
            "pool",
            "needs a bucket: add a `[[publish]]` target (the pool's pages reach the web hosts through it; they run `kiln mirror`)".into(),
        ));
    }
    let redis = events_redis.to_string();
    Ok(Some(Pool {
        published: raw.published.unwrap_or_else(|| published_default(&name)),
        name,
        redis,
        worker: consumer.map_or_else(host_name, str::to_owned),
        events: events.unwrap_or("kiln:events").to_string(),
    }))
}

/// `[mirror]`: a bucket and the stream announcing what changed in it.
pub(super) fn resolve_mirror(
    raw: Option<RawMirror>,
    invalid: &Invalid<'_>,
) -> Result<Option<Mirror>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let Some(redis) = raw.redis else {
        return Err(invalid(
            "mirror.redis",
            "is missing: name the Redis the pool announces on, e.g. \"redis://10.0.0.5:6379\""
                .into(),
        ));
    };
    check_redis("mirror.redis", &redis, invalid)?;
    let Some(bucket) = raw.bucket else {
        return Err(invalid(
            "mirror.bucket",
            "is missing: name the bucket the pool publishes to (its `[[publish]]` bucket)".into(),
        ));
    };
    let pool = raw.pool.unwrap_or_else(|| "kiln".to_string());
    let mut resolved = resolve_publish(
        vec![RawPublish {
            kind: "s3".into(),
            bucket,
            prefix: raw.prefix,
            endpoint: raw.endpoint,
            region: raw.region,
            path_style: raw.path_style,
            cache_control: None,
            concurrency: raw.concurrency,
        }],
        &|key: &str, message: String| invalid(&key.replace("publish[0]", "mirror"), message),
    )?;
    Ok(Some(Mirror {
        redis,
        published: raw.published.unwrap_or_else(|| published_default(&pool)),
        group: raw.group.unwrap_or_else(host_name),
        bucket: resolved.remove(0),
    }))
}
