//! Where recordings are kept: one trait, so an object store can stand in for the local
//! directory. Keys are relative paths made by this crate (`APP/NAME/ID/FILE`), never a
//! client's text.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

/// An object being read: its length, and its bytes as they come (never all in memory).
pub struct Object {
    pub len: u64,
    pub body: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
}

/// One stored object, as a listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key (`APP/NAME/ID/FILE`).
    pub key: String,
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// A listing, object by object as the store gives them (never all in memory).
pub type ObjectStream = Pin<Box<dyn Stream<Item = io::Result<ObjectInfo>> + Send>>;

/// A listing that fails at once with `e`.
pub(crate) fn failed_listing(e: io::Error) -> ObjectStream {
    Box::pin(futures_util::stream::once(async move { Err(e) }))
}

/// A recording store. Every `put` is whole or absent: a reader (or a restart after a crash
/// mid-write) never sees a half-written object.
pub trait Store: Send + Sync + 'static {
    /// Write `parts` (in order) as the object `key`, replacing it.
    fn put(&self, key: &str, parts: Vec<Bytes>) -> impl Future<Output = io::Result<()>> + Send;
    /// The object `key`, whole (for small ones: indexes); `None` when there is none.
    fn get(&self, key: &str) -> impl Future<Output = io::Result<Option<Bytes>>> + Send;
    /// The object `key`, streamed; `None` when there is none.
    fn read(&self, key: &str) -> impl Future<Output = io::Result<Option<Object>>> + Send;
    /// `len` bytes of the object `key` from `offset`, streamed; `None` when there is none.
    /// An object shorter than the range is an error (it changed under the caller).
    fn read_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = io::Result<Option<Object>>> + Send;
    /// The names directly under `prefix` (`APP/NAME` → its recordings' ids); empty when none.
    fn list(&self, prefix: &str) -> impl Future<Output = io::Result<Vec<String>>> + Send;
    /// Every object under `prefix` (`""`: all), at any depth, in no given order. An object
    /// written meanwhile may or may not be in it; an error ends it.
    fn objects(&self, prefix: &str) -> ObjectStream;
    /// Delete the object `key`; one already gone is fine.
    fn delete(&self, key: &str) -> impl Future<Output = io::Result<()>> + Send;
    /// Delete every object under `prefix` (a recording: `APP/NAME/ID`); none is fine.
    fn delete_prefix(&self, prefix: &str) -> impl Future<Output = io::Result<()>> + Send;
    /// Bytes still free for recordings; `None` when the store has no such limit.
    fn free_bytes(&self) -> impl Future<Output = io::Result<Option<u64>>> + Send;
}

/// Recordings in a local directory (`--record-dir`).
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Use (and create) `root`.
    pub fn new(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(LocalDir { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        // Keys are ours, but a bug must not write outside the root.
        if key.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad key {key:?}")));
        }
        Ok(self.root.join(key))
    }
}

impl Store for LocalDir {
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> io::Result<()> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Written aside (a name of this writer's own: origins sharing the store may write
            // the same object at once), synced, then renamed over: whole or absent.
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("{}-{seq}.part", std::process::id()));
            let mut file = std::fs::File::create(&tmp)?;
            for p in &parts {
                file.write_all(p)?;
            }
            file.sync_data()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn get(&self, key: &str) -> io::Result<Option<Bytes>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read(&self, key: &str) -> io::Result<Option<Object>> {
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata().await?.len();
        let body = Box::pin(tokio_util::io::ReaderStream::new(file));
        Ok(Some(Object { len, body }))
    }

    async fn read_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Option<Object>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata().await?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{key}: {len} bytes at {offset} past its end ({size})"),
            ));
        }
        file.seek(io::SeekFrom::Start(offset)).await?;
        let body = Box::pin(tokio_util::io::ReaderStream::new(file.take(len)));
        Ok(Some(Object { len, body }))
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let dir = self.path(prefix)?;
        let mut names = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e),
        };
        while let Some(entry) = entries.next_entry().await? {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn objects(&self, prefix: &str) -> ObjectStream {
        let (dir, base) = if prefix.is_empty() {
            (self.root.clone(), String::new())
        } else {
            match self.path(prefix) {
                Ok(dir) => (dir, format!("{prefix}/")),
                Err(e) => return failed_listing(e),
            }
        };
        // Walked off the runtime's threads, handed over a few at a time.
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = walk(&dir, &base, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        }))
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        gone_is_fine(tokio::fs::remove_file(self.path(key)?).await)
    }

    async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        gone_is_fine(tokio::fs::remove_dir_all(self.path(prefix)?).await)
    }

    async fn free_bytes(&self) -> io::Result<Option<u64>> {
        let root = self.root.clone();
        // statvfs can block (a network file system): off the runtime's threads.
        let stat = tokio::task::spawn_blocking(move || rustix::fs::statvfs(&root))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::from)?;
        Ok(Some(stat.f_bavail.saturating_mul(stat.f_frsize)))
    }
}

/// Deepest a listing goes below its directory (recordings are `APP/NAME/ID/FILE`).
const MAX_DEPTH: usize = 4;

/// Send the files under `dir` (keys: `base` + their path below it) to `out`, until it is
/// dropped; a directory that goes meanwhile (another origin sharing the store deleted it) is
/// skipped; symbolic links are not followed.
fn walk(
    dir: &Path,
    base: &str,
    out: &tokio::sync::mpsc::Sender<io::Result<ObjectInfo>>,
) -> io::Result<()> {
    let mut dirs = vec![(dir.to_path_buf(), base.to_string(), 0)];
    while let Some((dir, base, depth)) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if kind.is_dir() && depth + 1 < MAX_DEPTH {
                dirs.push((entry.path(), format!("{base}{name}/"), depth + 1));
            } else if kind.is_file() {
                let Ok(meta) = entry.metadata() else { continue };
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let info = ObjectInfo { key: format!("{base}{name}"), size: meta.len(), modified };
                if out.blocking_send(Ok(info)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

fn gone_is_fine(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn objects_are_replaced_whole_and_keys_stay_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("sluice-store-{}", std::process::id()));
        let store = LocalDir::new(&dir).unwrap();
        let parts = vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")];
        store.put("live/cam/1/seg-1.m4s", parts).await.unwrap();
        let got = store.get("live/cam/1/seg-1.m4s").await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"abcd"[..]));
        store.put("live/cam/1/seg-1.m4s", vec![Bytes::from_static(b"x")]).await.unwrap();
        assert_eq!(store.get("live/cam/1/seg-1.m4s").await.unwrap().as_deref(), Some(&b"x"[..]));
        let left = std::fs::read_dir(dir.join("live/cam/1")).unwrap().flatten().count();
        assert_eq!(left, 1, "no temporary file left");
        assert_eq!(store.get("live/cam/1/none").await.unwrap(), None);
        let object = store.read("live/cam/1/seg-1.m4s").await.unwrap().unwrap();
        assert_eq!(object.len, 1);
        let read: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(object.body).await;
        assert_eq!(
            read.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [Bytes::from_static(b"x")]
        );
        assert!(store.read("live/cam/1/none").await.unwrap().is_none());
        store.put("live/cam/1/seg-2.m4s", vec![Bytes::from_static(b"0123456789")]).await.unwrap();
        let range = store.read_range("live/cam/1/seg-2.m4s", 3, 4).await.unwrap().unwrap();
        let read: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(range.body).await;
        assert_eq!(read.into_iter().map(Result::unwrap).collect::<Vec<_>>().concat(), b"3456");
        assert!(store.read_range("live/cam/1/seg-2.m4s", 8, 3).await.is_err(), "past the end");
        assert!(store.read_range("live/cam/1/none", 0, 1).await.unwrap().is_none());
        let mut listed = store.list("live/cam/1").await.unwrap();
        listed.sort();
        assert_eq!(listed, ["seg-1.m4s", "seg-2.m4s"]);
        assert!(store.list("live/none").await.unwrap().is_empty());
        store.put("live/cam/2/index.m3u8", vec![Bytes::from_static(b"#EXTM3U")]).await.unwrap();
        use futures_util::TryStreamExt;
        let list = |prefix: &str| store.objects(prefix).try_collect::<Vec<_>>();
        let mut all = list("").await.unwrap();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<_> = all.iter().map(|o| (o.key.as_str(), o.size)).collect();
        assert_eq!(
            keys,
            [
                ("live/cam/1/seg-1.m4s", 1),
                ("live/cam/1/seg-2.m4s", 10),
                ("live/cam/2/index.m3u8", 7)
            ]
        );
        assert!(all.iter().all(|o| o.modified.elapsed().unwrap() < Duration::from_secs(600)));
        let two = list("live/cam/2").await.unwrap();
        assert_eq!(two.len(), 1);
        assert!(list("live/none").await.unwrap().is_empty());
        store.delete("live/cam/1/seg-1.m4s").await.unwrap();
        store.delete("live/cam/1/seg-1.m4s").await.unwrap();
        store.delete_prefix("live/cam/2").await.unwrap();
        store.delete_prefix("live/cam/2").await.unwrap();
        let left: Vec<_> = list("").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(left, ["live/cam/1/seg-2.m4s"]);
        let free = store.free_bytes().await.unwrap().expect("a directory's file system");
        assert!(free > 0);
        for bad in ["../x", "live//x", "live/./x", "/abs"] {
            assert!(store.put(bad, vec![]).await.is_err(), "{bad}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
