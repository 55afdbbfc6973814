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
//! - [`targets`]: the event grammar (`/path/`, `tag:`, `glob:`, `delete:`, `all`).
//! - [`crawl`]: link and sitemap discovery, scope, and the concurrent frontier.
//! - [`source::fetch`] / [`source::render`]: where a page's bytes come from.
//! - [`check`]: privacy checks that refuse per-visitor pages.
//! - [`urlpath`]: the canonical URL key and the only way a path becomes a request URL.
//! - [`urlmap`]: URL path → file, the gate that keeps writes inside the root.
//! - [`files`]: the filesystem error and editor-junk rule every disk stage shares.
//! - [`body`]: page bodies, in memory or spilled to disk when large.
//! - [`write`]: the web root; the only code that writes or removes served files.
//! - [`index`]: the SQLite dependency index (pages, tags, redirects).
//! - [`lock`]: one writer per output (the daemon, or one command at a time).
//! - [`bake`]: one page through all of the above; target resolution; summaries.
//! - [`queue`]: the durable spool directory (`tmp/` → `new/` → done or `failed/`).
//! - [`schedule`]: debounce, single flight, bounded concurrency, retries.
//! - [`http`]: the loopback API; [`metrics`]: Prometheus counters.
//! - [`watch`]: template and data watching in render mode.
//! - [`daemon`]: the supervisor that runs the long-lived workers.
//! - [`release`]: atomic release directories and the `current` symlink.
//! - [`nginx`]: the generated server block.
//! - [`cmd`]: one module per subcommand, driven by [`run`].
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod bake;
pub mod body;
pub mod check;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod crawl;
pub mod daemon;
pub mod files;
pub mod http;
pub mod index;
pub mod lock;
pub mod metrics;
pub mod nginx;
pub mod queue;
pub mod release;
pub mod schedule;
pub mod source;
pub mod tag;
pub mod targets;
pub mod urlmap;
pub mod urlpath;
pub mod watch;
pub mod write;

pub use cli::{run, Cli};

#[cfg(test)]
mod messages;
