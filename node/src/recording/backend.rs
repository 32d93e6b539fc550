//! The store an origin's recordings go to, as `--record-dir DIR` or `--record-store
//! s3://BUCKET[/PREFIX]` names it: one [`Store`] either way, so nothing above cares which.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::s3::S3Store;
use super::store::{LocalDir, Object, ObjectStream, Store};

/// Where recordings are kept, as the settings name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local (or network-mounted) directory.
    Dir(PathBuf),
    /// An S3-compatible bucket, `s3://BUCKET[/PREFIX]` (credentials from `AWS_*`).
    S3(String),
}

impl Target {
    /// The flag that names it.
    pub fn flag(&self) -> &'static str {
        match self {
            Target::Dir(_) => "--record-dir",
            Target::S3(_) => "--record-store",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Dir(dir) => write!(f, "--record-dir {}", dir.display()),
            Target::S3(url) => write!(f, "--record-store {url}"),
        }
    }
}

/// The recordings' store.
#[derive(Debug, Clone)]
pub enum Backend {
    Local(LocalDir),
    S3(S3Store),
}

impl Backend {
    /// Open what `target` names (a directory is created; a bucket is not contacted yet).
    pub fn open(target: &Target) -> io::Result<Backend> {
        match target {
            Target::Dir(dir) => LocalDir::new(dir).map(Backend::Local),
            Target::S3(url) => S3Store::from_url(url)
                .map(Backend::S3)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
        }
    }

    /// The directory, when the recordings are in one.
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            Backend::Local(dir) => Some(dir.root()),
            Backend::S3(_) => None,
        }
    }
}

/// Each method, asked of whichever store it is.
macro_rules! either {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Backend::Local($s) => $call.await,
            Backend::S3($s) => $call.await,
        }
    };
}

impl Store for Backend {
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> io::Result<()> {
        either!(self, s => s.put(key, parts))
    }

    async fn get(&self, key: &str) -> io::Result<Option<Bytes>> {
        either!(self, s => s.get(key))
    }

    async fn read(&self, key: &str) -> io::Result<Option<Object>> {
        either!(self, s => s.read(key))
    }

    async fn read_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Option<Object>> {
        either!(self, s => s.read_range(key, offset, len))
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        either!(self, s => s.list(prefix))
    }

    fn objects(&self, prefix: &str) -> ObjectStream {
        match self {
            Backend::Local(s) => s.objects(prefix),
            Backend::S3(s) => s.objects(prefix),
        }
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        either!(self, s => s.delete(key))
    }

    async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        either!(self, s => s.delete_prefix(prefix))
    }

    async fn free_bytes(&self) -> io::Result<Option<u64>> {
        either!(self, s => s.free_bytes())
    }
}
