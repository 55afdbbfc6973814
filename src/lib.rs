//! kiln keeps a directory of static files, served by nginx, equal to what a
//! dynamic site or a set of templates would produce, and regenerates only the
//! files a change affects.
//!
//! # Layout
//!
//! The modules follow the pipeline a page travels:
//!
//! - [`config`]: `site.toml`, parsed raw then validated into typed values.
//! - [`tag`]: the tags kiln derives itself (`template:`, `data:`, `collection:`, `path:`).
//! - [`glob`]: how URL-path and tag globs compile (one owner).
//! - [`targets`]: the event grammar (`/path/`, `tag:`, `glob:`, `delete:`, `all`).
//! - [`links`]: link and sitemap extraction and the crawl scope (below bake and crawl).
//! - [`crawl`]: the concurrent frontier that follows links.
//! - [`source::fetch`] / [`source::render`]: where a page's bytes come from.
//! - [`privacy`]: the privacy rules that refuse per-visitor pages.
//! - [`urlpath`]: the canonical URL key and the only way a path becomes a request URL.
//! - [`urlmap`]: URL path → file, the gate that keeps writes inside the root.
//! - [`text`]: quoting untrusted text, bounded and escaped.
//! - [`files`]: the filesystem error and editor-junk rule every disk stage shares.
//! - [`body`]: page bodies, in memory or spilled to disk when large.
//! - [`write`](mod@write): the web root; the only code that writes or removes served files.
//! - [`index`]: the SQLite dependency index (pages, tags, redirects).
//! - [`lock`]: one writer per output (the daemon, or one command at a time).
//! - [`bake`]: one page through all of the above (source, decision, file,
//!   record; removals and the mass-delete guard); the run's tally. Targets
//!   resolve in [`targets`].
//! - [`intake`]: everything that turns arrivals into requests: the spool
//!   directory and the journal ([`intake::spool`]), the loopback API
//!   ([`intake::http`]), Redis Streams ([`intake::redis`]), the template
//!   watcher ([`intake::watch`]) and the `[[revalidate]]` clock
//!   ([`intake::clock`]).
//! - [`schedule`]: debounce, single flight, bounded concurrency, retries.
//! - [`fill`]: nginx's anonymous misses, one origin request each, baked.
//! - [`metrics`]: Prometheus counters.
//! - [`daemon`]: the supervisor that runs the long-lived workers.
//! - [`release`]: atomic release directories and the `current` symlink.
//! - [`retry`]: the one retry policy (backoff, cap, jitter, Retry-After, give-up age).
//! - [`nginx`]: the generated server block.
//! - [`output`]: what goes beside the local web root, drained from the
//!   outbox in order: the S3-compatible bucket ([`output::publish`]), then
//!   the CDN purge hooks ([`output::purge`]).
//! - [`pool`]: pool mode's shared index in Redis (many workers, one bake per change).
//! - [`mirror`]: a web host of a pool, the bucket copied into its web root.
//! - [`fleet`]: the fleet as Redis sees it, for `status --fleet` and `/metrics`.
//! - [`serve`]: `kiln serve`'s preview server with live reload.
//! - [`cmd`]: one module per subcommand, driven by [`run`].
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

// Durable batches use syncfs(2), and every write walks directory file
// descriptors with openat/renameat and O_NOFOLLOW as Linux provides them.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "kiln runs on Linux only (it relies on syncfs(2) and Linux's openat/renameat semantics)"
);

pub(crate) mod bake;
pub(crate) mod body;
pub mod cli;
pub mod cmd;
pub(crate) mod config;
pub(crate) mod crawl;
pub(crate) mod daemon;
pub(crate) mod files;
pub(crate) mod fill;
pub(crate) mod fleet;
pub(crate) mod glob;
pub(crate) mod index;
pub(crate) mod intake;
pub(crate) mod links;
pub(crate) mod linkscan;
pub(crate) mod lock;
pub(crate) mod metrics;
pub(crate) mod mirror;
pub(crate) mod nginx;
pub(crate) mod output;
pub(crate) mod pool;
pub(crate) mod privacy;
pub(crate) mod release;
pub(crate) mod retry;
pub(crate) mod schedule;
pub(crate) mod serve;
pub(crate) mod source;
pub(crate) mod tag;
pub(crate) mod targets;
pub(crate) mod text;
pub(crate) mod urlmap;
pub(crate) mod urlpath;
pub(crate) mod write;

pub use cli::{Cli, run};

#[cfg(test)]
mod messages;
