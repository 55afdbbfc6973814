//! Privacy checks run on every response before it may be written
//! (DESIGN.md guarantee 5): a page that could belong to one visitor is refused.

use aho_corasick::AhoCorasick;
use reqwest::header::{HeaderMap, CACHE_CONTROL, SET_COOKIE, VARY};

use crate::config::Safety;

/// Why a response was refused. Shown to users as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The response sets a cookie, so it is per-visitor.
    #[error("response sets a cookie (Set-Cookie)")]
    SetsCookie,
    /// `Cache-Control: private` or `no-store`.
    #[error("response has Cache-Control: {0}")]
    CacheControl(String),
    /// `Vary: Cookie` or `Vary: Authorization`.
    #[error("response varies by {0} (Vary header)")]
    Vary(String),
    /// The body contains a forbidden pattern such as a CSRF token.
    #[error("body contains forbidden pattern `{0}` (set safety.allow-private for this URL if it is really public)")]
    ForbiddenPattern(String),
}

/// Compiled privacy policy.
#[derive(Debug, Clone)]
pub struct Checker {
    patterns: Vec<String>,
    matcher: Option<AhoCorasick>,
    allow_private: globset::GlobSet,
}

impl Checker {
    /// Builds the matcher once per run.
    pub fn new(safety: &Safety) -> Checker {
        let matcher = if safety.forbid_patterns.is_empty() {
            None
        } else {
            // Patterns were validated as non-empty strings; construction cannot fail.
            AhoCorasick::new(&safety.forbid_patterns).ok()
        };
        Checker {
            patterns: safety.forbid_patterns.clone(),
            matcher,
            allow_private: safety.allow_private.clone(),
        }
    }

    /// Returns the first reason `url_path`'s response must not be baked.
    pub fn check(&self, url_path: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        let path = url_path.split('?').next().unwrap_or(url_path);
        if self.allow_private.is_match(path) {
            return Ok(());
        }
        if headers.contains_key(SET_COOKIE) {
            return Err(Refusal::SetsCookie);
        }
        for value in headers.get_all(CACHE_CONTROL) {
            let v = value.to_str().unwrap_or("").to_ascii_lowercase();
            for directive in v.split(',').map(str::trim) {
                let name = directive.split('=').next().unwrap_or("").trim();
                if name == "private" || name == "no-store" {
                    return Err(Refusal::CacheControl(name.to_string()));
                }
            }
        }
        for value in headers.get_all(VARY) {
            let v = value.to_str().unwrap_or("");
            for field in v.split(',').map(str::trim) {
                if field.eq_ignore_ascii_case("cookie")
                    || field.eq_ignore_ascii_case("authorization")
                {
                    return Err(Refusal::Vary(field.to_string()));
                }
            }
        }
        if let Some(m) = &self.matcher {
            if let Some(found) = m.find(body) {
                return Err(Refusal::ForbiddenPattern(
                    self.patterns[found.pattern().as_usize()].clone(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn checker(allow: &[&str]) -> Checker {
        let mut b = globset::GlobSetBuilder::new();
        for a in allow {
            b.add(globset::Glob::new(a).unwrap());
        }
        Checker::new(&Safety {
            forbid_patterns: vec!["csrfmiddlewaretoken".into(), "data-user-id".into()],
            allow_private: b.build().unwrap(),
        })
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn refusals() {
        let c = checker(&[]);
        let cases: &[(&[(&str, &str)], &str, Option<Refusal>)] = &[
            (&[], "<p>hi</p>", None),
            (&[("cache-control", "public, max-age=60")], "", None),
            (&[("vary", "Accept-Encoding")], "", None),
            (
                &[("set-cookie", "sessionid=1")],
                "",
                Some(Refusal::SetsCookie),
            ),
            (
                &[("cache-control", "max-age=0, private")],
                "",
                Some(Refusal::CacheControl("private".into())),
            ),
            (
                &[("cache-control", "No-Store")],
                "",
                Some(Refusal::CacheControl("no-store".into())),
            ),
            (
                &[("vary", "Accept-Encoding, Cookie")],
                "",
                Some(Refusal::Vary("Cookie".into())),
            ),
            (
                &[("vary", "authorization")],
                "",
                Some(Refusal::Vary("authorization".into())),
            ),
            (
                &[],
                "<input name=\"csrfmiddlewaretoken\" value=\"x\">",
                Some(Refusal::ForbiddenPattern("csrfmiddlewaretoken".into())),
            ),
            (
                &[],
                "<body data-user-id=7>",
                Some(Refusal::ForbiddenPattern("data-user-id".into())),
            ),
        ];
        for (h, body, want) in cases {
            let got = c.check("/p/", &headers(h), body.as_bytes()).err();
            assert_eq!(&got, want, "{h:?} {body}");
        }
    }

    #[test]
    fn allow_private_waives_checks() {
        let c = checker(&["/account/**"]);
        let h = headers(&[("set-cookie", "a=b")]);
        assert!(c.check("/account/x/", &h, b"").is_ok());
        assert!(c.check("/other/", &h, b"").is_err());
    }
}
