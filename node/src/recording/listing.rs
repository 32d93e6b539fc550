//! What recordings a node holds, for the HTTP API (`/api/recordings`): each recording's
//! figures, read from a listing of its store and its index, and deleting a finished one.

use serde::Serialize;

use super::index;
use super::inventory::{self, Stored, INDEX};
use super::store::Store;

/// One recording, as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingInfo {
    pub app: String,
    pub stream: String,
    /// Its start, Unix ms (the directory's name).
    pub id: String,
    pub started_at_ms: u64,
    pub duration_s: f64,
    pub segments: usize,
    pub periods: usize,
    pub bytes: u64,
    /// The index is finished (`EXT-X-ENDLIST`): it plays as VOD and downloads as MP4.
    pub finished: bool,
    /// Where it plays: `/vod/APP/STREAM/ID/index.m3u8`.
    pub hls: String,
    /// `/vod/APP/STREAM/ID.mp4`, once finished.
    pub mp4: Option<String>,
    /// `/vod/APP/STREAM/ID/thumb.jpg`, once it has one.
    pub thumbnail: Option<String>,
}

/// Which recordings to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub app: Option<String>,
    pub stream: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// The recordings in `store` that `filter` lets through, newest first, and whether more were
/// left out by its limit. Only the listed ones' indexes are read.
pub async fn list<S: Store>(
    store: &S,
    filter: &Filter,
) -> std::io::Result<(Vec<RecordingInfo>, bool)> {
    // Names are checked by the caller: a prefix of the store's keys.
    let prefix = match (&filter.app, &filter.stream) {
        (Some(app), Some(stream)) => format!("{app}/{stream}"),
        (Some(app), None) => app.clone(),
        _ => String::new(),
    };
    let wanted = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    let mut found: Vec<Stored> = inventory::take(store, &prefix)
        .await?
        .into_iter()
        .filter(|r| wanted(&filter.app, &r.app) && wanted(&filter.stream, &r.name))
        .collect();
    found.sort_by(|a, b| {
        b.started_ms().cmp(&a.started_ms()).then_with(|| (&a.app, &a.name).cmp(&(&b.app, &b.name)))
    });
    let truncated = found.len() > filter.limit;
    found.truncate(filter.limit);
    let mut out = Vec::with_capacity(found.len());
    for rec in found {
        out.push(describe(store, rec).await?);
    }
    Ok((out, truncated))
}

/// The recording `APP/STREAM/ID` (names checked by the caller), if there is one.
pub async fn one<S: Store>(store: &S, prefix: &str) -> std::io::Result<Option<RecordingInfo>> {
    match inventory::take(store, prefix).await?.pop() {
        Some(rec) => Ok(Some(describe(store, rec).await?)),
        None => Ok(None),
    }
}

/// Why a recording was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no such recording")]
    NotFound,
    #[error("the recording is still being written")]
    InProgress,
    #[error("deleting the recording: {0}")]
    Io(#[from] std::io::Error),
}

/// Delete the finished recording `APP/STREAM/ID` (names checked by the caller).
pub async fn delete<S: Store>(store: &S, prefix: &str) -> Result<(), DeleteError> {
    let Some(text) = store.get(&format!("{prefix}/{INDEX}")).await? else {
        return if inventory::take(store, prefix).await?.is_empty() {
            Err(DeleteError::NotFound)
        } else {
            // Nothing recorded in it yet: a recording that is starting.
            Err(DeleteError::InProgress)
        };
    };
    if !index::is_finished(&String::from_utf8_lossy(&text)) {
        return Err(DeleteError::InProgress);
    }
    // Another origin sharing the store may delete it first: gone either way.
    Ok(store.delete_prefix(prefix).await?)
}

/// `rec`'s figures, its index read (one deleted meanwhile reads as empty).
async fn describe<S: Store>(store: &S, rec: Stored) -> std::io::Result<RecordingInfo> {
    let prefix = rec.prefix();
    let text = match rec.index {
        Some(_) => store.get(&format!("{prefix}/{INDEX}")).await?.unwrap_or_default(),
        None => bytes::Bytes::new(),
    };
    let summary = index::summary(&String::from_utf8_lossy(&text));
    let path = format!("/vod/{prefix}");
    Ok(RecordingInfo {
        started_at_ms: rec.started_ms(),
        duration_s: (summary.duration_s * 1000.0).round() / 1000.0,
        segments: summary.segments,
        periods: summary.periods,
        bytes: rec.bytes,
        finished: summary.finished,
        hls: format!("{path}/{INDEX}"),
        mp4: summary.finished.then(|| format!("{path}.mp4")),
        thumbnail: rec.thumbnail.then(|| format!("{path}/{}", super::THUMBNAIL)),
        app: rec.app,
        stream: rec.name,
        id: rec.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::store::LocalDir;
    use bytes::Bytes;

    async fn recording(store: &LocalDir, prefix: &str, index: &str) {
        let index = vec![Bytes::from(index.to_string())];
        store.put(&format!("{prefix}/index.m3u8"), index).await.unwrap();
        store.put(&format!("{prefix}/seg-1.m4s"), vec![Bytes::from(vec![0u8; 100])]).await.unwrap();
    }

    #[tokio::test]
    async fn recordings_are_listed_newest_first_filtered_and_finished_ones_deleted() {
        let root = std::env::temp_dir().join(format!("sluice-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = LocalDir::new(&root).unwrap();
        let done = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.000,\nseg-1.m4s\n\
                    #EXT-X-DISCONTINUITY\n#EXTINF:1.500,\nseg-2.m4s\n#EXT-X-ENDLIST\n";
        let live = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.000,\nseg-1.m4s\n";
        recording(&store, "live/a/100", done).await;
        recording(&store, "live/a/300", live).await;
        recording(&store, "live/b/200", done).await;
        recording(&store, "other/c/400", done).await;
        store.put("live/b/500/seg-1.m4s", vec![Bytes::from_static(b"x")]).await.unwrap();
        store.put("live/b/200/thumb.jpg", vec![Bytes::from_static(b"jpg")]).await.unwrap();
        let all = Filter { limit: 10, ..Filter::default() };
        let (listed, truncated) = list(&store, &all).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!((ids, truncated), (vec!["500", "400", "300", "200", "100"], false));
        let first = &listed[4];
        assert_eq!((first.segments, first.periods, first.finished), (2, 2, true));
        assert!((first.duration_s - 3.5).abs() < 1e-9);
        assert_eq!(first.bytes, done.len() as u64 + 100);
        assert_eq!(first.mp4.as_deref(), Some("/vod/live/a/100.mp4"));
        assert_eq!(first.thumbnail, None);
        assert_eq!(listed[2].mp4, None, "not finished");
        assert_eq!(listed[3].thumbnail.as_deref(), Some("/vod/live/b/200/thumb.jpg"));
        let some = Filter { app: Some("live".into()), stream: Some("a".into()), limit: 1 };
        let (listed, truncated) = list(&store, &some).await.unwrap();
        assert_eq!((listed.len(), listed[0].id.as_str(), truncated), (1, "300", true));
        let other = Filter { app: Some("other".into()), limit: 10, ..Filter::default() };
        assert_eq!(list(&store, &other).await.unwrap().0.len(), 1);
        assert_eq!(one(&store, "live/b/200").await.unwrap().unwrap().stream, "b");
        assert!(one(&store, "live/b/999").await.unwrap().is_none());
        assert!(matches!(delete(&store, "live/a/300").await, Err(DeleteError::InProgress)));
        assert!(matches!(delete(&store, "live/b/500").await, Err(DeleteError::InProgress)));
        assert!(matches!(delete(&store, "live/a/999").await, Err(DeleteError::NotFound)));
        delete(&store, "live/a/100").await.unwrap();
        assert!(one(&store, "live/a/100").await.unwrap().is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
