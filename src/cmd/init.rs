//! `kiln init`: a commented `site.toml` (and for render mode the bundled
//! default site as a starter) in the current directory. Never overwrites.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use super::{Exit, GlobalArgs, UsageError};

/// `kiln init` flags (`--origin URL` picks fetch mode).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln init --origin http://127.0.0.1:8000   bake an app running on port 8000
  kiln init --render                         a styled blog to start from: site.toml, templates/, content/
  kiln init                                  asks which, on a terminal")]
pub struct InitArgs {
    /// Render pages from templates and data files instead of fetching them
    #[arg(long)]
    pub render: bool,
}

const FETCH_TOML: &str = r#"# kiln site config: bake the pages of a running app into static files.
# Every key is optional; `kiln check` validates this file.

[origin]
# Where the app answers (kiln fetches anonymously, without cookies).
url = "{ORIGIN}"
# The public host kiln asks for (the Host header): feeds, sitemaps and
# canonical links the app writes then name it, not the address above.
# host = "example.org"
# concurrency = 16          # parallel requests
# timeout = "30s"
# headers = { "X-From" = "kiln" }
# tags-header = "Surrogate-Key"   # the header your app names dependency tags in

[site]
out = "public"              # the directory nginx serves (`kiln nginx` prints its config)
{SITE_URL}

[crawl]
seeds = ["/"]               # add "/sitemap.xml" to follow your sitemap
# exclude = ["/admin/**", "/accounts/**"]

[output]
precompress = ["gzip"]      # .gz siblings for nginx's gzip_static

# Pages that show many objects: regenerate them when any object of a kind changes.
# [[depend]]
# tags = ["post:*"]
# urls = ["/", "/feed.xml"]

[daemon]
listen = "127.0.0.1:7878"   # POST /v1/regen {"targets": ["tag:post:42"]}
"#;

/// Where `kiln init` writes the WordPress plugin, and the plugin itself
/// (integrations/wordpress/kiln/kiln.php: kiln and its plugin come as one
/// version).
const WORDPRESS_PLUGIN: &str = "wordpress/kiln.php";
const WORDPRESS_PLUGIN_PHP: &str = include_str!("../../integrations/wordpress/kiln/kiln.php");

/// The starter `kiln init --render` writes: the bundled default site (a
/// styled blog with posts, tags, an archive, a feed, a sitemap and a 404
/// page), file for file. `tests/it/init.rs` checks this list is the whole
/// bundled site, so the starter never falls behind it.
pub(crate) const STARTER: &[(&str, &str)] = &[
    ("site.toml", include_str!("../../site.toml")),
    (
        "content/pages/about.md",
        include_str!("../../content/pages/about.md"),
    ),
    (
        "content/posts/reading-a-firing-schedule.md",
        include_str!("../../content/posts/reading-a-firing-schedule.md"),
    ),
    (
        "content/posts/reclaiming-clay.md",
        include_str!("../../content/posts/reclaiming-clay.md"),
    ),
    (
        "content/posts/test-tiles-are-cheap.md",
        include_str!("../../content/posts/test-tiles-are-cheap.md"),
    ),
    (
        "content/posts/the-new-kiln-controller.md",
        include_str!("../../content/posts/the-new-kiln-controller.md"),
    ),
    (
        "content/posts/wedging-by-hand.md",
        include_str!("../../content/posts/wedging-by-hand.md"),
    ),
    (
        "content/posts/why-our-celadon-crazes.md",
        include_str!("../../content/posts/why-our-celadon-crazes.md"),
    ),
    (
        "templates/404.html",
        include_str!("../../templates/404.html"),
    ),
    (
        "templates/archive.html",
        include_str!("../../templates/archive.html"),
    ),
    (
        "templates/base.html",
        include_str!("../../templates/base.html"),
    ),
    (
        "templates/feed.xml",
        include_str!("../../templates/feed.xml"),
    ),
    (
        "templates/index.html",
        include_str!("../../templates/index.html"),
    ),
    (
        "templates/macros.html",
        include_str!("../../templates/macros.html"),
    ),
    (
        "templates/page.html",
        include_str!("../../templates/page.html"),
    ),
    (
        "templates/partials/footer.html",
        include_str!("../../templates/partials/footer.html"),
    ),
    (
        "templates/partials/nav.html",
        include_str!("../../templates/partials/nav.html"),
    ),
    (
        "templates/partials/post-meta.html",
        include_str!("../../templates/partials/post-meta.html"),
    ),
    (
        "templates/post.html",
        include_str!("../../templates/post.html"),
    ),
    (
        "templates/sitemap.xml",
        include_str!("../../templates/sitemap.xml"),
    ),
    (
        "templates/style.css",
        include_str!("../../templates/style.css"),
    ),
    (
        "templates/tag.html",
        include_str!("../../templates/tag.html"),
    ),
];

/// The bundled site.toml's first line speaks of the repository; a new
/// site's speaks of itself.
fn starter_file(path: &str, text: &str) -> String {
    match path {
        "site.toml" => text.replacen(
            "# The bundled default site. `cargo run --release -- build` renders it into public/.",
            "# kiln site config: render pages from templates/ and content/ (kiln init --render).\n# `kiln serve` previews it with live reload; `kiln build` bakes it into public/.",
            1,
        ),
        _ => text.to_string(),
    }
}

/// Writes the files, refusing to overwrite any.
pub async fn run(g: &GlobalArgs, args: InitArgs) -> anyhow::Result<Exit> {
    let mode = match (args.render, g.origin.clone()) {
        (true, Some(_)) => {
            return Err(UsageError("--render and --origin ask for different sites: pick one".into()).into())
        }
        (true, None) => Mode::Render,
        (false, Some(url)) => Mode::Fetch(url),
        (false, None) if std::io::stdin().is_terminal() => ask()?,
        (false, None) => {
            return Err(UsageError(
                "kiln init needs --origin URL (bake a running app) or --render (templates and data); on a terminal it asks".into(),
            )
            .into())
        }
    };
    let files: Vec<(&str, String)> = match &mode {
        Mode::Fetch(url) => {
            let parsed = origin_url(url).map_err(|why| UsageError(format!("--origin {why}")))?;
            let probe = probe(&parsed).await;
            let site_url = match &probe.public {
                Some((public, how)) => {
                    println!("found the site's public address, {public} ({how}): written as [site] url");
                    format!(
                        "# The public address the app writes into its links ({how}): kiln\n# asks with its Host, and links and redirects on it are the site's own.\nurl = \"{}\"",
                        public.as_str().trim_end_matches('/')
                    )
                }
                None => "# The public address, when the app writes it into its links and it is\n# not the address above (WordPress's home): links and redirects on it are\n# then the site's own, and kiln asks with its Host.\n# url = \"https://example.org\"".to_string(),
            };
            let mut toml = FETCH_TOML
                .replace("{ORIGIN}", parsed.as_str().trim_end_matches('/'))
                .replace("{SITE_URL}", &site_url);
            let mut files = Vec::new();
            if probe.app == Some(App::WordPress) {
                println!(
                    "found WordPress: its sitemap is a seed, and its plugin is written to {WORDPRESS_PLUGIN}"
                );
                toml = toml.replace(
                    "seeds = [\"/\"]               # add \"/sitemap.xml\" to follow your sitemap",
                    "# WordPress: its own sitemap lists every post, page, category, tag and author.\nseeds = [\"/\", \"/wp-sitemap.xml\"]",
                );
                files.push((WORDPRESS_PLUGIN, WORDPRESS_PLUGIN_PHP.to_string()));
                if !probe.app_files.is_empty() {
                    let lines: Vec<String> = probe
                        .app_files
                        .iter()
                        .map(|(prefix, dir)| {
                            format!(
                                "\"{prefix}\" = \"{}/\"",
                                dir.display().to_string().trim_end_matches('/')
                            )
                        })
                        .collect();
                    println!(
                        "found WordPress's files on this machine: nginx serves {} from there",
                        probe
                            .app_files
                            .iter()
                            .map(|(p, _)| *p)
                            .collect::<Vec<_>>()
                            .join(" and ")
                    );
                    toml.push_str(&format!(
                        "\n[nginx]\n# WordPress's own files (themes, scripts, uploads), served by nginx from\n# its directories (found here: the home page's files are there, byte for\n# byte); a file that is not there is WordPress's to answer.\napp-files = {{ {} }}\n",
                        lines.join(", ")
                    ));
                }
            }
            files.insert(0, ("site.toml", toml));
            files
        }
        Mode::Render => STARTER
            .iter()
            .map(|(path, text)| (*path, starter_file(path, text)))
            .collect(),
    };
    let taken: Vec<&str> = files
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| Path::new(p).exists())
        .collect();
    if !taken.is_empty() {
        return Err(UsageError(format!(
            "refusing to overwrite {}: run kiln init in an empty directory",
            taken.join(", ")
        ))
        .into());
    }
    for (path, text) in &files {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("failed to create `{path}`: {e}"))?;
        f.write_all(text.as_bytes())?;
        println!("created {path}");
    }
    if files.iter().any(|(p, _)| *p == WORDPRESS_PLUGIN) {
        println!(
            "activate the plugin (pages then name what they show; edits reach kiln, or its spool when it is stopped):\n  \
             mkdir -p <wp-content>/plugins/kiln && cp {WORDPRESS_PLUGIN} <wp-content>/plugins/kiln/\n  \
             then Plugins → kiln → Activate (or copy it into <wp-content>/mu-plugins/); docs/wordpress.md says more"
        );
    }
    println!(
        "next: {}",
        match mode {
            Mode::Fetch(_) =>
                "kiln build, then kiln nginx > /etc/nginx/conf.d/site.conf and kiln daemon",
            Mode::Render => "kiln serve (preview with live reload), or kiln build",
        }
    );
    Ok(Exit::Clean)
}

/// What one look at the app's home page tells: its public address when it
/// is not the origin's, and which app it is.
#[derive(Debug, Default)]
struct Probe {
    /// Where the app redirects its home page to (WordPress sends any
    /// other Host to its `home`), or the canonical link its home page
    /// names; with how it was found.
    public: Option<(url::Url, &'static str)>,
    /// The app, when kiln knows it.
    app: Option<App>,
    /// The app's static file directories on this machine, by URL prefix
    /// (`[nginx] app-files`), each proven by a file the home page uses.
    app_files: Vec<(&'static str, std::path::PathBuf)>,
}

/// Where WordPress keeps `/wp-content/` and `/wp-includes/`: Debian's
/// package, then the upstream tarball's usual homes.
const WORDPRESS_DIRS: &[&str] = &[
    "/usr/share/wordpress",
    "/var/lib/wordpress",
    "/var/www/html",
    "/var/www/wordpress",
    "/srv/www/wordpress",
];

/// For `/wp-content/` and `/wp-includes/`, the first local directory
/// holding the very file the home page loads from there (the same bytes
/// the app serves): nginx can then serve those files itself. A directory
/// that does not hold one file is not guessed.
async fn wordpress_files(
    client: &reqwest::Client,
    origin: &url::Url,
    public: Option<&url::Url>,
    home: &str,
) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut found = Vec::new();
    for prefix in ["/wp-content/", "/wp-includes/"] {
        // A stylesheet or script URL under the prefix, on this site.
        let Some(asset) = home
            .split(['"', '\''])
            .filter_map(|s| url::Url::parse(s).ok().or_else(|| origin.join(s).ok()))
            .find(|u| {
                (u.path().ends_with(".css") || u.path().ends_with(".js"))
                    && u.path().starts_with(prefix)
                    && (crate::urlpath::same_origin(u, origin)
                        || public.is_some_and(|p| crate::urlpath::same_origin(u, p)))
            })
        else {
            continue;
        };
        let Ok(served) = async {
            client
                .get(origin.join(asset.path())?)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
                .map_err(anyhow::Error::from)
        }
        .await
        else {
            continue;
        };
        let rest = &asset.path()[prefix.len()..];
        let dir = WORDPRESS_DIRS
            .iter()
            .map(|root| std::path::Path::new(root).join(&prefix[1..]))
            .find(|dir| std::fs::read(dir.join(rest)).is_ok_and(|local| local == served.as_ref()));
        if let Some(dir) = dir {
            found.push((prefix, dir));
        }
    }
    found
}

/// Apps `kiln init` sets a site up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    /// Its REST API link header or its generator tag.
    WordPress,
}

/// Two short requests at most (the second asks with the public host); an
/// empty [`Probe`] when the app cannot be reached.
async fn probe(origin: &url::Url) -> Probe {
    let Ok(client) = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(5))
        .build()
    else {
        return Probe::default();
    };
    let other = |u: url::Url| {
        let base = u.join("/").ok()?;
        (!crate::urlpath::same_origin(&base, origin)).then_some(base)
    };
    let Ok(mut resp) = client.get(origin.clone()).send().await else {
        return Probe::default();
    };
    let mut probe = Probe::default();
    if resp.status().is_redirection() {
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| origin.join(l).ok());
        probe.public = to.and_then(other).map(|u| (u, "the app redirects to it"));
        // Ask again as a visitor of the public address would.
        let Some((public, _)) = &probe.public else {
            return probe;
        };
        let mut again = client.get(origin.clone());
        if let Some(host) = public.host_str() {
            let host = match public.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            again = again
                .header(reqwest::header::HOST, host)
                .header("x-forwarded-proto", public.scheme());
        }
        match again.send().await {
            Ok(r) => resp = r,
            Err(_) => return probe,
        }
    }
    let wordpress_api = resp
        .headers()
        .get_all(reqwest::header::LINK)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.contains("rel=\"https://api.w.org/\""))
        });
    let body = resp.text().await.unwrap_or_default();
    if wordpress_api || body.contains("<meta name=\"generator\" content=\"WordPress") {
        probe.app = Some(App::WordPress);
        probe.app_files =
            wordpress_files(&client, origin, probe.public.as_ref().map(|p| &p.0), &body).await;
    }
    if probe.public.is_none() {
        probe.public = canonical_link(&body)
            .and_then(|href| origin.join(&href).ok())
            .and_then(other)
            .map(|u| (u, "the home page's canonical link"));
    }
    probe
}

/// The `href` of the first `<link rel="canonical">` in a page.
fn canonical_link(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<link") {
        let start = from + at;
        let end = start + lower[start..].find('>')?;
        let tag = &lower[start..end];
        if tag.contains("rel=\"canonical\"")
            || tag.contains("rel='canonical'")
            || tag.contains("rel=canonical")
        {
            let h = tag.find("href=")? + 5;
            let rest = &html[start + h..end];
            let quote = rest.chars().next()?;
            let value = if quote == '"' || quote == '\'' {
                rest[1..].split(quote).next()?
            } else {
                rest.split(|c: char| c.is_whitespace()).next()?
            };
            return Some(value.to_string());
        }
        from = end;
    }
    None
}

#[derive(Debug)]
enum Mode {
    Fetch(String),
    Render,
}

fn ask() -> anyhow::Result<Mode> {
    ask_from(&mut std::io::stdin().lock(), &mut std::io::stdout())
}

/// Asks until the answer is usable: a slip (`localhost:8000`, `ftp://…`)
/// says what is wrong and asks again instead of ending the session.
fn ask_from(input: &mut impl BufRead, output: &mut impl Write) -> anyhow::Result<Mode> {
    loop {
        write!(
            output,
            "Bake a running app (type its URL, e.g. http://127.0.0.1:8000) or render templates (type `render`)? "
        )?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Err(UsageError(
                "no answer: kiln init stopped (pass --origin URL or --render to skip the question)"
                    .into(),
            )
            .into());
        }
        let answer = line.trim();
        if answer.eq_ignore_ascii_case("render") || answer.is_empty() {
            return Ok(Mode::Render);
        }
        match origin_url(answer) {
            Ok(url) => return Ok(Mode::Fetch(url.to_string())),
            Err(why) => writeln!(output, "{why}; try again (or type `render`)")?,
        }
    }
}

/// The app's address as an `http://` or `https://` URL with a host.
fn origin_url(text: &str) -> Result<url::Url, String> {
    url::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            format!("`{text}` is not an http:// or https:// URL (like http://127.0.0.1:8000)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_link_is_found_in_a_page_head() {
        for (html, want) in [
            (
                "<head><link rel=\"canonical\" href=\"https://example.org/\"></head>",
                Some("https://example.org/"),
            ),
            (
                "<LINK REL='canonical' HREF='https://Example.org/a/'>",
                Some("https://Example.org/a/"),
            ),
            (
                "<link rel=stylesheet href=/s.css><link href=\"/x/\" rel=\"canonical\">",
                Some("/x/"),
            ),
            ("<link rel=\"alternate\" href=\"/feed/\">", None),
            ("<p>no head</p>", None),
        ] {
            assert_eq!(canonical_link(html).as_deref(), want, "{html}");
        }
    }

    #[test]
    fn a_bad_answer_is_asked_again() {
        let mut input = std::io::Cursor::new("localhost:8000\nftp://x/\nhttp://127.0.0.1:8000\n");
        let mut output = Vec::new();
        let mode = ask_from(&mut input, &mut output).unwrap();
        assert!(matches!(mode, Mode::Fetch(ref u) if u == "http://127.0.0.1:8000/"));
        let said = String::from_utf8(output).unwrap();
        assert_eq!(said.matches("Bake a running app").count(), 3, "{said}");
        assert!(
            said.contains("`localhost:8000` is not an http:// or https:// URL"),
            "{said}"
        );
        assert!(said.contains("`ftp://x/` is not"), "{said}");
        // The end of input ends the questions with a way out.
        let mut input = std::io::Cursor::new("nope\n");
        let err = ask_from(&mut input, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("--origin URL or --render"),
            "{err}"
        );
        let mut input = std::io::Cursor::new("render\n");
        assert!(matches!(
            ask_from(&mut input, &mut Vec::new()).unwrap(),
            Mode::Render
        ));
    }
}
