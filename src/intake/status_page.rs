//! The daemon's read-only status page (`GET /status`, behind the same token
//! as the API): the backlog, the outputs, the fleet as Redis sees it, the
//! last jobs and the failing pages, as one small HTML document that
//! refreshes itself. Everything shown is escaped: dead-letter reasons and
//! targets are whatever producers sent.

use std::fmt::Write as _;

/// HTML-escapes text for an element or a quoted attribute.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the page shows.
pub(crate) struct StatusView<'a> {
    /// `/v1/status`'s JSON (pages, backlog, outputs, redis).
    pub(crate) status: &'a serde_json::Value,
    /// The fleet, or why it could not be read; `None` without Redis.
    pub(crate) fleet: Option<Result<&'a crate::fleet::Fleet, &'a str>>,
    /// The most recent jobs, newest first.
    pub(crate) jobs: &'a [crate::schedule::JobInfo],
    /// Failing pages: URL, status, error.
    pub(crate) problems: &'a [(String, String, String)],
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;max-width:72rem}\
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #eee;vertical-align:top}\
th{font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#a00}.ok{color:#070}\
code{font-size:12px;word-break:break-all}@media(max-width:40rem){body{margin:.6rem}td,th{padding:.15rem .3rem}}";

fn row(out: &mut String, cells: &[String]) {
    out.push_str("<tr>");
    for c in cells {
        out.push_str(c);
    }
    out.push_str("</tr>");
}

fn td(s: impl std::fmt::Display) -> String {
    format!("<td>{}</td>", escape(&s.to_string()))
}

fn num(v: &serde_json::Value) -> String {
    format!("<td class=n>{}</td>", escape(&v.to_string()))
}

/// The page.
pub(crate) fn render(view: &StatusView<'_>) -> String {
    let s = view.status;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><meta http-equiv=refresh content=5><title>kiln status</title><style>{STYLE}</style></head><body><h1>kiln daemon, PID {}</h1>",
        escape(&s["daemon"]["pid"].to_string())
    );

    out.push_str("<h2>Backlog</h2><table id=backlog>");
    for (label, key) in [
        ("URLs pending", "pending_urls"),
        ("URLs in flight", "in_flight_urls"),
        ("URLs retrying after a failure", "retrying_urls"),
        ("spool files waiting", "queue_depth"),
        ("accepted HTTP requests not done", "journal_entries"),
    ] {
        row(&mut out, &[td(label), num(&s[key])]);
    }
    out.push_str("</table>");

    out.push_str("<h2>Pages</h2><table id=pages>");
    if let Some(pages) = s["pages"].as_object() {
        for (status, n) in pages {
            row(&mut out, &[td(status), num(n)]);
        }
    }
    out.push_str("</table>");

    if let Some(outputs) = s["outputs"].as_object() {
        out.push_str("<h2>Outputs</h2><table id=outputs>");
        for (kind, n) in outputs {
            row(&mut out, &[td(kind.replace('_', " ")), num(n)]);
        }
        out.push_str("</table>");
    }

    match &view.fleet {
        None => {}
        Some(Err(why)) => {
            let _ = write!(
                out,
                "<h2>Fleet</h2><p class=bad id=fleet>{}</p>",
                escape(why)
            );
        }
        Some(Ok(fleet)) => fleet_section(&mut out, fleet),
    }

    out.push_str("<h2>Last jobs</h2><table id=jobs><tr><th>job</th><th>state</th><th>targets</th><th>done</th><th>failed</th></tr>");
    for j in view.jobs {
        let failed = j.report.tally.failed.len();
        let targets = crate::text::excerpt(&j.targets.join(" "), 200);
        row(
            &mut out,
            &[
                td(j.id),
                td(serde_json::to_value(j.state)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")),
                format!("<td><code>{}</code></td>", escape(&targets)),
                td(format!("{} of {}", j.done, j.report.urls)),
                format!(
                    "<td class={}>{failed}</td>",
                    if failed > 0 { "bad" } else { "ok" }
                ),
            ],
        );
    }
    out.push_str("</table>");

    out.push_str("<h2>Failing pages</h2><table id=failures>");
    if view.problems.is_empty() {
        out.push_str("<tr><td class=ok>none</td></tr>");
    }
    for (url, status, error) in view.problems {
        row(
            &mut out,
            &[
                format!("<td><code>{}</code></td>", escape(url)),
                td(status),
                td(crate::text::excerpt(error, 300)),
            ],
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

fn fleet_section(out: &mut String, fleet: &crate::fleet::Fleet) {
    let _ = write!(
        out,
        "<h2>Fleet</h2><p>Redis at <code>{}</code></p>",
        escape(&fleet.redis)
    );
    out.push_str("<table id=fleet><tr><th>stream</th><th>group</th><th>lag</th><th>pending</th><th>consumers (pending, last seen)</th></tr>");
    for view in [&fleet.events, &fleet.published].into_iter().flatten() {
        for g in &view.groups {
            let consumers: Vec<String> = g
                .consumers
                .iter()
                .map(|c| format!("{} ({}, {} ms ago)", c.name, c.pending, c.idle_ms))
                .collect();
            row(
                out,
                &[
                    td(&view.stream),
                    td(&g.name),
                    td(g.lag
                        .map_or_else(|| "unknown".to_string(), |l| l.to_string())),
                    td(g.pending),
                    td(consumers.join(", ")),
                ],
            );
        }
    }
    out.push_str("</table>");
    if !fleet.workers.is_empty() {
        out.push_str(
            "<table id=workers><tr><th>pool worker</th><th>outbox</th><th>heartbeat</th></tr>",
        );
        for w in &fleet.workers {
            row(
                out,
                &[
                    td(&w.name),
                    td(w.outbox),
                    td(format!("{} ms ago", w.seen_ms_ago)),
                ],
            );
        }
        out.push_str("</table>");
    }
    if let Some(d) = &fleet.dead {
        let _ = write!(
            out,
            "<table id=dead><tr><th colspan=3>dead letters in <code>{}</code>: {}</th></tr>",
            escape(&d.stream),
            d.length
        );
        for l in &d.last {
            row(out, &[td(&l.id), td(&l.host), td(&l.reason)]);
        }
        out.push_str("</table>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
