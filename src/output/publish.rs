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
    #[error("{action} `{key}` failed: {message}")]
    Request {
        /// PUT, DELETE, LIST.
        action: &'static str,
        /// Object key.
        key: String,
        /// Status or transport error.
        message: String,
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

    /// The object key of a file of the output.
    pub(crate) fn key_of(&self, file: &str) -> String {
        format!("{}{file}", self.prefix)
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
        check("PUT", key, resp)
    }

    async fn delete(&self, key: &str) -> Result<(), PublishError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        check("DELETE", key, self.client.delete(url).send().await)
    }

    /// Every key under the prefix, with its ETag (quotes removed).
    async fn list(&self) -> Result<std::collections::BTreeMap<String, String>, PublishError> {
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
            let err = |message: String| PublishError::Request {
                action: "LIST",
                key: self.prefix.clone(),
                message,
            };
            let resp = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| err(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(err(resp.status().to_string()));
            }
            let text = resp.text().await.map_err(|e| err(e.to_string()))?;
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

fn check(
    action: &'static str,
    key: &str,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<(), PublishError> {
    let err = |message: String| PublishError::Request {
        action,
        key: key.to_string(),
        message,
    };
    match resp {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(err(r.status().to_string())),
        Err(e) => Err(err(e.to_string())),
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
/// upload, deletes its object if it has no file any more.
pub(crate) async fn publish_page(
    s3: &S3,
    index: &Index,
    root: &WebRoot,
    url: &str,
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
            if previous
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

/// `kiln publish`: makes the bucket equal the output. Uploads what is
/// missing or changed, deletes objects under the prefix that no page has,
/// and lists the recorded redirects at `<prefix>_kiln/redirects.json` for
/// the CDN in front of it.
pub(crate) async fn reconcile(
    s3: &S3,
    index: &Index,
    root: &WebRoot,
) -> Result<Published, PublishError> {
    let mut total = Published::default();
    let present = s3.list().await?;
    let mut wanted = BTreeSet::new();
    for (url, file, _) in index.baked_files().await.unwrap_or_default() {
        let key = s3.key_of(&file);
        // Missing from the bucket, or changed behind kiln's back (a
        // single-part upload's ETag is the MD5 of its bytes), whatever
        // the record says: upload again.
        let current = match present.get(&key) {
            None => false,
            // A store that lists no ETag: the record is all there is.
            Some(etag) if etag.is_empty() => true,
            Some(etag) => root
                .read_page(std::path::Path::new(&file))
                .is_some_and(|bytes| {
                    use md5::Digest as _;
                    let local = md5::Md5::digest(&bytes);
                    let hex: String = local.iter().map(|b| format!("{b:02x}")).collect();
                    hex.eq_ignore_ascii_case(etag)
                }),
        };
        if !current {
            index.set_published(s3.id(), &url, None).await;
        }
        let done = publish_page(s3, index, root, &url).await?;
        total.uploaded += done.uploaded;
        total.unchanged += done.unchanged;
        wanted.insert(key);
    }
    let redirects_key = s3.key_of("_kiln/redirects.json");
    let redirects = index.redirects().await.unwrap_or_default();
    let listing = serde_json::to_vec_pretty(&redirects).unwrap_or_default();
    s3.put(&redirects_key, listing, "application/json").await?;
    wanted.insert(redirects_key);
    for key in present.keys().filter(|k| !wanted.contains(*k)) {
        s3.delete(key).await?;
        total.deleted += 1;
    }
    Ok(total)
}
