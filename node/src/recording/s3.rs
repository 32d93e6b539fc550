//! Recordings in an S3-compatible object store (`object_store`'s S3 client): the [`Store`]
//! of `s3://BUCKET[/PREFIX]`. Credentials, region and endpoint come from the usual variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
//! `AWS_ALLOW_HTTP` for a plain-HTTP endpoint such as a local MinIO). An S3 `PUT` is whole or
//! absent, as the trait asks; ranges are asked of the store, never read whole.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use super::store::{failed_listing, Object, ObjectInfo, ObjectStream, Store};

/// The longest a call keeps retrying a bucket that does not answer.
const RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why an object store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{0:?} is not s3://BUCKET[/PREFIX]")]
    Url(String),
    #[error("the S3 client: {0}")]
    Client(#[from] object_store::Error),
}

/// Recordings under `PREFIX` of an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    store: Arc<AmazonS3>,
    /// Prepended to every key (`""` or ending in `/`).
    prefix: String,
    url: String,
}

impl S3Store {
    /// The store of `s3://BUCKET[/PREFIX]`, configured from the `AWS_*` variables.
    pub fn from_url(url: &str) -> Result<S3Store, S3Error> {
        S3Store::with_builder(url, AmazonS3Builder::from_env())
    }

    /// The store of `url` with `builder`'s settings (credentials, endpoint).
    pub fn with_builder(url: &str, builder: AmazonS3Builder) -> Result<S3Store, S3Error> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| S3Error::Url(url.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let bad = |s: &str| s.split('/').any(|c| c.is_empty() || c == "." || c == "..");
        if bucket.is_empty() || (!prefix.is_empty() && bad(prefix)) {
            return Err(S3Error::Url(url.into()));
        }
        // A bucket out of reach fails a call within half a minute (the client's default keeps
        // trying for three), so a start or a recorder is never held up longer.
        let retry = object_store::RetryConfig {
            max_retries: 4,
            retry_timeout: RETRY_TIMEOUT,
            ..Default::default()
        };
        let store = builder.with_bucket_name(bucket).with_retry(retry).build()?;
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(S3Store { store: Arc::new(store), prefix, url: url.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> io::Result<ObjectPath> {
        // Keys are ours, but a bug must not reach outside the prefix.
        if key.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad key {key:?}")));
        }
        ObjectPath::parse(format!("{}{key}", self.prefix))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
    }
}

/// `None` for a missing object, the error otherwise.
fn missing<T>(r: object_store::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(io::Error::from(e)),
    }
}

impl Store for S3Store {
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> io::Result<()> {
        let path = self.path(key)?;
        self.store.put(&path, PutPayload::from_iter(parts)).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> io::Result<Option<Bytes>> {
        let path = self.path(key)?;
        match missing(self.store.get(&path).await)? {
            Some(got) => Ok(Some(got.bytes().await?)),
            None => Ok(None),
        }
    }

    async fn read(&self, key: &str) -> io::Result<Option<Object>> {
        let path = self.path(key)?;
        let Some(got) = missing(self.store.get(&path).await)? else { return Ok(None) };
        let len = got.meta.size;
        let body = Box::pin(got.into_stream().map_err(io::Error::from));
        Ok(Some(Object { len, body }))
    }

    async fn read_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Option<Object>> {
        let path = self.path(key)?;
        let end = offset.checked_add(len).ok_or_else(|| io::Error::other("range overflows"))?;
        let head = missing(self.store.head(&path).await)?;
        let Some(head) = head else { return Ok(None) };
        if end > head.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{key}: {len} bytes at {offset} past its end ({})", head.size),
            ));
        }
        if len == 0 {
            let body = Box::pin(futures_util::stream::empty());
            return Ok(Some(Object { len, body }));
        }
        let options =
            GetOptions { range: Some(GetRange::Bounded(offset..end)), ..Default::default() };
        let Some(got) = missing(self.store.get_opts(&path, options).await)? else {
            return Ok(None);
        };
        let body = Box::pin(got.into_stream().map_err(io::Error::from));
        Ok(Some(Object { len, body }))
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let path = self.path(prefix)?;
        let listed = self.store.list_with_delimiter(Some(&path)).await?;
        let names = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        Ok(names)
    }

    fn objects(&self, prefix: &str) -> ObjectStream {
        let path = if prefix.is_empty() {
            ObjectPath::parse(self.prefix.trim_end_matches('/')).map_err(io::Error::other)
        } else {
            self.path(prefix)
        };
        let path = match path {
            Ok(path) => (!path.as_ref().is_empty()).then_some(path),
            Err(e) => return failed_listing(e),
        };
        let ours = self.prefix.clone();
        let listed = self.store.list(path.as_ref()).filter_map(move |meta| {
            let info = match meta {
                Ok(meta) => meta.location.as_ref().strip_prefix(&ours).map(|key| {
                    let modified = std::time::SystemTime::from(meta.last_modified);
                    Ok(ObjectInfo { key: key.to_string(), size: meta.size, modified })
                }),
                Err(e) => Some(Err(io::Error::from(e))),
            };
            std::future::ready(info)
        });
        Box::pin(listed)
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        let path = self.path(prefix)?;
        let locations = self.store.list(Some(&path)).map_ok(|meta| meta.location).boxed();
        let deleted: Vec<_> = self.store.delete_stream(locations).try_collect().await?;
        tracing::debug!(prefix, objects = deleted.len(), "deleted from the bucket");
        Ok(())
    }

    async fn free_bytes(&self) -> io::Result<Option<u64>> {
        // A bucket has no free-space floor to keep.
        Ok(None)
    }
}
