//! `kiln nginx`: print a server block for this site.

use super::{Exit, GlobalArgs};
use crate::nginx::{NginxOptions, render};

/// `kiln nginx` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln nginx > /etc/nginx/conf.d/site.conf
  kiln nginx --listen 127.0.0.1:8080 --server-name example.org
  kiln nginx --session-cookie sessionid --session-cookie 'wordpress_logged_in_*'
  kiln nginx --fill off              # misses go straight to the app")]
pub struct NginxArgs {
    /// `listen` value for the server block
    #[arg(long, default_value = "80")]
    pub listen: String,
    /// `server_name` value [default: the host of `[origin] host`, else `_`
    /// with a warning: a stock Debian/Ubuntu nginx's default site then
    /// answers instead]
    #[arg(long)]
    pub server_name: Option<String>,
    /// Cookie that marks a logged-in visitor (bypasses baked files); repeatable.
    /// Replaces `safety.bypass-cookies` (default: Django, Rails, PHP and
    /// WordPress session and login cookies)
    #[arg(long = "session-cookie")]
    pub session_cookies: Vec<String>,
    /// The daemon that answers anonymous misses (`IP:PORT`, or `off` to send
    /// them straight to the origin). Default: `daemon.listen` when
    /// `daemon.fill` is on
    #[arg(long, value_name = "ADDR|off")]
    pub fill: Option<String>,
}

/// Prints the config for the configured output (or its `current` release).
pub async fn run(g: &GlobalArgs, args: NginxArgs) -> anyhow::Result<Exit> {
    let cfg = g.load_config()?;
    let root = std::path::absolute(crate::release::live_root(&cfg.out))?;
    let not_found_page = root.join("404.html").is_file();
    // The map the block includes, written now (nginx -t needs it) and kept
    // current by the daemon and every build.
    let types_map = std::path::absolute(cfg.types_map())?;
    let (redirects, other) = if let Some(index) = super::existing_index(&cfg)? {
        let (_, other) = crate::nginx::refresh_types_map(&index, &types_map).await?;
        (index.redirects().await?, other)
    } else {
        // Nothing baked yet: an empty map, and no index made for it.
        crate::nginx::write_types_map(&types_map, &crate::nginx::types_map(&[]).0)?;
        (Vec::new(), Vec::new())
    };
    for (url, media_type) in other.iter().take(5) {
        eprintln!(
            "note: {url} is {media_type}, which the block has no location for: nginx serves it by its extension"
        );
    }
    let fill = match args.fill.as_deref() {
        Some(text) => crate::config::parse_listen(text).map_err(|_| {
            super::UsageError(format!(
                "--fill `{text}`: expected the daemon's address like 127.0.0.1:7878, or `off`"
            ))
        })?,
        None if cfg.daemon.fill => cfg.daemon.listen,
        None => None,
    }
    .map(|mut a| {
        // nginx connects to the daemon on this machine.
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv6() {
                std::net::Ipv6Addr::LOCALHOST.into()
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            });
        }
        a
    });
    let server_name = match args.server_name {
        Some(name) => name,
        None => match cfg
            .origin
            .as_ref()
            .and_then(|o| o.host.as_ref())
            .and_then(|h| h.to_str().ok())
        {
            // `example.org:8000` → `example.org`: server_name takes no port.
            Some(host) => host
                .rsplit_once(':')
                .map_or(host, |(name, _)| name)
                .to_string(),
            None => {
                eprintln!(
                    "{}",
                    catch_all_warning(std::path::Path::new("/etc/nginx/sites-enabled"))
                );
                "_".to_string()
            }
        },
    };
    print!(
        "{}",
        render(&NginxOptions {
            root,
            listen: args.listen,
            server_name,
            origin: cfg.origin.as_ref().map(|o| o.url.to_string()),
            session_cookies: if args.session_cookies.is_empty() {
                cfg.safety.bypass_cookies.clone()
            } else {
                if let Some(bad) = args
                    .session_cookies
                    .iter()
                    .find(|c| !crate::config::is_cookie_glob(c))
                {
                    return Err(super::UsageError(format!(
                        "--session-cookie `{bad}`: a cookie name is letters, digits, `_` and `-`, with `*` for any run of them"
                    ))
                    .into());
                }
                args.session_cookies
            },
            redirects,
            brotli: cfg
                .output
                .precompress
                .contains(&crate::config::Encoding::Brotli),
            types_map,
            not_found_page,
            fill,
            tracking_params: cfg.safety.tracking_params.clone(),
            query_params: cfg.crawl.query_params.clone(),
            app_files: cfg.nginx.app_files.clone(),
        })
    );
    Ok(Exit::Clean)
}

/// What `server_name _` means on this machine: with a `default_server`
/// site enabled (Debian's and Ubuntu's stock nginx has one), that site
/// answers every request this block was meant for.
fn catch_all_warning(sites_enabled: &std::path::Path) -> String {
    let default = std::fs::read_dir(sites_enabled)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .find(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.trim_start().starts_with("listen") && l.contains("default_server"))
            })
        });
    match default {
        Some(site) => format!(
            "warning: `server_name _` (no --server-name, no `[origin] host`): {} has `listen … default_server`, so nginx answers with that site, not this block. Pass --server-name example.org, or remove it (`rm {}`), then `nginx -t && systemctl reload nginx`",
            site.path().display(),
            site.path().display()
        ),
        None => "warning: `server_name _` (no --server-name, no `[origin] host`): this block answers any host only if it is nginx's default server; pass --server-name example.org".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_site_elsewhere_is_named_with_the_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(catch_all_warning(dir.path()).contains("--server-name"));
        std::fs::write(
            dir.path().join("default"),
            "server {\n\tlisten 80 default_server;\n\tlisten [::]:80 default_server;\n}\n",
        )
        .expect("write");
        let w = catch_all_warning(dir.path());
        assert!(
            w.contains("default_server") && w.contains("/default") && w.contains("reload"),
            "{w}"
        );
    }
}
