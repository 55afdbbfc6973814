//! Template problems as a person fixes them: the file, the line and column,
//! the source line with a caret under the part at fault, what is wrong in
//! the template's own words (the undefined name, the unknown filter, the
//! missing template), and what to do.
//!
//! minijinja reports a kind, a detail, a line and a byte range; this module
//! turns those, with the template's source, into a [`TemplateProblem`]. For
//! syntax errors it also looks for the block left open (minijinja sees the
//! `{% endblock %}` where an `{% endif %}` was due and says so, far from the
//! real mistake).

use std::fmt;
use std::path::PathBuf;

/// One located template problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateProblem {
    /// The template file (under the templates directory).
    pub(crate) file: PathBuf,
    /// 1-based line, when known.
    pub(crate) line: Option<usize>,
    /// 1-based column and width of the part at fault, when known.
    pub(crate) span: Option<(usize, usize)>,
    /// The source line, when known.
    pub(crate) source_line: Option<String>,
    /// What is wrong.
    pub(crate) message: String,
    /// What to do about it.
    pub(crate) help: Option<String>,
    /// The expression at fault (`page.title`), when known.
    pub(crate) subject: Option<String>,
}

impl fmt::Display for TemplateProblem {
    /// One line: `templates/post.html:6:23: unknown filter `x``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some((col, _)) = self.span {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

impl TemplateProblem {
    /// Several lines: the location and message, the source line with a
    /// caret, and the help.
    pub(crate) fn detailed(&self) -> String {
        let mut s = format!("{}", self.file.display());
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
            if let Some((col, _)) = self.span {
                s.push_str(&format!(":{col}"));
            }
        }
        s.push_str(&format!(": {}", self.message));
        if let (Some(line), Some(text)) = (self.line, &self.source_line) {
            let gutter = line.to_string().len();
            s.push_str(&format!("\n{:gutter$} |\n{line} | {}", "", text.trim_end()));
            if let Some((col, width)) = self.span {
                s.push_str(&format!(
                    "\n{:gutter$} | {}{}",
                    "",
                    " ".repeat(col.saturating_sub(1)),
                    "^".repeat(width.max(1))
                ));
            }
        }
        if let Some(help) = &self.help {
            s.push_str(&format!("\n  help: {help}"));
        }
        s
    }
}

/// The problem minijinja reported for template `name` (or the template the
/// error names, for an include), located in `source_of(name)`.
pub(crate) fn from_minijinja(
    templates: &std::path::Path,
    name: &str,
    e: &minijinja::Error,
    source_of: &dyn Fn(&str) -> Option<String>,
    known_templates: &dyn Fn() -> Vec<String>,
) -> TemplateProblem {
    use minijinja::ErrorKind;
    let file_name = e.name().unwrap_or(name).to_string();
    let source = source_of(&file_name);
    let line = e.line();
    let source_line = match (&source, line) {
        (Some(src), Some(l)) => src.lines().nth(l - 1).map(str::to_string),
        _ => None,
    };
    // The range is in bytes of the whole source; the caret goes under the
    // part of it on the reported line.
    let at_fault = match (&source, e.range()) {
        (Some(src), Some(r))
            if r.end <= src.len()
                && src.is_char_boundary(r.start)
                && src.is_char_boundary(r.end) =>
        {
            // minijinja's span of a lookup starts at its `.`: the part at
            // fault is the whole dotted name.
            let start = if src[r.start..].starts_with('.') {
                src[..r.start]
                    .char_indices()
                    .rev()
                    .take_while(|(_, c)| c.is_alphanumeric() || matches!(c, '_' | '.'))
                    .last()
                    .map_or(r.start, |(i, _)| i)
            } else {
                r.start
            };
            // An undefined value piped through a filter (`page.nosuch |
            // upper`): minijinja's span is the filter's, but what is at
            // fault is the value before the `|`.
            let (start, end) = match piped_value(src, start) {
                Some(value) if e.kind() == ErrorKind::UndefinedError => value,
                _ => (start, r.end),
            };
            Some((src.as_str(), start..end))
        }
        _ => None,
    };
    let span = at_fault.as_ref().map(|(src, r)| {
        let line_start = src[..r.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[r.start..].find('\n').map_or(src.len(), |i| r.start + i);
        let col = src[line_start..r.start].chars().count() + 1;
        let width = src[r.start..r.end.min(line_end)].chars().count();
        (col, width)
    });
    let expr = at_fault.map(|(src, r)| src[r].trim().to_string());
    let detail = e.detail().unwrap_or_default().to_string();
    let (message, help) = match e.kind() {
        ErrorKind::UnknownFilter => {
            let filter = quoted_word(&detail).unwrap_or_else(|| expr.clone().unwrap_or_default());
            (
                format!("unknown filter `{filter}`"),
                Some("filters are minijinja's built-ins (upper, length, default, join, …) and kiln's `markdown` and `reading_minutes`".into()),
            )
        }
        ErrorKind::UnknownTest => (
            format!(
                "unknown test `{}`",
                quoted_word(&detail).unwrap_or_default()
            ),
            None,
        ),
        ErrorKind::UnknownFunction => (
            format!(
                "unknown function `{}`",
                quoted_word(&detail).unwrap_or_default()
            ),
            None,
        ),
        ErrorKind::UndefinedError => match expr.as_deref() {
            Some(expr) if !expr.is_empty() => {
                // `page.nothere.deeper`: the undefined part is the one before
                // the last lookup.
                let undefined = expr
                    .rsplit_once('.')
                    .map(|(head, _)| head)
                    .filter(|h| !h.is_empty())
                    .unwrap_or(expr);
                (
                    format!(
                        "`{expr}` looks up a field of an undefined value (`{undefined}` is not defined)"
                    ),
                    Some(format!(
                        "check the name, or guard it: {{% if {undefined} %}}…{{% endif %}}"
                    )),
                )
            }
            _ => ("undefined value".into(), None),
        },
        ErrorKind::TemplateNotFound => {
            let missing = detail
                .split('"')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| detail.clone());
            let close = closest(&missing, &known_templates());
            (
                format!("no template `{missing}` in `{}`", templates.display()),
                Some(match close {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "templates are named by their path under the templates directory, like `partials/nav.html`".into(),
                }),
            )
        }
        ErrorKind::SyntaxError => {
            // `unknown statement endblock` where an `{% endif %}` was due, or
            // the end of input inside a block: find the block left open.
            // `unknown statement endiff` is a typo, said as one.
            let unknown = detail
                .strip_prefix("unknown statement ")
                .map(|w| w.trim().to_string());
            let ends_known_block = unknown
                .as_deref()
                .and_then(|w| w.strip_prefix("end"))
                .is_some_and(|b| BLOCKS.contains(&b) || b == "set");
            if let (Some(word), false) = (&unknown, ends_known_block) {
                let statements: Vec<String> = STATEMENTS.iter().map(|s| s.to_string()).collect();
                return TemplateProblem {
                    file: templates.join(&file_name),
                    line,
                    span,
                    source_line,
                    message: format!("unknown tag `{{% {word} %}}`"),
                    help: closest(word, &statements)
                        .map(|c| format!("did you mean `{{% {c} %}}`?")),
                    subject: None,
                };
            }
            let open = if ends_known_block || detail.contains("unexpected end of input") {
                source.as_deref().and_then(unclosed_block)
            } else {
                None
            };
            match open {
                Some(open) => {
                    return TemplateProblem {
                        file: templates.join(&file_name),
                        line: Some(open.line),
                        span: Some((open.column, open.width)),
                        source_line: source
                            .as_deref()
                            .and_then(|s| s.lines().nth(open.line - 1))
                            .map(str::to_string),
                        message: format!(
                            "`{{% {} %}}` is never closed{}",
                            open.name,
                            match (open.closed_by, line) {
                                (Some((other, at)), _) =>
                                    format!(": `{{% {other} %}}` on line {at} comes first"),
                                (None, _) => " before the end of the template".to_string(),
                            }
                        ),
                        help: Some(format!(
                            "add `{{% end{} %}}` where the {} ends",
                            open.name, open.name
                        )),
                        subject: None,
                    };
                }
                None => (format!("syntax error: {detail}"), None),
            }
        }
        kind => (
            if detail.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}: {detail}")
            },
            None,
        ),
    };
    TemplateProblem {
        file: templates.join(&file_name),
        line,
        span,
        source_line,
        message,
        help,
        subject: expr,
    }
}

/// The expression piped into the filter whose name starts at `at`, as a
/// byte range: `page.nosuch` in `{{ page.nosuch | upper }}`. `None` when
/// no `|` comes before it.
fn piped_value(src: &str, at: usize) -> Option<(usize, usize)> {
    let before = src[..at].trim_end();
    let before = before.strip_suffix('|')?.trim_end();
    let end = before.len();
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '"' | '\''))
        .last()
        .map(|(i, _)| i)?;
    (start < end).then_some((start, end))
}

/// The first word in backquotes or quotes, or the word after "filter"/"test"
/// in minijinja's details (`filter nosuchfilter is unknown`).
fn quoted_word(detail: &str) -> Option<String> {
    let mut words = detail.split_whitespace();
    while let Some(w) = words.next() {
        if matches!(w, "filter" | "test" | "function") {
            return words
                .next()
                .map(|n| n.trim_matches(['"', '`', '\'']).to_string());
        }
    }
    None
}

/// The known name nearest to `wanted` (edit distance at most 2, or one
/// being the other without its extension).
fn closest(wanted: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A block tag left open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OpenBlock {
    /// `if`, `for`, `block`, …
    pub(crate) name: String,
    /// Where it opened (1-based line and column, width of the tag).
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) width: usize,
    /// The closing tag met while it was open, and its line.
    pub(crate) closed_by: Option<(String, usize)>,
}

/// Block tags that need an `end…`.
const BLOCKS: &[&str] = &[
    "if",
    "for",
    "block",
    "macro",
    "call",
    "filter",
    "with",
    "autoescape",
    "raw",
];

/// Every statement minijinja knows, for did-you-mean.
const STATEMENTS: &[&str] = &[
    "if",
    "elif",
    "else",
    "endif",
    "for",
    "endfor",
    "block",
    "endblock",
    "extends",
    "include",
    "import",
    "from",
    "set",
    "endset",
    "macro",
    "endmacro",
    "call",
    "endcall",
    "filter",
    "endfilter",
    "with",
    "endwith",
    "autoescape",
    "endautoescape",
    "raw",
    "endraw",
    "break",
    "continue",
    "do",
];

/// Scans `{% … %}` tags for the innermost block left open: the first
/// `end…` that does not match the open block, or what is open at the end.
pub(crate) fn unclosed_block(source: &str) -> Option<OpenBlock> {
    let mut stack: Vec<OpenBlock> = Vec::new();
    let mut rest = source;
    let mut offset = 0;
    while let Some(start) = rest.find("{%") {
        let tag_start = offset + start;
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        let inner = after[..end].trim_matches(['-', '+', ' ', '\t', '\n', '\r']);
        let word = inner.split_whitespace().next().unwrap_or("");
        let tag_len = 2 + end + 2;
        let line = source[..tag_start].matches('\n').count() + 1;
        let column = source[..tag_start]
            .rsplit('\n')
            .next()
            .map_or(0, |l| l.chars().count())
            + 1;
        if stack.last().is_some_and(|b| b.name == "raw") && word != "endraw" {
            // Nothing inside raw is a tag.
        } else if BLOCKS.contains(&word) {
            stack.push(OpenBlock {
                name: word.to_string(),
                line,
                column,
                width: source[tag_start..tag_start + tag_len].chars().count(),
                closed_by: None,
            });
        } else if word == "set" && !inner.contains('=') {
            // `{% set x %}…{% endset %}`
            stack.push(OpenBlock {
                name: "set".into(),
                line,
                column,
                width: source[tag_start..tag_start + tag_len].chars().count(),
                closed_by: None,
            });
        } else if let Some(closed) = word.strip_prefix("end") {
            match stack.pop() {
                Some(open) if open.name == closed => {}
                Some(mut open) => {
                    open.closed_by = Some((word.to_string(), line));
                    return Some(open);
                }
                None => {}
            }
        }
        offset = tag_start + tag_len;
        rest = &source[offset..];
    }
    stack.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclosed_if_is_found_where_it_opens() {
        let src = "{% extends \"base.html\" %}\n{% block content %}\n  {% if page.draft %}<b>draft</b>\n<p>x</p>\n{% endblock %}\n";
        let open = unclosed_block(src).unwrap();
        assert_eq!(open.name, "if");
        assert_eq!((open.line, open.column), (3, 3));
        assert_eq!(open.closed_by, Some(("endblock".into(), 5)));
        assert_eq!(
            unclosed_block("{% if a %}{% for x in y %}{% endfor %}{% endif %}"),
            None
        );
        assert_eq!(unclosed_block("{% raw %}{% if %}{% endraw %}"), None);
        assert_eq!(
            unclosed_block("{% set x = 1 %}{% if a %}").unwrap().name,
            "if"
        );
    }

    #[test]
    fn the_nearest_template_name_is_suggested() {
        let known = vec!["base.html".to_string(), "post.html".to_string()];
        assert_eq!(closest("bse.html", &known).as_deref(), Some("base.html"));
        assert_eq!(closest("zzz.html", &known), None);
    }

    fn problem(template: &str, ctx: minijinja::Value) -> TemplateProblem {
        let mut env = minijinja::Environment::new();
        env.add_template("t.html", template).unwrap();
        let err = env.get_template("t.html").unwrap().render(ctx).unwrap_err();
        let src = template.to_string();
        from_minijinja(
            std::path::Path::new("templates"),
            "t.html",
            &err,
            &|_| Some(src.clone()),
            &|| vec!["base.html".into()],
        )
    }

    #[test]
    fn runtime_errors_name_the_thing_and_point_at_it() {
        let p = problem(
            "<h1>\n  {{ page.title | nosuchfilter }}</h1>",
            minijinja::context! { page => minijinja::context!{ title => "x" } },
        );
        assert_eq!(p.message, "unknown filter `nosuchfilter`");
        assert_eq!(p.line, Some(2));
        insta::assert_snapshot!("unknown_filter", p.detailed());
        let p = problem(
            "<p>{{ page.nothere.deeper }}</p>",
            minijinja::context! { page => minijinja::context!{ title => "x" } },
        );
        assert!(
            p.message.contains("`page.nothere` is not defined"),
            "{}",
            p.message
        );
        insta::assert_snapshot!("undefined_lookup", p.detailed());
        let p = problem("{% extends \"bse.html\" %}", minijinja::context! {});
        assert_eq!(p.message, "no template `bse.html` in `templates`");
        assert_eq!(p.help.as_deref(), Some("did you mean `base.html`?"));
    }
}
