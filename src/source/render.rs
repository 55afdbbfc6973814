//! Render mode: pages from minijinja templates fed by data files.
//!
//! [`Renderer::load`] reads every template under `templates/` and every data
//! file the `[[render]]` routes name (TOML, JSON, YAML, Markdown with YAML or
//! TOML front matter), once per build. Each page carries dependency tags
//! computed up front: `template:NAME` for every template it uses (extends,
//! include, import and from-import followed transitively), `data:PATH` for
//! its data file, and `collection:NAME` for every collection it lists — so an
//! edited partial or data file regenerates exactly the pages that use it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, Value, context};

use super::diagnostic::TemplateProblem;
use crate::config::{Config, DataGlob, RenderRoute};
use crate::files::is_editor_junk;
use crate::tag::Tag;

/// A template or data problem, with the file and (for templates) the line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    /// A template failed to compile or render.
    #[error("{0}")]
    Template(Box<TemplateProblem>),
    /// A data file could not be read or parsed.
    #[error("data file `{file}`: {message}")]
    Data {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A route names a template that does not exist.
    #[error("[[render]] #{} uses template `{template}`, which is not in `{dir}`", .route + 1)]
    MissingTemplate {
        /// Route index.
        route: usize,
        /// Template name.
        template: String,
        /// Templates directory.
        dir: PathBuf,
    },
    /// Reading the templates directory failed.
    #[error("failed to read templates directory `{dir}`")]
    Io {
        /// Directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A URL pattern placeholder has no value in an item.
    #[error("[[render]] #{} url `{pattern}`: `{file}` has no field `{field}` (add it to the file, or use a field every file has, like {{slug}})", .route + 1)]
    MissingField {
        /// Route index.
        route: usize,
        /// URL pattern.
        pattern: String,
        /// Placeholder.
        field: String,
        /// Data file.
        file: String,
    },
    /// Two routes produce `/a` and `/a/`, which are one file.
    #[error(
        "URLs `{first_url}` (by {first}) and `{second_url}` (by {second}) are the same file (`a`, `a/` and `a/index.html` all map to a/index.html); give one of them another URL"
    )]
    SameFile {
        /// The URL produced first.
        first_url: String,
        /// The other spelling.
        second_url: String,
        /// First producer.
        first: String,
        /// Second producer.
        second: String,
    },
    /// Two routes or items produce one URL.
    #[error("URL `{url}` is produced twice: by {first} and by {second}")]
    DuplicateUrl {
        /// The URL.
        url: String,
        /// First producer.
        first: String,
        /// Second producer.
        second: String,
    },
}

impl RenderError {
    /// In full, for a person fixing it: a template problem with its source
    /// line and a caret (one line otherwise).
    pub(crate) fn detailed(&self) -> String {
        match self {
            RenderError::Template(p) => p.detailed(),
            other => other.to_string(),
        }
    }
}

/// A rendered page.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    /// The HTML, XML or CSS (or a static file's bytes).
    pub(crate) body: Vec<u8>,
    /// Dependency tags.
    pub(crate) tags: Vec<String>,
    /// Whether it maps to `index.html` (no extension or `.html`).
    pub(crate) is_html: bool,
    /// The route's `content-type`, if it sets one.
    pub(crate) content_type: Option<String>,
}

#[derive(Debug, Clone)]
struct PageSpec {
    /// The file copied as it is, for a page from `static/`.
    static_file: Option<PathBuf>,
    /// Which page of a paginated list this is (1-based) and how many.
    page_of: Option<(usize, usize)>,
    route: usize,
    template: String,
    item: Option<Value>,
    data_path: Option<String>,
    group: Option<String>,
    items: Vec<String>,
}

/// What rendering every page in memory found ([`Renderer::check_every_page`]).
#[derive(Debug, Default)]
pub(crate) struct PageCheck {
    /// Pages that fail to render, with why.
    pub(crate) errors: Vec<(String, RenderError)>,
    /// Pages that print an undefined value: the URL, its data file, where.
    pub(crate) undefined: Vec<(String, Option<String>, TemplateProblem)>,
    /// Every page that rendered.
    pub(crate) rendered: Vec<(String, Rendered)>,
}

/// Templates and data, loaded once per build (and again by the watcher on change).
#[derive(Debug, Clone)]
pub(crate) struct Renderer {
    env: Environment<'static>,
    /// Template sources by name, to point at the line of a render error.
    sources: BTreeMap<String, String>,
    /// The templates directory, for messages.
    templates_dir: PathBuf,
    /// Mistakes that do not stop a build (a data glob matching nothing, a
    /// list naming no collection, drafts left out), said by `build` and
    /// `check` (`--strict` makes them errors).
    pub(crate) warnings: Vec<String>,
    pages: BTreeMap<String, PageSpec>,
    template_deps: HashMap<String, BTreeSet<String>>,
    collections: BTreeMap<String, Vec<Value>>,
    /// The same collections as shared template values (cloning is a refcount).
    collection_values: BTreeMap<String, Value>,
    /// Every URL, as one shared template value.
    urls_value: Value,
    site: Value,
    /// Each route's `content-type`, by route index.
    content_types: Vec<Option<String>>,
    /// Each route's `paginate`, by route index.
    paginate_size: Vec<Option<usize>>,
    /// Each route's URL, by route index (the first page of a paginated list).
    route_urls: Vec<String>,
    /// Each data route's items, sorted as its collection lists them.
    route_items: Vec<Vec<Arc<DataItem>>>,
}

impl Renderer {
    /// Loads and compiles every template and data file.
    pub(crate) fn load(cfg: &Config) -> Result<Renderer, RenderError> {
        Renderer::load_with(cfg, None)
    }

    /// [`Renderer::load`], reusing from `cache` every data file whose size
    /// and modification time did not change (the daemon and `kiln serve`
    /// reload on every edit: one changed post is parsed, not ten thousand).
    pub(crate) fn load_with(
        cfg: &Config,
        cache: Option<&DataCache>,
    ) -> Result<Renderer, RenderError> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_formatter(escape_formatter);
        env.add_filter("markdown", |s: String| markdown(&s));
        env.add_filter("reading_minutes", reading_minutes);
        let sources = read_templates(&cfg.templates)?;
        for (name, source) in &sources {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|e| template_error(&cfg.templates, &sources, name, &e))?;
        }
        let template_deps = transitive_deps(&sources);

        // Collections first: list pages need every item.
        let mut warnings = Vec::new();
        let mut drafts = 0;
        let mut collections: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut pages: BTreeMap<String, PageSpec> = BTreeMap::new();
        // The file a URL is written to, and who produced it first.
        let mut producer: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut route_items: Vec<Vec<Arc<DataItem>>> = vec![Vec::new(); cfg.render.len()];
        let mut add = |url: String, spec: PageSpec, who: String| -> Result<(), RenderError> {
            // `/about` and `/about/` are one file (`about/index.html`): two
            // routes writing it would silently overwrite each other.
            // `/about/index.html` (a static file) is that file too.
            let clash = producer.get(&file_key(&url)).cloned();
            if let Some((taken, first)) = clash {
                let first = &first;
                return Err(if taken == url {
                    RenderError::DuplicateUrl {
                        url,
                        first: first.clone(),
                        second: who,
                    }
                } else {
                    RenderError::SameFile {
                        first_url: taken,
                        second_url: url,
                        first: first.clone(),
                        second: who,
                    }
                });
            }
            producer.insert(file_key(&url), (url.clone(), who));
            pages.insert(url, spec);
            Ok(())
        };
        for (i, route) in cfg.render.iter().enumerate() {
            if !sources.contains_key(&route.template) {
                return Err(RenderError::MissingTemplate {
                    route: i,
                    template: route.template.clone(),
                    dir: cfg.templates.clone(),
                });
            }
            let Some(glob) = &route.data else { continue };
            let mut items = Vec::new();
            let files = find_data_files(&cfg.base_dir, glob);
            if files.is_empty() {
                warnings.push(format!(
                    "{}: data = \"{}\" matches no file under `{}`, so it makes no page",
                    route_name(i, route),
                    glob.matcher.glob().glob(),
                    cfg.base_dir.display()
                ));
            }
            for (rel, abs) in files {
                let item = match cache {
                    Some(cache) => cache.item(i, route, &rel, &abs)?,
                    None => Arc::new(DataItem::read(i, route, &rel, &abs)?),
                };
                if item.draft && !cfg.drafts {
                    drafts += 1;
                    continue;
                }
                add(
                    item.url.clone(),
                    PageSpec {
                        static_file: None,
                        page_of: None,
                        route: i,
                        template: route.template.clone(),
                        item: Some(item.value.clone()),
                        data_path: Some(rel.clone()),
                        group: None,
                        items: route.items.clone(),
                    },
                    rel.clone(),
                )?;
                items.push(item);
            }
            // Newest first when items have dates; then by slug.
            items.sort_by(|a, b| b.date.cmp(&a.date).then(a.slug.cmp(&b.slug)));
            if let Some(name) = &route.collection {
                collections
                    .entry(name.clone())
                    .or_default()
                    .extend(items.iter().map(|item| item.value.clone()));
            }
            route_items[i] = items;
        }
        for (i, route) in cfg.render.iter().enumerate() {
            if route.data.is_some() {
                continue;
            }
            match &route.group_by {
                None => {
                    // `/blog/`, then `/blog/page/2/`, `/blog/page/3/` … when
                    // paginated (at least one page, even when empty).
                    let pages = match route.paginate {
                        Some(size) => {
                            let n = route
                                .items
                                .first()
                                .and_then(|c| collections.get(c))
                                .map_or(0, Vec::len);
                            n.div_ceil(size).max(1)
                        }
                        None => 1,
                    };
                    for number in 1..=pages {
                        add(
                            page_url(&route.url, number),
                            PageSpec {
                                static_file: None,
                                page_of: route.paginate.map(|_| (number, pages)),
                                route: i,
                                template: route.template.clone(),
                                item: None,
                                data_path: None,
                                group: None,
                                items: route.items.clone(),
                            },
                            route_name(i, route),
                        )?;
                    }
                }
                Some(field) => {
                    let mut values = BTreeSet::new();
                    for c in &route.items {
                        for item in collections.get(c).into_iter().flatten() {
                            if let Ok(list) = item.get_attr(field) {
                                if let Ok(iter) = list.try_iter() {
                                    values.extend(iter.map(|v| v.to_string()));
                                } else if !list.is_undefined() && !list.is_none() {
                                    values.insert(list.to_string());
                                }
                            }
                        }
                    }
                    for v in values {
                        let url = replace_placeholders(&route.url, |_| Some(slugify(&v)));
                        add(
                            url,
                            PageSpec {
                                static_file: None,
                                page_of: None,
                                route: i,
                                template: route.template.clone(),
                                item: None,
                                data_path: None,
                                group: Some(v.clone()),
                                items: route.items.clone(),
                            },
                            format!("{} group `{v}`", route_name(i, route)),
                        )?;
                    }
                }
            }
        }
        // Static files: a page each, at their path under `static/`, so a
        // build, a release, the daemon's watcher and removals treat them
        // as every other page.
        for (rel, abs) in static_files(&cfg.static_dir) {
            let Ok(url) = crate::urlpath::canonical(&format!("/{rel}")) else {
                warnings.push(format!(
                    "{}: not a usable URL path; left out",
                    abs.display()
                ));
                continue;
            };
            let data_path = abs
                .strip_prefix(&cfg.base_dir)
                .unwrap_or(&abs)
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            add(
                url,
                PageSpec {
                    static_file: Some(abs.clone()),
                    page_of: None,
                    route: usize::MAX,
                    template: String::new(),
                    item: None,
                    data_path: Some(data_path.clone()),
                    group: None,
                    items: Vec::new(),
                },
                data_path,
            )?;
        }
        for (i, route) in cfg.render.iter().enumerate() {
            for name in route.items.iter().filter(|n| !collections.contains_key(*n)) {
                let known: Vec<&str> = cfg
                    .render
                    .iter()
                    .filter_map(|r| r.collection.as_deref())
                    .collect();
                warnings.push(format!(
                    "{}: items = [\"{name}\"] names no collection, so the list is empty ({})",
                    route_name(i, route),
                    if known.is_empty() {
                        "no route sets `collection = \"…\"`".to_string()
                    } else {
                        format!("collections: {}", known.join(", "))
                    }
                ));
            }
        }
        if drafts > 0 {
            warnings.push(format!(
                "{drafts} draft(s) (`draft: true`) left out; `--drafts` includes them"
            ));
        }
        let mut site: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for (k, v) in &cfg.vars {
            if let Ok(j) = serde_json::to_value(v) {
                site.insert(k.replace('-', "_"), j);
            }
        }
        let collection_values = collections
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        let urls_value = Value::from(pages.keys().cloned().collect::<Vec<_>>());
        Ok(Renderer {
            env,
            warnings,
            sources,
            templates_dir: cfg.templates.clone(),
            pages,
            template_deps,
            collections,
            collection_values,
            urls_value,
            site: Value::from_serialize(&site),
            content_types: cfg.render.iter().map(|r| r.content_type.clone()).collect(),
            paginate_size: cfg.render.iter().map(|r| r.paginate).collect(),
            route_urls: cfg.render.iter().map(|r| r.url.clone()).collect(),
            route_items,
        })
    }

    /// These templates and data with the data files `changed` (relative to
    /// the site) read again, when that is all that changed: each is a page
    /// already, keeps its URL, is no draft now, and moves no page of a
    /// `group-by` route. `None` otherwise: the caller loads everything
    /// ([`Renderer::load_with`]). A ten-thousand-post site then reloads in
    /// about a millisecond instead of a hundred.
    pub(crate) fn with_data_changed(
        &self,
        cfg: &Config,
        cache: &DataCache,
        changed: &[String],
    ) -> Option<Result<Renderer, RenderError>> {
        let mut next = self.clone();
        let mut touched_routes = BTreeSet::new();
        for rel in changed {
            let (url, i) = self
                .pages
                .iter()
                .find(|(_, p)| {
                    p.data_path.as_deref() == Some(rel.as_str()) && p.static_file.is_none()
                })
                .map(|(u, p)| (u.clone(), p.route))?;
            let route = cfg.render.get(i)?;
            let abs = cfg.base_dir.join(rel);
            if !abs.is_file() {
                return None;
            }
            let item = match cache.item(i, route, rel, &abs) {
                Ok(item) => item,
                Err(e) => return Some(Err(e)),
            };
            if item.url != url || (item.draft && !cfg.drafts) {
                return None;
            }
            let slot = next.route_items[i].iter().position(|old| old.url == url)?;
            let old = next.route_items[i][slot].clone();
            // A changed group field (a post's tags) adds or removes pages.
            for r in cfg.render.iter().filter(|r| r.group_by.is_some()) {
                let field = r.group_by.as_deref().unwrap_or_default();
                if old.value.get_attr(field).ok().map(|v| v.to_string())
                    != item.value.get_attr(field).ok().map(|v| v.to_string())
                {
                    return None;
                }
            }
            next.route_items[i][slot] = item.clone();
            if let Some(page) = next.pages.get_mut(&url) {
                page.item = Some(item.value.clone());
            }
            touched_routes.insert(i);
        }
        for i in touched_routes {
            next.route_items[i].sort_by(|a, b| b.date.cmp(&a.date).then(a.slug.cmp(&b.slug)));
            let Some(name) = cfg.render[i].collection.clone() else {
                continue;
            };
            // The collection is every route's items that name it, in order.
            let values: Vec<Value> = cfg
                .render
                .iter()
                .enumerate()
                .filter(|(_, r)| r.collection.as_deref() == Some(name.as_str()))
                .flat_map(|(j, _)| next.route_items[j].iter().map(|item| item.value.clone()))
                .collect();
            next.collection_values
                .insert(name.clone(), Value::from(values.clone()));
            next.collections.insert(name, values);
        }
        Some(Ok(next))
    }

    /// Whether these templates were loaded with a template of this name.
    pub(crate) fn has_template(&self, name: &str) -> bool {
        self.template_deps.contains_key(name) || self.env.get_template(name).is_ok()
    }

    /// Whether a page was made from this data file.
    pub(crate) fn has_data(&self, rel: &str) -> bool {
        self.pages
            .values()
            .any(|p| p.data_path.as_deref() == Some(rel))
    }

    /// The pages made from data (or static) files under directory `rel`:
    /// a directory that appeared at once with its files.
    pub(crate) fn urls_under(&self, rel: &str) -> Vec<String> {
        let prefix = format!("{}/", rel.trim_end_matches('/'));
        self.pages
            .iter()
            .filter(|(_, p)| {
                p.data_path
                    .as_deref()
                    .is_some_and(|d| d.starts_with(&prefix))
            })
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Every URL the routes produce, sorted.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.pages.keys().cloned().collect()
    }

    /// The dependency tags of a page.
    fn tags_of(&self, spec: &PageSpec) -> Vec<String> {
        let mut tags = BTreeSet::new();
        for t in self.template_deps.get(&spec.template).into_iter().flatten() {
            tags.insert(Tag::Template(t.to_string()).into());
        }
        if let Some(d) = &spec.data_path {
            tags.insert(Tag::Data(d.to_string()).into());
        }
        for c in &spec.items {
            tags.insert(Tag::Collection(c.to_string()).into());
        }
        if spec.static_file.is_none() {
            tags.insert(format!("route:{}", spec.route));
        }
        tags.into_iter().collect()
    }

    /// URLs whose pages carry `tag` (as computed from the current templates and data).
    pub(crate) fn urls_for_tag(&self, tag: &str) -> Vec<String> {
        // kiln's own tags are matched on the page's fields (no tag set is
        // built per page: a 10k-page site answers in well under a
        // millisecond); anything else through the full tag list.
        let parsed = Tag::parse(tag);
        let carries = |spec: &PageSpec| match &parsed {
            Some(Tag::Collection(c)) => spec.items.contains(c),
            Some(Tag::Data(d)) => spec.data_path.as_deref() == Some(d.as_str()),
            Some(Tag::Template(t)) => self
                .template_deps
                .get(&spec.template)
                .is_some_and(|deps| deps.contains(t)),
            Some(Tag::Path(_)) => false,
            None => self.tags_of(spec).iter().any(|t| t == tag),
        };
        self.pages
            .iter()
            .filter(|(_, spec)| carries(spec))
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// The collection a data file belongs to (for change events).
    pub(crate) fn collections_of_data(&self, cfg: &Config, rel: &str) -> Vec<String> {
        cfg.render
            .iter()
            .filter(|r| r.data.as_ref().is_some_and(|g| g.matcher.is_match(rel)))
            .filter_map(|r| r.collection.clone())
            .collect()
    }

    /// Renders `url` if a route owns it.
    pub(crate) fn render(&self, url: &str) -> Option<Result<Rendered, RenderError>> {
        let spec = self.pages.get(url)?;
        Some(self.render_spec(url, spec))
    }

    /// Renders every page in memory, as a build would, without writing:
    /// every failing page, and every page that prints an undefined value
    /// (a lenient render prints nothing there; a semi-strict one says where).
    pub(crate) fn check_every_page(&self) -> PageCheck {
        let mut strict = self.env.clone();
        strict.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        let mut check = PageCheck::default();
        for (url, spec) in &self.pages {
            match self.render_with(&self.env, url, spec) {
                Err(e) => check.errors.push((url.clone(), e)),
                Ok(page) => {
                    if let Err(RenderError::Template(problem)) =
                        self.render_with(&strict, url, spec)
                    {
                        check
                            .undefined
                            .push((url.clone(), spec.data_path.clone(), *problem));
                    }
                    check.rendered.push((url.clone(), page));
                }
            }
        }
        check
    }

    fn render_spec(&self, url: &str, spec: &PageSpec) -> Result<Rendered, RenderError> {
        self.render_with(&self.env, url, spec)
    }

    fn render_with(
        &self,
        env: &Environment<'static>,
        url: &str,
        spec: &PageSpec,
    ) -> Result<Rendered, RenderError> {
        if let Some(file) = &spec.static_file {
            let body = std::fs::read(file).map_err(|e| RenderError::Data {
                file: file.clone(),
                message: e.to_string(),
            })?;
            return Ok(Rendered {
                body,
                tags: self.tags_of(spec),
                is_html: url.ends_with(".html"),
                content_type: None,
            });
        }
        let tmpl = env
            .get_template(&spec.template)
            .map_err(|e| template_error(&self.templates_dir, &self.sources, &spec.template, &e))?;
        let mut collections = BTreeMap::new();
        for c in &spec.items {
            let value = match &spec.group {
                // Group pages get only the items in their group.
                Some(g) => {
                    let mut items = self.collections.get(c).cloned().unwrap_or_default();
                    items.retain(|item| item_has(item, g));
                    Value::from(items)
                }
                None => self
                    .collection_values
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| Value::from(Vec::<Value>::new())),
            };
            collections.insert(c.clone(), value);
        }
        let paginator = spec.page_of.map(|(number, pages)| {
            let size = self
                .paginate_size
                .get(spec.route)
                .copied()
                .flatten()
                .unwrap_or(1);
            let first = spec.items.first().and_then(|c| self.collections.get(c));
            let items: Vec<Value> = first
                .map(|all| {
                    all.iter()
                        .skip((number - 1) * size)
                        .take(size)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let base = &self.route_urls[spec.route];
            context! {
                number => number,
                pages => pages,
                items => items,
                first_url => base.clone(),
                previous_url => (number > 1).then(|| page_url(base, number - 1)),
                next_url => (number < pages).then(|| page_url(base, number + 1)),
                urls => (1..=pages).map(|n| page_url(base, n)).collect::<Vec<_>>(),
            }
        });
        let body = tmpl
            .render(context! {
                paginator => paginator,
                site => self.site.clone(),
                page => spec.item.clone().unwrap_or(Value::UNDEFINED),
                group => spec.group.clone(),
                collections => collections,
                url => url,
                urls => self.urls_value.clone(),
            })
            .map_err(|e| template_error(&self.templates_dir, &self.sources, &spec.template, &e))?;
        let is_html = match url.rsplit('/').next() {
            Some(last) if last.contains('.') => last.ends_with(".html"),
            _ => true,
        };
        Ok(Rendered {
            body: body.into_bytes(),
            tags: self.tags_of(spec),
            is_html,
            content_type: self.content_types.get(spec.route).cloned().flatten(),
        })
    }
}

/// Auto-escaping for `.html` and `.xml` templates that escapes only what
/// HTML and XML need (`& < > " '`), leaving URLs readable.
fn escape_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if matches!(state.auto_escape(), minijinja::AutoEscape::None) || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
}

fn item_has(item: &Value, group: &str) -> bool {
    // Any list field containing the value (group-by fields are lists like `tags`).
    let Ok(keys) = item.try_iter() else {
        return false;
    };
    for k in keys {
        if let Ok(v) = item.get_item(&k) {
            if let Ok(mut it) = v.try_iter() {
                if v.kind() == minijinja::value::ValueKind::Seq
                    && it.any(|x| x.to_string() == group)
                {
                    return true;
                }
            }
        }
    }
    false
}

/// How messages name a route: its position as a person counts in the
/// file, and its template.
pub(crate) fn route_name(i: usize, route: &RenderRoute) -> String {
    format!("[[render]] #{} (template = \"{}\")", i + 1, route.template)
}

fn template_error(
    dir: &Path,
    sources: &BTreeMap<String, String>,
    name: &str,
    e: &minijinja::Error,
) -> RenderError {
    RenderError::Template(Box::new(super::diagnostic::from_minijinja(
        dir,
        name,
        e,
        &|n| sources.get(n).cloned(),
        &|| sources.keys().cloned().collect(),
    )))
}

fn read_templates(dir: &Path) -> Result<BTreeMap<String, String>, RenderError> {
    let mut out = BTreeMap::new();
    if !dir.is_dir() {
        return Err(RenderError::Io {
            dir: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| RenderError::Io {
            dir: dir.to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() || is_editor_junk(entry.path()) {
            continue;
        }
        let rel = rel_path(entry.path(), dir);
        let source = std::fs::read_to_string(entry.path()).map_err(|e| RenderError::Io {
            dir: entry.path().to_path_buf(),
            source: e,
        })?;
        out.insert(rel, source);
    }
    Ok(out)
}

/// Minutes to read an HTML text at 200 words a minute (at least 1): the
/// `reading_minutes` filter.
fn reading_minutes(html: String) -> usize {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().count().div_ceil(200).max(1)
}

/// The templates a template source names directly (extends, include of a
/// string or a list of strings, import and from-import), and the first
/// name it gives by a variable (`{% include layout %}`), which no scan can
/// follow.
fn template_refs(source: &str) -> (BTreeSet<String>, Option<String>) {
    let mut deps = BTreeSet::new();
    let mut dynamic = None;
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        let tag = after[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let keyword = tag.split_whitespace().next().unwrap_or("");
        if matches!(keyword, "extends" | "include" | "import" | "from") {
            let args = &tag[keyword.len()..];
            // For `from "x" import a`, and `import "x" as y`, only the first string counts.
            let first_only = matches!(keyword, "from" | "import" | "extends");
            let (literals, variable) = string_literals(args);
            if variable && dynamic.is_none() {
                dynamic = Some(format!("{{% {tag} %}}"));
            }
            for s in literals {
                deps.insert(s);
                if first_only {
                    break;
                }
            }
        }
        rest = &after[end + 2..];
    }
    (deps, dynamic)
}

/// The string literals in a tag's arguments, and whether it names a
/// template by a variable instead.
fn string_literals(s: &str) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut variable = false;
    let mut chars = s.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '"' || c == '\'' {
            let mut lit = String::new();
            for (_, d) in chars.by_ref() {
                if d == c {
                    break;
                }
                lit.push(d);
            }
            out.push(lit);
        } else if c.is_alphabetic() && out.is_empty() {
            let word: String = std::iter::once(c)
                .chain(std::iter::from_fn(|| {
                    chars
                        .next_if(|(_, d)| d.is_alphanumeric() || *d == '_')
                        .map(|(_, d)| d)
                }))
                .collect();
            if !matches!(
                word.as_str(),
                "ignore" | "missing" | "with" | "without" | "context"
            ) {
                variable = true;
            }
        }
    }
    (out, variable)
}

/// Each template with everything it uses, itself included. A template
/// that names another by a variable depends, conservatively, on every
/// template: editing any of them regenerates its pages (said once at info).
pub(crate) fn transitive_deps(
    sources: &BTreeMap<String, String>,
) -> HashMap<String, BTreeSet<String>> {
    let direct: HashMap<&str, BTreeSet<String>> = sources
        .iter()
        .map(|(n, s)| {
            let (deps, dynamic) = template_refs(s);
            match dynamic {
                Some(tag) => {
                    say_once_dynamic(n, &tag);
                    (n.as_str(), sources.keys().cloned().collect())
                }
                None => (n.as_str(), deps),
            }
        })
        .collect();
    let mut out = HashMap::new();
    for name in sources.keys() {
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.clone()];
        while let Some(t) = stack.pop() {
            if !seen.insert(t.clone()) {
                continue;
            }
            if let Some(ds) = direct.get(t.as_str()) {
                stack.extend(ds.iter().cloned());
            }
        }
        out.insert(name.clone(), seen);
    }
    out
}

/// Tells, once per template and process, that its dependencies are taken
/// to be every template (the daemon reloads templates on every edit).
fn say_once_dynamic(template: &str, tag: &str) {
    static SAID: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .map(|mut said| said.insert(template.to_string()))
        .unwrap_or(false);
    if first {
        tracing::info!(
            template,
            tag,
            "names a template by a variable: its pages are regenerated when any template changes"
        );
    }
}

fn find_data_files(base: &Path, glob: &DataGlob) -> Vec<(String, PathBuf)> {
    let start = &glob.dir;
    let mut out = Vec::new();
    if !start.exists() {
        return out;
    }
    for entry in walkdir::WalkDir::new(start).sort_by_file_name() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() || is_editor_junk(entry.path()) {
            continue;
        }
        let rel = rel_path(entry.path(), base);
        let rel = rel.trim_start_matches("./").to_string();
        if glob.matcher.is_match(&rel) {
            out.push((rel, entry.path().to_path_buf()));
        }
    }
    out
}

/// Page `number` of a paginated list at `base` (`/blog/` → `/blog/page/2/`).
fn page_url(base: &str, number: usize) -> String {
    if number <= 1 {
        base.to_string()
    } else {
        format!("{base}page/{number}/")
    }
}

/// `path` below `base`, with `/` between components (what URLs, tags and
/// data globs are written in).
fn rel_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// One key per output file: `/a`, `/a/` and `/a/index.html` are one.
fn file_key(url: &str) -> String {
    url.strip_suffix("index.html")
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_string()
}

/// Every file under `dir` (none when it does not exist), relative with
/// `/`, sorted; editor and dot files left out.
fn static_files(dir: &Path) -> Vec<(String, PathBuf)> {
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
    {
        if !entry.file_type().is_file() || is_editor_junk(entry.path()) {
            continue;
        }
        let rel = rel_path(entry.path(), dir);
        out.push((rel, entry.path().to_path_buf()));
    }
    out
}

type Fields = serde_json::Map<String, serde_json::Value>;

/// One data file as a route uses it: its page's URL, its fields as a
/// template value, and the keys lists sort by.
#[derive(Debug)]
pub(crate) struct DataItem {
    url: String,
    value: Value,
    date: String,
    slug: String,
    draft: bool,
}

impl DataItem {
    /// Reads and parses `abs` (Markdown rendered, code highlighted) for
    /// route `i`.
    fn read(i: usize, route: &RenderRoute, rel: &str, abs: &Path) -> Result<DataItem, RenderError> {
        let mut fields = read_data_file(abs)?;
        let draft = fields.get("draft").and_then(serde_json::Value::as_bool) == Some(true);
        fields
            .entry("slug".to_string())
            .or_insert_with(|| serde_json::Value::String(stem(rel)));
        let url = fill_pattern(i, route, &fields, rel)?;
        fields.insert("url".into(), serde_json::Value::String(url.clone()));
        fields.insert("source".into(), serde_json::Value::String(rel.to_string()));
        let key = |k: &str| fields.get(k).map(|v| v.to_string()).unwrap_or_default();
        Ok(DataItem {
            date: key("date"),
            slug: key("slug"),
            value: Value::from_serialize(&fields),
            url,
            draft,
        })
    }
}

/// A cached item with the size and modification time it was read at.
type Stamped = (std::time::SystemTime, u64, Arc<DataItem>);

/// Data files read for a route, kept between reloads and keyed by route,
/// path, size and modification time: the daemon and `kiln serve` reload
/// on every edit, and one changed post is then parsed, not ten thousand.
#[derive(Debug, Default)]
pub(crate) struct DataCache {
    items: std::sync::Mutex<HashMap<(usize, PathBuf), Stamped>>,
}

impl DataCache {
    /// The item of `abs` for route `i`, read again only when it changed.
    fn item(
        &self,
        i: usize,
        route: &RenderRoute,
        rel: &str,
        abs: &Path,
    ) -> Result<Arc<DataItem>, RenderError> {
        let stamp = std::fs::metadata(abs)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let key = (i, abs.to_path_buf());
        if let (Some((modified, len)), Ok(items)) = (stamp, self.items.lock()) {
            if let Some((m, l, item)) = items.get(&key) {
                if *m == modified && *l == len {
                    return Ok(item.clone());
                }
            }
        }
        let item = Arc::new(DataItem::read(i, route, rel, abs)?);
        if let (Some((modified, len)), Ok(mut items)) = (stamp, self.items.lock()) {
            items.insert(key, (modified, len, item.clone()));
        }
        Ok(item)
    }
}

fn read_data_file(path: &Path) -> Result<Fields, RenderError> {
    let err = |message: String| RenderError::Data {
        file: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let value: serde_json::Value = match ext.as_str() {
        "toml" => toml::from_str::<toml::Value>(&text)
            .map_err(|e| err(e.to_string()))
            .and_then(|v| serde_json::to_value(v).map_err(|e| err(e.to_string())))?,
        "json" => serde_json::from_str(&text).map_err(|e| err(e.to_string()))?,
        "yaml" | "yml" => {
            serde_saphyr::from_str(&text).map_err(|e| err(yaml_message(&e.to_string(), path)))?
        }
        "md" | "markdown" => {
            let (front, body) = split_front_matter(&text).map_err(err)?;
            let mut map = match front {
                None => Fields::new(),
                Some(FrontMatter::Yaml(y)) => {
                    // One blank line for the opening fence, so the parser's
                    // line numbers are the file's.
                    match serde_saphyr::from_str::<serde_json::Value>(&format!("\n{y}")).map_err(
                        |e| {
                            err(format!(
                                "front matter: {}",
                                yaml_message(&e.to_string(), path)
                            ))
                        },
                    )? {
                        serde_json::Value::Object(m) => m,
                        serde_json::Value::Null => Fields::new(),
                        _ => return Err(err("front matter must be a mapping of fields".into())),
                    }
                }
                Some(FrontMatter::Toml(t)) => {
                    let v: toml::Value = toml::from_str(&format!("\n{t}"))
                        .map_err(|e| err(format!("front matter: {e}")))?;
                    match serde_json::to_value(v).map_err(|e| err(e.to_string()))? {
                        serde_json::Value::Object(m) => m,
                        _ => Fields::new(),
                    }
                }
            };
            map.insert("content".into(), serde_json::Value::String(markdown(body)));
            serde_json::Value::Object(map)
        }
        other => {
            return Err(err(format!(
                "unsupported data file type `.{other}`: use .md, .toml, .json, .yaml"
            )));
        }
    };
    match value {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(err("the file must hold a table/object of fields".into())),
    }
}

/// The YAML parser's message with the file's name where it says `<input>`
/// and without its own `error: ` prefix (kiln's message has one already).
fn yaml_message(message: &str, path: &Path) -> String {
    message
        .strip_prefix("error: ")
        .unwrap_or(message)
        .replace("<input>", &path.display().to_string())
}

enum FrontMatter<'a> {
    Yaml(&'a str),
    Toml(&'a str),
}

fn split_front_matter(text: &str) -> Result<(Option<FrontMatter<'_>>, &str), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (fence, yaml) in [("---", true), ("+++", false)] {
        let Some(rest) = text.strip_prefix(fence) else {
            continue;
        };
        let Some(rest) = rest
            .strip_prefix('\n')
            .or_else(|| rest.strip_prefix("\r\n"))
        else {
            continue;
        };
        let close = format!("\n{fence}");
        let Some(end) = rest.find(&close) else {
            return Err(format!(
                "front matter opened with `{fence}` is never closed"
            ));
        };
        let front = &rest[..end];
        let body = rest[end + close.len()..].trim_start_matches(['\r', '\n']);
        return Ok((
            Some(if yaml {
                FrontMatter::Yaml(front)
            } else {
                FrontMatter::Toml(front)
            }),
            body,
        ));
    }
    Ok((None, text))
}

/// Markdown → HTML (CommonMark plus tables, footnotes, strikethrough).
pub(crate) fn markdown(text: &str) -> String {
    use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd, html};
    let opts = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_SMART_PUNCTUATION;
    let mut out = String::with_capacity(text.len() * 3 / 2);
    // Fenced code is highlighted here, at build time
    // ([`super::highlight`]); everything else is pulldown-cmark's HTML.
    let mut fence: Option<(String, String)> = None;
    let events = Parser::new_ext(text, opts).filter_map(|event| match (&mut fence, event) {
        (None, Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))) => {
            fence = Some((info.to_string(), String::new()));
            None
        }
        (Some((_, code)), Event::Text(t)) => {
            code.push_str(&t);
            None
        }
        (Some(_), Event::End(TagEnd::CodeBlock)) => {
            let (info, code) = fence.take().unwrap_or_default();
            Some(Event::Html(
                super::highlight::code_block(&info, &code).into(),
            ))
        }
        (_, event) => Some(event),
    });
    html::push_html(&mut out, events);
    out
}

fn stem(rel: &str) -> String {
    Path::new(rel)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Lowercase, ASCII alphanumerics and `-`.
pub(crate) fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn replace_placeholders(pattern: &str, mut value: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let field = &after[..close];
        out.push_str(&value(field).unwrap_or_default());
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn fill_pattern(
    route_index: usize,
    route: &RenderRoute,
    fields: &Fields,
    rel: &str,
) -> Result<String, RenderError> {
    let mut missing = None;
    let url = replace_placeholders(&route.url, |field| {
        let v = match fields.get(field) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        if v.is_none() && missing.is_none() {
            missing = Some(field.to_string());
        }
        v.map(|s| if field == "slug" { s } else { slugify(&s) })
    });
    match missing {
        Some(field) => Err(RenderError::MissingField {
            route: route_index,
            pattern: route.url.clone(),
            field,
            file: rel.to_string(),
        }),
        None => Ok(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled site, copied to a temp dir, and its config.
    fn bundled_site() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for top in ["templates", "content"] {
            for e in walkdir::WalkDir::new(root.join(top))
                .into_iter()
                .filter_map(Result::ok)
            {
                let rel = e.path().strip_prefix(root).unwrap();
                if e.file_type().is_dir() {
                    std::fs::create_dir_all(dir.path().join(rel)).unwrap();
                } else {
                    std::fs::copy(e.path(), dir.path().join(rel)).unwrap();
                }
            }
        }
        std::fs::copy(root.join("site.toml"), dir.path().join("site.toml")).unwrap();
        let cfg = Config::load(Some(&dir.path().join("site.toml")), &Default::default()).unwrap();
        (dir, cfg)
    }

    #[test]
    fn a_patched_renderer_renders_what_a_full_load_renders() {
        let (dir, cfg) = bundled_site();
        let cache = DataCache::default();
        let before = Renderer::load_with(&cfg, Some(&cache)).unwrap();
        // A post's title and date change: its page, the lists, the feed.
        let rel = "content/posts/reclaiming-clay.md";
        let path = dir.path().join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replacen("title: ", "title: Patched — ", 1).replacen(
            "date: 2025-11-20",
            "date: 2027-01-01",
            1,
        );
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        let patched = before
            .with_data_changed(&cfg, &cache, &[rel.to_string()])
            .expect("an edit in place is patched")
            .unwrap();
        let full = Renderer::load(&cfg).unwrap();
        assert_eq!(patched.urls(), full.urls());
        for url in full.urls() {
            let a = patched.render(&url).unwrap().unwrap().body;
            let b = full.render(&url).unwrap().unwrap().body;
            assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "{url}"
            );
        }
        // What a patch cannot do falls back to a full load: new tags (a new
        // tag page), a new file.
        std::fs::write(
            &path,
            text.replacen("tags: [clay, studio]", "tags: [clay, brand-new]", 1),
        )
        .unwrap();
        assert!(
            patched
                .with_data_changed(&cfg, &cache, &[rel.to_string()])
                .is_none()
        );
        assert!(
            patched
                .with_data_changed(&cfg, &cache, &["content/posts/new.md".to_string()])
                .is_none()
        );
    }

    #[test]
    fn finds_direct_template_references() {
        let cases = [
            ("{% extends \"base.html\" %}", vec!["base.html"]),
            (
                "{%- include 'partials/nav.html' -%}",
                vec!["partials/nav.html"],
            ),
            (
                "{% include [\"a.html\", \"b.html\"] ignore missing %}",
                vec!["a.html", "b.html"],
            ),
            ("{% import \"macros.html\" as m %}", vec!["macros.html"]),
            (
                "{% from \"macros.html\" import card, \"x\" %}",
                vec!["macros.html"],
            ),
            ("{% include some_var %}", vec![]),
            ("{{ \"include.html\" }} {% if x %}{% endif %}", vec![]),
        ];
        for (src, want) in cases {
            let got: Vec<String> = template_refs(src).0.into_iter().collect();
            assert_eq!(got, want, "{src}");
        }
    }

    #[test]
    fn dependencies_are_transitive_and_cycle_safe() {
        let mut s = BTreeMap::new();
        s.insert(
            "post.html".to_string(),
            "{% extends \"base.html\" %}{% include \"comments.html\" %}".to_string(),
        );
        s.insert(
            "base.html".to_string(),
            "{% include \"nav.html\" %}".to_string(),
        );
        s.insert(
            "nav.html".to_string(),
            "{% import \"base.html\" as b %}".to_string(),
        );
        s.insert("comments.html".to_string(), String::new());
        s.insert(
            "about.html".to_string(),
            "{% extends \"base.html\" %}".to_string(),
        );
        let d = transitive_deps(&s);
        let post: Vec<_> = d["post.html"].iter().cloned().collect();
        assert_eq!(
            post,
            vec!["base.html", "comments.html", "nav.html", "post.html"]
        );
        assert!(!d["about.html"].contains("comments.html"));
        // A template named by a variable: every template, conservatively.
        s.insert(
            "dyn.html".to_string(),
            "{% extends \"base.html\" %}{% include layout %}".to_string(),
        );
        let d = transitive_deps(&s);
        assert_eq!(d["dyn.html"].len(), s.len(), "{:?}", d["dyn.html"]);
        assert!(template_refs("{% include layout %}").1.is_some());
        assert!(
            template_refs("{% include \"a.html\" ignore missing %}")
                .1
                .is_none()
        );
    }

    #[test]
    fn front_matter_and_slugs() {
        let (f, body) = split_front_matter("---\ntitle: A\n---\n# Hi\n").unwrap();
        assert!(matches!(f, Some(FrontMatter::Yaml("title: A"))));
        assert_eq!(body, "# Hi\n");
        let (f, _) = split_front_matter("+++\ntitle = \"A\"\n+++\nx").unwrap();
        assert!(matches!(f, Some(FrontMatter::Toml(_))));
        assert!(split_front_matter("---\ntitle: A\n").is_err());
        assert_eq!(slugify("Rust & Web Dev!"), "rust-web-dev");
        assert_eq!(
            replace_placeholders("/p/{slug}/", |_| Some("x".into())),
            "/p/x/"
        );
    }

    #[test]
    fn editor_junk_is_ignored() {
        for junk in [
            ".post.html.swp",
            "post.html~",
            "#post.html#",
            "4913",
            ".#lock",
        ] {
            assert!(is_editor_junk(Path::new(junk)), "{junk}");
        }
        assert!(!is_editor_junk(Path::new("post.html")));
    }
}
