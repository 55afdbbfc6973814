//! `kiln nginx`: a ready-to-include server block that serves baked files and
//! falls through to the origin for everything kiln has not baked, for
//! non-GET requests and for visitors carrying a session cookie.

use std::path::PathBuf;

use crate::index::Redirect;

/// Inputs to the generated config.
#[derive(Debug, Clone)]
pub(crate) struct NginxOptions {
    /// Absolute web root (`<out>/current` with releases).
    pub(crate) root: PathBuf,
    /// `listen` value, e.g. `80` or `127.0.0.1:8080`.
    pub(crate) listen: String,
    /// `server_name` value.
    pub(crate) server_name: String,
    /// Origin base URL for `@origin`, if any.
    pub(crate) origin: Option<String>,
    /// Cookies whose presence means "logged in": bypass the baked files.
    pub(crate) session_cookies: Vec<String>,
    /// Redirects recorded by kiln, emitted as `return`.
    pub(crate) redirects: Vec<Redirect>,
    /// Whether `.br` siblings are written (emit `brotli_static on` commented, as it needs ngx_brotli).
    pub(crate) brotli: bool,
    /// Baked pages with their recorded `Content-Type`: (URL path, content type).
    pub(crate) content_types: Vec<(String, String)>,
    /// A baked `/404.html` to show for missing pages (sites without an origin).
    pub(crate) not_found_page: bool,
    /// The daemon that answers anonymous misses (`/v1/fill`), with an origin.
    pub(crate) fill: Option<std::net::SocketAddr>,
}

/// A location that serves one file with its recorded media type.
#[derive(serde::Serialize)]
struct TypedLocation {
    location: String,
    media_type: String,
}

/// Locations for every baked page that is not HTML: nginx serves them with
/// the recorded media type instead of guessing from the extension.
fn typed_locations(pages: &[(String, String)]) -> Vec<TypedLocation> {
    pages
        .iter()
        .filter_map(|(url, content_type)| {
            let media_type = crate::urlmap::media_type(content_type);
            let is_token = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.+-/".contains(c))
                    && s.contains('/')
            };
            if media_type == "text/html" || !is_token(&media_type) {
                return None;
            }
            // nginx matches the decoded URI.
            let location = percent_encoding::percent_decode_str(url.split('?').next()?)
                .decode_utf8()
                .ok()?
                .into_owned();
            (is_safe_for_nginx(&location) && location.starts_with('/')).then_some(TypedLocation {
                location,
                media_type,
            })
        })
        .collect()
}

/// Characters that would break out of a quoted nginx string or regex.
fn is_safe_for_nginx(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '"' | '\'' | ';' | '{' | '}' | '\\' | '$'))
}

/// The server block, as a template: what nginx sees is readable in one
/// place. Values are checked in [`render`] before they reach it.
const TEMPLATE: &str = include_str!("nginx.conf.j2");

/// A recorded redirect, safe to put in a quoted nginx string.
#[derive(serde::Serialize)]
struct SafeRedirect<'a> {
    from: &'a str,
    to: &'a str,
    code: u16,
}

/// Renders the config snippet (to be included inside `http { }`).
pub(crate) fn render(o: &NginxOptions) -> String {
    // Cookie name globs become regexes: `*` is any run of name characters.
    let cookies: Vec<String> = o
        .session_cookies
        .iter()
        .filter(|c| crate::config::is_cookie_glob(c))
        .map(|c| c.replace('*', "[^=;\\s]*"))
        .collect();
    // Only redirects that cannot break out of a quoted string or a location.
    let redirects: Vec<SafeRedirect<'_>> = o
        .redirects
        .iter()
        .filter(|r| {
            is_safe_for_nginx(&r.from)
                && is_safe_for_nginx(&r.to)
                && r.from.starts_with('/')
                && !r.from.contains('?')
        })
        .map(|r| SafeRedirect {
            from: &r.from,
            to: &r.to,
            code: if matches!(r.code, 301 | 302 | 303 | 307 | 308) {
                r.code
            } else {
                301
            },
        })
        .collect();
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    let ctx = minijinja::context! {
        cookies,
        redirects,
        listen => o.listen,
        server_name => o.server_name,
        root => o.root.display().to_string(),
        origin => o.origin.as_deref().map(|u| u.trim_end_matches('/')),
        brotli => o.brotli,
        typed => typed_locations(&o.content_types),
        not_found_page => o.not_found_page && o.origin.is_none(),
        fill => o.origin.as_ref().and(o.fill).map(|a| a.to_string()),
    };
    env.render_str(TEMPLATE, ctx)
        .expect("the built-in nginx template renders: it is tested")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_block_with_fallthrough_bypass_and_redirects() {
        let conf = render(&NginxOptions {
            root: "/srv/www/current".into(),
            listen: "80".into(),
            server_name: "example.org".into(),
            origin: Some("http://127.0.0.1:8000/".into()),
            session_cookies: vec!["sessionid".into(), "bad;cookie".into()],
            redirects: vec![
                Redirect {
                    from: "/old/".into(),
                    to: "/new/".into(),
                    code: 301,
                },
                Redirect {
                    from: "/x\";evil".into(),
                    to: "/".into(),
                    code: 301,
                },
            ],
            brotli: false,
            content_types: vec![
                (
                    "/feed.xml".into(),
                    "application/rss+xml; charset=utf-8".into(),
                ),
                ("/".into(), "text/html; charset=utf-8".into()),
                ("/bad.json".into(), "application/json\"; evil".into()),
            ],
            not_found_page: true,
            fill: None,
        });
        for want in [
            "root \"/srv/www/current\";",
            "try_files $uri $uri/index.html @origin;",
            "gzip_static on;",
            "location ~ /\\. {",
            "\"~(^|;)\\s*sessionid=\" 1;",
            "location = \"/old/\" {\n        error_page 418 = @origin;\n        if ($kiln_dynamic_method) { return 418; }\n        if ($kiln_session) { return 418; }\n        return 301 \"/new/\";\n    }",
            "proxy_set_header Host $http_host;",
            "proxy_set_header X-Forwarded-Port $server_port;",
            "gzip_vary on;",
            "proxy_pass http://127.0.0.1:8000;",
            "location = \"/feed.xml\" {\n        types { }\n        default_type application/rss+xml;",
        ] {
            assert!(conf.contains(want), "missing {want}:\n{conf}");
        }
        assert!(
            !conf.contains("evil"),
            "unsafe redirect and content type skipped"
        );
        assert_eq!(
            conf.matches("default_type").count(),
            1,
            "HTML needs no location"
        );
        assert!(!conf.contains("bad;cookie"), "unsafe cookie name skipped");
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }
}
