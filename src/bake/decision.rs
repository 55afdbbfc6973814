//! What a complete response means for its page, decided without I/O: the
//! rules of the pipeline in one pure function, table-tested without
//! servers. [`super::Baker`] applies the [`Decision`] (the file operation,
//! the page's record and, through the index, its outputs).

use crate::body::Body;
use crate::privacy::{Checker, Verdict};
use crate::source::fetch::{Fetched, Hop};

/// What to do with a page, given the origin's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A good page: write its body (the anonymous variant of a response
    /// that varies by cookie when `anonymous`).
    Store {
        /// nginx must serve it only to visitors without a session cookie.
        anonymous: bool,
    },
    /// Asked with the baked copy's validators and answered 304: the file
    /// and its record are current. Nothing to write, not even the index.
    Unchanged,
    /// The origin says the page is gone (404, 410) or no longer public
    /// (401, 403, 451): its file goes.
    Gone {
        /// 401, 403, 404, 410 or 451.
        status: u16,
    },
    /// A response that could belong to one visitor: never baked, its file
    /// goes, the app serves it.
    Refuse {
        /// Which privacy rule, for the report.
        reason: String,
    },
    /// A 2xx with nothing in it: an app that broke, not a blank page. The
    /// last good file stays and the page is tried again
    /// (`origin.allow-empty` bakes it).
    Empty {
        /// The status.
        status: u16,
    },
    /// A status kiln cannot bake or remove for (5xx, 429, 3xx it could not
    /// follow…): the last good file stays.
    Fail {
        /// The status.
        status: u16,
    },
    /// The URL redirects off the origin (or to a page baked elsewhere in
    /// this run): nothing to bake here.
    Redirect {
        /// Where to.
        to: String,
    },
}

/// Why a redirect the origin sent must not be recorded (replayed by nginx
/// to every visitor), if it must not: the privacy rules apply to a redirect
/// as to a page. Django's `/admin/` answers anonymous visitors `302` to the
/// login form with `Cache-Control: private, no-store`; replayed to a
/// logged-in editor it would loop them on the login form.
pub(crate) fn private_redirect(hop: &Hop, checker: &Checker) -> Option<String> {
    checker
        .check(&hop.from, &hop.headers, &Body::from(Vec::new()))
        .err()
        .map(|refusal| format!("its redirect is private: {refusal}"))
}

/// Decides what `fetched` means for its page. Redirect hops the fetcher
/// followed are recorded by the caller whatever the decision.
pub(crate) fn decide(fetched: &Fetched, checker: &Checker, allow_empty: bool) -> Decision {
    if fetched.left_origin() {
        let to = fetched
            .hops
            .last()
            .map(|h| h.to.clone())
            .unwrap_or_default();
        return Decision::Redirect { to };
    }
    match fetched.status {
        // The privacy rules first: an empty answer that is private (it sets
        // a cookie, say) is a page that went per-visitor, and its file goes.
        status @ 200..=299 => {
            match checker.check(&fetched.final_path, &fetched.headers, &fetched.body) {
                Ok(_) if fetched.body.len() == 0 && !allow_empty => Decision::Empty { status },
                Ok(verdict) => Decision::Store {
                    anonymous: verdict == Verdict::Anonymous,
                },
                Err(refusal) => Decision::Refuse {
                    reason: refusal.to_string(),
                },
            }
        }
        // Only a request that carried validators gets a 304, and only for
        // the URL asked (a 304 after a redirect answers another page).
        304 if fetched.hops.is_empty() => Decision::Unchanged,
        // Not there any more, or no longer public (it now needs
        // credentials, or may not be shown): either way not a page for
        // every visitor, so the app answers it (guarantee 2).
        status @ (401 | 403 | 404 | 410 | 451) => Decision::Gone { status },
        status => Decision::Fail { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Safety, VaryCookie};
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    fn checker() -> Checker {
        Checker::new(
            &Safety {
                forbid_patterns: vec!["csrfmiddlewaretoken".into()],
                allow_private: globset::GlobSetBuilder::new().build().expect("empty set"),
                bypass_cookies: vec![],
                tracking_params: vec![],
                vary_cookie: VaryCookie::Anonymous,
                max_delete_pages: 50,
                max_delete_percent: 10,
            },
            None,
            &[],
        )
        .expect("checker")
    }

    fn response(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
        hops: Vec<Hop>,
    ) -> Fetched {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("header"),
            );
        }
        Fetched {
            final_path: "/p/".into(),
            status,
            headers: h,
            body: Body::from(body.as_bytes().to_vec()),
            hops,
            meta: crate::source::PageMeta::default(),
        }
    }

    fn hop(to: &str, same_origin: bool) -> Hop {
        Hop {
            from: "/old/".into(),
            to: to.into(),
            code: 301,
            same_origin,
            headers: HeaderMap::new(),
        }
    }

    #[test]
    fn a_private_redirect_is_never_recorded_and_a_cookie_variant_one_is() {
        let checker = checker();
        let with = |k: &'static str, v: &str| {
            let mut h = hop("/admin/login/", true);
            h.headers.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("header"),
            );
            h
        };
        assert_eq!(private_redirect(&hop("/new/", true), &checker), None);
        let django_admin = with(
            "cache-control",
            "max-age=0, no-cache, no-store, must-revalidate, private",
        );
        assert!(
            private_redirect(&django_admin, &checker).is_some_and(|why| why.contains("private"))
        );
        assert!(private_redirect(&with("set-cookie", "sessionid=1"), &checker).is_some());
        assert_eq!(
            private_redirect(&with("vary", "Cookie"), &checker),
            None,
            "the anonymous variant: recorded, and behind the session bypass"
        );
    }

    #[test]
    fn every_response_has_one_decision() {
        let html = [("content-type", "text/html")];
        let table: Vec<(&str, Fetched, Decision)> = vec![
            (
                "a page",
                response(200, &html, "<p>hi</p>", vec![]),
                Decision::Store { anonymous: false },
            ),
            (
                "any 2xx",
                response(203, &html, "<p>hi</p>", vec![]),
                Decision::Store { anonymous: false },
            ),
            (
                "a page that varies by cookie is the anonymous variant",
                response(200, &[("vary", "Cookie")], "<p>hi</p>", vec![]),
                Decision::Store { anonymous: true },
            ),
            (
                "a cookie is refused",
                response(200, &[("set-cookie", "sessionid=1")], "<p>hi</p>", vec![]),
                Decision::Refuse {
                    reason: "Set-Cookie".into(),
                },
            ),
            (
                "a CSRF token in the body is refused",
                response(200, &html, "<input name=csrfmiddlewaretoken>", vec![]),
                Decision::Refuse {
                    reason: "csrfmiddlewaretoken".into(),
                },
            ),
            (
                "a 304 is current",
                response(304, &[], "", vec![]),
                Decision::Unchanged,
            ),
            (
                "a 304 after a redirect answers another page",
                response(304, &[], "", vec![hop("/p/", true)]),
                Decision::Fail { status: 304 },
            ),
            (
                "404 is gone",
                response(404, &html, "nope", vec![]),
                Decision::Gone { status: 404 },
            ),
            (
                "410 is gone",
                response(410, &html, "", vec![]),
                Decision::Gone { status: 410 },
            ),
            (
                "an empty 200 keeps the last good file",
                response(200, &html, "", vec![]),
                Decision::Empty { status: 200 },
            ),
            (
                "an empty private answer is refused, not kept",
                response(200, &[("set-cookie", "sessionid=1")], "", vec![]),
                Decision::Refuse {
                    reason: "cookie".into(),
                },
            ),
            (
                "401 is no longer public: gone",
                response(401, &html, "log in", vec![]),
                Decision::Gone { status: 401 },
            ),
            (
                "403 too",
                response(403, &html, "", vec![]),
                Decision::Gone { status: 403 },
            ),
            (
                "451 too",
                response(451, &html, "", vec![]),
                Decision::Gone { status: 451 },
            ),
            (
                "a 503 keeps the last good file",
                response(503, &html, "", vec![]),
                Decision::Fail { status: 503 },
            ),
            (
                "a 429 too",
                response(429, &html, "", vec![]),
                Decision::Fail { status: 429 },
            ),
            (
                "a redirect off the origin",
                response(
                    301,
                    &[("location", "https://elsewhere.example/")],
                    "",
                    vec![hop("https://elsewhere.example/", false)],
                ),
                Decision::Redirect {
                    to: "https://elsewhere.example/".into(),
                },
            ),
            (
                "a redirect followed on the origin stores the target",
                response(200, &html, "<p>moved</p>", vec![hop("/p/", true)]),
                Decision::Store { anonymous: false },
            ),
            (
                "a 3xx kiln did not follow",
                response(302, &[], "", vec![]),
                Decision::Fail { status: 302 },
            ),
        ];
        let checker = checker();
        for (what, fetched, want) in table {
            let got = decide(&fetched, &checker, false);
            // A refusal's reason is checked for the rule it names.
            if let (Decision::Refuse { reason: got }, Decision::Refuse { reason: names }) =
                (&got, &want)
            {
                assert!(got.contains(names.as_str()), "{what}: {got}");
                continue;
            }
            assert_eq!(got, want, "{what}");
        }
    }
}
