//! Publishing to S3-compatible object storage (`[[publish]] kind = "s3"`):
//! every page kiln writes or removes locally is mirrored to a bucket, with
//! the page's recorded `Content-Type` and a configurable `Cache-Control`.
//! What was uploaded is recorded (`published`: URL → key, content hash), so
//! incremental work never lists the bucket and never uploads an unchanged
//! page; `kiln publish` reconciles the whole bucket. The daemon (and a
//! one-shot run) publishes through the outbox ([`crate::output`]), which
//! retries in order across restarts. Requests are signed
//! with rusty-s3 (SigV4, credentials from the standard `AWS_*` variables) and
//! sent with kiln's HTTP client. The local page never depends on it.

use std::collections::BTreeSet;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::config::PublishS3;
use crate::index::Index;
use crate::write::WebRoot;

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Why a bucket operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    /// The bucket could not be described (endpoint, name).
    #[error("cannot use bucket `{bucket}` at {endpoint}: {message}")]
    Bucket {
        /// Bucket name.
        bucket: String,
        /// Endpoint.
        endpoint: String,
        /// What is wrong.
        message: String,
    },
    /// No credentials in the environment.
    #[error("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    NoCredentials,
    /// The request failed or was refused.
    #[error("{action} `{key}` in bucket `{bucket}` failed: {message}")]
    Request {
        /// PUT, DELETE, LIST.
        action: &'static str,
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The status and S3's error code and message, or the transport
        /// error: never the request's URL, which is presigned (it carries
        /// the access key id and a signature).
        message: String,
    },
    /// The page's file changed since its record was read (a newer bake is
    /// being recorded): published with that record, when it is.
    #[error(
        "`{0}` was baked again while it was being published; it is published with its new record"
    )]
    MovedOn(String),
    /// An upload task ended without an answer (it panicked).
    #[error("an upload task failed: {0}")]
    Task(String),
    /// The mass-delete guard kept the bucket's objects.
    #[error(
        "{bucket}: this would delete {count} of its {known} objects ({examples}), more than the limit of {limit} (`safety.max-delete-pages` / `safety.max-delete-percent`), so nothing was deleted (uploads are done). An output built elsewhere or a wrong prefix looks like this; if the objects really are stale, run again with --allow-mass-delete"
    )]
    MassDelete {
        /// `s3:<endpoint>/<bucket>/<prefix>`.
        bucket: String,
        /// Objects that would go.
        count: usize,
        /// Objects listed.
        known: usize,
        /// The limit that applied.
        limit: usize,
        /// A few of the keys.
        examples: String,
    },
}

/// One bucket kiln mirrors into.
#[derive(Debug, Clone)]
pub(crate) struct S3 {
    /// `s3:<endpoint>/<bucket>/<prefix>`: the key of this target's own
    /// record of what it holds (several targets never share one).
    id: String,
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    cache_control: String,
    client: reqwest::Client,
}

impl S3 {
    /// The bucket of a `[[publish]]` entry, with credentials from the environment.
    pub(crate) fn new(cfg: &PublishS3) -> Result<S3, PublishError> {
        let style = if cfg.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            cfg.endpoint.clone(),
            style,
            cfg.bucket.clone(),
            cfg.region.clone(),
        )
        .map_err(|e| PublishError::Bucket {
            bucket: cfg.bucket.clone(),
            endpoint: cfg.endpoint.to_string(),
            message: e.to_string(),
        })?;
        let key = std::env::var("AWS_ACCESS_KEY_ID").map_err(|_| PublishError::NoCredentials)?;
        let secret =
            std::env::var("AWS_SECRET_ACCESS_KEY").map_err(|_| PublishError::NoCredentials)?;
        let credentials = match std::env::var("AWS_SESSION_TOKEN") {
            Ok(token) => Credentials::new_with_token(key, secret, token),
            Err(_) => Credentials::new(key, secret),
        };
        Ok(S3 {
            id: format!("s3:{}/{}/{}", cfg.endpoint, cfg.bucket, cfg.prefix),
            bucket,
            credentials,
            prefix: cfg.prefix.clone(),
            cache_control: cfg.cache_control.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
        })
    }

    /// This target's identity in the index.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The object key of a file of the output: its path as the site has
    /// it (a page in the typed tree under its own name; the object's
    /// Content-Type says its type).
    pub(crate) fn key_of(&self, file: &str) -> String {
        let file = crate::urlmap::logical(std::path::Path::new(file));
        format!("{}{}", self.prefix, file.display())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), PublishError> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let resp = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CACHE_CONTROL, &self.cache_control)
            .body(bytes)
            .send()
            .await;
        self.check("PUT", key, resp).await
    }

    async fn delete(&self, key: &str) -> Result<(), PublishError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        self.check("DELETE", key, self.client.delete(url).send().await)
            .await
    }

    /// An object's bytes and type; `None` when the bucket has no such key.
    pub(crate) async fn get(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, PublishError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let err = |message: String| self.request_error("GET", key, message);
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| err(transport(e)))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(err(refusal(resp).await));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.map_err(|e| err(transport(e)))?;
        Ok(Some((bytes.to_vec(), content_type)))
    }

    /// The file of the output an object key stands for (`None`: not under
    /// this target's prefix).
    pub(crate) fn file_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())
    }

    /// Every key under the prefix, with its ETag (quotes removed).
    pub(crate) async fn list(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, PublishError> {
        let mut keys = std::collections::BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            if !self.prefix.is_empty() {
                action.with_prefix(self.prefix.clone());
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let keys_listed = format!("{}*", self.prefix);
            let err = |message: String| self.request_error("LIST", &keys_listed, message);
            let resp = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| err(transport(e)))?;
            if !resp.status().is_success() {
                return Err(err(refusal(resp).await));
            }
            let text = resp.text().await.map_err(|e| err(transport(e)))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| err(e.to_string()))?;
            keys.extend(page.contents.into_iter().map(|c| {
                let etag = c.etag.unwrap_or_default().trim_matches('"').to_string();
                (c.key, etag)
            }));
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(keys),
            }
        }
    }
}

/// Whether `bytes` are what an object with this ETag holds: the ETag of a
/// single-part upload is the MD5 of its bytes (`kiln publish` and the
/// mirror's bootstrap both compare this way).
pub(crate) fn etag_matches(bytes: &[u8], etag: &str) -> bool {
    use md5::Digest as _;
    let local = md5::Md5::digest(bytes);
    let hex: String = local.iter().map(|b| format!("{b:02x}")).collect();
    hex.eq_ignore_ascii_case(etag)
}

impl S3 {
    fn request_error(&self, action: &'static str, key: &str, message: String) -> PublishError {
        PublishError::Request {
            action,
            bucket: self.bucket.name().to_string(),
            key: key.to_string(),
            message,
        }
    }

    async fn check(
        &self,
        action: &'static str,
        key: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(), PublishError> {
        match resp {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(self.request_error(action, key, refusal(r).await)),
            Err(e) => Err(self.request_error(action, key, transport(e))),
        }
    }
}

/// A transport error without the request's presigned URL, with its causes
/// ("error sending request: connection refused").
fn transport(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An S3 refusal as its status and S3's own error code and message
/// (`403 Forbidden: InvalidAccessKeyId (The AWS Access Key Id you provided
/// does not exist in our records.)`), read from the first 16 KiB of the body.
async fn refusal(resp: reqwest::Response) -> String {
    let status = resp.status();
    let mut body = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 16 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(crate::text::excerpt(text[start..end].trim(), 200))
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{status}: {code} ({message})"),
        (Some(code), None) => format!("{status}: {code}"),
        _ => status.to_string(),
    }
}

/// What one publish did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub(crate) struct Published {
    /// Objects uploaded.
    pub(crate) uploaded: u64,
    /// Pages whose object was already current (no request made).
    pub(crate) unchanged: u64,
    /// Objects deleted.
    pub(crate) deleted: u64,
}

/// Mirrors one page: uploads its file if its content changed since the last
/// upload (by this index's record of it; with `trust_record` false, the
/// caller decided already and it is uploaded regardless), deletes its
/// object if it has no file any more.
pub(crate) async fn publish_page(
    s3: &S3,
    index: &Index,
    root: &WebRoot,
    url: &str,
    trust_record: bool,
) -> Result<Published, PublishError> {
    let mut done = Published::default();
    let page = index.page(url).await.ok().flatten();
    let previous = index.published(s3.id(), url).await.ok().flatten();
    let baked = page
        .as_ref()
        .and_then(|p| Some((p.file.clone()?, p.hash.clone()?, p.content_type.clone())));
    match baked {
        Some((file, hash, content_type)) => {
            let key = s3.key_of(&file);
            if trust_record
                && previous
                    .as_ref()
                    .is_some_and(|(k, h)| *k == key && *h == hash)
            {
                done.unchanged += 1;
                return Ok(done);
            }
            let Some(bytes) = root.read_page(std::path::Path::new(&file)) else {
                return Ok(done); // gone from disk meanwhile: the next change will tell
            };
            let content_type = content_type.unwrap_or_else(|| {
                crate::urlmap::content_type_of(std::path::Path::new(&file)).to_string()
            });
            s3.put(&key, bytes, &content_type).await?;
            index
                .set_published(s3.id(), url, Some((key.clone(), hash)))
                .await;
            done.uploaded += 1;
            if let Some((old, _)) = previous.filter(|(k, _)| *k != key) {
                s3.delete(&old).await?;
                done.deleted += 1;
            }
        }
        None => {
            if let Some((key, _)) = previous {
                s3.delete(&key).await?;
                index.set_published(s3.id(), url, None).await;
                done.deleted += 1;
            }
        }
    }
    Ok(done)
}

/// The page as it is to be published: its file, content hash and type.
#[derive(Debug, Clone)]
pub(crate) struct PageFile {
    /// File of the output (the key without the prefix).
    pub(crate) file: String,
    /// Content hash.
    pub(crate) hash: String,
    /// Recorded `Content-Type`.
    pub(crate) content_type: Option<String>,
}

/// Pool mode: makes the bucket hold `now` for a page whose published copy
/// was `old_file` (from the shared index), the shared index having decided
/// it must ([`crate::pool::Claim::Go`]); this worker's own record of the
/// bucket is only updated, never trusted.
pub(crate) async fn publish_decided(
    s3: &S3,
    index: &Index,
    root: &WebRoot,
    url: &str,
    now: Option<&PageFile>,
    old_file: Option<&str>,
) -> Result<Published, PublishError> {
    let mut done = Published::default();
    if let Some(page) = now {
        let key = s3.key_of(&page.file);
        let Some(bytes) = root.read_page(std::path::Path::new(&page.file)) else {
            return Err(s3.request_error(
                "PUT",
                &key,
                "the baked file is gone from the local root (a newer bake will publish the page)"
                    .into(),
            ));
        };
        let content_type = page.content_type.clone().unwrap_or_else(|| {
            crate::urlmap::content_type_of(std::path::Path::new(&page.file)).to_string()
        });
        if blake3::hash(&bytes).to_hex().as_str() != page.hash {
            // A newer bake replaced the file after its record was read:
            // uploading it under this record's ticket would let an older
            // copy of another worker win over it later.
            return Err(PublishError::MovedOn(url.to_string()));
        }
        s3.put(&key, bytes, &content_type).await?;
        index
            .set_published(s3.id(), url, Some((key, page.hash.clone())))
            .await;
        done.uploaded += 1;
    }
    if let Some(old) = old_file.filter(|f| now.is_none_or(|p| p.file != *f)) {
        s3.delete(&s3.key_of(old)).await?;
        done.deleted += 1;
        if now.is_none() {
            index.set_published(s3.id(), url, None).await;
        }
    }
    Ok(done)
}

/// How `kiln publish` reconciles a bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReconcileOptions {
    /// Uploads and deletes in flight at once.
    pub(crate) concurrency: usize,
    /// Say what would change; change nothing.
    pub(crate) dry_run: bool,
    /// Delete objects no page has (off with `--no-delete`).
    pub(crate) delete: bool,
    /// Upload every page, current or not.
    pub(crate) force: bool,
    /// The mass-delete limit for the deletions; `None` with
    /// `--allow-mass-delete`.
    pub(crate) delete_limit: Option<crate::config::DeleteLimit>,
}

/// What a dry run would do.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Keys that would be uploaded.
    pub(crate) upload: Vec<String>,
    /// Keys that would be deleted.
    pub(crate) delete: Vec<String>,
}

/// Makes the bucket equal the output: uploads what is missing or changed
/// (by the bucket's ETag, the MD5 of a single-part object, against the
/// file; by the record of the last upload otherwise), deletes what no page
/// has, lists the redirects. Up to `opts.concurrency` requests at once,
/// like django-bakery's thread pool; every page's record is still written
/// by the index's one writer.
pub(crate) async fn reconcile(
    s3: &S3,
    index: &Index,
    root: &WebRoot,
    opts: ReconcileOptions,
) -> Result<(Published, Plan), PublishError> {
    let mut total = Published::default();
    let mut plan = Plan::default();
    let present = std::sync::Arc::new(s3.list().await?);
    let mut wanted = BTreeSet::new();
    let mut tasks: tokio::task::JoinSet<Result<(Published, Option<String>), PublishError>> =
        tokio::task::JoinSet::new();
    let mut first_error = None;
    let mut collect = |done: Result<
        Result<(Published, Option<String>), PublishError>,
        tokio::task::JoinError,
    >,
                       total: &mut Published,
                       plan: &mut Plan| {
        match done {
            Ok(Ok((p, would))) => {
                total.uploaded += p.uploaded;
                total.unchanged += p.unchanged;
                total.deleted += p.deleted;
                plan.upload.extend(would);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(PublishError::Task(e.to_string()));
            }
        }
    };
    for (url, file, _) in index.baked_files().await.unwrap_or_default() {
        let key = s3.key_of(&file);
        wanted.insert(key.clone());
        while tasks.len() >= opts.concurrency.max(1) {
            if let Some(done) = tasks.join_next().await {
                collect(done, &mut total, &mut plan);
            }
        }
        let (s3, index, root, present) = (s3.clone(), index.clone(), root.clone(), present.clone());
        tasks.spawn(async move {
            // Missing from the bucket, or changed behind kiln's back,
            // whatever the record says: upload again.
            let current = !opts.force
                && match present.get(&key) {
                    None => false,
                    // A store that lists no ETag: the record is all there is.
                    Some(etag) if etag.is_empty() => true,
                    Some(etag) => root
                        .read_page(std::path::Path::new(&file))
                        .is_some_and(|bytes| etag_matches(&bytes, etag)),
                };
            if opts.dry_run {
                let recorded = index.published(s3.id(), &url).await.ok().flatten();
                let hash = index.page(&url).await.ok().flatten().and_then(|p| p.hash);
                let up_to_date =
                    current && recorded.is_some_and(|(k, h)| k == key && Some(h) == hash);
                return Ok(if up_to_date {
                    (
                        Published {
                            unchanged: 1,
                            ..Published::default()
                        },
                        None,
                    )
                } else {
                    (Published::default(), Some(key))
                });
            }
            if !current {
                index.set_published(s3.id(), &url, None).await;
            }
            Ok((publish_page(&s3, &index, &root, &url, true).await?, None))
        });
    }
    while let Some(done) = tasks.join_next().await {
        collect(done, &mut total, &mut plan);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let redirects_key = s3.key_of("_kiln/redirects.json");
    wanted.insert(redirects_key.clone());
    let extra: Vec<String> = present
        .keys()
        .filter(|k| !wanted.contains(*k))
        .cloned()
        .collect();
    if opts.dry_run {
        plan.upload.sort();
        if opts.delete {
            plan.delete = extra;
        }
        return Ok((total, plan));
    }
    let redirects = index.redirects().await.unwrap_or_default();
    let listing = serde_json::to_vec_pretty(&redirects).unwrap_or_default();
    s3.put(&redirects_key, listing, "application/json").await?;
    if opts.delete {
        if let Some(limit) = opts.delete_limit {
            let limit = limit.of(present.len());
            if extra.len() > limit {
                let examples: Vec<&str> = extra.iter().take(3).map(String::as_str).collect();
                return Err(PublishError::MassDelete {
                    bucket: s3.id().to_string(),
                    count: extra.len(),
                    known: present.len(),
                    limit,
                    examples: format!("e.g. {}", examples.join(", ")),
                });
            }
        }
        let mut deletes = tokio::task::JoinSet::new();
        for key in extra {
            while deletes.len() >= opts.concurrency.max(1) {
                if let Some(done) = deletes.join_next().await {
                    done.map_err(|e| PublishError::Task(e.to_string()))??;
                    total.deleted += 1;
                }
            }
            let s3 = s3.clone();
            deletes.spawn(async move { s3.delete(&key).await });
        }
        while let Some(done) = deletes.join_next().await {
            done.map_err(|e| PublishError::Task(e.to_string()))??;
            total.deleted += 1;
        }
    }
    Ok((total, plan))
}
