//! `kiln regen`: regenerate only what the targets name.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bake::{Baker, Summary};
use crate::cli::{Exit, GlobalArgs};
use crate::crawl::{self, Follow};

/// `kiln regen` flags.
#[derive(Debug, clap::Args)]
pub struct RegenArgs {
    /// Print the URLs the targets resolve to, and do nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Targets: /path/, tag:NAME, glob:PATTERN, delete:/path/, all, or - for stdin
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// Resolves targets through the index and bakes (or deletes) exactly those URLs.
pub async fn run(g: &GlobalArgs, args: RegenArgs) -> anyhow::Result<Exit> {
    let targets = super::parse_target_args(&args.targets)?;
    let cfg = Arc::new(g.load_config()?);
    let out = crate::release::live_root(&cfg.out);
    let baker = std::sync::Arc::new(Baker::new(cfg, &out)?);
    let resolved = baker.resolve(&targets).await?;
    if args.dry_run {
        for u in &resolved.bake {
            println!("regen  {u}");
        }
        for u in &resolved.delete {
            println!("delete {u}");
        }
        return Ok(Exit::Clean);
    }
    let mut summary = Summary::start();
    for url in &resolved.delete {
        summary.add(crate::bake::PageResult {
            url: url.clone(),
            final_path: None,
            outcome: baker.remove(url, None).await,
            links: Vec::new(),
        });
    }
    let progress = g.progress();
    let shutdown = CancellationToken::new();
    let baked = crawl::run(
        &baker,
        resolved.bake.into_iter().collect(),
        Follow::NewOnly,
        &progress,
        &shutdown,
    )
    .await;
    progress.finish_and_clear();
    summary.merge(baked);
    summary.finish();
    baker.index().flush().await?;
    println!("{}", summary.render());
    Ok(if summary.has_failures() {
        Exit::PagesFailed
    } else {
        Exit::Clean
    })
}
