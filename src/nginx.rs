//! `kiln nginx`: a ready-to-include server block that serves baked files and
//! falls through to the origin for everything kiln has not baked, for
//! non-GET requests and for visitors carrying a session cookie.

use std::path::PathBuf;

use crate::config::is_safe_for_nginx;
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
    /// The types map the block includes ([`types_map`]).
    pub(crate) types_map: PathBuf,
    /// A baked `/404.html` to show for missing pages (sites without an origin).
    pub(crate) not_found_page: bool,
    /// The daemon that answers anonymous misses (`/v1/fill`), with an origin.
    pub(crate) fill: Option<std::net::SocketAddr>,
    /// Query parameters that do not change the page (`utm_*`, `fbclid`…,
    /// globs): a query of these alone is served the path's file.
    pub(crate) tracking_params: Vec<String>,
    /// Query parameters whose values are pages of their own (`[crawl]
    /// query-params`, sorted): their canonical query strings are served
    /// from the query tree ([`crate::urlmap::QUERY_TREE`]).
    pub(crate) query_params: Vec<String>,
    /// The app's own static files, served from its directory
    /// (`[nginx] app-files`; checked when the config was read).
    pub(crate) app_files: Vec<crate::config::AppFiles>,
}

/// The regex of the query strings the query tree serves: the declared
/// names in order, each at most once, at least one, with plain values (as
/// [`crate::urlmap::query_page`] writes them). One alternative per subset.
fn query_page_regex(names: &[String]) -> Option<String> {
    const VALUE: &str = "=[A-Za-z0-9._~-]{1,64}";
    let mut alternatives = Vec::new();
    for mask in 1u32..(1 << names.len()) {
        let parts: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| format!("{n}{VALUE}"))
            .collect();
        alternatives.push(parts.join("&"));
    }
    (!alternatives.is_empty()).then(|| format!("~^(?:{})$", alternatives.join("|")))
}

/// The id that makes this block's `http`-level names its own: two kiln
/// sites in one nginx must not share `$kiln_…_session` or the types map.
/// Derived from what makes a block a different site (its root, name and
/// listen address), so it is stable across runs of `kiln nginx`.
pub(crate) fn site_id(o: &NginxOptions) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        o.root.display().to_string(),
        o.server_name.clone(),
        o.listen.clone(),
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex()[..8].to_string()
}

/// The types map nginx reads (`map $uri $kiln_type`): one line per baked
/// file that is not HTML, its decoded URL path and the name of its type's
/// location. Also returns the URLs whose type is not in
/// [`crate::urlmap::TYPED`].
pub(crate) fn types_map(pages: &[(String, String)]) -> (String, Vec<(String, String)>) {
    let mut text =
        String::from("# Written by kiln: the Content-Type of each baked file that is not HTML.\n");
    let mut other = Vec::new();
    for (url, content_type) in pages {
        let media_type = crate::urlmap::media_type(content_type);
        if media_type == "text/html" {
            continue;
        }
        // nginx matches the decoded URI.
        let Some(location) =
            percent_encoding::percent_decode_str(url.split('?').next().unwrap_or(url))
                .decode_utf8()
                .ok()
                .map(|l| l.into_owned())
                .filter(|l| {
                    // `?` and spaces would change what the rewrite to the
                    // type's location means: such a file keeps its guessed type.
                    is_safe_for_nginx(l) && l.starts_with('/') && !l.contains(['?', ' ', '\t'])
                })
        else {
            continue;
        };
        match crate::urlmap::TYPED.iter().find(|(_, m)| *m == media_type) {
            Some((name, _)) => text.push_str(&format!("\"{location}\" {name};\n")),
            None => other.push((location, media_type)),
        }
    }
    (text, other)
}

/// Writes the types map atomically (temp file, rename) when its text
/// changed; true when it did.
pub(crate) fn write_types_map(path: &std::path::Path, text: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("map.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// The types map written again from the index: whether its text changed,
/// and the files whose type has no location in the block. An index that
/// cannot be read leaves the map as it was.
pub(crate) async fn refresh_types_map(
    index: &crate::index::Index,
    path: &std::path::Path,
) -> std::io::Result<(bool, Vec<(String, String)>)> {
    let pages = index
        .non_html_files()
        .await
        .map_err(std::io::Error::other)?;
    let (text, other) = types_map(&pages);
    Ok((write_types_map(path, &text)?, other))
}

/// The daemon's types-map writer: after pages change, the map is written
/// again from the index, and when its text changed nginx is reloaded with
/// `daemon.nginx-reload` (or told to be, once per change, in the log).
pub(crate) async fn types_worker(
    index: crate::index::Index,
    path: PathBuf,
    reload: Option<String>,
    mut changes: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match refresh_types_map(&index, &path).await {
            Ok((true, _)) => match &reload {
                Some(command) => reload_nginx(command).await,
                None => {
                    tracing::info!(map = %path.display(), "new non-HTML files: nginx serves them with their type after `nginx -s reload` (set `daemon.nginx-reload` to do it automatically)")
                }
            },
            Ok((false, _)) => {}
            Err(e) => {
                tracing::warn!(map = %path.display(), error = %e, "could not write the nginx types map")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        // Changes come in bursts: one write (and one reload) per burst.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
        changes.borrow_and_update();
    }
}

/// Runs `daemon.nginx-reload` (through `sh -c`), reporting a failure.
pub(crate) async fn reload_nginx(command: &str) {
    let run = tokio::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(30), run).await {
        Ok(Ok(out)) if out.status.success() => {
            tracing::info!(command, "nginx reloaded for new non-HTML files");
        }
        Ok(Ok(out)) => tracing::warn!(
            command,
            status = %out.status,
            stderr = %String::from_utf8_lossy(&out.stderr).trim(),
            "`daemon.nginx-reload` failed; new non-HTML files keep nginx's guessed type until a reload"
        ),
        Ok(Err(e)) => tracing::warn!(command, error = %e, "could not run `daemon.nginx-reload`"),
        Err(_) => tracing::warn!(command, "`daemon.nginx-reload` did not finish within 30 s"),
    }
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

/// Name globs (cookie or parameter names, checked when the config was
/// read; any other is skipped) as regexes, `*` standing for `star`: any
/// run of the characters a name may have where it is matched.
fn glob_regexes(globs: &[String], star: &str) -> Vec<String> {
    globs
        .iter()
        .filter(|g| crate::config::is_cookie_glob(g))
        .map(|g| g.replace('*', star))
        .collect()
}

/// Renders the config snippet (to be included inside `http { }`).
pub(crate) fn render(o: &NginxOptions) -> String {
    // Cookie name globs become regexes: `*` is any run of name characters.
    let cookies = glob_regexes(&o.session_cookies, "[^=;\\s]*");
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
    // Tracking parameter globs become one alternation.
    let tracking = glob_regexes(&o.tracking_params, "[^&=]*");
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    let ctx = minijinja::context! {
        id => site_id(o),
        tracking => tracking.join("|"),
        tracking_shown => o.tracking_params.join(", "),
        query_pages => query_page_regex(&o.query_params),
        query_names => o.query_params.join(", "),
        cookies,
        redirects,
        listen => o.listen,
        server_name => o.server_name,
        root => o.root.display().to_string(),
        origin => o.origin.as_deref().map(|u| u.trim_end_matches('/')),
        brotli => o.brotli,
        types_map => o.types_map.display().to_string(),
        typed => crate::urlmap::TYPED.iter().map(|(name, media_type)| minijinja::context! { name, media_type }).collect::<Vec<_>>(),
        not_found_page => o.not_found_page && o.origin.is_none(),
        fill => o.origin.as_ref().and(o.fill).map(|a| a.to_string()),
        app_files => o.app_files.iter().map(|a| minijinja::context! { prefix => a.prefix, dir => a.dir.display().to_string() }).collect::<Vec<_>>(),
    };
    env.render_str(TEMPLATE, ctx)
        .expect("the built-in nginx template renders: it is tested")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_block_with_fallthrough_bypass_and_redirects() {
        let options = NginxOptions {
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
            types_map: "/srv/www/.kiln/nginx-types.map".into(),
            not_found_page: true,
            fill: None,
            tracking_params: vec!["utm_*".into(), "fbclid".into()],
            query_params: vec!["page".into()],
            app_files: vec![crate::config::AppFiles {
                prefix: "/wp-content/".into(),
                dir: "/var/lib/wordpress/wp-content/".into(),
            }],
        };
        let conf = render(&options);
        assert!(conf.contains("location ^~ /wp-content/ {"), "{conf}");
        assert!(
            conf.contains("alias \"/var/lib/wordpress/wp-content/\";"),
            "{conf}"
        );
        let id = site_id(&options);
        let redirect = format!(
            "location = \"/old/\" {{\n        error_page 418 = @origin;\n        if ($kiln_{id}_method) {{ return 418; }}\n        if ($kiln_{id}_session) {{ return 418; }}\n        if ($kiln_{id}_query) {{ return 418; }}\n        return 301 \"/new/\";\n    }}"
        );
        let typed =
            format!("if ($kiln_{id}_type) {{ rewrite ^ /.kiln-as/$kiln_{id}_type$uri last; }}");
        let leaf = format!(
            "if (-f \"$document_root/.kiln-typed/rss$kiln_{id}_leaf\") {{ rewrite ^ \"/.kiln-typed/rss$kiln_{id}_leaf\" last; }}"
        );
        for want in [
            "root \"/srv/www/current\";",
            "try_files $uri $uri/index.html @typed;",
            &leaf,
            "try_files $uri @origin;\n    }",
            "gzip_static on;",
            "location ~ /\\. {",
            "\"~(^|;)\\s*sessionid=\" 1;",
            &redirect,
            "\"~^(?:(?:utm_[^&=]*|fbclid)(?:=[^&]*)?(?:&+|$))+$\" 0;",
            "proxy_set_header Host $http_host;",
            "proxy_set_header X-Forwarded-Port $server_port;",
            "gzip_vary on;",
            "proxy_pass http://127.0.0.1:8000;",
            "include \"/srv/www/.kiln/nginx-types.map\";",
            &typed,
            "location ^~ /.kiln-typed/rss/ {\n        internal;\n        types { }\n        default_type application/rss+xml;",
        ] {
            assert!(conf.contains(want), "missing {want}:\n{conf}");
        }
        assert!(!conf.contains("evil"), "unsafe redirect skipped");
        assert_eq!(
            conf.matches("default_type").count(),
            2 * crate::urlmap::TYPED.len(),
            "two locations per type (the typed tree, the types map), whatever the number of files"
        );
        assert!(!conf.contains("bad;cookie"), "unsafe cookie name skipped");
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }

    #[test]
    fn the_types_map_has_a_line_per_typed_file_and_skips_what_it_cannot_quote() {
        let pages: Vec<(String, String)> = vec![
            (
                "/feed.xml".into(),
                "application/rss+xml; charset=utf-8".into(),
            ),
            ("/".into(), "text/html; charset=utf-8".into()),
            ("/posts/1/feed/".into(), "application/atom+xml".into()),
            ("/caf%C3%A9.json".into(), "application/json".into()),
            ("/bad\";x.json".into(), "application/json".into()),
            ("/q%3Fx.json".into(), "application/json".into()),
            ("/odd.bin".into(), "application/x-odd".into()),
        ];
        let (text, other) = types_map(&pages);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "\"/feed.xml\" rss;",
                "\"/posts/1/feed/\" atom;",
                "\"/café.json\" json;"
            ]
        );
        assert_eq!(
            other,
            [("/odd.bin".to_string(), "application/x-odd".to_string())]
        );
    }
}
