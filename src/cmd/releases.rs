//! `kiln releases`: the releases of a `build --release` layout, which is
//! live, and when each was made.

use super::{Exit, GlobalArgs};
use crate::release::{Releases, micros_of_id};

/// `kiln releases` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln releases                        id, time, files, and which is live
  kiln releases --json")]
pub struct ReleasesArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

/// Lists the releases, oldest first, marking the live one.
pub async fn run(g: &GlobalArgs, args: ReleasesArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let releases = Releases::new(&cfg.out);
    let live = releases.live();
    let rows: Vec<serde_json::Value> = releases
        .list()
        .into_iter()
        .map(|id| {
            let made = micros_of_id(&id).map(|us| {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us as u64);
                humantime::format_rfc3339_seconds(t).to_string()
            });
            let dir = cfg.out.join("releases").join(&id);
            let files = walkdir::WalkDir::new(&dir)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .filter(|e| {
                    let name = e.file_name().to_string_lossy();
                    !name.ends_with(".gz") && !name.ends_with(".br")
                })
                .count();
            serde_json::json!({
                "id": id,
                "made": made,
                "files": files,
                "live": live.as_deref() == Some(id.as_str()),
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Clean);
    }
    if rows.is_empty() {
        println!(
            "no releases in {}: `kiln build --release` makes one",
            cfg.out.display()
        );
        return Ok(Exit::Clean);
    }
    let newest = rows.last().map(|r| r["id"].clone());
    for r in &rows {
        let mark = if r["live"] == true { "* live" } else { "" };
        println!(
            "{}  {}  {:>6} files  {mark}",
            r["id"].as_str().unwrap_or(""),
            r["made"].as_str().unwrap_or("?"),
            r["files"]
        );
    }
    if let Some(live) = &live {
        if newest.as_ref().and_then(|n| n.as_str()) != Some(live.as_str()) {
            println!(
                "current was rolled back: the newest release is not live (`kiln build --release` makes a new one)"
            );
        }
    }
    Ok(Exit::Clean)
}
