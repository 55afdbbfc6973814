//! `kiln status`: what the index knows.

use crate::cli::{Exit, GlobalArgs};
use crate::index::Index;

/// `kiln status` flags.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Prints counts by status, failing URLs, tag count and queue depth.
pub async fn run(g: &GlobalArgs, args: StatusArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let index = Index::open(&cfg.state)?;
    let summary = index.summary().await?;
    let queue_depth = crate::queue::queue_depth(&cfg.queue);
    if args.json {
        let mut v = summary.to_json(queue_depth);
        v["index"] = serde_json::json!(cfg.state);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::Clean);
    }
    println!("index: {}", cfg.state.display());
    if summary.by_status.is_empty() {
        println!("no pages yet: run `kiln build`");
    }
    for (status, n) in &summary.by_status {
        println!("{status:>9}: {n}");
    }
    println!("     tags: {}", summary.tags);
    println!("redirects: {}", summary.redirects);
    println!("    queue: {queue_depth} spool files waiting");
    for (url, status, err) in &summary.problems {
        println!("  {status} {url}: {err}");
    }
    Ok(Exit::Clean)
}
