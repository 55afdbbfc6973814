//! Publishing to S3-compatible object storage against a real server
//! (`s3s-fs`, an S3 implementation over a directory, started by the test).

use std::path::PathBuf;
use std::time::Duration;

use rusty_s3::S3Action;

use crate::require;
use crate::util::{Origin, Page, TestSite, free_port, wait_for_port, wait_until};

pub(crate) struct S3Server {
    child: tokio::process::Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl S3Server {
    pub(crate) async fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = spawn_s3s(port, dir.path()).await;
        S3Server { child, port, dir }
    }

    pub(crate) fn object(&self, key: &str) -> PathBuf {
        self.dir.path().join("kiln").join(key)
    }

    /// GETs an object through the S3 API: (content type, bytes).
    async fn get(&self, key: &str) -> (String, Vec<u8>) {
        let r = signed_get(self.port, key).await;
        assert!(r.status().is_success(), "GET {key}: {}", r.status());
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        (ct, r.bytes().await.unwrap().to_vec())
    }
}

/// Starts s3s-fs on loopback `port` over `dir` (with an empty `kiln`
/// bucket, kept if it is there) and the test credentials, and waits until
/// it accepts connections.
pub(crate) async fn spawn_s3s(port: u16, dir: &std::path::Path) -> tokio::process::Child {
    std::fs::create_dir_all(dir.join("kiln")).unwrap();
    let child = tokio::process::Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "test-key", "--secret-key", "test-secret"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port, "s3s-fs").await;
    child
}

/// GETs `key` of the test bucket through the S3 API of the server on
/// `port`, signed with the test credentials.
pub(crate) async fn signed_get(port: u16, key: &str) -> reqwest::Response {
    let bucket = rusty_s3::Bucket::new(
        format!("http://127.0.0.1:{port}").parse().unwrap(),
        rusty_s3::UrlStyle::Path,
        "kiln",
        "us-east-1",
    )
    .unwrap();
    let creds = rusty_s3::Credentials::new("test-key", "test-secret");
    let url = bucket
        .get_object(Some(&creds), key)
        .sign(Duration::from_secs(60));
    reqwest::get(url).await.unwrap()
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn env(cmd: &mut tokio::process::Command) {
    cmd.env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret");
}

async fn kiln_with_creds(site: &TestSite, args: &[&str]) -> crate::util::Run {
    let mut c = site.command(args);
    env(&mut c);
    let out = c.output().await.unwrap();
    crate::util::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_mirrors_the_output_with_content_types_and_no_needless_uploads() {
    require!("s3s-fs");
    let s3 = S3Server::start().await;
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/p/1/\">1</a><a href=\"/p/2/\">2</a><link rel=\"alternate\" href=\"/feed.xml\"><a href=\"/comments/\">c</a>")),
        ("/p/1/", Page::html("<p>one</p>")),
        // Served from the typed tree locally; its own name in the bucket.
        ("/comments/", Page::html("[1]").typed("application/json")),
        ("/p/2/", Page::html("<p>two</p>")),
        ("/feed.xml", Page::html("<rss/>").typed("application/rss+xml")),
    ])
    .await;
    let site = TestSite::for_origin(
        &origin,
        &format!(
            "[[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nprefix = \"site\"\nendpoint = \"http://127.0.0.1:{}\"\ncache-control = \"public, max-age=60\"\n[daemon]\ndebounce = \"20ms\"\n",
            s3.port
        ),
    );
    // Without credentials the pages are baked, the bucket is not, and the
    // run says so and exits 1; the changes wait in the outbox.
    let run = site.kiln(&["build"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", run.all());
    assert_eq!(site.read("p/1/index.html").unwrap(), "<p>one</p>");
    let run = kiln_with_creds(&site, &["publish"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("5 uploaded, 0 unchanged, 0 deleted"),
        "{}",
        run.all()
    );
    // The bucket equals the output: keys, bytes, content types (a page in
    // the typed tree under its own name).
    assert!(site.file(".kiln-typed/json/comments/index.html").exists());
    for f in site.files() {
        let key = f.strip_prefix(".kiln-typed/json/").unwrap_or(&f);
        let (ct, bytes) = s3.get(&format!("site/{key}")).await;
        assert_eq!(bytes, std::fs::read(site.file(&f)).unwrap(), "{f}");
        let want = match key {
            "feed.xml" => "application/rss+xml",
            "comments/index.html" => "application/json",
            _ => "text/html; charset=utf-8",
        };
        assert_eq!(ct, want, "{f}");
    }
    // Redirects are listed for the CDN in front of the bucket.
    let (ct, listing) = s3.get("site/_kiln/redirects.json").await;
    assert_eq!(
        (ct.as_str(), listing.as_slice()),
        ("application/json", &b"[]"[..])
    );
    // Nothing changed: nothing uploaded. An object no page has: deleted.
    std::fs::write(s3.object("site/stale.html"), "old").unwrap();
    let run = kiln_with_creds(&site, &["publish"]).await;
    assert!(
        run.stdout.contains("0 uploaded, 5 unchanged, 1 deleted"),
        "{}",
        run.all()
    );
    assert!(!s3.object("site/stale.html").exists());

    // The daemon mirrors each change: a new body is uploaded, a gone page deleted.
    let mut cmd = site.command(&["daemon", "--listen", "127.0.0.1:0"]);
    env(&mut cmd);
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let http = lines
        .next_line()
        .await
        .unwrap()
        .unwrap()
        .replace("kiln daemon listening on ", "");
    origin.set("/p/1/", Page::html("<p>one, edited</p>"));
    origin.remove("/p/2/");
    let r = reqwest::Client::new()
        .post(format!("{http}/v1/regen"))
        .header("content-type", "application/json")
        .body(r#"{"targets": ["/p/1/", "/p/2/"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    wait_until(Duration::from_secs(15), "the bucket to follow", || async {
        std::fs::read_to_string(s3.object("site/p/1/index.html"))
            .ok()
            .as_deref()
            == Some("<p>one, edited</p>")
            && !s3.object("site/p/2/index.html").exists()
    })
    .await;
    let status: serde_json::Value = reqwest::get(format!("{http}/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["outputs"]["publish_failed"], 0, "{status}");
    let _ = child.start_kill();
}

#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_says_what_it_would_do_keeps_strays_when_asked_and_can_force() {
    require!("s3s-fs");
    let s3 = S3Server::start().await;
    let pages = crate::util::linked_site(60);
    let origin = Origin::start(pages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()).await;
    let site = TestSite::for_origin(
        &origin,
        &format!(
            "[[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nprefix = \"site\"\nendpoint = \"http://127.0.0.1:{}\"\nconcurrency = 8\n",
            s3.port
        ),
    );
    // Baked without credentials: nothing in the bucket yet.
    assert_eq!(site.kiln(&["build"]).await.code, 1);
    let files = site.files().len();
    assert_eq!(files, 61);
    let dry = kiln_with_creds(&site, &["publish", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout
            .contains("(dry run): 61 to upload, 0 unchanged, 0 to delete"),
        "{}",
        dry.all()
    );
    assert!(
        dry.stdout.contains("upload site/index.html"),
        "{}",
        dry.all()
    );
    assert!(
        !s3.object("site/index.html").exists(),
        "a dry run uploads nothing"
    );
    // A stray object no page has.
    std::fs::create_dir_all(s3.object("site")).unwrap();
    std::fs::write(s3.object("site/stray.html"), "old").unwrap();
    let run = kiln_with_creds(&site, &["publish", "--no-delete"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("61 uploaded, 0 unchanged, 0 deleted"),
        "{}",
        run.all()
    );
    assert!(
        s3.object("site/stray.html").exists(),
        "--no-delete keeps it"
    );
    for f in site.files() {
        assert_eq!(
            std::fs::read(s3.object(&format!("site/{f}"))).unwrap(),
            std::fs::read(site.file(&f)).unwrap(),
            "{f}"
        );
    }
    let dry = kiln_with_creds(&site, &["publish", "--dry-run"]).await;
    assert!(
        dry.stdout
            .contains("0 to upload, 61 unchanged, 1 to delete"),
        "{}",
        dry.all()
    );
    assert!(
        dry.stdout.contains("delete site/stray.html"),
        "{}",
        dry.all()
    );
    let run = kiln_with_creds(&site, &["publish"]).await;
    assert!(
        run.stdout.contains("0 uploaded, 61 unchanged, 1 deleted"),
        "{}",
        run.all()
    );
    assert!(!s3.object("site/stray.html").exists());
    let run = kiln_with_creds(&site, &["publish", "--force"]).await;
    assert!(
        run.stdout.contains("61 uploaded, 0 unchanged, 0 deleted"),
        "{}",
        run.all()
    );
    // Metadata is part of what is published: a new `cache-control` sends
    // every object again (their content did not change), once.
    let toml = std::fs::read_to_string(site.path().join("site.toml")).unwrap();
    std::fs::write(
        site.path().join("site.toml"),
        toml.replace(
            "concurrency = 8\n",
            "concurrency = 8\ncache-control = \"public, max-age=60\"\n",
        ),
    )
    .unwrap();
    let run = kiln_with_creds(&site, &["publish"]).await;
    assert!(
        run.stdout.contains("cache-control changed")
            && run.stdout.contains("61 uploaded, 0 unchanged, 0 deleted"),
        "{}",
        run.all()
    );
    let object = signed_get(s3.port, "site/p/7/index.html").await;
    assert_eq!(object.headers()["cache-control"], "public, max-age=60");
    let run = kiln_with_creds(&site, &["publish"]).await;
    assert!(
        run.stdout.contains("0 uploaded, 61 unchanged, 0 deleted"),
        "{}",
        run.all()
    );
}

/// `kiln publish` has the mass-delete guard too: an output of two pages
/// against a bucket of 40 other objects (a wrong prefix, an output built
/// elsewhere) uploads its pages, deletes nothing and exits 1 with the
/// reason; `--allow-mass-delete` is the consent.
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_keeps_a_bucket_it_would_mostly_delete() {
    require!("s3s-fs");
    let s3 = S3Server::start().await;
    let origin = Origin::start(vec![
        ("/", Page::html("<a href=\"/p/1/\">1</a>")),
        ("/p/1/", Page::html("<p>one</p>")),
    ])
    .await;
    let site = TestSite::for_origin(
        &origin,
        &format!(
            "[[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nprefix = \"site\"\nendpoint = \"http://127.0.0.1:{}\"\n",
            s3.port
        ),
    );
    let run = kiln_with_creds(&site, &["build"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    for n in 0..40 {
        let object = s3.object(&format!("site/other/{n}.html"));
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::write(object, format!("other {n}")).unwrap();
    }
    let run = kiln_with_creds(&site, &["publish"]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains("nothing was deleted") && run.all().contains("--allow-mass-delete"),
        "{}",
        run.all()
    );
    assert!(s3.object("site/other/7.html").exists(), "kept");
    let run = kiln_with_creds(&site, &["publish", "--allow-mass-delete"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("40 deleted"), "{}", run.all());
    assert!(!s3.object("site/other/7.html").exists());
    assert_eq!(s3.get("site/p/1/index.html").await.1, b"<p>one</p>");
}

/// S3 refusals and outages are said with S3's own error code and the
/// bucket, and never with the request's presigned URL (it carries the
/// access key id and a signature) — in the output and in the logs.
#[cfg_attr(
    kiln_no_s3s,
    ignore = "s3s-fs is not on PATH: cargo install s3s-fs --features binary (bash .ci/run does)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_errors_name_the_code_and_bucket_and_never_the_signed_url() {
    require!("s3s-fs");
    let s3 = S3Server::start().await;
    let origin = Origin::start(vec![("/", Page::html("<p>home</p>"))]).await;
    let toml = |port: u16| {
        format!(
            "[[publish]]\nkind = \"s3\"\nbucket = \"kiln\"\nendpoint = \"http://127.0.0.1:{port}\"\n"
        )
    };
    let site = TestSite::for_origin(&origin, &toml(s3.port));
    assert_eq!(site.kiln(&["build"]).await.code, 1);
    let leaks = |text: &str| {
        [
            "X-Amz-Signature",
            "X-Amz-Credential",
            "test-key",
            "wrong-key",
        ]
        .iter()
        .any(|secret| text.contains(secret))
    };
    // A wrong key: S3's code and the bucket.
    let mut c = site.command(&["publish"]);
    c.env("AWS_ACCESS_KEY_ID", "wrong-key")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret");
    let out = c.output().await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("in bucket `kiln`"), "{text}");
    // s3s-fs says NotSignedUp; AWS, InvalidAccessKeyId: S3's own words.
    assert!(
        text.contains("LIST `*` in bucket `kiln` failed: 403 Forbidden: "),
        "{text}"
    );
    assert!(text.contains("NotSignedUp ("), "{text}");
    assert!(!leaks(&text), "a secret in the output: {text}");
    // S3 down: the transport error, still no URL.
    let down = TestSite::for_origin(&origin, &toml(free_port()));
    assert_eq!(down.kiln(&["build"]).await.code, 1);
    let run = kiln_with_creds(&down, &["publish"]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("in bucket `kiln` failed"),
        "{}",
        run.all()
    );
    assert!(!leaks(&run.all()), "a secret in the output: {}", run.all());
}
