//! `site.toml`: the raw serde shape and its validation into a typed [`Config`].
//!
//! Parsing happens in two steps, as in mdBook and zola: [`RawConfig`] mirrors the
//! file (`deny_unknown_fields`, kebab-case keys), then [`Config::from_raw`]
//! resolves URLs, durations, byte sizes, globs and paths once, so the rest of
//! kiln never sees an unchecked value. Every error names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};

use crate::glob::path_glob;
use serde::Deserialize;

mod crawl;
mod daemon;
mod nginx;
mod origin;
mod output;
mod pool;
mod render;
mod safety;
mod site;

pub(crate) use crawl::*;
pub(crate) use daemon::*;
pub(crate) use nginx::*;
pub(crate) use origin::*;
pub(crate) use output::*;
pub(crate) use pool::*;
pub(crate) use render::*;
pub(crate) use safety::*;
pub(crate) use site::*;

/// Why a configuration could not be loaded. Always fatal (exit code 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file exists but could not be read.
    #[error("failed to read config `{path}`")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys / wrong types.
    #[error("invalid config `{path}`: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A key has a value kiln cannot use.
    #[error("invalid config `{path}`: `{key}` {message}")]
    Invalid {
        /// The config file (or `<command line>` for flags).
        path: PathBuf,
        /// Dotted key, e.g. `origin.timeout`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The file as written: every field optional, defaults filled in by [`Config::from_raw`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawConfig {
    /// `[site]`
    #[serde(default)]
    pub(crate) site: RawSite,
    /// `[origin]`
    pub(crate) origin: Option<RawOrigin>,
    /// `[crawl]`
    #[serde(default)]
    pub(crate) crawl: RawCrawl,
    /// `[safety]`
    #[serde(default)]
    pub(crate) safety: RawSafety,
    /// `[output]`
    #[serde(default)]
    pub(crate) output: RawOutput,
    /// `[[render]]`
    #[serde(default)]
    pub(crate) render: Vec<RawRender>,
    /// `[[depend]]`
    #[serde(default)]
    pub(crate) depend: Vec<RawDepend>,
    /// `[daemon]`
    #[serde(default)]
    pub(crate) daemon: RawDaemon,
    /// `[intake]`
    #[serde(default)]
    pub(crate) intake: RawIntake,
    /// `[[purge]]`
    #[serde(default)]
    pub(crate) purge: Vec<RawPurge>,
    /// `[[publish]]`
    #[serde(default)]
    pub(crate) publish: Vec<RawPublish>,
    /// `[[revalidate]]`
    #[serde(default)]
    pub(crate) revalidate: Vec<RawRevalidate>,
    /// `[pool]`
    pub(crate) pool: Option<RawPool>,
    /// `[mirror]`
    pub(crate) mirror: Option<RawMirror>,
    /// `[nginx]`
    #[serde(default)]
    pub(crate) nginx: RawNginx,
}

/// A duration written as text with a unit (`"100ms"`, `"10s"`, `"6h"`),
/// parsed by humantime; a bare number is refused with a hint, since its
/// unit would be a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration like \"500ms\" or \"10s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v)
                    .map(HumanDuration)
                    .map_err(|e| {
                        E::custom(format!(
                            "`{v}` is not a duration ({e}); write one like \"500ms\" or \"10s\""
                        ))
                    })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write a duration as text, like \"{v}ms\" or \"{v}s\""
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write a duration as text, like \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size written as `512`, `"64KiB"` or `"10MB"` (parsed by bytesize).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size like \"512KiB\" or \"10MB\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                match v.parse::<bytesize::ByteSize>() {
                    Ok(b) if b.as_u64() > 0 => Ok(Size(b.as_u64())),
                    _ => Err(E::custom(format!(
                        "`{v}` is not a size; write one like \"512KiB\" or \"10MB\""
                    ))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Size)
                    .ok_or_else(|| E::custom(format!("`{v}` is not a positive size in bytes")))
            }
        }
        d.deserialize_any(V)
    }
}

/// The validated configuration every stage reads.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where the config came from (for messages); `None` when flags only.
    pub(crate) file: Option<PathBuf>,
    /// Directory relative paths are resolved against.
    pub(crate) base_dir: PathBuf,
    /// Output root (or the parent of `current` with releases).
    pub(crate) out: PathBuf,
    /// Index database path.
    pub(crate) state: PathBuf,
    /// Spool directory.
    pub(crate) queue: PathBuf,
    /// Templates directory.
    pub(crate) templates: PathBuf,
    /// Static files directory (render mode; absent is fine).
    pub(crate) static_dir: PathBuf,
    /// Releases to keep.
    pub(crate) keep_releases: usize,
    /// `site.*` template variables.
    pub(crate) vars: BTreeMap<String, toml::Value>,
    /// Origin, when fetching.
    pub(crate) origin: Option<Origin>,
    /// Crawl scope.
    pub(crate) crawl: Crawl,
    /// Privacy checks.
    pub(crate) safety: Safety,
    /// Output options.
    pub(crate) output: Output,
    /// Render routes.
    pub(crate) render: Vec<RenderRoute>,
    /// Dependency rules.
    pub(crate) depend: Vec<DependRule>,
    /// Daemon options.
    pub(crate) daemon: Daemon,
    /// The Redis Streams intake, when configured.
    pub(crate) redis: Option<RedisIntake>,
    /// CDN purge hooks.
    pub(crate) purge: Vec<PurgeHook>,
    /// Object storage mirrors.
    pub(crate) publish: Vec<PublishS3>,
    /// Pages re-checked on a clock.
    pub(crate) revalidate: Vec<RevalidateRule>,
    /// This host is a bake worker of a pool (`[pool]`).
    pub(crate) pool: Option<Pool>,
    /// This host mirrors a pool's bucket (`[mirror]`, `kiln mirror`).
    pub(crate) mirror: Option<Mirror>,
    /// What only the nginx block reads (`[nginx]`).
    pub(crate) nginx: NginxBlock,
    /// Things to tell the user once about how the config was read.
    pub(crate) notices: Vec<String>,
    /// Render data files marked `draft: true` too (`--drafts`).
    pub(crate) drafts: bool,
}

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    /// `--origin`
    pub(crate) origin: Option<String>,
    /// `--out`
    pub(crate) out: Option<PathBuf>,
}

impl Config {
    /// Loads `path` if given (or `./site.toml` when it exists), applies the
    /// overrides, and validates.
    pub(crate) fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = PathBuf::from("site.toml");
                default.exists().then_some(default)
            }
        };
        let (raw, base_dir) = match &file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                let base = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                (Self::parse_raw(&text, p)?, base)
            }
            None => (RawConfig::default(), PathBuf::from(".")),
        };
        Self::from_raw(raw, file, base_dir, overrides)
    }

    /// Parses TOML text into the raw shape. Errors name the dotted key
    /// (`origin.timeout`) as well as toml's line and column.
    pub(crate) fn parse_raw(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message: message.trim_end().replace('\n', "\n  "),
        };
        let de = toml::Deserializer::parse(text).map_err(|e| parse_error(e.to_string()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = humane_key(&e.path().to_string());
            let inner = e.into_inner().to_string();
            parse_error(if key.is_empty() || key == "." {
                inner
            } else {
                format!("`{key}`: {inner}")
            })
        })
    }

    /// Validates a raw config, one section at a time. `file` is only used
    /// in messages.
    pub(crate) fn from_raw(
        raw: RawConfig,
        file: Option<PathBuf>,
        base_dir: PathBuf,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let shown = file
            .clone()
            .unwrap_or_else(|| PathBuf::from("<command line>"));
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: shown.clone(),
            key: humane_key(key),
            message,
        };
        if overrides.origin.is_some() && !raw.render.is_empty() {
            // `--origin` means fetch mode; quietly rendering the file's
            // templates instead would bake the wrong site.
            return Err(invalid(
                "render",
                format!(
                    "defines [[render]] routes (a render site), but --origin asks to bake an origin; run from another directory, or pass --config with a fetch-mode file (`kiln init --origin {}` writes one)",
                    overrides.origin.as_deref().unwrap_or_default()
                ),
            ));
        }
        let site = resolve_site(raw.site, &base_dir, overrides, &invalid)?;
        let raw_origin = raw.origin.unwrap_or_default();
        let mut origin = match overrides.origin.clone().or(raw_origin.url.clone()) {
            None => None,
            Some(u) => Some(resolve_origin(&u, raw_origin, &base_dir, &invalid)?),
        };
        if let (Some(o), Some(public)) = (origin.as_mut(), site.url.clone()) {
            o.serve_as(public);
        }
        let daemon = resolve_daemon(raw.daemon, &invalid)?;
        let mut raw_intake = raw.intake;
        if let Some(p) = &raw.pool {
            // A pool's workers share one consumer group (each entry to one
            // of them), each under its own consumer name.
            let name = p.name.clone().unwrap_or_else(|| "kiln".to_string());
            raw_intake
                .group
                .get_or_insert_with(|| format!("pool-{name}"));
            raw_intake.consumer.get_or_insert_with(host_name);
        }
        let consumer = raw_intake.consumer.clone();
        let publish = resolve_publish(raw.publish, &invalid)?;
        let pool = resolve_pool(
            raw.pool,
            raw_intake.redis.as_deref(),
            raw_intake.stream.as_deref(),
            consumer.as_deref(),
            &publish,
            &invalid,
        )?;
        let mirror = resolve_mirror(raw.mirror, &invalid)?;
        let redis = resolve_intake(raw_intake, &invalid)?.map(|mut r| {
            r.max_targets = daemon.max_targets;
            r.group_marker = site
                .state
                .with_file_name(format!("redis-group-{}", sanitize_name(&r.group)));
            r
        });
        Ok(Config {
            file,
            out: site.out,
            state: site.state,
            queue: site.queue,
            templates: site.templates,
            static_dir: site.static_dir,
            keep_releases: site.keep_releases,
            vars: site.vars,
            origin,
            crawl: resolve_crawl(raw.crawl, &invalid)?,
            safety: resolve_safety(raw.safety, &invalid)?,
            output: resolve_output(raw.output),
            render: resolve_render(raw.render, &base_dir, &invalid)?,
            depend: resolve_depend(raw.depend, &invalid)?,
            redis,
            daemon,
            purge: resolve_purge(raw.purge, &invalid)?,
            publish,
            revalidate: resolve_revalidate(raw.revalidate, &invalid)?,
            pool,
            mirror,
            nginx: resolve_nginx(raw.nginx, &invalid)?,
            notices: site.notices,
            drafts: false,
            base_dir,
        })
    }

    /// The nginx types map ([`crate::nginx::types_map`]): beside the index.
    pub(crate) fn types_map(&self) -> PathBuf {
        self.state.with_file_name("nginx-types.map")
    }

    /// The same site previewed by `kiln serve`: rendered into its own
    /// output and index in the state directory (`preview/`), never into the
    /// output nginx serves (a draft shown with `--drafts` would go public),
    /// and feeding nothing beyond it (no bucket, no CDN, no stream). It
    /// stays between runs, so the next `kiln serve` renders only what
    /// changed.
    pub(crate) fn preview(mut self) -> Config {
        let dir = self
            .state
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("preview");
        self.out = dir.join("public");
        self.state = dir.join("index.db");
        self.queue = dir.join("queue");
        self.publish.clear();
        self.purge.clear();
        self.redis = None;
        self.pool = None;
        self.mirror = None;
        self
    }

    /// True when pages come from `[[render]]` routes.
    pub(crate) fn renders(&self) -> bool {
        !self.render.is_empty()
    }
}

/// A key as the file's reader counts: `render[2].url` (serde's path,
/// from zero) is `[[render]] #3 url`.
pub(crate) fn humane_key(key: &str) -> String {
    let Some((head, rest)) = key.split_once('[') else {
        return key.to_string();
    };
    let Some((n, tail)) = rest.split_once(']') else {
        return key.to_string();
    };
    match n.parse::<usize>() {
        Ok(n) if !head.contains('.') => {
            let tail = tail.trim_start_matches('.');
            let tail = humane_key(tail);
            if tail.is_empty() {
                format!("[[{head}]] #{}", n + 1)
            } else {
                format!("[[{head}]] #{} {tail}", n + 1)
            }
        }
        _ => key.to_string(),
    }
}

impl ConfigError {
    /// Always 2: the configuration is the user's to fix.
    pub(crate) fn exit_code(&self) -> u8 {
        2
    }
}

type Invalid<'a> = dyn Fn(&str, String) -> ConfigError + 'a;

fn glob_set(
    key: &str,
    globs: &[String],
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<GlobSet, ConfigError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(path_glob(g).map_err(|e| invalid(key, format!("has a bad glob `{g}`: {e}")))?);
    }
    b.build().map_err(|e| invalid(key, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let raw = Config::parse_raw(text, Path::new("site.toml"))?;
        Config::from_raw(
            raw,
            Some("site.toml".into()),
            ".".into(),
            &Overrides::default(),
        )
    }

    #[test]
    fn empty_file_has_defaults() {
        let c = load("").unwrap();
        assert!(c.origin.is_none());
        assert_eq!(c.crawl.seeds, vec!["/"]);
        assert_eq!(c.safety.forbid_patterns, vec!["csrfmiddlewaretoken"]);
        assert_eq!(c.output.query_strings, QueryPolicy::Skip);
        assert_eq!(c.daemon.debounce, Duration::from_millis(100));
        assert!(c.out.ends_with("public"));
    }

    #[test]
    fn origin_defaults_and_tags_separator() {
        let c = load("[origin]\nurl = \"http://127.0.0.1:8000\"\ntags-header = \"Cache-Tag\"\n")
            .unwrap();
        let o = c.origin.unwrap();
        assert_eq!(o.concurrency, 16);
        assert_eq!(o.tags_separator, TagSeparator::Comma);
        assert_eq!(o.max_body, 32 << 20);
    }

    #[test]
    fn pool_and_mirror_say_what_they_need() {
        let publish =
            "[[publish]]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\n";
        let intake = "[intake]\nredis = \"redis://127.0.0.1:6379\"\n";
        let cases: &[(String, &[&str])] = &[
            (
                format!("[pool]\nname = \"www\"\n{publish}"),
                &["`pool`", "[intake] redis"],
            ),
            (
                format!("[pool]\n{intake}"),
                &["`pool`", "[[publish]]", "kiln mirror"],
            ),
            (
                format!("[pool]\nname = \"a b\"\n{intake}{publish}"),
                &["`pool.name`", "without spaces"],
            ),
            (
                "[mirror]\nbucket = \"b\"\n".to_string(),
                &["`mirror.redis`", "redis://"],
            ),
            (
                "[mirror]\nredis = \"redis://h\"\n".to_string(),
                &["`mirror.bucket`", "[[publish]]"],
            ),
            (
                "[mirror]\nredis = \"redis://h\"\nbucket = \"b\"\nendpoint = \"::\"\n".to_string(),
                &["`mirror.endpoint`"],
            ),
        ];
        for (text, parts) in cases {
            let err = load(text).unwrap_err().to_string();
            for part in *parts {
                assert!(err.contains(part), "{text}: {err}");
            }
        }
        let c = load(&format!("[pool]\nname = \"www\"\n{intake}{publish}")).unwrap();
        let (pool, redis) = (c.pool.unwrap(), c.redis.unwrap());
        assert_eq!(redis.group, "pool-www");
        assert_eq!(pool.published, "kiln:www:published");
        assert_eq!(pool.worker, redis.consumer);
        let m = load("[mirror]\nredis = \"redis://h\"\npool = \"www\"\nbucket = \"b\"\n")
            .unwrap()
            .mirror
            .unwrap();
        assert_eq!(m.published, "kiln:www:published");
    }

    #[test]
    fn errors_name_file_and_key() {
        let cases: &[(&str, &str)] = &[
            ("[origin]\nurl = \"ftp://x\"\n", "`origin.url`"),
            (
                "[origin]\nurl = \"http://x\"\ntimeout = \"soon\"\n",
                "`origin.timeout`",
            ),
            (
                "[origin]\nurl = \"http://x\"\nmax-body = \"lots\"\n",
                "`origin.max-body`",
            ),
            (
                "[origin]\nurl = \"http://x\"\nconcurrency = 0\n",
                "`origin.concurrency`",
            ),
            ("[crawl]\nseeds = [\"index.html\"]\n", "`crawl.seeds`"),
            ("[crawl]\ninclude = [\"/a/[\"]\n", "`crawl.include`"),
            (
                "[output]\nprecompress = [\"zstd\"]\n",
                "`output.precompress",
            ),
            (
                "[output]\nquery-strings = \"keep\"\n",
                "`output.query-strings`",
            ),
            ("[daemon]\nlisten = \"localhost\"\n", "`daemon.listen`"),
            (
                "[[depend]]\ntags = [\"post:*\"]\nurls = [\"feed.xml\"]\n",
                "`[[depend]] #1 urls`",
            ),
            (
                "[[render]]\ntemplate = \"a.html\"\nurl = \"/p/{slug}/\"\n",
                "`[[render]] #1 url`",
            ),
            ("[site]\nkeep-releases = 0\n", "`site.keep-releases`"),
        ];
        for (text, key) in cases {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains("site.toml"), "{text:?}: {err}");
            assert!(err.contains(key), "{text:?} should name {key}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = load("[crawl]\nmax-pagse = 3\n").unwrap_err().to_string();
        assert!(err.contains("max-pagse"), "{err}");
        assert!(err.contains("site.toml"), "{err}");
        let err = load("[orign]\nurl = \"http://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("orign"), "{err}");
    }

    #[test]
    fn overrides_win() {
        let raw = Config::parse_raw("[origin]\nurl = \"http://a:1\"\n", Path::new("s")).unwrap();
        let c = Config::from_raw(
            raw,
            None,
            ".".into(),
            &Overrides {
                origin: Some("http://127.0.0.1:9".into()),
                out: Some("/srv/www".into()),
            },
        )
        .unwrap();
        assert_eq!(c.origin.unwrap().url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(c.out, PathBuf::from("/srv/www"));
    }

    #[test]
    fn byte_sizes() {
        for (t, n) in [
            ("\"512\"", Some(512)),
            ("512", Some(512)),
            ("\"64KiB\"", Some(65536)),
            ("\"10MB\"", Some(10_000_000)),
            ("\"1 GiB\"", Some(1 << 30)),
            ("\"x\"", None),
            ("\"10XB\"", None),
            ("0", None),
        ] {
            let got = load(&format!("[origin]\nurl = \"http://a:1\"\nmax-body = {t}\n"))
                .ok()
                .map(|c| c.origin.unwrap().max_body);
            assert_eq!(got, n, "{t}");
        }
    }

    #[test]
    fn durations_need_a_unit_and_say_so() {
        let err = load("[daemon]\ndebounce = 100\n").unwrap_err().to_string();
        assert!(
            err.contains("debounce") && err.contains("\"100ms\""),
            "{err}"
        );
        let err = load("[daemon]\ndebounce = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("debounce") && err.contains("not a duration"),
            "{err}"
        );
        assert_eq!(
            load("[daemon]\ndebounce = \"250ms\"\n")
                .unwrap()
                .daemon
                .debounce,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn origin_flag_on_a_render_site_is_an_error_not_a_silent_choice() {
        let raw = Config::parse_raw(
            "[[render]]\ntemplate = \"a.html\"\nurl = \"/\"\n",
            Path::new("site.toml"),
        )
        .unwrap();
        let err = Config::from_raw(
            raw,
            Some("site.toml".into()),
            ".".into(),
            &Overrides {
                origin: Some("http://127.0.0.1:8000".into()),
                out: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--origin") && err.contains("render"), "{err}");
    }

    #[test]
    fn a_data_glob_is_watched_from_its_literal_directory() {
        let c = load("[[render]]\ntemplate = \"p.html\"\nurl = \"/p/{slug}/\"\ndata = \"content/posts/*.md\"\n").unwrap();
        let data = c.render[0].data.as_ref().unwrap();
        assert_eq!(data.dir, Path::new("./content/posts"));
        assert!(data.matcher.is_match("content/posts/a.md"));
    }
}
