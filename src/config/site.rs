//! `[site]`: where the output, the state, the spool and the templates live.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, Invalid, Overrides};

/// `[site]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSite {
    /// Output directory served by nginx.
    pub(crate) out: Option<PathBuf>,
    /// SQLite index path (default: beside the output, see [`state_dir_for`]).
    pub(crate) state: Option<PathBuf>,
    /// Spool directory (default: `queue/` beside the index).
    pub(crate) queue: Option<PathBuf>,
    /// Templates directory (render mode).
    pub(crate) templates: Option<PathBuf>,
    /// Files copied into the output as they are (render mode): images, CSS.
    #[serde(rename = "static")]
    pub(crate) static_dir: Option<PathBuf>,
    /// Releases kept by `build --release`.
    pub(crate) keep_releases: Option<usize>,
    /// The site's public URL (`https://example.org`), when the app writes
    /// it into its pages and it is not the origin's.
    pub(crate) url: Option<String>,
    /// Site title and other values exposed to templates as `site.*`.
    #[serde(default)]
    pub(crate) vars: BTreeMap<String, toml::Value>,
}

/// `[site]`, resolved: paths against the config's directory.
pub(super) struct Site {
    pub(super) out: PathBuf,
    pub(super) state: PathBuf,
    pub(super) queue: PathBuf,
    pub(super) templates: PathBuf,
    pub(super) static_dir: PathBuf,
    pub(super) keep_releases: usize,
    pub(super) vars: BTreeMap<String, toml::Value>,
    /// The public URL ([`RawSite::url`]).
    pub(super) url: Option<url::Url>,
    /// Said once to the user (the old state location in use).
    pub(super) notices: Vec<String>,
}

pub(super) fn resolve_site(
    raw: RawSite,
    base_dir: &Path,
    overrides: &Overrides,
    invalid: &Invalid<'_>,
) -> Result<Site, ConfigError> {
    let resolve = |p: Option<PathBuf>, default: &str| {
        let p = p.unwrap_or_else(|| PathBuf::from(default));
        if p.is_absolute() { p } else { base_dir.join(p) }
    };
    let url = match raw.url.as_deref().map(public_url) {
        None => None,
        Some(Ok(u)) => Some(u),
        Some(Err(why)) => return Err(invalid("site.url", why)),
    };
    let keep_releases = raw.keep_releases.unwrap_or(5);
    if keep_releases == 0 {
        return Err(invalid(
            "site.keep-releases",
            "must be at least 1 (the live release)".into(),
        ));
    }
    let out = match &overrides.out {
        Some(o) => o.clone(),
        None => resolve(raw.out, "public"),
    };
    let mut notices = Vec::new();
    let state = match raw.state {
        Some(p) => resolve(Some(p), ""),
        None => {
            let beside = state_dir_for(&out, base_dir).join("index.db");
            // Earlier versions kept the state in `.kiln/` in the config's directory
            // (the working directory without one); an existing index there
            // keeps being used rather than silently starting over.
            let legacy = base_dir.join(".kiln/index.db");
            if !beside.exists() && legacy.is_file() {
                notices.push(format!(
                    "using the index at {} (where earlier kiln versions kept it); new outputs keep it beside the output, at {}: move `{}` there (daemon stopped) or set `[site] state`",
                    legacy.display(),
                    beside.display(),
                    base_dir.join(".kiln").display(),
                ));
                legacy
            } else {
                beside
            }
        }
    };
    let queue = match raw.queue {
        Some(p) => resolve(Some(p), ""),
        None => state
            .parent()
            .map(|d| d.join("queue"))
            .unwrap_or_else(|| PathBuf::from("queue")),
    };
    Ok(Site {
        out,
        state,
        queue,
        templates: resolve(raw.templates, "templates"),
        static_dir: resolve(raw.static_dir, "static"),
        keep_releases,
        vars: raw.vars,
        url,
        notices,
    })
}

/// A public base URL: http(s), a host, nothing after the `/`.
fn public_url(text: &str) -> Result<url::Url, String> {
    let example = "e.g. \"https://example.org\"";
    let url =
        url::Url::parse(text).map_err(|e| format!("is `{text}`, not a URL ({e}): {example}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("is `{text}`: the site's public address, {example}"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "is `{text}`: only the scheme, host and port, with no path (a site under a path prefix is not supported), {example}"
        ));
    }
    Ok(url)
}

/// Where kiln keeps what it knows about the output `out` when `[site]
/// state` is not set: `.kiln/<name>/` in the output's parent directory.
/// Beside the output, so every command that names the output finds it
/// from any working directory; outside it, so nginx never serves it; one
/// directory per output name, so two outputs in one parent never share an
/// index.
pub(crate) fn state_dir_for(out: &Path, base_dir: &Path) -> PathBuf {
    let out = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    // `/srv/www/.` and `/srv/www/` both name `www`.
    let out: PathBuf = out
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    match (out.parent(), out.file_name()) {
        (Some(parent), Some(name)) if name != ".." => parent.join(".kiln").join(name),
        // `/` or a path ending in `..`: no name to key on.
        _ => base_dir.join(".kiln"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_sits_beside_the_output_one_directory_per_name() {
        let base = Path::new("/proj");
        assert_eq!(
            state_dir_for(Path::new("/srv/www"), base),
            Path::new("/srv/.kiln/www")
        );
        assert_eq!(
            state_dir_for(Path::new("/srv/www/"), base),
            Path::new("/srv/.kiln/www")
        );
        assert_eq!(
            state_dir_for(Path::new("/srv/www/."), base),
            Path::new("/srv/.kiln/www")
        );
        assert_ne!(
            state_dir_for(Path::new("/srv/a"), base),
            state_dir_for(Path::new("/srv/b"), base)
        );
        assert_eq!(
            state_dir_for(Path::new("/"), base),
            Path::new("/proj/.kiln")
        );
        let rel = state_dir_for(Path::new("public"), base);
        assert!(
            rel.is_absolute() && rel.ends_with(".kiln/public"),
            "{rel:?}"
        );
    }
}
