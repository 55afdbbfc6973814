//! `kiln build`: bake the whole site, in place or as an atomic release.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Exit, GlobalArgs, UsageError};
use crate::bake::{Baker, MassDelete, Summary};
use crate::crawl::{self, Follow};
use crate::release::Releases;
use crate::write::WebRoot;

/// `kiln build` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln build                                   render or crawl the site in ./site.toml into its output
  kiln build --origin http://127.0.0.1:8000 --out /srv/www   bake a running app, no config file needed
  kiln build --release                         build a new release beside the live one, switch when done
  kiln build --force --origin http://new:8000  the app moved: bake the same output from a new origin")]
pub struct BuildArgs {
    /// Build into a new `releases/<id>/` directory and switch the `current` symlink when done
    #[arg(long)]
    pub release: bool,
    /// Guards against destroying the site by mistake.
    #[command(flatten)]
    pub guard: super::GuardFlags,
}

/// Renders every route, crawls the origin from the seeds, prints the summary.
pub async fn run(g: &GlobalArgs, args: BuildArgs) -> anyhow::Result<Exit> {
    run_with(g, args, Arc::new(g.load_config()?)).await
}

/// [`run`] with a config the caller loaded (`kiln serve`'s preview).
pub(super) async fn run_with(
    g: &GlobalArgs,
    args: BuildArgs,
    cfg: Arc<crate::config::Config>,
) -> anyhow::Result<Exit> {
    let fresh = super::FreshDirs::note(&cfg);
    let result = build(g, args, cfg).await;
    fresh.clean_up_after(&result);
    result
}

async fn build(
    g: &GlobalArgs,
    args: BuildArgs,
    cfg: Arc<crate::config::Config>,
) -> anyhow::Result<Exit> {
    let _lock = match super::lock_output(&cfg, "build").await? {
        Ok(l) => l,
        Err(daemon) if !args.release => {
            // What would stop a build stops it here too (the daemon keeps
            // serving its last good templates).
            if cfg.renders() {
                crate::source::render::Renderer::load(&cfg).map_err(crate::bake::SetupError::Render)?;
            }
            // A deploy hook's `kiln build` beside a running daemon: the
            // daemon re-bakes everything (and follows new links) itself,
            // so the two never race on a file.
            return super::hand_to_daemon(&cfg, &daemon, &[crate::targets::Target::All], args.guard.allow_mass_delete, g).await;
        }
        Err(daemon) => {
            return Err(UsageError(format!(
                "a daemon (PID {}) owns this output's index; stop it to build a release, or run `kiln build` without --release to hand the work to it",
                daemon.pid
            ))
            .into())
        }
    };
    // A new fan-out host: where the stream is now (see `position_before_build`).
    let stream_position = match (&cfg.redis, &cfg.pool) {
        (Some(redis), None) => crate::intake::redis::position_before_build(redis).await,
        _ => None,
    };
    let releases = Releases::new(&cfg.out);
    let previous = releases.live();
    let (release, root) = if args.release {
        let (id, _) = releases.begin()?;
        let root = WebRoot::open_within(
            &cfg.out,
            &std::path::Path::new("releases").join(&id),
            cfg.output.precompress.clone(),
            cfg.output.precompress_min_bytes,
        );
        (Some(id), root)
    } else {
        let out = crate::release::live_root(&cfg.out);
        let root = WebRoot::open(
            &out,
            cfg.output.precompress.clone(),
            cfg.output.precompress_min_bytes,
        );
        (None, root)
    };
    let baked = match root {
        Ok(root) => bake_all(g, cfg.clone(), root, &args.guard, Vec::new()).await,
        Err(e) => Err(e.into()),
    };
    let (summary, root, guarded) = match (baked, &release) {
        (Ok(done), _) => done,
        (Err(e), Some(id)) => {
            // Nothing of a release that failed to build may linger: pruning
            // and rollback count release directories.
            releases.discard(id)?;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    if let (Some(redis), Some(position)) = (&cfg.redis, &stream_position) {
        crate::intake::redis::record_build_position(redis, position);
    }
    if let Some(id) = release {
        if (summary.has_failures() || guarded.is_err()) && previous.is_some() {
            releases.discard(&id)?;
            println!("{}", summary.render());
            println!(
                "release {id} NOT switched live and removed: {} page(s) failed; `current` still points at the last good release",
                summary.failed.len()
            );
            return match guarded {
                Err(e) => Err(e.into()),
                Ok(_) => Ok(Exit::PagesFailed),
            };
        }
        let shared = match &previous {
            Some(prev) => {
                let old = WebRoot::open_within(
                    &cfg.out,
                    &std::path::Path::new("releases").join(prev),
                    Vec::new(),
                    0,
                )?;
                root.share_unchanged_with(&old)?
            }
            None => 0,
        };
        releases.switch(&id)?;
        let pruned = releases.prune(cfg.keep_releases)?;
        let exit = super::finish_run(g, &cfg, summary, guarded)?;
        let exit = super::deliver_outputs(&cfg, exit).await?;
        println!(
            "release {id} is live at {} ({shared} unchanged files hard-linked, {pruned} old releases removed)",
            releases.current_link().display()
        );
        return Ok(exit);
    }
    let exit = super::finish_run(g, &cfg, summary, guarded)?;
    let exit = super::deliver_outputs(&cfg, exit).await?;
    if !g.quiet {
        println!("output: {}", root.path().display());
        if let Some(state) = cfg.state.parent() {
            println!(" state: {}", state.display());
        }
    }
    Ok(exit)
}

/// Bakes everything into `out`: render routes, then the crawl from the
/// seeds (and `more_seeds`: the output's pages when the index is rebuilt).
pub(super) async fn bake_all(
    g: &GlobalArgs,
    cfg: Arc<crate::config::Config>,
    root: WebRoot,
    guard: &super::GuardFlags,
    more_seeds: Vec<String>,
) -> anyhow::Result<(Summary, WebRoot, Result<usize, MassDelete>)> {
    let baker = Arc::new(Baker::with_root(cfg, root.clone(), guard.run_options()).await?);
    baker.sweep_stale_temp_files()?;
    let progress = g.progress();
    let shutdown = CancellationToken::new();
    let mut listed = baker.start_full_build();
    listed.extend(more_seeds);
    let seeds = crawl::Seeds {
        listed,
        known: true,
    };
    let mut summary = crawl::run(&baker, seeds, Follow::All, &progress, &shutdown).await;
    progress.finish_and_clear();
    let guarded = baker.apply_removals(guard.allow_mass_delete).await;
    summary.finish();
    baker.flush().await?;
    Ok((summary, root, guarded))
}
