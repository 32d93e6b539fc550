//! What a store holds, recording by recording: one listing of its objects grouped by
//! `APP/NAME/ID` (sans-IO [`group`]), the figures retention, recovery and the API need, read
//! the same way from a directory or a bucket.

use std::collections::BTreeMap;
use std::io;
use std::time::SystemTime;

use super::store::{ObjectInfo, Store};
use super::THUMBNAIL;

/// The index every recording has once it has a segment.
pub const INDEX: &str = "index.m3u8";

/// One recording's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub app: String,
    pub name: String,
    /// Its start, Unix ms.
    pub id: String,
    /// Bytes of all its objects.
    pub bytes: u64,
    /// The last write of any of its objects.
    pub newest: SystemTime,
    /// Its index's size and last write, once it has one.
    pub index: Option<(u64, SystemTime)>,
    pub thumbnail: bool,
    /// Files a writer left half-written (a local directory's `*.part`), with their last write.
    pub parts: Vec<(String, SystemTime)>,
}

impl Stored {
    /// `APP/NAME/ID`.
    pub fn prefix(&self) -> String {
        format!("{}/{}/{}", self.app, self.name, self.id)
    }

    pub fn started_ms(&self) -> u64 {
        self.id.parse().unwrap_or(0)
    }
}

/// Whether `file` is one a recording holds (or a local directory's half-written copy of one):
/// anything else beside the recordings, in a bucket shared with other data, is not ours.
fn is_ours(file: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    let named = |f: &str| {
        f == INDEX
            || f == THUMBNAIL
            || f == super::download::LAYOUT_FILE
            || f.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")).is_some_and(digits)
            || f.strip_prefix("seg-").and_then(|f| f.strip_suffix(".m4s")).is_some_and(digits)
    };
    // `LocalDir` writes `seg-1.m4s` aside as `seg-1.PID-SEQ.part`.
    let aside = |f: &str| {
        let Some(stem) = f.strip_suffix(".part").and_then(|f| f.rsplit_once('.')) else {
            return false;
        };
        let stem = stem.0;
        ["index", "thumb", "mp4"].contains(&stem)
            || stem.strip_prefix("init-").is_some_and(digits)
            || stem.strip_prefix("seg-").is_some_and(digits)
    };
    named(file) || aside(file)
}

/// Recordings gathered from a listing, one object at a time.
#[derive(Default)]
pub struct Grouper {
    recs: BTreeMap<(String, String, String), Stored>,
}

impl Grouper {
    /// Count `o` in its recording, if it is a recording's (`APP/NAME/ID/FILE`, `ID` all
    /// digits, `FILE` a name recordings use).
    pub fn add(&mut self, o: ObjectInfo) {
        let mut parts = o.key.split('/');
        let (Some(app), Some(name), Some(id), Some(file), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        if !is_ours(file) {
            return;
        }
        let key = (app.to_string(), name.to_string(), id.to_string());
        let rec = self.recs.entry(key).or_insert_with(|| Stored {
            app: app.into(),
            name: name.into(),
            id: id.into(),
            bytes: 0,
            newest: SystemTime::UNIX_EPOCH,
            index: None,
            thumbnail: false,
            parts: Vec::new(),
        });
        rec.bytes = rec.bytes.saturating_add(o.size);
        rec.newest = rec.newest.max(o.modified);
        if file == INDEX {
            rec.index = Some((o.size, o.modified));
        } else if file == THUMBNAIL {
            rec.thumbnail = true;
        } else if file.ends_with(".part") {
            rec.parts.push((o.key.clone(), o.modified));
        }
    }

    /// The recordings, ordered by `APP/NAME/ID`.
    pub fn finish(self) -> Vec<Stored> {
        self.recs.into_values().collect()
    }
}

/// The recordings among `objects`.
pub fn group(objects: impl IntoIterator<Item = ObjectInfo>) -> Vec<Stored> {
    let mut grouper = Grouper::default();
    objects.into_iter().for_each(|o| grouper.add(o));
    grouper.finish()
}

/// The recordings under `prefix` of `store` (`""`: all; `APP`, `APP/NAME` or `APP/NAME/ID`),
/// gathered as the listing streams in (only the recordings' figures are kept).
pub async fn take<S: Store>(store: &S, prefix: &str) -> io::Result<Vec<Stored>> {
    use futures_util::TryStreamExt;
    let mut grouper = Grouper::default();
    let mut listing = store.objects(prefix);
    while let Some(o) = listing.try_next().await? {
        grouper.add(o);
    }
    Ok(grouper.finish())
}

/// Whether `rec`'s index is finished, from its last bytes only (a long index is not read
/// whole to learn it); `false` without one, or when it went meanwhile.
pub async fn is_finished<S: Store>(store: &S, rec: &Stored) -> io::Result<bool> {
    let Some((size, _)) = rec.index else { return Ok(false) };
    let tail = size.min(64);
    let key = format!("{}/{INDEX}", rec.prefix());
    let object = match store.read_range(&key, size - tail, tail).await {
        Ok(Some(object)) => object,
        // Gone, or rewritten shorter (finished by another origin): asked again next time.
        Ok(None) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::with_capacity(tail as usize);
    let mut body = object.body;
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(super::index::is_finished(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn obj(key: &str, size: u64, secs: u64) -> ObjectInfo {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        ObjectInfo { key: key.into(), size, modified }
    }

    #[test]
    fn objects_group_into_recordings_and_strangers_are_left_out() {
        let recs = group(vec![
            obj("live/cam/200/seg-1.m4s", 100, 5),
            obj("live/cam/100/index.m3u8", 10, 3),
            obj("live/cam/100/init-1.mp4", 20, 1),
            obj("live/cam/100/thumb.jpg", 5, 9),
            obj("live/cam/100/seg-2.7-1.part", 50, 2),
            obj("catalog.db", 1000, 1),
            obj("logs/2024/20240101/a.gz", 1000, 1),
            obj("live/cam/100/notes.txt", 1000, 1),
            obj("live/cam/notanid/index.m3u8", 10, 1),
            obj("live/cam/100/deeper/x", 10, 1),
            obj("live/cam", 10, 1),
        ]);
        assert_eq!(recs.len(), 2);
        let (a, b) = (&recs[0], &recs[1]);
        assert_eq!(a.prefix(), "live/cam/100");
        assert_eq!(a.bytes, 85);
        assert_eq!(a.newest, SystemTime::UNIX_EPOCH + Duration::from_secs(9));
        assert_eq!(a.index, Some((10, SystemTime::UNIX_EPOCH + Duration::from_secs(3))));
        assert!(a.thumbnail);
        assert_eq!(a.parts.len(), 1);
        assert_eq!(a.started_ms(), 100);
        assert_eq!((b.prefix().as_str(), b.index, b.thumbnail), ("live/cam/200", None, false));
    }

    #[test]
    fn only_the_names_recordings_use_are_ours() {
        for ours in [
            "index.m3u8",
            "thumb.jpg",
            "mp4.layout",
            "init-3.mp4",
            "seg-12.m4s",
            "seg-12.99-3.part",
            "index.1-0.part",
            "thumb.5-1.part",
        ] {
            assert!(is_ours(ours), "{ours}");
        }
        for other in ["a.gz", "seg-x.m4s", "init-.mp4", "index.m3u8.bak", "x.1-2.part", ".part"] {
            assert!(!is_ours(other), "{other}");
        }
    }

    #[tokio::test]
    async fn a_finished_index_is_known_by_its_tail() {
        use super::super::index::{Entry, Index};
        use super::super::store::LocalDir;
        let dir = std::env::temp_dir().join(format!("sluice-inventory-{}", std::process::id()));
        let store = LocalDir::new(&dir).unwrap();
        let mut index = Index::default();
        for msn in 0..100 {
            index.push(Entry {
                msn,
                duration: 180_000,
                init_id: 1,
                discontinuity: false,
                bytes: 1,
            });
        }
        let key = "live/cam/1/index.m3u8";
        for ended in [false, true] {
            store.put(key, vec![index.render(ended).into()]).await.unwrap();
            let rec = take(&store, "").await.unwrap().pop().unwrap();
            assert!(rec.index.unwrap().0 > 64, "longer than the tail read");
            assert_eq!(is_finished(&store, &rec).await.unwrap(), ended);
        }
        let mut rec = take(&store, "").await.unwrap().pop().unwrap();
        rec.index = Some((10_000, SystemTime::now()));
        assert!(!is_finished(&store, &rec).await.unwrap(), "changed meanwhile: asked again");
        store.delete_prefix("live/cam/1").await.unwrap();
        assert!(!is_finished(&store, &rec).await.unwrap(), "gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
