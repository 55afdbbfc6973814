//! Syntax highlighting of fenced code blocks at build time (render mode):
//! ```` ```rust ```` becomes `<pre class="highlight"><code
//! class="language-rust">` with `<span class="hl-keyword">`… inside, so a
//! stylesheet colours it and no script runs in the browser.
//!
//! tree-sitter grammars (the parsers editors use) with their own highlight
//! queries: bash, c, css, go, html, javascript, json, python, rust, toml,
//! yaml, and their usual aliases. A language kiln does not know, or code a
//! grammar cannot parse, is written escaped and unhighlighted, never lost.

use std::collections::HashMap;
use std::sync::OnceLock;

use tree_sitter_highlight::{HighlightConfiguration, HighlightEvent, Highlighter};

/// The capture names kiln styles; a capture like `function.method` takes
/// the longest of these that prefixes it (`function`). Each becomes the
/// class `hl-<name>` with `.` as `-`.
const NAMES: &[&str] = &[
    "attribute",
    "comment",
    "constant",
    "constant.builtin",
    "constructor",
    "embedded",
    "escape",
    "function",
    "function.builtin",
    "keyword",
    "label",
    "module",
    "number",
    "operator",
    "property",
    "punctuation",
    "string",
    "string.special",
    "tag",
    "type",
    "type.builtin",
    "variable",
    "variable.builtin",
    "variable.parameter",
];

/// Each language's compiled queries, built on first use.
fn configs() -> &'static HashMap<&'static str, HighlightConfiguration> {
    static CONFIGS: OnceLock<HashMap<&'static str, HighlightConfiguration>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let mut out = HashMap::new();
        let grammars: [(&str, tree_sitter_language::LanguageFn, &str, &str); 11] = [
            ("bash", tree_sitter_bash::LANGUAGE, tree_sitter_bash::HIGHLIGHT_QUERY, ""),
            ("c", tree_sitter_c::LANGUAGE, tree_sitter_c::HIGHLIGHT_QUERY, ""),
            ("css", tree_sitter_css::LANGUAGE, tree_sitter_css::HIGHLIGHTS_QUERY, ""),
            ("go", tree_sitter_go::LANGUAGE, tree_sitter_go::HIGHLIGHTS_QUERY, ""),
            ("html", tree_sitter_html::LANGUAGE, tree_sitter_html::HIGHLIGHTS_QUERY, ""),
            (
                "javascript",
                tree_sitter_javascript::LANGUAGE,
                tree_sitter_javascript::HIGHLIGHT_QUERY,
                tree_sitter_javascript::LOCALS_QUERY,
            ),
            ("json", tree_sitter_json::LANGUAGE, tree_sitter_json::HIGHLIGHTS_QUERY, ""),
            ("python", tree_sitter_python::LANGUAGE, tree_sitter_python::HIGHLIGHTS_QUERY, ""),
            ("rust", tree_sitter_rust::LANGUAGE, tree_sitter_rust::HIGHLIGHTS_QUERY, ""),
            ("toml", tree_sitter_toml_ng::LANGUAGE, tree_sitter_toml_ng::HIGHLIGHTS_QUERY, ""),
            ("yaml", tree_sitter_yaml::LANGUAGE, tree_sitter_yaml::HIGHLIGHTS_QUERY, ""),
        ];
        for (name, language, highlights, locals) in grammars {
            match HighlightConfiguration::new(language.into(), name, highlights, "", locals) {
                Ok(mut config) => {
                    config.configure(NAMES);
                    out.insert(name, config);
                }
                // A grammar whose query does not compile: its code stays plain.
                Err(e) => tracing::warn!(language = name, error = %e, "highlighting query does not compile; code in it is not highlighted"),
            }
        }
        out
    })
}

/// The grammar for a fence's info string (`rust`, `rs`, `py`, `sh`, …).
fn language_of(info: &str) -> Option<&'static str> {
    let word = info
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    Some(match word.as_str() {
        "bash" | "sh" | "shell" | "console" | "zsh" => "bash",
        "c" | "h" => "c",
        "css" => "css",
        "go" | "golang" => "go",
        "html" | "xml" | "svg" | "jinja" | "j2" => "html",
        "javascript" | "js" | "mjs" | "jsx" => "javascript",
        "json" | "jsonc" => "json",
        "python" | "py" => "python",
        "rust" | "rs" => "rust",
        "toml" => "toml",
        "yaml" | "yml" => "yaml",
        _ => return None,
    })
}

thread_local! {
    /// A highlighter per render thread (it keeps parser state).
    static HIGHLIGHTER: std::cell::RefCell<Highlighter> = std::cell::RefCell::new(Highlighter::new());
}

/// A fenced code block as HTML: highlighted when its language is known.
pub(crate) fn code_block(info: &str, code: &str) -> String {
    let word = info.split_whitespace().next().unwrap_or("");
    let class = if word.is_empty() {
        String::new()
    } else {
        format!(" class=\"language-{}\"", escape(word))
    };
    let body = language_of(info)
        .and_then(|lang| configs().get(lang))
        .and_then(|config| highlighted(config, code))
        .unwrap_or_else(|| escape(code));
    format!("<pre class=\"highlight\"><code{class}>{body}</code></pre>\n")
}

/// The code with a `<span class="hl-…">` around each highlighted part;
/// `None` when the grammar gives up (the block is written plain).
fn highlighted(config: &HighlightConfiguration, code: &str) -> Option<String> {
    HIGHLIGHTER.with(|h| {
        let mut h = h.try_borrow_mut().ok()?;
        let events = h.highlight(config, code.as_bytes(), None, |_| None).ok()?;
        let mut out = String::with_capacity(code.len() * 2);
        for event in events {
            match event.ok()? {
                HighlightEvent::Source { start, end } => {
                    out.push_str(&escape(code.get(start..end)?))
                }
                HighlightEvent::HighlightStart(hl) => {
                    out.push_str("<span class=\"hl-");
                    out.push_str(&NAMES[hl.0].replace('.', "-"));
                    out.push_str("\">");
                }
                HighlightEvent::HighlightEnd => out.push_str("</span>"),
            }
        }
        Some(out)
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_languages_are_highlighted_and_the_rest_kept_plain() {
        let html = code_block("rust", "fn main() { let x = \"<b>\"; }\n");
        assert!(
            html.starts_with("<pre class=\"highlight\"><code class=\"language-rust\">"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"hl-keyword\">fn</span>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;"), "escaped: {html}");
        for (info, code) in [
            ("py", "def f(x):\n    return x\n"),
            ("sh", "echo \"$HOME\" | wc -l\n"),
            ("json", "{\"a\": 1}\n"),
            ("toml", "[site]\nout = \"public\"\n"),
            ("yaml", "a: [1, 2]\n"),
            ("js", "const a = () => 1;\n"),
            ("go", "package main\nfunc main() {}\n"),
            ("c", "int main(void) { return 0; }\n"),
            ("css", "a { color: red; }\n"),
            ("html", "<p class=\"x\">hi</p>\n"),
        ] {
            let html = code_block(info, code);
            assert!(html.contains("<span class=\"hl-"), "{info}: {html}");
        }
        let plain = code_block("brainfuck", "+[<>]\n");
        assert_eq!(
            plain,
            "<pre class=\"highlight\"><code class=\"language-brainfuck\">+[&lt;&gt;]\n</code></pre>\n"
        );
        assert!(!code_block("", "x < y\n").contains("class=\"language"));
    }
}
