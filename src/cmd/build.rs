//! `kiln build`: bake the whole site.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bake::Baker;
use crate::cli::{Exit, GlobalArgs};
use crate::crawl::{self, Follow};

/// `kiln build` flags.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {}

/// Renders every route, crawls the origin from the seeds, prints the summary.
pub async fn run(g: &GlobalArgs, _args: BuildArgs) -> anyhow::Result<Exit> {
    let cfg = Arc::new(g.load_config()?);
    let out = cfg.out.clone();
    let baker = Baker::new(cfg, &out)?;
    let progress = g.progress();
    let shutdown = CancellationToken::new();
    let summary = crawl::run(
        &baker,
        baker.build_seeds(),
        Follow::All,
        &progress,
        &shutdown,
    )
    .await;
    progress.finish_and_clear();
    baker.index().flush().await?;
    println!("{}", summary.render());
    println!("output: {}", baker.root().path().display());
    Ok(if summary.has_failures() {
        Exit::PagesFailed
    } else {
        Exit::Clean
    })
}
