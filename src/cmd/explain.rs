//! `kiln explain`: why a URL is regenerated.

use crate::cli::{Exit, GlobalArgs, UsageError};
use crate::index::Index;

/// `kiln explain` flags.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// URL path to explain
    pub url: String,
}

/// Prints what the index holds for the URL: file, status, tags.
pub async fn run(g: &GlobalArgs, args: ExplainArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let index = Index::open(&cfg.state)?;
    let Some(page) = index.page(&args.url).await? else {
        return Err(UsageError(format!(
            "{} is not in the index `{}`: it has never been baked",
            args.url,
            cfg.state.display()
        ))
        .into());
    };
    println!("url:     {}", page.url);
    println!("file:    {}", page.file.as_deref().unwrap_or("-"));
    println!("status:  {}", page.status.as_str());
    if let Some(e) = &page.error {
        println!("error:   {e}");
    }
    println!("tags (an event naming any of these regenerates this page):");
    for t in page.tags.unwrap_or_default() {
        println!("  tag:{t}");
    }
    for rule in &cfg.depend {
        if rule.urls.contains(&page.url) {
            println!(
                "  and any tag matched by a [[depend]] rule listing {}",
                page.url
            );
        }
    }
    Ok(Exit::Clean)
}
