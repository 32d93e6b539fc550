//! Transcoding ladders per app (`--ladder-file`), and the renditions a source gets. Sans-IO.
//!
//! The file: a table per app, `"*"` for apps without their own, each with its renditions:
//!
//! ```toml
//! [live]
//! renditions = [
//!   { name = "720p", height = 720, video-kbps = 2500 },
//!   { name = "480p", height = 480, video-kbps = 1000 },
//!   { name = "240p", height = 240, video-kbps = 400, audio-kbps = 64 },
//! ]
//! ```
//!
//! A rendition plays under the source's name with `_NAME` appended (`live/cam_720p`). It is
//! made only when it is smaller than the source (never upscaled); its width keeps the source's
//! aspect ratio; it keeps the source's frame rate unless `fps` lowers it; its audio is the
//! source's unless `audio-kbps` asks for AAC at that rate.

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_media::stream_name::StreamKey;

/// One rung of a ladder, as the file (or the control plane) says it; bounds in
/// [`sluice_cluster::ladder::validate`].
pub use sluice_cluster::ladder::{Rung as Rendition, MAX_RENDITIONS};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ladder {
    pub renditions: Vec<Rendition>,
}

/// What one source gets from one rung: the picture size, frame rate and rates to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: Option<u32>,
    pub fps: Option<f64>,
}

impl Output {
    /// The stream this output is published as: `app/source_NAME`.
    pub fn key(&self, source: &StreamKey) -> Option<StreamKey> {
        let name = format!("{}_{}", source.name(), self.name);
        StreamKey::parse(source.app(), &name).ok().map(|(key, _)| key)
    }
}

impl Ladder {
    /// The outputs a `width`x`height` source at `fps` gets: the rungs strictly smaller than it,
    /// tallest first.
    pub fn plan(&self, width: u32, height: u32, fps: Option<f64>) -> Vec<Output> {
        let mut out: Vec<Output> = self
            .renditions
            .iter()
            .filter(|r| r.height < height && width > 0)
            .map(|r| Output {
                name: r.name.clone(),
                // At most 4:1 whatever the publisher claims (cost is per pixel).
                width: even(u64::from(width) * u64::from(r.height) / u64::from(height))
                    .min(r.height * 4),
                height: r.height,
                video_kbps: r.video_kbps,
                audio_kbps: r.audio_kbps,
                fps: r.fps.filter(|want| fps.is_none_or(|have| *want < have)),
            })
            .collect();
        out.sort_by_key(|o| std::cmp::Reverse(o.height));
        out
    }

    /// Whether `name` is what one of this ladder's renditions of some source is called.
    pub fn is_rendition_name(&self, name: &str) -> bool {
        self.renditions.iter().any(|r| {
            name.len() > r.name.len() + 1
                && name.ends_with(&r.name)
                && name.as_bytes()[name.len() - r.name.len() - 1] == b'_'
        })
    }
}

fn even(v: u64) -> u32 {
    let v = u32::try_from(v).unwrap_or(u32::MAX).max(2);
    v - v % 2
}

/// The ladders of every app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ladders {
    apps: BTreeMap<String, Ladder>,
}

/// A ladder file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LadderFileError {
    #[error("reading --ladder-file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("--ladder-file {path}: {message}")]
    Parse { path: String, message: String },
}

impl Ladders {
    /// Parse the file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Ladders, LadderFileError> {
        let fail = |message: String| LadderFileError::Parse { path: path.into(), message };
        let apps: BTreeMap<String, Ladder> =
            toml::from_str(text).map_err(|e| fail(e.to_string().trim().replace('\n', " ")))?;
        for (app, ladder) in &apps {
            sluice_cluster::ladder::validate(&ladder.renditions)
                .map_err(|m| fail(format!("[{app}] {m}")))?;
        }
        Ok(Ladders { apps })
    }

    /// Read and parse `path`.
    pub fn load(path: &std::path::Path) -> Result<Ladders, LadderFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| LadderFileError::Read { path: name.clone(), source })?;
        Ladders::parse(&text, &name)
    }

    /// The ladder of `app`: its own table, else `"*"`'s (an empty ladder: none).
    pub fn for_app(&self, app: &str) -> Option<&Ladder> {
        self.apps.get(app).or_else(|| self.apps.get("*")).filter(|l| !l.renditions.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.apps.values().all(|l| l.renditions.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[live]
renditions = [
  { name = "480p", height = 480, video-kbps = 1000 },
  { name = "720p", height = 720, video-kbps = 2500 },
  { name = "240p", height = 240, video-kbps = 400, audio-kbps = 64, fps = 15 },
]
["*"]
renditions = []
"#;

    #[test]
    fn a_source_gets_the_smaller_rungs_tallest_first_at_its_aspect_ratio() {
        let ladders = Ladders::parse(FILE, "l.toml").unwrap();
        let ladder = ladders.for_app("live").unwrap();
        let plan = ladder.plan(1280, 720, Some(30.0));
        let sizes: Vec<_> = plan.iter().map(|o| (o.name.as_str(), o.width, o.height)).collect();
        assert_eq!(sizes, [("480p", 852, 480), ("240p", 426, 240)]);
        assert_eq!(plan[1].fps, Some(15.0));
        assert_eq!(plan[1].audio_kbps, Some(64));
        // Never upscaled, never a higher frame rate.
        assert!(ladder.plan(426, 240, Some(30.0)).is_empty());
        assert_eq!(ladder.plan(1920, 1080, Some(10.0)).last().unwrap().fps, None);
        assert_eq!(ladder.plan(1920, 1080, None).len(), 3);
        // A 4:3 source keeps its shape.
        assert_eq!(ladder.plan(640, 480, None)[0].width, 320);
        // An empty ladder is none.
        assert!(ladders.for_app("other").is_none());
    }

    #[test]
    fn rendition_names_are_recognised_and_keyed() {
        let ladders = Ladders::parse(FILE, "l.toml").unwrap();
        let ladder = ladders.for_app("live").unwrap();
        assert!(ladder.is_rendition_name("cam_720p"));
        assert!(!ladder.is_rendition_name("cam720p"));
        assert!(!ladder.is_rendition_name("_720p"));
        assert!(!ladder.is_rendition_name("720p"));
        assert!(!ladder.is_rendition_name("cam"));
        let source = StreamKey::parse("live", "cam").unwrap().0;
        let plan = ladder.plan(1280, 720, None);
        assert_eq!(plan[0].key(&source).unwrap().to_string(), "live/cam_480p");
    }

    #[test]
    fn bad_files_are_refused_with_the_app_and_rung() {
        let bad = |text: &str| Ladders::parse(text, "l.toml").unwrap_err().to_string();
        let e = bad("[live]\nrenditions = [{ name = \"a b\", height = 240, video-kbps = 400 }]");
        assert!(e.contains("l.toml") && e.contains("[live]") && e.contains("a b"), "{e}");
        let e = bad("[live]\nrenditions = [{ name = \"x\", height = 241, video-kbps = 400 }]");
        assert!(e.contains("height"), "{e}");
        let e = bad("[live]\nrenditions = [{ name = \"x\", height = 240, video-kbps = 1 }]");
        assert!(e.contains("video-kbps"), "{e}");
        let e =
            bad("[live]\nrenditions = [{ name = \"x\", height = 240, video-kbps = 400, fps = 0 }]");
        assert!(e.contains("fps"), "{e}");
        let e = bad("[live]\nrenditions = [{ name = \"x\", height = 240, video_kbps = 400 }]");
        assert!(e.contains("video_kbps") || e.contains("video-kbps"), "{e}");
        let twice = "{ name = \"x\", height = 240, video-kbps = 400 }";
        let e = bad(&format!("[live]\nrenditions = [{twice}, {twice}]"));
        assert!(e.contains("twice"), "{e}");
    }
}
