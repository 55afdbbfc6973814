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
    /// SQLite index path.
    pub(crate) state: Option<PathBuf>,
    /// Spool directory.
    pub(crate) queue: Option<PathBuf>,
    /// Templates directory (render mode).
    pub(crate) templates: Option<PathBuf>,
    /// Releases kept by `build --release`.
    pub(crate) keep_releases: Option<usize>,
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
    pub(super) keep_releases: usize,
    pub(super) vars: BTreeMap<String, toml::Value>,
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
    let keep_releases = raw.keep_releases.unwrap_or(5);
    if keep_releases == 0 {
        return Err(invalid(
            "site.keep-releases",
            "must be at least 1 (the live release)".into(),
        ));
    }
    Ok(Site {
        out: match &overrides.out {
            Some(o) => o.clone(),
            None => resolve(raw.out, "public"),
        },
        state: resolve(raw.state, ".kiln/index.db"),
        queue: resolve(raw.queue, ".kiln/queue"),
        templates: resolve(raw.templates, "templates"),
        keep_releases,
        vars: raw.vars,
    })
}
