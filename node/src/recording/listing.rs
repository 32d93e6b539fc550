//! What recordings a node holds, for the HTTP API (`/api/recordings`): each recording's
//! figures, read from its directory and index, and deleting a finished one.

use std::path::Path;

use serde::Serialize;

use super::index;

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
}

/// Which recordings to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub app: Option<String>,
    pub stream: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// The recordings under `root` that `filter` lets through, newest first, and whether more
/// were left out by its limit. Only the listed ones' indexes are read.
pub fn list(root: &Path, filter: &Filter) -> std::io::Result<(Vec<RecordingInfo>, bool)> {
    let mut found = Vec::new();
    for dir in super::recording_dirs(root)? {
        let Some((app, stream, id)) = names(root, &dir) else { continue };
        let wanted = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if wanted(&filter.app, &app) && wanted(&filter.stream, &stream) {
            found.push((id.parse::<u64>().unwrap_or(0), app, stream, id, dir));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| (&a.1, &a.2).cmp(&(&b.1, &b.2))));
    let truncated = found.len() > filter.limit;
    found.truncate(filter.limit);
    let mut out = Vec::with_capacity(found.len());
    for (_, app, stream, id, dir) in found {
        match describe(&dir, app, stream, id) {
            Ok(info) => out.push(info),
            // Deleted meanwhile (by retention, or another origin sharing the store).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok((out, truncated))
}

/// The recording `app/stream/id` under `root` (names checked by the caller), if there is one.
pub fn one(
    root: &Path,
    app: &str,
    stream: &str,
    id: &str,
) -> std::io::Result<Option<RecordingInfo>> {
    let dir = root.join(app).join(stream).join(id);
    if !dir.is_dir() {
        return Ok(None);
    }
    describe(&dir, app.to_string(), stream.to_string(), id.to_string()).map(Some)
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

/// Delete the finished recording `app/stream/id` under `root` (names checked by the caller).
pub fn delete(root: &Path, app: &str, stream: &str, id: &str) -> Result<(), DeleteError> {
    let dir = root.join(app).join(stream).join(id);
    let text = match std::fs::read_to_string(dir.join("index.m3u8")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => {
            // Nothing recorded in it yet: a recording that is starting.
            return Err(DeleteError::InProgress);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DeleteError::NotFound),
        Err(e) => return Err(e.into()),
    };
    if !index::is_finished(&text) {
        return Err(DeleteError::InProgress);
    }
    match std::fs::remove_dir_all(&dir) {
        // Another origin sharing the store deleted it first: gone either way.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => Ok(r?),
    }
}

/// `(app, stream, id)` of a recording directory under `root`.
fn names(root: &Path, dir: &Path) -> Option<(String, String, String)> {
    let rel = dir.strip_prefix(root).ok()?;
    let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
    let (app, stream, id) = (parts.next()?, parts.next()?, parts.next()?);
    id.parse::<u64>().ok()?;
    Some((app, stream, id))
}

fn describe(dir: &Path, app: String, stream: String, id: String) -> std::io::Result<RecordingInfo> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        bytes += entry.metadata().map_or(0, |m| m.len());
    }
    let text = std::fs::read_to_string(dir.join("index.m3u8")).unwrap_or_default();
    let summary = index::summary(&text);
    let prefix = format!("/vod/{app}/{stream}/{id}");
    Ok(RecordingInfo {
        started_at_ms: id.parse().unwrap_or(0),
        duration_s: (summary.duration_s * 1000.0).round() / 1000.0,
        segments: summary.segments,
        periods: summary.periods,
        bytes,
        finished: summary.finished,
        hls: format!("{prefix}/index.m3u8"),
        mp4: summary.finished.then(|| format!("{prefix}.mp4")),
        app,
        stream,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(root: &Path, prefix: &str, index: &str) {
        let dir = root.join(prefix);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.m3u8"), index).unwrap();
        std::fs::write(dir.join("seg-1.m4s"), vec![0u8; 100]).unwrap();
    }

    #[test]
    fn recordings_are_listed_newest_first_filtered_and_finished_ones_deleted() {
        let root = std::env::temp_dir().join(format!("sluice-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let done = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.000,\nseg-1.m4s\n\
                    #EXT-X-DISCONTINUITY\n#EXTINF:1.500,\nseg-2.m4s\n#EXT-X-ENDLIST\n";
        let live = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.000,\nseg-1.m4s\n";
        recording(&root, "live/a/100", done);
        recording(&root, "live/a/300", live);
        recording(&root, "live/b/200", done);
        recording(&root, "other/c/400", done);
        let all = Filter { limit: 10, ..Filter::default() };
        let (listed, truncated) = list(&root, &all).unwrap();
        let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!((ids, truncated), (vec!["400", "300", "200", "100"], false));
        let first = &listed[3];
        assert_eq!((first.segments, first.periods, first.finished), (2, 2, true));
        assert!((first.duration_s - 3.5).abs() < 1e-9);
        assert_eq!(first.bytes, done.len() as u64 + 100);
        assert_eq!(first.mp4.as_deref(), Some("/vod/live/a/100.mp4"));
        assert_eq!(listed[1].mp4, None, "not finished");
        let some = Filter { app: Some("live".into()), stream: Some("a".into()), limit: 1 };
        let (listed, truncated) = list(&root, &some).unwrap();
        assert_eq!((listed.len(), listed[0].id.as_str(), truncated), (1, "300", true));
        assert_eq!(one(&root, "live", "b", "200").unwrap().unwrap().stream, "b");
        assert!(one(&root, "live", "b", "999").unwrap().is_none());
        assert!(matches!(delete(&root, "live", "a", "300"), Err(DeleteError::InProgress)));
        assert!(matches!(delete(&root, "live", "a", "999"), Err(DeleteError::NotFound)));
        delete(&root, "live", "a", "100").unwrap();
        assert!(one(&root, "live", "a", "100").unwrap().is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
