//! The pool's shared index, in Redis (pool mode, docs/distributed.md).
//!
//! Bake workers on many machines share one consumer group of the events
//! stream, so each event reaches one of them; what they must agree on
//! lives here, beside the stream they already depend on:
//!
//! - `page:<url>`: the published copy of a page: its content hash, the
//!   ticket of the bake that made it (when that bake started, µs), the
//!   worker and the page's tags. Every worker's tag, glob and `all`
//!   lookups read it, so an event finds a page whichever worker baked it.
//! - `tag:<tag>`: the pages carrying a tag; `urls`: every page ever
//!   published (what `all` rebakes).
//! - `lock:<url>`: held by the worker publishing a page, so two uploads of
//!   one page never cross.
//! - `workers`: each worker's heartbeat (outbox depth, last seen).
//!
//! A worker's outbox delivers a change in three calls: [`SharedIndex::claim`]
//! decides (a newer bake already published → drop; the same content is
//! published → nothing to do; else take the lock), the upload, then
//! [`SharedIndex::commit`] records the new copy and releases the lock, and
//! the change is announced on the `published` stream for the mirrors. The
//! bake that *started* last wins: its event was read after every change
//! it can reflect, so the bucket ends on the newest content whatever order
//! the uploads finish in. Tickets come from each worker's clock; hosts must
//! keep their clocks in sync (NTP); the skew is checked against Redis at
//! start. Every script touches keys of one pool only; Redis Cluster is not
//! supported.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::config::Pool;

/// How long a worker may hold a page while it uploads it.
const LOCK: Duration = Duration::from_secs(30);

/// Clock skew against Redis above which a worker warns.
const SKEW_WARNING: Duration = Duration::from_millis(100);

/// What [`SharedIndex::claim`] decided for one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Upload it: this bake is the newest and its content is not published.
    Go,
    /// Another worker is uploading this page now; ask again shortly.
    Busy,
    /// A bake that started later already published it: drop this one.
    Stale,
    /// The published copy has this content already: nothing to upload,
    /// nothing to purge.
    Same,
    /// This worker published exactly this before a restart (upload and
    /// commit done): announce and purge it.
    Mine,
}

/// Lua: decide for one page. KEYS: page, lock. ARGV: ticket, hash, worker,
/// lock ms, tags, url, key prefix. Content already published with other
/// tags (a tag added without a change of content) moves the tags only.
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[3] then return 'busy' end
-- From here on the page is not locked, or locked by this worker (an
-- earlier claim whose upload was put off): any answer but 'go' frees it.
local function free(answer)
  if holder then redis.call('DEL', KEYS[2]) end
  return answer
end
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '-1')
local mine = tonumber(ARGV[1])
if t > mine then return free('stale') end
if t == mine and redis.call('HGET', KEYS[1], 'w') == ARGV[3] then return free('mine') end
if (redis.call('HGET', KEYS[1], 'h') or '') == ARGV[2] then
  redis.call('HSET', KEYS[1], 't', ARGV[1])
  local old = redis.call('HGET', KEYS[1], 'tags')
  if ARGV[2] ~= '' and old ~= ARGV[5] then
    if old then
      for tag in string.gmatch(old, '%S+') do redis.call('SREM', ARGV[7] .. 'tag:' .. tag, ARGV[6]) end
    end
    for tag in string.gmatch(ARGV[5], '%S+') do redis.call('SADD', ARGV[7] .. 'tag:' .. tag, ARGV[6]) end
    redis.call('HSET', KEYS[1], 'tags', ARGV[5])
  end
  return free('same')
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 'go'
";

/// Lua: record the published copy, move its tags, release the lock.
/// KEYS: page, lock, urls. ARGV: ticket, hash, worker, tags, url, prefix, file.
const COMMIT: &str = r"
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '-1')
if t > tonumber(ARGV[1]) then
  -- Our upload may have landed over the newer copy: forget that the
  -- bucket has it, so the rebake the caller asks for uploads it again.
  redis.call('HSET', KEYS[1], 'h', '')
  if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
  return 'stale'
end
local old = redis.call('HGET', KEYS[1], 'tags')
if old then
  for tag in string.gmatch(old, '%S+') do redis.call('SREM', ARGV[6] .. 'tag:' .. tag, ARGV[5]) end
end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'h', ARGV[2], 'w', ARGV[3], 'tags', ARGV[4], 'f', ARGV[7])
for tag in string.gmatch(ARGV[4], '%S+') do redis.call('SADD', ARGV[6] .. 'tag:' .. tag, ARGV[5]) end
redis.call('SADD', KEYS[3], ARGV[5])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 'ok'
";

/// A handle on the pool's shared index (cheap to clone; reconnects by itself).
#[derive(Clone)]
pub(crate) struct SharedIndex {
    pool: Pool,
    prefix: String,
    conn: ConnectionManager,
    claim: std::sync::Arc<redis::Script>,
    commit: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for SharedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedIndex")
            .field("pool", &self.pool.name)
            .finish()
    }
}

impl SharedIndex {
    /// Connects to the pool's Redis (and checks this host's clock against it).
    pub(crate) async fn connect(pool: &Pool) -> redis::RedisResult<SharedIndex> {
        let client = redis::Client::open(pool.redis.as_str())?;
        // Few quick retries: a worker whose Redis is gone says so within a
        // second (and its outbox retries the step with the shared backoff)
        // instead of stalling every publish for the manager's default ~9 s.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = ConnectionManager::new_with_config(client, config).await?;
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let theirs = secs * 1_000_000 + micros;
        let skew = Duration::from_micros((crate::index::now_ms() * 1000 - theirs).unsigned_abs());
        if skew > SKEW_WARNING {
            tracing::warn!(skew = ?skew, "this host's clock differs from Redis's: pool workers order bakes of a page by when they started, so keep every worker's clock in sync (NTP)");
        }
        Ok(SharedIndex {
            prefix: pool.key_prefix(),
            pool: pool.clone(),
            conn,
            claim: std::sync::Arc::new(redis::Script::new(CLAIM)),
            commit: std::sync::Arc::new(redis::Script::new(COMMIT)),
        })
    }

    fn page_key(&self, url: &str) -> String {
        format!("{}page:{url}", self.prefix)
    }

    fn lock_key(&self, url: &str) -> String {
        format!("{}lock:{url}", self.prefix)
    }

    /// Decides what to do with this worker's bake of `url` (ticket, content
    /// hash, `None`: the page has no file now; its tags).
    pub(crate) async fn claim(
        &self,
        url: &str,
        ticket: i64,
        hash: Option<&str>,
        tags: &[String],
    ) -> redis::RedisResult<Claim> {
        let answer: String = self
            .claim
            .key(self.page_key(url))
            .key(self.lock_key(url))
            .arg(ticket)
            .arg(hash.unwrap_or(""))
            .arg(&self.pool.worker)
            .arg(LOCK.as_millis() as u64)
            .arg(tags.join(" "))
            .arg(url)
            .arg(&self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match answer.as_str() {
            "go" => Claim::Go,
            "busy" => Claim::Busy,
            "stale" => Claim::Stale,
            "same" => Claim::Same,
            _ => Claim::Mine,
        })
    }

    /// The file of the page's published copy (`None`: none published).
    pub(crate) async fn published_file(&self, url: &str) -> redis::RedisResult<Option<String>> {
        let file: Option<String> = self.conn.clone().hget(self.page_key(url), "f").await?;
        Ok(file.filter(|f| !f.is_empty()))
    }

    /// Records the copy just uploaded (its file, `None` when the page was
    /// removed) and releases the page. False when a newer bake committed
    /// meanwhile (this worker's lock had expired).
    pub(crate) async fn commit(
        &self,
        url: &str,
        ticket: i64,
        hash: Option<&str>,
        file: Option<&str>,
        tags: &[String],
    ) -> redis::RedisResult<bool> {
        let answer: String = self
            .commit
            .key(self.page_key(url))
            .key(self.lock_key(url))
            .key(format!("{}urls", self.prefix))
            .arg(ticket)
            .arg(hash.unwrap_or(""))
            .arg(&self.pool.worker)
            .arg(tags.join(" "))
            .arg(url)
            .arg(&self.prefix)
            .arg(file.unwrap_or(""))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(answer == "ok")
    }

    /// Asks the pool to bake `url` again (an event on the events stream).
    pub(crate) async fn rebake(&self, url: &str) -> redis::RedisResult<()> {
        let _: String = redis::cmd("XADD")
            .arg(&self.pool.events)
            .arg("*")
            .arg("targets")
            .arg(format!("{url}\n"))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Tells the mirrors that `keys` of the bucket changed for `url`.
    pub(crate) async fn announce(&self, url: &str, keys: &[String]) -> redis::RedisResult<()> {
        let _: String = redis::cmd("XADD")
            .arg(&self.pool.published)
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("url")
            .arg(url)
            .arg("keys")
            .arg(keys.join("\n"))
            .arg("host")
            .arg(&self.pool.worker)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Pages carrying `tag`, whichever worker published them.
    pub(crate) async fn urls_for_tag(&self, tag: &str) -> redis::RedisResult<Vec<String>> {
        self.conn
            .clone()
            .smembers(format!("{}tag:{tag}", self.prefix))
            .await
    }

    /// Those of `urls` the pool never published.
    pub(crate) async fn unpublished(&self, urls: Vec<String>) -> redis::RedisResult<Vec<String>> {
        let known: Vec<bool> = redis::cmd("SMISMEMBER")
            .arg(format!("{}urls", self.prefix))
            .arg(&urls)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(urls
            .into_iter()
            .zip(known)
            .filter_map(|(u, k)| (!k).then_some(u))
            .collect())
    }

    /// Every page the pool ever published.
    pub(crate) async fn every_url(&self) -> redis::RedisResult<Vec<String>> {
        self.conn
            .clone()
            .smembers(format!("{}urls", self.prefix))
            .await
    }

    /// Records this worker's heartbeat: its outbox depth and the time.
    pub(crate) async fn heartbeat(&self, outbox: usize) -> redis::RedisResult<()> {
        let beat = serde_json::json!({
            "role": "worker",
            "outbox": outbox,
            "at_ms": crate::index::now_ms(),
            "pid": std::process::id(),
        });
        self.conn
            .clone()
            .hset(
                format!("{}workers", self.prefix),
                &self.pool.worker,
                beat.to_string(),
            )
            .await
    }
}

/// Keeps this worker's heartbeat fresh until `shutdown`.
pub(crate) async fn heartbeat(
    shared: SharedIndex,
    index: crate::index::Index,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let depth = index.outbox_depth().await.unwrap_or(0);
        if let Err(e) = shared.heartbeat(depth).await {
            tracing::debug!(error = %e, "could not record this worker's heartbeat");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
