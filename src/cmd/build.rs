//! `kiln build`: bake the whole site, in place or as an atomic release.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bake::{Baker, Summary};
use crate::cli::{Exit, GlobalArgs};
use crate::crawl::{self, Follow};
use crate::release::Releases;
use crate::write::WebRoot;

/// `kiln build` flags.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Build into a new releases/<id>/ directory and switch the `current` symlink when done
    #[arg(long)]
    pub release: bool,
}

/// Renders every route, crawls the origin from the seeds, prints the summary.
pub async fn run(g: &GlobalArgs, args: BuildArgs) -> anyhow::Result<Exit> {
    let cfg = Arc::new(g.load_config()?);
    let releases = Releases::new(&cfg.out);
    let previous = releases.live();
    let (release, out) = if args.release {
        let (id, dir) = releases.begin()?;
        (Some(id), dir)
    } else {
        (None, crate::release::live_root(&cfg.out))
    };
    let baked = bake_all(g, cfg.clone(), &out).await;
    let (summary, root) = match (baked, &release) {
        (Ok(done), _) => done,
        (Err(e), Some(id)) => {
            // Nothing of a release that failed to build may linger: pruning
            // and rollback count release directories.
            releases.discard(id)?;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    if let Some(id) = release {
        if summary.has_failures() && previous.is_some() {
            releases.discard(&id)?;
            println!(
                "release {id} NOT switched live and removed: {} page(s) failed; `current` still points at the last good release",
                summary.failed.len()
            );
            return Ok(Exit::PagesFailed);
        }
        let shared = match &previous {
            Some(prev) => root.share_unchanged_with(&cfg.out.join("releases").join(prev))?,
            None => 0,
        };
        releases.switch(&id)?;
        let pruned = releases.prune(cfg.keep_releases)?;
        println!(
            "release {id} is live at {} ({shared} unchanged files hard-linked, {pruned} old releases removed)",
            releases.current_link().display()
        );
    } else {
        println!("output: {}", root.path().display());
    }
    Ok(if summary.has_failures() {
        Exit::PagesFailed
    } else {
        Exit::Clean
    })
}

/// Bakes everything into `out`: render routes, then the crawl from the seeds.
async fn bake_all(
    g: &GlobalArgs,
    cfg: Arc<crate::config::Config>,
    out: &std::path::Path,
) -> anyhow::Result<(Summary, WebRoot)> {
    let baker = Arc::new(Baker::new(cfg, out)?);
    baker.sweep_stale_temp_files()?;
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
    Ok((summary, baker.root().clone()))
}
