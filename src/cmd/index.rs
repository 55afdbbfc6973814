//! `kiln index rebuild`: a new index from the output and the origin, for
//! an index that is damaged or lost.

use std::sync::Arc;

use super::{Exit, GlobalArgs, GuardFlags, UsageError};
use crate::index::Index;
use crate::write::WebRoot;

/// `kiln index` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln index rebuild                        the index is corrupt: rebuild it from the output and the origin
  kiln index rebuild --allow-mass-delete    the same, removing pages the origin no longer has however many")]
pub struct IndexArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: IndexAction,
}

/// `kiln index` actions.
#[derive(Debug, clap::Subcommand)]
pub enum IndexAction {
    /// Move the index aside and build a new one: every page in the output is baked again from its source, which records its tags again
    #[command(
        after_help = "Run it when kiln says the index is corrupt (a daemon does it itself when it restarts). \
The old file is kept beside the new one as index.db.broken-<time>. Pages the origin no longer has are removed under the mass-delete guard, as a build does."
    )]
    Rebuild(RebuildArgs),
}

/// `kiln index rebuild` flags.
#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// Guards against destroying the site by mistake.
    #[command(flatten)]
    pub guard: GuardFlags,
}

/// Runs `kiln index ...`.
pub async fn run(g: &GlobalArgs, args: IndexArgs) -> anyhow::Result<Exit> {
    match args.action {
        IndexAction::Rebuild(a) => rebuild(g, a).await,
    }
}

async fn rebuild(g: &GlobalArgs, args: RebuildArgs) -> anyhow::Result<Exit> {
    let cfg = Arc::new(g.load_config()?);
    let _lock = match super::lock_output(&cfg, "index rebuild").await? {
        Ok(l) => l,
        Err(daemon) => {
            return Err(UsageError(format!(
                "a daemon (PID {}) owns this output; restart it and it rebuilds a damaged index itself, or stop it and run `kiln index rebuild` again",
                daemon.pid
            ))
            .into());
        }
    };
    let out = crate::release::live_root(&cfg.out);
    let root = WebRoot::open(
        &out,
        cfg.output.precompress.clone(),
        cfg.output.precompress_min_bytes,
    )?;
    let urls: Vec<String> = root
        .page_files()?
        .iter()
        .filter_map(|f| crate::urlmap::url_for(f))
        .collect();
    let aside = match cfg.state.exists() {
        true => Some(Index::set_aside(&cfg.state)?),
        false => None,
    };
    if !g.quiet {
        if let Some(aside) = &aside {
            println!("the old index is kept at {}", aside.display());
        }
        println!("baking the {} pages of {} again", urls.len(), out.display());
    }
    let (summary, _root, guarded) =
        super::build::bake_all(g, cfg.clone(), root, &args.guard, urls).await?;
    let exit = super::finish_run(g, &cfg, summary, guarded)?;
    super::deliver_outputs(&cfg, exit).await
}
