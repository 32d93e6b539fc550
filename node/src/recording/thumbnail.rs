//! A recording's thumbnail: its first keyframe, decoded by ffmpeg from its first init segment
//! and first segment (fetched from the store into a scratch directory, so a bucket's
//! recordings get one as a directory's do) and stored beside it as `thumb.jpg`.

use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::inventory::INDEX;
use super::store::Store;
use super::{index, Recordings, THUMBNAIL};

/// How long ffmpeg may take to decode a thumbnail.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The most of a recording fetched to decode one (its first init segment and segment).
const MAX_INPUT: u64 = 64 << 20;

impl Recordings {
    /// Decode the first video frame of recording `prefix` (`APP/NAME/ID`, with a segment) with
    /// `ffmpeg` into its thumbnail, 320 pixels wide. An error says why there is none.
    pub async fn make_thumbnail(&self, prefix: &str, ffmpeg: &Path) -> io::Result<()> {
        let store = self.store.as_ref();
        let missing = |what: &str| io::Error::new(io::ErrorKind::NotFound, format!("no {what}"));
        let text = store.get(&format!("{prefix}/{INDEX}")).await?.ok_or_else(|| missing(INDEX))?;
        let (idx, _) = index::parse(&String::from_utf8_lossy(&text))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an index of ours"))?;
        let first = idx.entries().first().ok_or_else(|| missing("segment yet"))?;
        let init = fetch(store, &format!("{prefix}/init-{}.mp4", first.init_id)).await?;
        let segment = fetch(store, &format!("{prefix}/seg-{}.m4s", first.msn)).await?;
        let scratch = tempfile::Builder::new().prefix("sluice-thumb").tempdir()?;
        let (input, output) = (scratch.path().join("first.mp4"), scratch.path().join(THUMBNAIL));
        // An init segment and a segment after it make a fragmented MP4 ffmpeg reads.
        tokio::fs::write(&input, [init, segment].concat()).await?;
        let mut child = tokio::process::Command::new(ffmpeg)
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(&input)
            .args(["-map", "0:v:0", "-frames:v", "1", "-vf", "scale=320:-2", "-f", "mjpeg"])
            .arg(&output)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let status = tokio::time::timeout(TIMEOUT, child.wait())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "ffmpeg took too long"))??;
        let jpeg = tokio::fs::read(&output).await.unwrap_or_default();
        if !status.success() || jpeg.is_empty() {
            return Err(io::Error::other(format!("ffmpeg failed: {status}")));
        }
        // A recording deleted while ffmpeg ran stays deleted (a put would bring it back).
        if store.read_range(&format!("{prefix}/{INDEX}"), 0, 0).await?.is_none() {
            return Err(missing("recording any more"));
        }
        store.put(&format!("{prefix}/{THUMBNAIL}"), vec![Bytes::from(jpeg)]).await
    }
}

/// The object `key`, whole, when it is no larger than [`MAX_INPUT`].
async fn fetch<S: Store>(store: &S, key: &str) -> io::Result<Bytes> {
    use futures_util::TryStreamExt;
    let object =
        store.read(key).await?.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, key))?;
    if object.len > MAX_INPUT {
        return Err(io::Error::other(format!("{key}: {} bytes, too big", object.len)));
    }
    let parts: Vec<Bytes> = object.body.try_collect().await?;
    Ok(parts.concat().into())
}
