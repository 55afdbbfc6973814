//! `kiln publish`: make the object storage mirror equal the output.

use super::{Exit, GlobalArgs, UsageError};

/// `kiln publish` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Uploads what is missing or changed in the bucket of `[[publish]]`, deletes
objects under its prefix that no page has, and lists the recorded redirects
at <prefix>_kiln/redirects.json. Credentials: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).

Uploads run `concurrency` at a time (`[[publish]] concurrency`, 16).
Deleting more objects than the mass-delete limit (`[safety]`) deletes
nothing and exits 1 unless --allow-mass-delete.

Examples:
  kiln publish
  kiln publish --dry-run             what would be uploaded and deleted
  kiln publish --no-delete --force   upload everything again, delete nothing
  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… kiln publish"
)]
pub struct PublishArgs {
    /// Say what would be uploaded and deleted; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep objects no page has
    #[arg(long)]
    pub no_delete: bool,
    /// Upload every page, also those the bucket already has
    #[arg(long)]
    pub force: bool,
    /// Delete objects no page has even when more than the mass-delete
    /// limit would go (`safety.max-delete-pages` / `max-delete-percent`)
    #[arg(long)]
    pub allow_mass_delete: bool,
}

/// Reconciles every `[[publish]]` target with the output.
pub async fn run(g: &GlobalArgs, args: PublishArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    if cfg.publish.is_empty() {
        return Err(UsageError(
            "nothing to publish to: add a [[publish]] kind = \"s3\" section with a bucket".into(),
        )
        .into());
    }
    let Some(index) = super::existing_index(&cfg)? else {
        return Err(
            UsageError(format!("nothing to publish: {}", super::no_state_yet(&cfg))).into(),
        );
    };
    let out = crate::release::live_root(&cfg.out);
    let root = crate::write::WebRoot::open(&out, Vec::new(), 0)?;
    for target in &cfg.publish {
        let s3 = crate::output::publish::S3::new(target)?;
        // Objects carry `Cache-Control` as metadata: when it changed since
        // the last publish, every object must be uploaded again, whatever
        // its content (what django-bakery's metadata check catches).
        let meta_key = format!("cache-control:{}", s3.id());
        let recorded = index.meta(&meta_key).await?;
        let metadata_changed = recorded
            .as_deref()
            .is_some_and(|r| r != target.cache_control);
        if metadata_changed {
            println!(
                "s3://{}/{}: cache-control changed (`{}` → `{}`): every object is uploaded again",
                target.bucket,
                target.prefix,
                recorded.as_deref().unwrap_or_default(),
                target.cache_control
            );
        }
        let opts = crate::output::publish::ReconcileOptions {
            concurrency: target.concurrency,
            dry_run: args.dry_run,
            delete: !args.no_delete,
            force: args.force || metadata_changed,
            delete_limit: (!args.allow_mass_delete).then(|| cfg.safety.delete_limit()),
        };
        let started = std::time::Instant::now();
        let (done, plan) = crate::output::publish::reconcile(&s3, &index, &root, opts).await?;
        let secs = started.elapsed().as_secs_f64();
        if args.dry_run {
            for key in plan.upload.iter().take(20) {
                println!("upload {key}");
            }
            for key in plan.delete.iter().take(20) {
                println!("delete {key}");
            }
            let more = plan.upload.len().saturating_sub(20) + plan.delete.len().saturating_sub(20);
            if more > 0 {
                println!("… and {more} more");
            }
            println!(
                "s3://{}/{} (dry run): {} to upload, {} unchanged, {} to delete{}",
                target.bucket,
                target.prefix,
                plan.upload.len(),
                done.unchanged,
                plan.delete.len(),
                if args.no_delete {
                    " (--no-delete: none)"
                } else {
                    ""
                }
            );
            continue;
        }
        index
            .set_meta(&meta_key, target.cache_control.clone())
            .await;
        println!(
            "s3://{}/{}: {} uploaded, {} unchanged, {} deleted in {secs:.2}s ({:.0} objects/s)",
            target.bucket,
            target.prefix,
            done.uploaded,
            done.unchanged,
            done.deleted,
            (done.uploaded + done.deleted) as f64 / secs.max(1e-9)
        );
    }
    if !args.dry_run {
        index.flush().await?;
    }
    Ok(Exit::Clean)
}
