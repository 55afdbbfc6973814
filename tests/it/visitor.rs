//! What a visitor sees: the request referee's requests and answers
//! (guarantee 12, docs/architecture.md), shared by the referees of each
//! real app. A request goes through nginx and straight to the app with the
//! same Host and headers; status, media type, `Location` and the decoded
//! body are what is compared.

use std::io::Read;
use std::time::Duration;

use crate::util::wait_until;

/// `KILN_REQUEST_SEEDS` ("1-50", "3,7,9"), else 1-3.
pub(crate) fn seeds() -> Vec<u64> {
    let spec = std::env::var("KILN_REQUEST_SEEDS").unwrap_or_else(|_| "1-3".into());
    spec.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().unwrap()..=b.trim().parse().unwrap()).collect(),
            None => vec![part.trim().parse::<u64>().unwrap()],
        })
        .collect()
}

/// One request of the corpus.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    pub(crate) head: bool,
    pub(crate) path: String,
    pub(crate) gzip: bool,
    pub(crate) cookie: Option<String>,
}

/// What a visitor sees of an answer.
#[derive(Debug, PartialEq)]
pub(crate) struct Seen {
    pub(crate) status: u16,
    pub(crate) media: String,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

/// What a visitor sees, and whether nginx served it from a baked file.
pub(crate) async fn see(http: &reqwest::Client, base: &str, host: &str, ask: &Ask) -> (Seen, bool) {
    let method = if ask.head {
        reqwest::Method::HEAD
    } else {
        reqwest::Method::GET
    };
    let mut r = http
        .request(method, format!("{base}{}", ask.path))
        .header("host", host)
        .header(
            "accept-encoding",
            if ask.gzip { "gzip" } else { "identity" },
        );
    if let Some(c) = &ask.cookie {
        r = r.header("cookie", c);
    }
    let resp = r.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = resp.status().as_u16();
    let media = header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let location = header("location");
    let from_disk = header("x-kiln").is_some_and(|v| v == "static");
    let gzipped = header("content-encoding").is_some_and(|e| e == "gzip");
    let bytes = resp.bytes().await.unwrap().to_vec();
    let body = if gzipped {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    };
    let seen = Seen {
        status,
        media,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    (seen, from_disk)
}

/// `a` from a little before where it first differs from `b`.
pub(crate) fn around_difference(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    a.get(at.saturating_sub(60)..)
        .unwrap_or(a)
        .chars()
        .take(140)
        .collect::<String>()
        .replace('\n', "⏎")
}

/// Nothing queued, resolving, baking or journaled in the daemon.
pub(crate) async fn quiet(http: &reqwest::Client, daemon: &str) {
    wait_until(Duration::from_secs(60), "the daemon to be idle", || async {
        let Ok(r) = http.get(format!("{daemon}/v1/status")).send().await else {
            return false;
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        [
            "pending_urls",
            "in_flight_urls",
            "resolving_requests",
            "journal_entries",
            "queue_depth",
        ]
        .iter()
        .all(|k| v[k] == 0)
    })
    .await;
}

/// The request the app answers for `path`: without its tracking
/// parameters, which kiln ignores (guarantee 6: the page is the same with
/// or without them; an app that echoes them into its links, as
/// WordPress's pagination does, is answered with the page it links from).
pub(crate) fn without_tracking(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !(name.starts_with("utm_") || ["fbclid", "gclid", "msclkid"].contains(&name))
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// One request through nginx (`through`) and straight to the app
/// (`app`): both answers, and whether nginx's came from a baked file. A
/// baked file answers for the request without its tracking parameters
/// (guarantee 6); what nginx passes on, the app answers as asked.
pub(crate) async fn both_ways(
    http: &reqwest::Client,
    through: &str,
    app: &str,
    host: &str,
    ask: &Ask,
) -> (Seen, Seen, bool) {
    let (via_nginx, baked) = see(http, through, host, ask).await;
    let app_ask = Ask {
        path: if baked {
            without_tracking(&ask.path)
        } else {
            ask.path.clone()
        },
        ..ask.clone()
    };
    let (direct, _) = see(http, app, host, &app_ask).await;
    (via_nginx, direct, baked)
}

/// A request and both answers, for a mismatch report: the answers from
/// where they first differ, the app named by `app`.
pub(crate) fn describe(app: &str, ask: &Ask, through: &Seen, direct: &Seen) -> String {
    format!(
        "{} {}{}{}\n  {:<10} {} {} {:?} …{}\n  {:<10} {} {} {:?} …{}",
        if ask.head { "HEAD" } else { "GET" },
        ask.path,
        if ask.gzip { " gzip" } else { "" },
        ask.cookie
            .as_deref()
            .map(|c| format!(" cookie {}", c.split('=').next().unwrap_or("")))
            .unwrap_or_default(),
        "nginx:",
        through.status,
        through.media,
        through.location,
        around_difference(&through.body, &direct.body),
        format!("{app}:"),
        direct.status,
        direct.media,
        direct.location,
        around_difference(&direct.body, &through.body),
    )
}

/// What a request referee saw over its seeds.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    compared: usize,
    from_disk: usize,
    mismatches: Vec<String>,
}

impl Tally {
    /// Sends each request of `asks` through nginx (`through`) and straight
    /// to the app (`app_url`), `at_once` at a time; a request whose answers
    /// differ, or a visitor with cookies who got a baked file, is a
    /// mismatch, reported with `context` (the seed and its edits).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn ask(
        &mut self,
        http: &reqwest::Client,
        through: &str,
        (app, app_url): (&str, &str),
        host: &str,
        asks: Vec<Ask>,
        at_once: usize,
        context: &str,
    ) {
        use futures_util::StreamExt;
        let answers: Vec<(Ask, Seen, Seen, bool)> = futures_util::stream::iter(asks)
            .map(|ask| async move {
                let (via_nginx, direct, baked) =
                    both_ways(http, through, app_url, host, &ask).await;
                (ask, via_nginx, direct, baked)
            })
            .buffered(at_once)
            .collect()
            .await;
        for (ask, through, direct, baked) in answers {
            self.compared += 1;
            self.from_disk += usize::from(baked);
            if ask.cookie.is_some() && baked {
                self.mismatches.push(format!(
                    "{context}: a visitor with cookies got a baked file: {}",
                    describe(app, &ask, &through, &direct)
                ));
            } else if through != direct {
                self.mismatches.push(format!(
                    "{context}: {}",
                    describe(app, &ask, &through, &direct)
                ));
            }
        }
    }

    /// Says the totals, then fails unless at least one answer in
    /// `one_in` came from a baked file and no request differed.
    pub(crate) fn assert_clean(&self, app: &str, one_in: usize) {
        let Tally {
            compared,
            from_disk,
            mismatches,
        } = self;
        eprintln!(
            "request referee, {app}: {compared} requests over {} seeds ({from_disk} served from baked files), {} mismatches",
            seeds().len(),
            mismatches.len()
        );
        assert!(
            *from_disk > compared / one_in,
            "most answers came from {app}: {from_disk} of {compared} from disk"
        );
        assert!(
            mismatches.is_empty(),
            "{} of {compared} requests differ:\n{}",
            mismatches.len(),
            mismatches
                .iter()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
