//! The target grammar every entry point shares: CLI arguments, stdin, spool
//! files and the HTTP API all name work as `/path/`, `tag:NAME`,
//! `glob:PATTERN`, `delete:/path/`, `failed` or `all`.
//!
//! URL paths are put in canonical form here, at the boundary
//! ([`crate::urlpath::canonical`]); a path that could name another host or
//! is not a path is refused before anything is built from it.

pub(crate) mod resolve;

use std::fmt;

/// One unit of requested work, before it is resolved to URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "String")]
pub(crate) enum Target {
    /// Regenerate one URL path (may carry a query string).
    Url(String),
    /// Regenerate every page carrying this dependency tag.
    Tag(String),
    /// Regenerate every known URL whose path matches this glob.
    Glob(String),
    /// Remove the baked file of this URL path.
    Delete(String),
    /// Regenerate every page whose last attempt failed.
    Failed,
    /// Regenerate everything known.
    All,
}

/// A line that is not a target, with the reason.
/// The text is shown cut to an excerpt, so however long it is the reason
/// (and the fix) is never cut off a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad target `{}`: {reason}", crate::text::excerpt(text, 120))]
pub(crate) struct TargetError {
    /// The offending text.
    pub(crate) text: String,
    /// Why, and what would be accepted.
    pub(crate) reason: String,
}

/// Limits on a `glob:` target, so a hostile pattern costs bounded time and
/// memory to compile and match (a URL glob never needs more).
pub(crate) const MAX_GLOB_BYTES: usize = 512;
/// Wildcards (`*`, `?`, `[`) in one glob.
pub(crate) const MAX_GLOB_WILDCARDS: usize = 32;
/// Alternations (`{a,b}`) in one glob; they may not nest.
pub(crate) const MAX_GLOB_ALTERNATIONS: usize = 8;

/// Why a glob pattern is refused before it is compiled, if it is.
fn glob_too_big(pattern: &str) -> Option<String> {
    if pattern.len() > MAX_GLOB_BYTES {
        return Some(format!(
            "the glob is {} bytes; at most {MAX_GLOB_BYTES} are allowed",
            pattern.len()
        ));
    }
    let wildcards = pattern
        .bytes()
        .filter(|b| matches!(b, b'*' | b'?' | b'['))
        .count();
    if wildcards > MAX_GLOB_WILDCARDS {
        return Some(format!(
            "the glob has {wildcards} wildcards; at most {MAX_GLOB_WILDCARDS} are allowed"
        ));
    }
    let (mut depth, mut opened) = (0usize, 0usize);
    for b in pattern.bytes() {
        match b {
            b'{' => {
                depth += 1;
                opened += 1;
                if depth > 1 {
                    return Some("nested {…} alternations are not allowed in a glob".into());
                }
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if opened > MAX_GLOB_ALTERNATIONS {
        return Some(format!(
            "the glob has {opened} {{…}} alternations; at most {MAX_GLOB_ALTERNATIONS} are allowed"
        ));
    }
    None
}

impl Target {
    /// Parses one target. Surrounding whitespace is ignored.
    pub(crate) fn parse(text: &str) -> Result<Target, TargetError> {
        let t = text.trim();
        let err = |reason: &str| TargetError {
            text: t.to_string(),
            reason: reason.to_string(),
        };
        if t.is_empty() {
            return Err(err("empty target"));
        }
        if t.chars().any(char::is_control) {
            return Err(err("contains control characters"));
        }
        if t == "all" {
            return Ok(Target::All);
        }
        if t == "failed" {
            return Ok(Target::Failed);
        }
        if let Some(tag) = t.strip_prefix("tag:") {
            if tag.is_empty() || tag.chars().any(char::is_whitespace) {
                return Err(err("a tag is one word with no spaces, e.g. tag:post:42"));
            }
            return Ok(Target::Tag(tag.to_string()));
        }
        if let Some(pattern) = t.strip_prefix("glob:") {
            if !pattern.starts_with('/') {
                return Err(err(
                    "a glob matches URL paths and starts with `/`, e.g. glob:/blog/**",
                ));
            }
            if let Some(why) = glob_too_big(pattern) {
                return Err(err(&why));
            }
            crate::glob::path_matcher(pattern).map_err(|e| err(&format!("bad glob: {e}")))?;
            return Ok(Target::Glob(pattern.to_string()));
        }
        if let Some(path) = t.strip_prefix("delete:") {
            return Ok(Target::Delete(url_path(path).map_err(|r| err(&r))?));
        }
        if t.starts_with('/') {
            return Ok(Target::Url(url_path(t).map_err(|r| err(&r))?));
        }
        Err(err(
            "expected /path/, tag:NAME, glob:/PATTERN, delete:/path/, failed or all",
        ))
    }

    /// Parses a list of lines (stdin, spool files): blank lines and `#`
    /// comments are skipped; bad lines come back with their 1-based line number.
    pub(crate) fn parse_lines(text: &str) -> (Vec<Target>, Vec<(usize, TargetError)>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match Target::parse(line) {
                Ok(t) => good.push(t),
                Err(e) => bad.push((i + 1, e)),
            }
        }
        (good, bad)
    }
}

/// A URL path target in canonical form (fragment dropped).
fn url_path(text: &str) -> Result<String, String> {
    crate::urlpath::canonical(text).map_err(|e| e.to_string())
}

/// Drops repeated targets, keeping the first of each (a request naming
/// `all` 20,000 times resolves it once).
pub(crate) fn dedup(targets: Vec<Target>) -> Vec<Target> {
    let mut seen = std::collections::HashSet::new();
    targets
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Url(p) => write!(f, "{p}"),
            Target::Tag(t) => write!(f, "tag:{t}"),
            Target::Glob(g) => write!(f, "glob:{g}"),
            Target::Delete(p) => write!(f, "delete:{p}"),
            Target::Failed => write!(f, "failed"),
            Target::All => write!(f, "all"),
        }
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let cases = [
            ("/", Target::Url("/".into())),
            ("  /blog/post-1/ ", Target::Url("/blog/post-1/".into())),
            ("/a?page=2", Target::Url("/a?page=2".into())),
            ("/a#top", Target::Url("/a".into())),
            ("tag:post:42", Target::Tag("post:42".into())),
            ("glob:/blog/**", Target::Glob("/blog/**".into())),
            ("delete:/old/", Target::Delete("/old/".into())),
            ("all", Target::All),
            ("failed", Target::Failed),
            ("/caf\u{e9}/", Target::Url("/caf%C3%A9/".into())),
            ("delete:/caf%c3%a9/", Target::Delete("/caf%C3%A9/".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text).unwrap(), want, "{text}");
            // Display round-trips (fragment aside).
            let again = Target::parse(&want.to_string()).unwrap();
            assert_eq!(again, want);
        }
    }

    #[test]
    fn rejects_with_reason() {
        for text in [
            "",
            "blog/",
            "tag:",
            "tag:a b",
            "glob:blog/*",
            "glob:/a/[",
            "delete:old",
            "//evil.example/",
            "ALL",
            "http://example.com/",
            "/a\u{0}b",
            "/\\127.0.0.1:9999/x",
            "delete:/\\127.0.0.1:9999/x",
            "/../../etc/passwd",
            "/a/%2e%2e/b",
        ] {
            let e = Target::parse(text).unwrap_err();
            assert!(!e.reason.is_empty());
            assert!(e.to_string().contains("bad target"), "{text}");
        }
        // However long the target, its message keeps the reason.
        let long = format!("blog/{}", "x".repeat(5_000));
        let e = Target::parse(&long).unwrap_err();
        let message = e.to_string();
        assert!(message.ends_with(&e.reason), "{message}");
        assert!(message.len() < 400, "{} bytes", message.len());
    }

    /// Hostile targets: every target kind's prefix, then a body drawn from
    /// the characters that matter (slashes, glob syntax, dots, escapes), or
    /// a structured blow-up (deeply nested alternations, floods of `*`).
    fn hostile_target() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let prefix = prop::sample::select(vec![
            "", "/", "tag:", "glob:/", "glob:", "delete:/", "all", "failed",
        ]);
        let body = "[/{},*?\\[\\]a.%2e\\\\ ]{0,600}";
        let flat = (prefix, body).prop_map(|(p, b)| format!("{p}{b}"));
        let nested = (0usize..400, 0usize..4).prop_map(|(n, shape)| match shape {
            0 => format!("glob:/{}x{}", "{a,".repeat(n), "}".repeat(n)),
            1 => format!("glob:/{}", "*".repeat(n * 250)),
            2 => format!("glob:/{}", "{a,b}".repeat(n)),
            _ => format!("glob:/{}", "[a-z]*?".repeat(n)),
        });
        prop_oneof![flat, nested]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn hostile_targets_never_panic_and_every_accepted_glob_compiles(s in hostile_target()) {
            match Target::parse(&s) {
                Ok(Target::Glob(p)) => {
                    proptest::prop_assert!(p.len() <= MAX_GLOB_BYTES);
                    let m = crate::glob::path_matcher(&p);
                    proptest::prop_assert!(m.is_ok(), "accepted glob does not compile: {p}");
                    let _ = m.map(|m| m.is_match("/a/b/c/"));
                }
                Ok(Target::Url(p) | Target::Delete(p)) => {
                    proptest::prop_assert_eq!(crate::urlpath::canonical(&p), Ok(p.clone()));
                }
                _ => {}
            }
        }

        /// Mostly paths (a target that is a URL starts with `/`), some not.
        #[test]
        fn parsing_never_panics_and_urls_are_canonical(s in "(/|//|delete:/|/[a-z]{1,8}/|)\\PC{0,60}") {
            if let Ok(Target::Url(p) | Target::Delete(p)) = Target::parse(&s) {
                proptest::prop_assert_eq!(crate::urlpath::canonical(&p), Ok(p.clone()));
                proptest::prop_assert!(!p.starts_with("//") && !p.contains('\\'));
            }
        }
    }

    #[test]
    fn a_glob_too_complex_to_compile_is_an_error_not_a_panic() {
        // Past the parse limits, straight at the matcher: the panic globset
        // raises for a regex over its size limit is caught.
        let huge = format!("/{}x{}", "{a,".repeat(250), "}".repeat(250));
        assert!(Target::parse(&format!("glob:{huge}")).is_err());
        let _ = crate::glob::path_matcher(&huge);
    }

    #[test]
    fn lines_skip_comments_and_report_bad_lines() {
        let (good, bad) = Target::parse_lines("# deploy\n/\n\nnonsense\ntag:x\n  # c\nglob:nope\n");
        assert_eq!(good, vec![Target::Url("/".into()), Target::Tag("x".into())]);
        assert_eq!(bad.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![4, 7]);
    }
}
