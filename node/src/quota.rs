//! Admission quotas per app (`--quota-file`): what a publisher may send (bit rate, frame rate,
//! resolution, codecs), how many streams an app may have live, and how many viewers one of its
//! streams may have on a node. Sans-IO: the stream's facts and the time come in, a verdict
//! comes out; the RTMP driver acts on it.
//!
//! What the encoder declares (its sequence headers: codec and resolution; its `onMetaData`:
//! frame rate and video data rate) is checked as it arrives: a breach cuts the publisher at
//! once. What it actually sends (bit rate and frame rate measured over 2 s windows) may go
//! over for a while: the first breach is warned in the log, and a publisher still over after
//! `--quota-grace` is cut. Back under the limit, the grace starts afresh.
//!
//! Stream keys and publish tokens each name one stream, so a key publishes at most one stream
//! at a time whatever the quotas say; `max-streams` bounds an app.
//!
//! The file: a table per app, and `"*"` for apps without their own:
//!
//! ```toml
//! [live]
//! max-bitrate-kbps = 6000
//! max-fps = 60
//! max-width = 1920
//! max-height = 1080
//! video-codecs = ["h264", "h265"]
//! audio-codecs = ["aac"]
//! max-streams = 50
//! max-viewers-per-stream = 2000
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// Slack on measured rates: a 2 s window that holds a keyframe reads above the average.
const MEASURED_SLACK: f64 = 1.10;

/// One app's limits; absent fields are not limited.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuotaLimits {
    /// Video plus audio, kilobits per second.
    pub max_bitrate_kbps: Option<u64>,
    pub max_fps: Option<f64>,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    /// Video codecs allowed (names as `/api/streams` shows them: `h264`, `h265`, `av1`, ...).
    pub video_codecs: Option<Vec<String>>,
    /// Audio codecs allowed (`aac`, `mp3`, `opus`, ...).
    pub audio_codecs: Option<Vec<String>>,
    /// Streams of the app live at once (in the cluster, as its registry lists them).
    pub max_streams: Option<usize>,
    /// Viewers of one stream on one node.
    pub max_viewers_per_stream: Option<usize>,
}

/// The quotas of every app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quotas {
    apps: BTreeMap<String, QuotaLimits>,
}

/// A quota file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QuotaFileError {
    #[error("reading --quota-file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("--quota-file {path}: {message}")]
    Parse { path: String, message: String },
}

impl Quotas {
    /// Parse the file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Quotas, QuotaFileError> {
        let parse_error = |message: String| QuotaFileError::Parse { path: path.into(), message };
        let apps: BTreeMap<String, QuotaLimits> = toml::from_str(text)
            .map_err(|e| parse_error(e.to_string().trim().replace('\n', " ")))?;
        for (app, limits) in &apps {
            if limits.max_fps.is_some_and(|f| !f.is_finite() || f <= 0.0) {
                return Err(parse_error(format!("[{app}] max-fps must be a positive number")));
            }
        }
        Ok(Quotas { apps })
    }

    /// Read and parse `path`.
    pub fn load(path: &std::path::Path) -> Result<Quotas, QuotaFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| QuotaFileError::Read { path: name.clone(), source })?;
        Quotas::parse(&text, &name)
    }

    /// The limits of `app`: its own table, else `"*"`'s.
    pub fn for_app(&self, app: &str) -> Option<&QuotaLimits> {
        self.apps.get(app).or_else(|| self.apps.get("*"))
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

/// Which limit a breach is of (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bitrate,
    Fps,
    Resolution,
    Codec,
    Streams,
    Viewers,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Limit::Bitrate => "bitrate",
            Limit::Fps => "fps",
            Limit::Resolution => "resolution",
            Limit::Codec => "codec",
            Limit::Streams => "streams",
            Limit::Viewers => "viewers",
        }
    }
}

/// A limit gone past, and by what (the text the encoder and the log get).
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub limit: Limit,
    pub detail: String,
}

/// What a publisher's stream shows so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamFacts {
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// From `onMetaData`.
    pub declared_fps: Option<f64>,
    /// From `onMetaData` (`videodatarate`, kbit/s).
    pub declared_video_kbps: Option<f64>,
    /// Measured over the last window.
    pub measured_fps: f64,
    pub measured_kbps: f64,
}

/// What to do about a publisher now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Within,
    /// Over a measured limit, for less than the grace: say so once.
    Warn(Breach),
    /// Stop it.
    Cut(Breach),
}

impl QuotaLimits {
    /// A breach of what the encoder declared (codecs, resolution, metadata rates).
    pub fn declared_breach(&self, f: &StreamFacts) -> Option<Breach> {
        let codec = |kind: &str, name: &Option<String>, allowed: &Option<Vec<String>>| {
            let (name, allowed) = (name.as_ref()?, allowed.as_ref()?);
            (!allowed.iter().any(|a| a.eq_ignore_ascii_case(name))).then(|| Breach {
                limit: Limit::Codec,
                detail: format!(
                    "{kind} codec {name} is not allowed (allowed: {})",
                    allowed.join(", ")
                ),
            })
        };
        if let Some(b) = codec("video", &f.video_codec, &self.video_codecs) {
            return Some(b);
        }
        if let Some(b) = codec("audio", &f.audio_codec, &self.audio_codecs) {
            return Some(b);
        }
        let over =
            |value: Option<u32>, max: Option<u32>| value.zip(max).is_some_and(|(v, m)| v > m);
        if over(f.width, self.max_width) || over(f.height, self.max_height) {
            let limit = |m: Option<u32>| m.map_or("any".to_string(), |m| m.to_string());
            return Some(Breach {
                limit: Limit::Resolution,
                detail: format!(
                    "resolution {}x{} is over {}x{}",
                    f.width.unwrap_or(0),
                    f.height.unwrap_or(0),
                    limit(self.max_width),
                    limit(self.max_height)
                ),
            });
        }
        if let (Some(fps), Some(max)) = (f.declared_fps, self.max_fps) {
            if fps > max {
                let detail = format!("declared frame rate {fps:.1} fps is over {max} fps");
                return Some(Breach { limit: Limit::Fps, detail });
            }
        }
        if let (Some(kbps), Some(max)) = (f.declared_video_kbps, self.max_bitrate_kbps) {
            if kbps > max as f64 {
                let detail = format!("declared bit rate {kbps:.0} kbit/s is over {max} kbit/s");
                return Some(Breach { limit: Limit::Bitrate, detail });
            }
        }
        None
    }

    /// A breach of what the publisher measurably sends.
    pub fn measured_breach(&self, f: &StreamFacts) -> Option<Breach> {
        if let Some(max) = self.max_bitrate_kbps {
            if f.measured_kbps > max as f64 * MEASURED_SLACK {
                let detail = format!("bit rate {:.0} kbit/s is over {max} kbit/s", f.measured_kbps);
                return Some(Breach { limit: Limit::Bitrate, detail });
            }
        }
        if let Some(max) = self.max_fps {
            if f.measured_fps > max * MEASURED_SLACK {
                let detail = format!("frame rate {:.1} fps is over {max} fps", f.measured_fps);
                return Some(Breach { limit: Limit::Fps, detail });
            }
        }
        None
    }
}

/// One publisher's quota state: when it went over a measured limit.
#[derive(Debug)]
pub struct QuotaWatch {
    limits: QuotaLimits,
    grace: Duration,
    over_since: Option<Instant>,
}

impl QuotaWatch {
    pub fn new(limits: QuotaLimits, grace: Duration) -> QuotaWatch {
        QuotaWatch { limits, grace, over_since: None }
    }

    /// The verdict on `facts` at `now`.
    pub fn check(&mut self, facts: &StreamFacts, now: Instant) -> Verdict {
        if let Some(breach) = self.limits.declared_breach(facts) {
            return Verdict::Cut(breach);
        }
        let Some(breach) = self.limits.measured_breach(facts) else {
            self.over_since = None;
            return Verdict::Within;
        };
        match self.over_since {
            None => {
                self.over_since = Some(now);
                Verdict::Warn(breach)
            }
            Some(since) if now.saturating_duration_since(since) >= self.grace => {
                Verdict::Cut(Breach {
                    detail: format!("{} for more than {:?}", breach.detail, self.grace),
                    ..breach
                })
            }
            Some(_) => Verdict::Within,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [live]
        max-bitrate-kbps = 1000
        max-fps = 30
        max-width = 1280
        max-height = 720
        video-codecs = ["h264"]
        audio-codecs = ["aac"]

        ["*"]
        max-streams = 2
        max-viewers-per-stream = 10
    "#;

    fn facts() -> StreamFacts {
        StreamFacts {
            video_codec: Some("h264".into()),
            audio_codec: Some("aac".into()),
            width: Some(1280),
            height: Some(720),
            declared_fps: Some(30.0),
            declared_video_kbps: Some(800.0),
            measured_fps: 30.0,
            measured_kbps: 900.0,
        }
    }

    #[test]
    fn apps_get_their_own_table_or_the_default_and_bad_files_say_where() {
        let q = Quotas::parse(FILE, "q.toml").unwrap();
        assert_eq!(q.for_app("live").unwrap().max_bitrate_kbps, Some(1000));
        assert_eq!(q.for_app("live").unwrap().max_streams, None, "no merging with *");
        assert_eq!(q.for_app("other").unwrap().max_streams, Some(2));
        assert!(Quotas::default().for_app("live").is_none());
        let e = Quotas::parse("[live]\nmax-bitrate = 5\n", "q.toml").unwrap_err().to_string();
        assert!(e.contains("q.toml") && e.contains("max-bitrate"), "{e}");
        let e = Quotas::parse("[live]\nmax-fps = -1\n", "q.toml").unwrap_err().to_string();
        assert!(e.contains("[live] max-fps"), "{e}");
    }

    #[test]
    fn declared_breaches_cut_at_once() {
        let limits = Quotas::parse(FILE, "q").unwrap().for_app("live").unwrap().clone();
        let now = Instant::now();
        let mut w = QuotaWatch::new(limits, Duration::from_secs(5));
        assert_eq!(w.check(&facts(), now), Verdict::Within);
        let cases = [
            (StreamFacts { video_codec: Some("h265".into()), ..facts() }, Limit::Codec, "h265"),
            (StreamFacts { audio_codec: Some("mp3".into()), ..facts() }, Limit::Codec, "mp3"),
            (StreamFacts { height: Some(1080), ..facts() }, Limit::Resolution, "1280x1080"),
            (StreamFacts { declared_fps: Some(60.0), ..facts() }, Limit::Fps, "60.0 fps"),
            (StreamFacts { declared_video_kbps: Some(5000.0), ..facts() }, Limit::Bitrate, "5000"),
        ];
        for (f, limit, said) in cases {
            let Verdict::Cut(b) = w.check(&f, now) else { panic!("{f:?} not cut") };
            assert_eq!(b.limit, limit);
            assert!(b.detail.contains(said), "{}", b.detail);
        }
        // Codec names compare without case; unknown facts breach nothing.
        let f = StreamFacts { video_codec: Some("H264".into()), ..StreamFacts::default() };
        assert_eq!(w.check(&f, now), Verdict::Within);
    }

    #[test]
    fn measured_breaches_are_warned_then_cut_after_the_grace_and_recovery_resets_it() {
        let limits = QuotaLimits { max_bitrate_kbps: Some(1000), ..QuotaLimits::default() };
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = QuotaWatch::new(limits, s(10));
        let over = StreamFacts { measured_kbps: 2000.0, ..facts() };
        // Within the slack: no breach.
        let near = StreamFacts { measured_kbps: 1090.0, ..facts() };
        assert_eq!(w.check(&near, t0), Verdict::Within);
        assert!(matches!(w.check(&over, t0), Verdict::Warn(b) if b.limit == Limit::Bitrate));
        assert_eq!(w.check(&over, t0 + s(9)), Verdict::Within, "warned once, inside the grace");
        // Back under: the grace starts again at the next breach.
        assert_eq!(w.check(&facts(), t0 + s(9)), Verdict::Within);
        assert!(matches!(w.check(&over, t0 + s(12)), Verdict::Warn(_)));
        assert_eq!(w.check(&over, t0 + s(21)), Verdict::Within);
        let Verdict::Cut(b) = w.check(&over, t0 + s(22)) else { panic!("not cut") };
        assert!(b.detail.contains("2000 kbit/s is over 1000") && b.detail.contains("10s"), "{b:?}");
    }
}
