//! `kiln delete`: remove baked pages.

use std::sync::Arc;

use super::{Exit, GlobalArgs, UsageError};
use crate::bake::{Baker, Outcome};
use crate::targets::Target;

/// `kiln delete` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln delete /old-post/
  kiln delete /a/ /b/")]
pub struct DeleteArgs {
    /// URL paths whose files to remove
    #[arg(required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

/// Removes each URL's file and compressed siblings and marks it deleted.
pub async fn run(g: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<Exit> {
    let mut paths = Vec::new();
    for u in &args.urls {
        match Target::parse(u) {
            Ok(Target::Url(p)) | Ok(Target::Delete(p)) => paths.push(p),
            _ => {
                return Err(UsageError(format!(
                    "`{u}` is not a URL path; delete takes paths like /blog/old-post/"
                ))
                .into());
            }
        }
    }
    let cfg = Arc::new(g.load_config()?);
    let _lock = match super::lock_output(&cfg, "delete").await? {
        Ok(l) => l,
        Err(daemon) => {
            let targets: Vec<Target> = paths.into_iter().map(Target::Delete).collect();
            return super::hand_to_daemon(&cfg, &daemon, &targets, false, g).await;
        }
    };
    let out = crate::release::live_root(&cfg.out);
    let baker = Baker::new(cfg.clone(), &out, Default::default()).await?;
    let mut failed = false;
    for p in paths {
        match baker.remove(&p, None).await {
            Outcome::Failed(e) => {
                eprintln!("failed to delete {p}: {e}");
                failed = true;
            }
            Outcome::Deleted => println!("deleted {p}"),
            Outcome::Skipped(why) => println!("nothing to delete for {p}: {why}"),
            other => println!("{p}: {other:?}"),
        }
    }
    baker.flush().await?;
    let exit = if failed {
        Exit::PagesFailed
    } else {
        Exit::Clean
    };
    super::deliver_outputs(&cfg, exit).await
}
