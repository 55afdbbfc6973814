//! `kiln explain`: why a URL is regenerated.

use super::{Exit, GlobalArgs, UsageError};

/// `kiln explain` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln explain /blog/post-1/     the tags that regenerate it, its file, and whether it is as baked
  kiln explain /feed.xml")]
pub struct ExplainArgs {
    /// URL path to explain
    pub url: String,
}

/// Prints what the index holds for the URL: file, status, tags.
pub async fn run(g: &GlobalArgs, args: ExplainArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let url = crate::urlpath::canonical(&args.url).map_err(|e| UsageError(e.to_string()))?;
    let Some(index) = super::existing_index(&cfg)? else {
        return Err(UsageError(format!(
            "{url} is not in the index: {}",
            super::no_state_yet(&cfg)
        ))
        .into());
    };
    let Some(page) = index.page(&url).await? else {
        // The same path with or without its trailing slash is the usual slip.
        let other = match url.strip_suffix('/') {
            Some(bare) if !bare.is_empty() => bare.to_string(),
            _ => format!("{url}/"),
        };
        let hint = match index.page(&other).await? {
            Some(_) => format!("; did you mean {other}?"),
            None => String::new(),
        };
        return Err(UsageError(format!(
            "{} is not in the index `{}`: it has never been baked{hint}",
            url,
            cfg.state.display()
        ))
        .into());
    };
    println!("url:     {}", page.url);
    println!("file:    {}", page.file.as_deref().unwrap_or("-"));
    if let (Some(file), Some(hash)) = (&page.file, &page.hash) {
        // The content hash of the last bake tells whether the file on disk
        // is still what kiln wrote.
        let out = crate::release::live_root(&cfg.out);
        let releases = crate::release::Releases::new(&cfg.out);
        let rolled_back = releases
            .live()
            .filter(|live| releases.list().last() != Some(live));
        let state = match std::fs::read(out.join(file)) {
            Ok(bytes) if blake3::hash(&bytes).to_hex().as_str() == hash => "as baked".to_string(),
            // The live release is an older one on purpose.
            Ok(_) if rolled_back.is_some() => format!(
                "from release {} (current was rolled back; the last bake is in the newest release, `kiln releases` lists them)",
                rolled_back.as_deref().unwrap_or("?")
            ),
            Ok(_) => format!("changed on disk since kiln baked it; `kiln regen {url}` restores it"),
            Err(e) => format!("cannot be read ({e}); `kiln regen {url}` restores it"),
        };
        println!("content: {state} (blake3 {})", &hash[..16.min(hash.len())]);
    }
    println!("status:  {}", page.status.as_str());
    if let Some(e) = &page.error {
        // A redirect is an answer, not an error.
        let label = if page.status == crate::index::Status::Redirect {
            "answer:"
        } else {
            "error: "
        };
        println!("{label}  {e}");
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
