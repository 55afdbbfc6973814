//! Render mode: pages from minijinja templates and data files.

use crate::config::Config;

/// A template or data problem.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Placeholder.
    #[error("render failed: {0}")]
    Other(String),
}

/// A rendered page.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The HTML or XML.
    pub body: String,
    /// Dependency tags.
    pub tags: Vec<String>,
    /// Whether it maps to index.html.
    pub is_html: bool,
}

/// Templates and data loaded once per build.
#[derive(Debug)]
pub struct Renderer {}

impl Renderer {
    /// Loads templates and data.
    pub fn load(_cfg: &Config) -> Result<Renderer, RenderError> {
        Ok(Renderer {})
    }
    /// Every URL the routes produce.
    pub fn urls(&self) -> Vec<String> {
        Vec::new()
    }
    /// URLs whose pages carry `tag`.
    pub fn urls_for_tag(&self, _tag: &str) -> Vec<String> {
        Vec::new()
    }
    /// Renders `url` if a route owns it.
    pub fn render(&self, _url: &str) -> Option<Result<Rendered, RenderError>> {
        None
    }
}
