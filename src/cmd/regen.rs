//! `kiln regen`: regenerate only what the targets name.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Exit, GlobalArgs};
use crate::bake::{Baker, PageResult, Summary};
use crate::crawl::{self, Follow};

/// `kiln regen` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Targets:
  /path/          one URL
  tag:NAME        every page whose response carried that tag (Surrogate-Key), or a
                  kiln tag: template:NAME, data:PATH, collection:NAME, path:/prefix/
  glob:/PATTERN   every known URL matching (`*` within a segment, `**` across)
  delete:/path/   remove the page's file (nginx falls through to the app)
  failed          every page whose last attempt failed
  all             everything kiln knows, and the seeds
  -               read targets from stdin, one per line (# comments)

A page the regenerated pages newly link to is baked too (how a new post
gets its page from the list that links it); pages kiln already knows are
not followed.

Examples:
  kiln regen /blog/ /blog/post-1/
  kiln regen tag:post:42
  kiln regen 'glob:/blog/**'
  echo tag:post:42 | kiln regen -
  kiln regen --dry-run all")]
pub struct RegenArgs {
    /// Print the URLs the targets resolve to, and do nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Guards against destroying the site by mistake.
    #[command(flatten)]
    pub guard: super::GuardFlags,
    /// Targets: /path/, tag:NAME, glob:PATTERN, delete:/path/, failed, all, or - for stdin
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// Resolves targets through the index and bakes (or deletes) exactly those URLs.
pub async fn run(g: &GlobalArgs, args: RegenArgs) -> anyhow::Result<Exit> {
    let targets = crate::targets::dedup(super::parse_target_args(&args.targets)?);
    let cfg = Arc::new(g.load_config()?);
    super::check_target_count(&targets, cfg.daemon.max_targets)?;
    let fresh = super::FreshDirs::note(&cfg);
    let result = regen(g, args, cfg, targets).await;
    fresh.clean_up_after(&result);
    result
}

async fn regen(
    g: &GlobalArgs,
    args: RegenArgs,
    cfg: Arc<crate::config::Config>,
    targets: Vec<crate::targets::Target>,
) -> anyhow::Result<Exit> {
    let _lock = if args.dry_run {
        None
    } else {
        match super::lock_output(&cfg, "regen").await? {
            Ok(l) => Some(l),
            Err(daemon) => {
                return super::hand_to_daemon(
                    &cfg,
                    &daemon,
                    &targets,
                    args.guard.allow_mass_delete,
                    g,
                )
                .await;
            }
        }
    };
    let out = crate::release::live_root(&cfg.out);
    let baker = Arc::new(Baker::new(cfg.clone(), &out, args.guard.run_options()).await?);
    let resolved = baker.resolve(&targets).await?;
    if args.dry_run {
        for u in &resolved.bake {
            println!("regen  {u}");
        }
        for u in &resolved.delete {
            println!("delete {u}");
        }
        for (t, why) in &resolved.unmatched {
            println!("{t} matched nothing: {why}");
        }
        println!(
            "{} to regenerate, {} to delete; a page they link to that kiln has never seen is fetched too, and counted in the real run's summary",
            resolved.bake.len(),
            resolved.delete.len()
        );
        return Ok(Exit::Clean);
    }
    let mut summary = Summary::start();
    summary.unmatched = resolved.unmatched.clone();
    for url in &resolved.delete {
        let mut r = PageResult::new(url);
        r.outcome = baker.remove(url, None).await;
        summary.add(r);
    }
    let progress = g.progress();
    let shutdown = CancellationToken::new();
    let baked = crawl::run(
        &baker,
        crawl::Seeds::listed(resolved.bake.into_iter().collect()),
        Follow::NewOnly,
        &progress,
        &shutdown,
    )
    .await;
    progress.finish_and_clear();
    summary.merge(baked);
    let guarded = baker.apply_removals(args.guard.allow_mass_delete).await;
    summary.finish();
    baker.flush().await?;
    let exit = super::finish_run(g, &cfg, summary, guarded)?;
    super::deliver_outputs(&cfg, exit).await
}
