//! `kiln mirror`: a web host of a pool, copying the pool's output from the
//! bucket into its web root as changes are announced ([`crate::mirror`]).

use super::{Exit, GlobalArgs, UsageError};

/// `kiln mirror` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Needs a `[mirror]` section: the Redis the pool announces on, the pool's
name and its bucket. The output directory is written exactly like a bake
writes it; nginx serves it. The origin is never asked.

Examples:
  kiln mirror                     follow the pool until stopped
  kiln mirror --once              copy the bucket into the output, then exit
  kiln --out /srv/www mirror"
)]
pub struct MirrorArgs {
    /// Copy the bucket into the output and exit (no stream following)
    #[arg(long)]
    pub once: bool,
    /// Remove the files the bucket lacks even when more than the
    /// mass-delete limit would go (`[safety]`)
    #[arg(long)]
    pub allow_mass_delete: bool,
}

/// Runs the mirror until SIGTERM or Ctrl-C (or once).
pub async fn run(g: &GlobalArgs, args: MirrorArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let Some(mirror) = cfg.mirror.clone() else {
        return Err(UsageError(
            "nothing to mirror: add a [mirror] section naming the pool's Redis and bucket, e.g.\n  [mirror]\n  redis = \"redis://10.0.0.5:6379\"\n  pool = \"www\"\n  bucket = \"site\"\n  endpoint = \"https://s3.example.com\"".into(),
        )
        .into());
    };
    let _lock = crate::lock::try_lock(&cfg.out, "mirror")?;
    let out = crate::release::live_root(&cfg.out);
    std::fs::create_dir_all(&out)?;
    if let Some(dir) = cfg.state.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let root = crate::write::WebRoot::open(
        &out,
        cfg.output.precompress.clone(),
        cfg.output.precompress_min_bytes,
    )?
    .with_durability(cfg.output.durability);
    root.sweep_temp_files()?;
    let run = crate::mirror::MirrorRun::new(mirror.clone(), root, &cfg.state)?
        .with_delete_limit((!args.allow_mass_delete).then(|| cfg.safety.delete_limit()));
    if args.once {
        let (copied, removed) = run.bootstrap().await?;
        println!(
            "mirror: {copied} file(s) copied from the bucket, {removed} removed into {}",
            out.display()
        );
        return Ok(Exit::Clean);
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let signal = super::daemon::shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        stop.cancel();
    });
    let stream = mirror.published.clone();
    run.run(cancel, || {
        // One line on stdout that scripts and tests can wait for.
        println!("kiln mirror following {stream} into {}", out.display());
    })
    .await?;
    Ok(Exit::Clean)
}
