//! The tags kiln itself gives pages, beside the origin's own: one place for
//! their prefixes, so the page that is tagged and the event that looks the
//! tag up can never spell it differently.

use std::fmt;

/// A tag kiln derives; its text (`template:post.html`) is what the index
/// stores and a `tag:` target names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tag {
    /// A render-mode page uses this template (directly or through
    /// extends/include/import).
    Template(String),
    /// A render-mode page reads this data file (relative to the site).
    Data(String),
    /// A render-mode page lists this collection.
    Collection(String),
    /// A page lives under this URL path prefix (makes `glob:` an index lookup).
    Path(String),
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tag::Template(t) => write!(f, "template:{t}"),
            Tag::Data(d) => write!(f, "data:{d}"),
            Tag::Collection(c) => write!(f, "collection:{c}"),
            Tag::Path(p) => write!(f, "path:{p}"),
        }
    }
}

/// Whether `tag` is one kiln derives itself (it means nothing to a CDN).
pub(crate) fn is_kiln_tag(tag: &str) -> bool {
    ["template:", "data:", "collection:", "path:"]
        .iter()
        .any(|p| tag.starts_with(p))
}

impl Tag {
    /// The tag a text names, when it is one of kiln's own.
    pub(crate) fn parse(text: &str) -> Option<Tag> {
        let (prefix, rest) = text.split_once(':')?;
        let rest = rest.to_string();
        Some(match prefix {
            "template" => Tag::Template(rest),
            "data" => Tag::Data(rest),
            "collection" => Tag::Collection(rest),
            "path" => Tag::Path(rest),
            _ => return None,
        })
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_as_the_index_stores_them() {
        assert_eq!(
            Tag::Template("post.html".into()).to_string(),
            "template:post.html"
        );
        assert_eq!(
            Tag::Data("content/a.md".into()).to_string(),
            "data:content/a.md"
        );
        assert_eq!(
            Tag::Collection("posts".into()).to_string(),
            "collection:posts"
        );
        for t in [
            Tag::Template("a/b.html".into()),
            Tag::Data("content/x.md".into()),
            Tag::Collection("posts".into()),
            Tag::Path("/p/".into()),
        ] {
            assert_eq!(Tag::parse(&t.to_string()), Some(t));
        }
        assert_eq!(Tag::parse("post:42"), None);
        assert_eq!(Tag::Path("/blog/".into()).to_string(), "path:/blog/");
    }
}
