//! `kiln publish`: make the object storage mirror equal the output.

use super::{Exit, GlobalArgs, UsageError};

/// `kiln publish` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Uploads what is missing or changed in the bucket of `[[publish]]`, deletes
objects under its prefix that no page has, and lists the recorded redirects
at <prefix>_kiln/redirects.json. Credentials: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).

Examples:
  kiln publish
  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… kiln publish"
)]
pub struct PublishArgs {}

/// Reconciles every `[[publish]]` target with the output.
pub async fn run(g: &GlobalArgs, _args: PublishArgs) -> anyhow::Result<Exit> {
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
        let done = crate::output::publish::reconcile(&s3, &index, &root).await?;
        println!(
            "s3://{}/{}: {} uploaded, {} unchanged, {} deleted",
            target.bucket, target.prefix, done.uploaded, done.unchanged, done.deleted
        );
    }
    index.flush().await?;
    Ok(Exit::Clean)
}
