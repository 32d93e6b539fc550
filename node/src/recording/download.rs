//! A finished recording as one MP4 file (`/vod/APP/NAME/ID.mp4`, [`crate::http`]): its layout
//! ([`sluice_media::mp4::Layout`]: the `moov` with every sample table, then ranges of the
//! segment files) is built once from the index, init segments and segments and kept beside
//! them (`mp4.layout`); the file is then served as ranges of the segment files, never copied
//! or remuxed into a second file.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use sluice_media::mp4::{parse_init, parse_segment, Builder, InitInfo, Layout, Mp4Error};

use super::index;
use super::store::Store;

/// The layout's file in a recording's directory.
pub const LAYOUT_FILE: &str = "mp4.layout";

/// Most bytes of decoded layouts kept in memory (a player seeking in a long recording asks
/// for many ranges; a 6 h recording's layout is some 20 MB).
pub const CACHE_BYTES: u64 = 64 << 20;

/// Recently served recordings' MP4s, by `APP/NAME/ID`, bounded by [`CACHE_BYTES`].
pub type Cache = quick_cache::sync::Cache<String, Arc<Download>, Weight>;

/// A cache entry's weight: roughly the bytes it holds.
#[derive(Debug, Clone, Copy)]
pub struct Weight;

impl quick_cache::Weighter<String, Arc<Download>> for Weight {
    fn weight(&self, key: &String, d: &Arc<Download>) -> u64 {
        let sources: usize = d.sources.iter().map(|s| s.len() + 24).sum();
        (key.len() + d.layout.head().len() + d.layout.pieces().len() * 24 + sources) as u64
    }
}

/// An empty [`Cache`].
pub fn cache() -> Cache {
    Cache::with_weighter(64, CACHE_BYTES, Weight)
}

/// Why a recording has no MP4.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("no such recording")]
    NotFound,
    #[error("the recording is still being written")]
    NotFinished,
    #[error("reading the recording: {0}")]
    Io(#[from] io::Error),
    #[error("the recording's media cannot be made into one MP4: {0}")]
    Media(#[from] Mp4Error),
}

/// A recording's MP4: its layout, and the store key of each source it names.
#[derive(Debug)]
pub struct Download {
    pub layout: Layout,
    /// `APP/NAME/ID/seg-N.m4s` of each [`sluice_media::mp4::Piece::source`].
    pub sources: Vec<String>,
}

/// The MP4 of the finished recording `prefix` (`APP/NAME/ID`): from `cache`, its stored
/// layout, or one built now and stored (loads and builds under `builds`: one at a time).
pub async fn open<S: Store>(
    store: &S,
    prefix: &str,
    builds: &tokio::sync::Mutex<()>,
    cache: &Cache,
) -> Result<Arc<Download>, DownloadError> {
    if let Some(download) = cache.get(prefix) {
        return Ok(download);
    }
    let download = Arc::new(load(store, prefix, builds).await?);
    cache.insert(prefix.to_string(), download.clone());
    Ok(download)
}

async fn load<S: Store>(
    store: &S,
    prefix: &str,
    builds: &tokio::sync::Mutex<()>,
) -> Result<Download, DownloadError> {
    let index = store.get(&format!("{prefix}/index.m3u8")).await?;
    let text = index.as_deref().and_then(|b| std::str::from_utf8(b).ok());
    let Some(text) = text else { return Err(DownloadError::NotFound) };
    if !index::is_finished(text) {
        return Err(DownloadError::NotFinished);
    }
    let files = index::files(text).ok_or(DownloadError::NotFound)?;
    let sources: Vec<String> =
        files.iter().map(|(_, msn)| format!("{prefix}/seg-{msn}.m4s")).collect();
    let layout_key = format!("{prefix}/{LAYOUT_FILE}");
    // Loading a stored layout (some 20 MB for 6 h) or building one: one at a time per node, so
    // requests for many long recordings cannot hold many in memory at once.
    let _one_at_a_time = builds.lock().await;
    if let Some(layout) = stored(store, &layout_key, sources.len()).await {
        return Ok(Download { layout, sources });
    }
    let layout = build(store, prefix, &files).await?;
    if let Err(e) = store.put(&layout_key, vec![layout.encode()]).await {
        // Served anyway; built again next time.
        tracing::warn!(recording = prefix, error = %e, "recording: storing the MP4 layout failed");
    }
    tracing::info!(
        recording = prefix,
        bytes = layout.len(),
        duration_s = layout.duration_s(),
        "recording: MP4 layout built"
    );
    Ok(Download { layout, sources })
}

/// The stored layout, if there is one that fits the index (anything else is built again).
async fn stored<S: Store>(store: &S, key: &str, sources: usize) -> Option<Layout> {
    let bytes = store.get(key).await.ok()??;
    let layout = Layout::decode(&bytes).ok()?;
    layout.pieces().iter().all(|p| p.source < sources).then_some(layout)
}

async fn build<S: Store>(
    store: &S,
    prefix: &str,
    files: &[(u32, u64)],
) -> Result<Layout, DownloadError> {
    let mut builder = Builder::new();
    let mut inits: HashMap<u32, InitInfo> = HashMap::new();
    for (source, &(init_id, msn)) in files.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(slot) = inits.entry(init_id) {
            let bytes = store.get(&format!("{prefix}/init-{init_id}.mp4")).await?;
            let info = parse_init(&bytes.ok_or(DownloadError::NotFound)?)?;
            builder.push_init(init_id, &info)?;
            slot.insert(info);
        }
        let Some(init) = inits.get(&init_id) else { return Err(DownloadError::NotFound) };
        let segment = store.get(&format!("{prefix}/seg-{msn}.m4s")).await?;
        let runs = parse_segment(&segment.ok_or(DownloadError::NotFound)?, init)?;
        builder.push_segment(source, init_id, runs)?;
    }
    // The sample tables of a long recording take a moment: off the runtime's threads.
    tokio::task::spawn_blocking(move || builder.finish())
        .await
        .map_err(io::Error::other)?
        .map_err(DownloadError::from)
}
