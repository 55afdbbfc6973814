//! Privacy checks run on every response before it may be written
//! (guarantee 5, docs/architecture.md): a page that could belong to one visitor is refused.

use aho_corasick::AhoCorasick;
use reqwest::header::{CACHE_CONTROL, CONTENT_ENCODING, HeaderMap, SET_COOKIE, VARY};

use crate::body::Body;
use crate::config::{Safety, VaryCookie};

/// Why a response was refused. Shown to users as-is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The response sets a cookie, so it is per-visitor.
    #[error("response sets a cookie (Set-Cookie)")]
    SetsCookie,
    /// `Cache-Control: private` or `no-store`.
    #[error("response has Cache-Control: {0}")]
    CacheControl(String),
    /// `Vary: Cookie` or `Vary: Authorization`.
    #[error("response varies by {0} (Vary header)")]
    Vary(String),
    /// `Vary` on a request header other than the cookie: visitors who send
    /// another value get another page, and nginx would serve them this one.
    #[error(
        "response varies by {0} (Vary header): visitors sending another {0} get another page; add it to `origin.vary-ignore` if every variant is the same page"
    )]
    VariesBy(String),
    /// A `Content-Encoding` kiln does not decode: the bytes are not the page.
    #[error(
        "response has Content-Encoding: {0}, which kiln cannot decode (it decodes gzip, deflate and br)"
    )]
    Encoding(String),
    /// The body contains a forbidden pattern such as a CSRF token.
    #[error(
        "body contains forbidden pattern `{0}` (set safety.allow-private for this URL if it is really public)"
    )]
    ForbiddenPattern(String),
    /// The body could not be read back for scanning.
    #[error("body could not be scanned: {0}")]
    Unreadable(String),
}

/// What a response that may be baked is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The same for every visitor.
    Shared,
    /// It varies by cookie (or authorization), and this is the variant for
    /// a visitor without any: kiln sent none. nginx serves it only to
    /// requests carrying no bypass cookie.
    Anonymous,
}

/// Compiled privacy policy.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    patterns: Vec<String>,
    matcher: Option<AhoCorasick>,
    allow_private: globset::GlobSet,
    vary_cookie: VaryCookie,
    /// Request headers kiln sends (lowercase names): a `Vary` on one of them
    /// is not the anonymous variant.
    sent_headers: Vec<String>,
    /// `Vary` fields that make no other page (`origin.vary-ignore`, lowercase).
    vary_ignore: Vec<String>,
}

impl Checker {
    /// Builds the matcher once per run. Fails closed: a pattern set that
    /// cannot be compiled stops kiln rather than silently checking nothing.
    pub(crate) fn new(
        safety: &Safety,
        sent_headers: Option<&HeaderMap>,
        vary_ignore: &[String],
    ) -> Result<Checker, aho_corasick::BuildError> {
        let matcher = if safety.forbid_patterns.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&safety.forbid_patterns)?)
        };
        Ok(Checker {
            patterns: safety.forbid_patterns.clone(),
            matcher,
            allow_private: safety.allow_private.clone(),
            vary_cookie: safety.vary_cookie,
            sent_headers: sent_headers
                .into_iter()
                .flat_map(|h| h.keys().map(|k| k.as_str().to_string()))
                .collect(),
            vary_ignore: vary_ignore.iter().map(|f| f.to_ascii_lowercase()).collect(),
        })
    }

    /// Returns the first reason `url_path`'s response must not be baked.
    /// Large bodies are scanned as a stream (patterns across chunk borders
    /// included); a body that cannot be read is refused rather than baked.
    pub(crate) fn check(
        &self,
        url_path: &str,
        headers: &HeaderMap,
        body: &Body,
    ) -> Result<Verdict, Refusal> {
        let path = url_path.split('?').next().unwrap_or(url_path);
        if self.allow_private.is_match(path) {
            return Ok(Verdict::Shared);
        }
        let mut verdict = Verdict::Shared;
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
        // The fetcher decodes what it can; anything still encoded is not
        // the page's bytes.
        if let Some(encoding) = headers
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty() && e != "identity")
        {
            return Err(Refusal::Encoding(encoding));
        }
        for value in headers.get_all(VARY) {
            let v = value.to_str().unwrap_or("*");
            for field in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                let lower = field.to_ascii_lowercase();
                // kiln decodes every encoding it asks for: one page.
                if lower == "accept-encoding" || self.vary_ignore.contains(&lower) {
                    continue;
                }
                if lower != "cookie" && lower != "authorization" {
                    return Err(Refusal::VariesBy(field.to_string()));
                }
                // kiln sent no such header, so this is what a visitor
                // without one gets: the anonymous variant, unless the
                // site asked for the strict policy.
                let sent = self.sent_headers.contains(&lower);
                if sent || self.vary_cookie == VaryCookie::Refuse {
                    return Err(Refusal::Vary(field.to_string()));
                }
                verdict = Verdict::Anonymous;
            }
        }
        if let Some(m) = &self.matcher {
            let found = match body.as_bytes() {
                Some(bytes) => m.find(bytes).map(|f| f.pattern()),
                None => match m.stream_find_iter(body.reader()).next() {
                    Some(Ok(f)) => Some(f.pattern()),
                    Some(Err(e)) => return Err(Refusal::Unreadable(e.to_string())),
                    None => None,
                },
            };
            if let Some(p) = found {
                return Err(Refusal::ForbiddenPattern(
                    self.patterns[p.as_usize()].clone(),
                ));
            }
        }
        Ok(verdict)
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn checker(allow: &[&str]) -> Checker {
        checker_with(allow, VaryCookie::Refuse, &[])
    }

    fn checker_with(
        allow: &[&str],
        vary_cookie: VaryCookie,
        sent: &[(&'static str, &'static str)],
    ) -> Checker {
        let mut b = globset::GlobSetBuilder::new();
        for a in allow {
            b.add(globset::Glob::new(a).unwrap());
        }
        Checker::new(
            &Safety {
                forbid_patterns: vec!["csrfmiddlewaretoken".into(), "data-user-id".into()],
                allow_private: b.build().unwrap(),
                bypass_cookies: vec![],
                tracking_params: vec![],
                vary_cookie,
                max_delete_pages: 50,
                max_delete_percent: 10,
            },
            Some(&headers(sent)),
            &["Accept-Language".to_string()],
        )
        .unwrap()
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
                &[("vary", "Accept")],
                "",
                Some(Refusal::VariesBy("Accept".into())),
            ),
            (&[("vary", "accept-language, Accept-Encoding")], "", None),
            (&[("vary", "*")], "", Some(Refusal::VariesBy("*".into()))),
            (
                &[("content-encoding", "zstd")],
                "",
                Some(Refusal::Encoding("zstd".into())),
            ),
            (&[("content-encoding", "identity")], "", None),
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
            let got = c
                .check("/p/", &headers(h), &Body::from(body.to_string()))
                .err();
            assert_eq!(&got, want, "{h:?} {body}");
        }
    }

    #[test]
    fn allow_private_waives_checks() {
        let c = checker(&["/account/**"]);
        let h = headers(&[("set-cookie", "a=b")]);
        let empty = Body::from(Vec::new());
        assert!(c.check("/account/x/", &h, &empty).is_ok());
        assert!(c.check("/other/", &h, &empty).is_err());
    }

    #[test]
    fn vary_cookie_is_the_anonymous_variant_unless_kiln_sent_one_or_policy_is_strict() {
        let empty = Body::from(Vec::new());
        let vary = headers(&[("vary", "Accept-Encoding, Cookie")]);
        let anon = checker_with(&[], VaryCookie::Anonymous, &[]);
        assert_eq!(anon.check("/p/", &vary, &empty), Ok(Verdict::Anonymous));
        assert_eq!(
            anon.check("/p/", &HeaderMap::new(), &empty),
            Ok(Verdict::Shared)
        );
        // Still refused, always: a cookie set, private, a CSRF token.
        let set = headers(&[("vary", "Cookie"), ("set-cookie", "a=b")]);
        assert_eq!(anon.check("/p/", &set, &empty), Err(Refusal::SetsCookie));
        let token = Body::from("csrfmiddlewaretoken".to_string());
        assert!(anon.check("/p/", &vary, &token).is_err());
        // kiln sends an Authorization header: Vary on it is per-credential.
        let sends_auth = checker_with(&[], VaryCookie::Anonymous, &[("authorization", "x")]);
        let vary_auth = headers(&[("vary", "Authorization")]);
        assert_eq!(
            sends_auth.check("/p/", &vary_auth, &empty),
            Err(Refusal::Vary("Authorization".into()))
        );
        assert_eq!(
            checker(&[]).check("/p/", &vary, &empty),
            Err(Refusal::Vary("Cookie".into()))
        );
    }

    #[test]
    fn large_bodies_are_scanned_across_chunk_borders() {
        let c = checker(&[]);
        let dir = tempfile::tempdir().unwrap();
        let mut b = crate::body::BodyBuilder::new(dir.path());
        let filler = vec![b'x'; crate::body::SPILL_BYTES + crate::body::CHUNK - 5];
        b.push(&filler).unwrap();
        b.push(b"csrfmiddlewaretoken").unwrap();
        let body = b.finish();
        assert!(body.as_bytes().is_none(), "spilled");
        assert_eq!(
            c.check("/p/", &HeaderMap::new(), &body).err(),
            Some(Refusal::ForbiddenPattern("csrfmiddlewaretoken".into()))
        );
    }
}
