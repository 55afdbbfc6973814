//! Targets → URLs: what `/path/`, `tag:`, `glob:`, `delete:`, `failed` and
//! `all` name, looked up in the index, the `[[depend]]` rules and the
//! render routes. Targets that name nothing are said, never silent.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Target;
use crate::config::DependRule;
use crate::index::{Index, IndexError};
use crate::source::render::Renderer;
use crate::tag::Tag;

/// Where targets are looked up.
pub(crate) struct Sources<'a> {
    /// Tags and known URLs.
    pub(crate) index: &'a Index,
    /// `[[depend]]` rules.
    pub(crate) depend: &'a [DependRule],
    /// Render routes, in render mode.
    pub(crate) renderer: Option<Arc<Renderer>>,
    /// The build's seeds (`all` includes them).
    pub(crate) seeds: Vec<String>,
    /// In pool mode, the index every worker shares: a page another worker
    /// baked is found by its tags too.
    pub(crate) shared: Option<&'a crate::pool::SharedIndex>,
}

/// URLs an event set names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// To (re)generate.
    pub(crate) bake: BTreeSet<String>,
    /// To remove.
    pub(crate) delete: BTreeSet<String>,
    /// Targets that matched nothing, with why (said out loud, never silent).
    pub(crate) unmatched: Vec<(String, String)>,
    /// URLs a target named narrowly: by their path, or by a tag or glob
    /// matching at most [`NARROW`] pages (a saved or deleted object's own
    /// tag). Such a page turning out gone is the app's doing, not a broken
    /// origin, and the mass-delete guard does not count it.
    pub(crate) narrow: BTreeSet<String>,
}

/// The most pages a tag or glob may match and still name them narrowly
/// ([`Resolved::narrow`]): the mass-delete guard's floor.
pub(crate) const NARROW: usize = 5;

impl Sources<'_> {
    /// Pages of the pool carrying `tag` (none outside pool mode).
    async fn shared_urls_for_tag(&self, tag: &str) -> Result<Vec<String>, IndexError> {
        match self.shared {
            Some(shared) => shared.urls_for_tag(tag).await.map_err(IndexError::shared),
            None => Ok(Vec::new()),
        }
    }

    /// Resolves targets to URLs to bake and URLs to delete, noting targets
    /// that matched nothing and why.
    pub(crate) async fn resolve(&self, targets: &[Target]) -> Result<Resolved, IndexError> {
        let mut r = Resolved::default();
        for t in targets {
            // What this target matched, whether or not an earlier target
            // of the same request named the same URLs: a tag whose page is
            // already listed still matched it.
            let mut found: Vec<String> = Vec::new();
            let mut why_empty = None;
            match t {
                Target::Url(u) => {
                    r.bake.insert(u.clone());
                    r.narrow.insert(u.clone());
                }
                Target::Delete(u) => {
                    r.delete.insert(u.clone());
                }
                Target::Tag(tag) => {
                    found.extend(self.index.urls_for_tags(vec![tag.clone()]).await?);
                    found.extend(self.shared_urls_for_tag(tag).await?);
                    for rule in self.depend {
                        if rule.tags.is_match(tag) {
                            found.extend(rule.urls.iter().cloned());
                        }
                    }
                    if let Some(renderer) = self.renderer.clone() {
                        found.extend(renderer.urls_for_tag(tag));
                    }
                    why_empty =
                        Some("no baked page carries that tag and no [[depend]] rule names it");
                }
                Target::Glob(pattern) => {
                    let matcher = match crate::glob::path_matcher(pattern) {
                        Ok(m) => m,
                        Err(e) => {
                            r.unmatched.push((t.to_string(), format!("refused: {e}")));
                            continue;
                        }
                    };
                    let matches = |u: &str| crate::glob::matches_url(&matcher, u);
                    let prefix = crate::glob::glob_literal_prefix(pattern);
                    let path_tag: String = Tag::Path(prefix.to_string()).into();
                    let mut candidates = self.index.urls_for_tags(vec![path_tag.clone()]).await?;
                    candidates.extend(self.shared_urls_for_tag(&path_tag).await?);
                    found.extend(candidates.into_iter().filter(|u| matches(u)));
                    if let Some(renderer) = self.renderer.clone() {
                        found.extend(renderer.urls().into_iter().filter(|u| matches(u)));
                    }
                    why_empty = Some("no known URL matches that pattern");
                }
                Target::Failed => {
                    found.extend(self.index.failed_urls().await?);
                    why_empty = Some("no page is failing");
                }
                Target::All => {
                    // Removed pages too: `all` is a whole rebuild, and a
                    // page an outage removed comes back when the origin has
                    // it again (a crawl would reach it through its links).
                    found.extend(self.index.every_url().await?);
                    if let Some(shared) = self.shared {
                        found.extend(shared.every_url().await.map_err(IndexError::shared)?);
                    }
                    found.extend(self.seeds.iter().cloned());
                    why_empty = Some("the index knows no page yet (run `kiln build` first)");
                }
            }
            if matches!(t, Target::Tag(_) | Target::Glob(_)) && found.len() <= NARROW {
                r.narrow.extend(found.iter().cloned());
            }
            if let (true, Some(why)) = (found.is_empty(), why_empty) {
                let why = if self.index.is_empty().await.unwrap_or(false) {
                    "the index is empty: nothing was baked yet (run `kiln build` first)"
                } else {
                    why
                };
                r.unmatched.push((t.to_string(), why.to_string()));
            }
            r.bake.extend(found);
        }
        for d in &r.delete {
            r.bake.remove(d);
        }
        Ok(r)
    }
}
