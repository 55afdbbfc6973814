//! `[nginx]`: what only the block `kiln nginx` prints reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Invalid};

/// `[nginx]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawNginx {
    /// URL prefix → the app's own directory of static files.
    pub(crate) app_files: Option<BTreeMap<String, PathBuf>>,
}

/// `[nginx]`, resolved.
#[derive(Debug, Default, Clone)]
pub(crate) struct NginxBlock {
    /// The app's own static files (WordPress's `/wp-content/` and
    /// `/wp-includes/`), served by nginx from the app's directory: neither
    /// baked nor passed to the app. Prefixes start and end with `/`.
    pub(crate) app_files: Vec<AppFiles>,
}

/// One `[nginx] app-files` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppFiles {
    /// `/wp-content/`
    pub(crate) prefix: String,
    /// `/var/lib/wordpress/wp-content/` (absolute, ends with `/`).
    pub(crate) dir: PathBuf,
}

/// Characters that would break out of a quoted nginx string or regex, or
/// start a variable: the one rule for any text kiln writes into the block
/// (redirects, links, `[nginx]` paths).
pub(crate) fn is_safe_for_nginx(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\'' | ';' | '{' | '}' | '\\' | '$'))
}

/// [`is_safe_for_nginx`], and no whitespace: the block names a prefix
/// unquoted (`location ^~ /wp-content/`).
fn nginx_safe(s: &str) -> bool {
    is_safe_for_nginx(s) && !s.contains(char::is_whitespace)
}

pub(super) fn resolve_nginx(
    raw: RawNginx,
    invalid: &Invalid<'_>,
) -> Result<NginxBlock, ConfigError> {
    let mut app_files = Vec::new();
    for (prefix, dir) in raw.app_files.unwrap_or_default() {
        let key = format!("nginx.app-files.\"{prefix}\"");
        if !prefix.starts_with('/')
            || !prefix.ends_with('/')
            || prefix == "/"
            || !nginx_safe(&prefix)
        {
            return Err(invalid(
                &key,
                "is not a URL directory: write one like \"/wp-content/\" (a leading and a trailing slash, not `/` alone, no quotes, spaces or `$`)".into(),
            ));
        }
        let text = dir.to_string_lossy();
        if !dir.is_absolute() || !nginx_safe(&text) {
            return Err(invalid(
                &key,
                format!(
                    "`{}` is not an absolute directory nginx can name: write one like \"/var/lib/wordpress/wp-content/\"",
                    dir.display()
                ),
            ));
        }
        let dir = if text.ends_with('/') {
            dir
        } else {
            PathBuf::from(format!("{text}/"))
        };
        app_files.push(AppFiles { prefix, dir });
    }
    Ok(NginxBlock { app_files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(entries: &[(&str, &str)]) -> Result<NginxBlock, String> {
        let raw = RawNginx {
            app_files: Some(
                entries
                    .iter()
                    .map(|(p, d)| (p.to_string(), PathBuf::from(d)))
                    .collect(),
            ),
        };
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: PathBuf::from("site.toml"),
            key: key.to_string(),
            message,
        };
        resolve_nginx(raw, &invalid).map_err(|e| e.to_string())
    }

    #[test]
    fn app_files_are_url_directories_and_absolute_paths() {
        let ok = resolve(&[("/wp-content/", "/var/lib/wordpress/wp-content")]).unwrap();
        assert_eq!(
            ok.app_files,
            vec![AppFiles {
                prefix: "/wp-content/".into(),
                dir: "/var/lib/wordpress/wp-content/".into()
            }]
        );
        for (prefix, dir) in [
            ("wp-content/", "/x/"),
            ("/wp-content", "/x/"),
            ("/", "/x/"),
            ("/a b/", "/x/"),
            ("/$x/", "/x/"),
            ("/wp-content/", "relative/dir"),
            ("/wp-content/", "/x\";evil/"),
        ] {
            let e = resolve(&[(prefix, dir)]).unwrap_err();
            assert!(e.contains("nginx.app-files"), "{prefix} {dir}: {e}");
        }
    }
}
