//! URL-path and tag globs: one owner for how a pattern compiles (`*` stays
//! in a segment, `**` crosses), for the panic a huge pattern can cause in
//! globset, and for where a glob's matches can start. Config rules, `glob:`
//! targets, `[[revalidate]]` and tag lookups all use these.

use globset::{Glob, GlobMatcher};

/// Compiles a glob over URL paths or tags: `*` stays within a path segment, `**` crosses.
pub(crate) fn path_glob(pattern: &str) -> Result<Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
}

/// The longest literal directory prefix of a glob (`/blog/*/x` → `/blog/`,
/// `content/posts/*.md` → `content/posts/`): where matches can start. The
/// one owner of this rule for URL globs (tag lookups) and data globs
/// (watched directories).
pub(crate) fn glob_literal_prefix(pattern: &str) -> &str {
    let meta = pattern
        .find(['*', '?', '[', '{', '\\'])
        .unwrap_or(pattern.len());
    match pattern[..meta].rfind('/') {
        Some(i) => &pattern[..=i],
        None if pattern.starts_with('/') => "/",
        None => "",
    }
}

/// A single compiled glob matcher (for `glob:` targets and rules).
///
/// globset panics when the regex a glob becomes is too large to compile (a
/// few hundred nested braces do it); that panic is caught here and becomes
/// an error naming the glob, so no pattern can take a worker down.
pub(crate) fn path_matcher(pattern: &str) -> Result<GlobMatcher, GlobError> {
    let glob = path_glob(pattern).map_err(|e| GlobError(e.to_string()))?;
    std::panic::catch_unwind(move || glob.compile_matcher())
        .map_err(|_| GlobError("the pattern is too complex to match with".into()))
}

/// Whether a `glob:` matcher names the URL `url`: `glob:/posts/*` matches
/// `/posts/1/`, the trailing slash of a directory-style URL not being a
/// path segment. The one rule for resolving a `glob:` target.
pub(crate) fn matches_url(matcher: &GlobMatcher, url: &str) -> bool {
    matcher.is_match(url) || matcher.is_match(url.trim_end_matches('/'))
}

/// Why a glob cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct GlobError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_literal_prefix_is_where_matches_start() {
        assert_eq!(glob_literal_prefix("/blog/**"), "/blog/");
        assert_eq!(glob_literal_prefix("/blog/2024-*/x"), "/blog/");
        assert_eq!(glob_literal_prefix("/**"), "/");
        assert_eq!(glob_literal_prefix("/exact/page/"), "/exact/page/");
        assert_eq!(glob_literal_prefix("content/posts/*.md"), "content/posts/");
        assert_eq!(glob_literal_prefix("*.md"), "");
    }

    #[test]
    fn a_star_stays_in_its_segment_and_a_bad_pattern_is_an_error() {
        let m = path_matcher("/blog/*/").expect("compiles");
        assert!(m.is_match("/blog/a/"));
        assert!(!m.is_match("/blog/a/b/"));
        assert!(
            path_matcher("/blog/**")
                .expect("compiles")
                .is_match("/blog/a/b/")
        );
        assert!(path_matcher("/bad/[").is_err());
    }
}
