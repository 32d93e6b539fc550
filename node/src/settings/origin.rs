//! What only an origin is configured with (recording, catalog, playout, transcoding, publish
//! authorisation), and the encoder type its transcoding names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::units::{serde_duration, serde_size};

/// What only an origin is configured with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct OriginSettings {
    /// UDP address of the relay that serves this origin's streams; `None`: no relay.
    pub relay_listen: Option<SocketAddr>,
    /// Stream keys: `app/name sha256:HEX` lines (`publish_auth`); with it or a token secret,
    /// every publish needs a credential (but in `publish_open_apps`).
    pub publish_keys_file: Option<PathBuf>,
    /// The secret that signs publish tokens.
    pub publish_token_secret_file: Option<PathBuf>,
    /// Apps that take any publisher even when publish authorisation is on.
    pub publish_open_apps: Vec<String>,
    /// Where recordings are written (`crate::recording`); `None`: nothing is recorded.
    pub record_dir: Option<PathBuf>,
    /// An S3-compatible bucket recordings go to instead, `s3://BUCKET[/PREFIX]` (credentials,
    /// region and endpoint from `AWS_*`); `None`: `record_dir`, if any.
    pub record_store: Option<String>,
    /// Apps whose streams are recorded (`*`: every app); needs `record_dir` or `record_store`.
    pub record_apps: Vec<String>,
    /// Finished recordings older than this (from their start) are deleted; zero: kept.
    #[serde(with = "serde_duration")]
    pub record_max_age: Duration,
    /// Most bytes of recordings kept per app (the oldest finished ones go first); zero: no
    /// limit.
    #[serde(with = "serde_size")]
    pub record_max_bytes: usize,
    /// A recording longer than this is finished and the stream goes on in a new one (so a
    /// 24/7 stream's recordings, and their indexes, stay bounded); zero: no limit.
    #[serde(with = "serde_duration")]
    pub record_max_duration: Duration,
    /// Segments are not recorded while the recordings' file system has less free space than
    /// this (each one missed is counted and the recording gets a gap); zero: no floor.
    #[serde(with = "serde_size")]
    pub record_min_free: usize,
    /// How far back viewers of a stream being recorded can rewind (the DVR playlist); zero:
    /// no DVR playlist.
    #[serde(with = "serde_duration")]
    pub dvr_window: Duration,
    /// FLV files played out as live streams on a schedule are read from here; `None`: no
    /// playout.
    pub playout_dir: Option<PathBuf>,
    /// The content catalog's database (`sqlite://PATH`, `postgres://...`, `off`); `None`:
    /// SQLite in `record_dir` when standalone and recording, none otherwise.
    pub catalog: Option<String>,
    /// Transcoding ladders per app (`crate::transcode::ladder`); `None`: no transcoding.
    pub ladder_file: Option<PathBuf>,
    /// Streams whose ladder this node transcodes at once; more are delivered at source only.
    pub max_transcodes: usize,
    /// The H.264 encoder of renditions.
    pub video_encoder: VideoEncoder,
    /// The ffmpeg program transcoders run.
    pub ffmpeg: PathBuf,
    /// A transcoder that writes nothing this long while its source is live is restarted.
    #[serde(with = "serde_duration")]
    pub transcode_stall_timeout: Duration,
    /// In a cluster: this origin is one of the transcoders streams are transcoded on.
    pub transcoder: bool,
    /// Threads of each transcoder's decoder and filters, and of each rendition's encoder
    /// (0: ffmpeg's choice).
    pub transcode_threads: usize,
    /// Largest source picture (width x height) a transcoder takes: a publisher's declared
    /// size is what decoding and scaling cost.
    pub transcode_max_source_pixels: u64,
}

impl Default for OriginSettings {
    fn default() -> Self {
        OriginSettings {
            relay_listen: None,
            publish_keys_file: None,
            publish_token_secret_file: None,
            publish_open_apps: Vec::new(),
            record_dir: None,
            record_store: None,
            record_apps: Vec::new(),
            record_max_age: Duration::ZERO,
            record_max_bytes: 0,
            record_max_duration: Duration::from_secs(6 * 3600),
            record_min_free: 1 << 30,
            dvr_window: Duration::from_secs(2 * 3600),
            playout_dir: None,
            catalog: None,
            ladder_file: None,
            max_transcodes: 2,
            video_encoder: VideoEncoder::Libx264,
            ffmpeg: PathBuf::from("ffmpeg"),
            transcode_stall_timeout: Duration::from_secs(20),
            transcoder: false,
            transcode_threads: 2,
            transcode_max_source_pixels: 3840 * 2160,
        }
    }
}

/// The H.264 encoder renditions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoEncoder {
    /// x264 in software (veryfast, zero-latency tuning).
    #[default]
    Libx264,
    /// NVIDIA NVENC (ffmpeg built with it and a GPU present).
    H264Nvenc,
    /// VA-API on /dev/dri/renderD128 (Intel/AMD).
    H264Vaapi,
}

impl VideoEncoder {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoEncoder::Libx264 => "libx264",
            VideoEncoder::H264Nvenc => "h264_nvenc",
            VideoEncoder::H264Vaapi => "h264_vaapi",
        }
    }
}

impl std::str::FromStr for VideoEncoder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [VideoEncoder::Libx264, VideoEncoder::H264Nvenc, VideoEncoder::H264Vaapi]
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not libx264, h264_nvenc or h264_vaapi"))
    }
}

impl std::fmt::Display for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
