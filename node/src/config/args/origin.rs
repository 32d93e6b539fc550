//! The origin's own flags: relay, publish authorisation, recording, catalog, playout,
//! transcoding.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgMatches, Args};

use super::origin as defaults;
use crate::config::from_user;
use crate::settings::OriginSettings;
use crate::units::{ByteSize, HumanDuration};

/// What only an origin is configured with.
#[derive(Debug, Clone, Args)]
pub struct OriginArgs {
    /// UDP address of the QUIC relay that serves this origin's streams to edges (needs
    /// --tls-dir or --insecure-dev). Absent: no relay (standalone).
    #[arg(long, env = "SLUICE_RELAY_LISTEN")]
    pub relay_listen: Option<SocketAddr>,

    /// Stream keys: a file of `app/name sha256:HEX` lines (make one with `sluice-origin
    /// stream-key`). With it (or --publish-token-secret-file) every publish needs a stream key
    /// (`rtmp://HOST/APP/KEY`, or `APP/NAME?key=KEY`) or a signed token, except in
    /// --publish-open-apps; others are refused with NetStream.Publish.Unauthorized.
    #[arg(long, env = "SLUICE_PUBLISH_KEYS_FILE")]
    pub publish_keys_file: Option<PathBuf>,

    /// The secret (a file) that signs publish tokens: `APP/NAME?token=EXPIRY.SIG` (make one
    /// with `sluice-origin publish-token`). Turns publish authorisation on.
    #[arg(long, env = "SLUICE_PUBLISH_TOKEN_SECRET_FILE")]
    pub publish_token_secret_file: Option<PathBuf>,

    /// Apps that take any publisher while publish authorisation is on, comma-separated.
    #[arg(long, env = "SLUICE_PUBLISH_OPEN_APPS", value_delimiter = ',')]
    pub publish_open_apps: Vec<String>,

    /// Directory recordings go to: `APP/NAME/ID/` holds the stream's CMAF segments and an HLS
    /// index, played back from `/vod/APP/NAME/ID/index.m3u8` (ID: the start, Unix ms).
    /// Needs --record-apps.
    #[arg(long, env = "SLUICE_RECORD_DIR", conflicts_with = "record_store")]
    pub record_dir: Option<PathBuf>,

    /// An S3-compatible bucket recordings go to instead of --record-dir: s3://BUCKET[/PREFIX],
    /// the same APP/NAME/ID/ keys. Credentials, region and endpoint from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT (AWS_ALLOW_HTTP=true for a plain-HTTP
    /// endpoint). In a cluster give every origin the same bucket and prefix.
    #[arg(long, env = "SLUICE_RECORD_STORE")]
    pub record_store: Option<String>,

    /// Apps whose streams are recorded, comma-separated (`*`: every app). Needs --record-dir or
    /// --record-store.
    #[arg(long, env = "SLUICE_RECORD_APPS", value_delimiter = ',')]
    pub record_apps: Vec<String>,

    /// Finished recordings older than this (counted from their start) are deleted. 0: kept.
    #[arg(long, env = "SLUICE_RECORD_MAX_AGE", default_value_t = HumanDuration(std::time::Duration::ZERO))]
    pub record_max_age: HumanDuration,

    /// Most bytes of recordings kept per app: past it, the oldest finished recordings of the
    /// app are deleted (one being written is never deleted). 0: no limit.
    #[arg(long, env = "SLUICE_RECORD_MAX_BYTES", default_value_t = ByteSize(0))]
    pub record_max_bytes: ByteSize,

    /// A recording that reaches this length is finished (at a segment boundary) and the
    /// stream goes on in a new recording, so a 24/7 stream's recordings stay bounded. 0: none.
    #[arg(long, env = "SLUICE_RECORD_MAX_DURATION", default_value_t = HumanDuration(defaults().record_max_duration))]
    pub record_max_duration: HumanDuration,

    /// Segments are not recorded while the file system of --record-dir has less free space
    /// than this (each one missed is counted in sluice_recording_errors_total and leaves a
    /// gap in the recording). 0: no floor.
    #[arg(long, env = "SLUICE_RECORD_MIN_FREE", default_value_t = ByteSize(defaults().record_min_free))]
    pub record_min_free: ByteSize,

    /// How far back viewers of a recorded stream can rewind while it is live: the last this
    /// long of its recording, as a live HLS playlist at /vod/APP/NAME/dvr.m3u8 (media read
    /// from the recording). 0: no DVR playlist.
    #[arg(long, env = "SLUICE_DVR_WINDOW", default_value_t = HumanDuration(defaults().dvr_window))]
    pub dvr_window: HumanDuration,

    /// Scheduled playout: FLV and MP4 files in this directory go out as live streams at the times
    /// the schedule gives them (paced by the origin; a live encoder of the name takes over
    /// and hands back). Standalone: /api/schedule, kept in DIR/.sluice-schedule.json. In a
    /// cluster: `sluicectl schedule`, played by the stream's home, or the first origin after it
    /// in ring order with a --playout-dir (give them the same files). Default: none.
    #[arg(long, env = "SLUICE_PLAYOUT_DIR")]
    pub playout_dir: Option<PathBuf>,

    /// The content catalog (recordings and live streams, searchable at /api/catalog):
    /// sqlite://PATH, postgres://USER@HOST/DB (a cluster's origins and control plane share
    /// it; the password from PGPASSWORD), or `off`. Default: SQLite in --record-dir when
    /// standalone and recording, none otherwise.
    #[arg(long, env = "SLUICE_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,

    /// Transcoding ladders per app (TOML: a table per app, `"*"` for the rest, each with
    /// `renditions = [{ name = "480p", height = 480, video-kbps = 1000 }, ...]`; optional
    /// `audio-kbps` (AAC instead of the source's audio) and `fps`). A stream of such an app
    /// also plays as `NAME_480p`, etc.; rungs not smaller than the source are left out.
    #[arg(long, env = "SLUICE_LADDER_FILE")]
    pub ladder_file: Option<PathBuf>,

    /// Streams this node transcodes at once; the streams past it are delivered at source
    /// only (logged, counted in sluice_transcodes_refused_total).
    #[arg(long, env = "SLUICE_MAX_TRANSCODES", default_value_t = defaults().max_transcodes)]
    pub max_transcodes: usize,

    /// H.264 encoder of the renditions: libx264 (software), h264_nvenc or h264_vaapi (when
    /// ffmpeg and the machine have them).
    #[arg(long, env = "SLUICE_VIDEO_ENCODER", default_value_t = defaults().video_encoder)]
    pub video_encoder: crate::settings::VideoEncoder,

    /// The ffmpeg program transcoding runs.
    #[arg(long, env = "SLUICE_FFMPEG", default_value_os_t = defaults().ffmpeg)]
    pub ffmpeg: PathBuf,

    /// A transcoder (ffmpeg) that writes nothing this long while its source is live is killed
    /// and restarted (a hung encoder).
    #[arg(long, env = "SLUICE_TRANSCODE_STALL_TIMEOUT", default_value_t = HumanDuration(defaults().transcode_stall_timeout))]
    pub transcode_stall_timeout: HumanDuration,

    /// Mark this origin as a transcoder: when a cluster has any, each stream with a ladder is
    /// transcoded on one of them (its owner on a ring of the transcoders, which is sent the
    /// stream) rather than on the stream's home.
    #[arg(long, env = "SLUICE_TRANSCODER")]
    pub transcoder: bool,

    /// Threads of each transcoder's decoder and filters, and of each rendition's encoder (0:
    /// ffmpeg's choice, about one per core each): with --max-transcodes, what transcoding may
    /// take of the machine.
    #[arg(long, env = "SLUICE_TRANSCODE_THREADS", default_value_t = defaults().transcode_threads)]
    pub transcode_threads: usize,

    /// Largest source picture (width x height) transcoded; a larger one plays at source only
    /// (logged, counted in sluice_transcodes_refused_total): decoding and scaling cost what
    /// the publisher declares.
    #[arg(long, env = "SLUICE_TRANSCODE_MAX_SOURCE_PIXELS", default_value_t = defaults().transcode_max_source_pixels)]
    pub transcode_max_source_pixels: u64,
}

impl OriginArgs {
    pub fn apply(&self, m: &ArgMatches, s: &mut OriginSettings) {
        overlay!(m, self;
            s.relay_listen => relay_listen,
            s.publish_keys_file => publish_keys_file,
            s.publish_token_secret_file => publish_token_secret_file,
            s.publish_open_apps => publish_open_apps,
            s.record_dir => record_dir,
            s.record_store => record_store,
            s.record_apps => record_apps,
            s.record_max_age => record_max_age,
            s.record_max_bytes => record_max_bytes,
            s.record_max_duration => record_max_duration,
            s.record_min_free => record_min_free,
            s.dvr_window => dvr_window,
            s.playout_dir => playout_dir,
            s.catalog => catalog,
            s.ladder_file => ladder_file,
            s.max_transcodes => max_transcodes,
            s.video_encoder => video_encoder,
            s.ffmpeg => ffmpeg,
            s.transcode_stall_timeout => transcode_stall_timeout,
            s.transcoder => transcoder,
            s.transcode_threads => transcode_threads,
            s.transcode_max_source_pixels => transcode_max_source_pixels,
        );
    }
}
