//! Playout schedules set through the control plane: `{prefix}/schedule/{id}` holds one entry
//! (a file, under every origin's `--playout-dir`, that goes out as `app/stream` from a time),
//! no lease: in force until deleted. The stream's ring home plays it; each origin tells how its
//! entries stand in its load report ([`crate::types::LoadReport::playouts`]).
//!
//! The checks here are shared by the control plane (before it writes), the cache (on what it
//! reads) and a standalone origin's own schedule.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use sluice_media::stream_name::StreamKey;

/// Most entries a schedule holds (a cluster's, or a standalone origin's).
pub const MAX_ENTRIES: usize = 1000;
/// Longest entry id.
pub const MAX_ID_LEN: usize = 32;
/// Longest file path in an entry.
pub const MAX_FILE_LEN: usize = 1024;

/// One entry as stored: `file` (or `recording`) goes out as `app/stream` from `start_ms`.
/// Fields a later version adds are ignored (a rolling upgrade keeps the entry playing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryValue {
    pub app: String,
    pub stream: String,
    /// Relative to the playout directory; empty when a recording is played.
    #[serde(default)]
    pub file: String,
    /// A finished recording of the node's `--record-dir` (`APP/NAME/ID`) instead of a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// Unix ms.
    pub start_ms: i64,
    /// Start the file again at its end, until the entry is removed.
    #[serde(rename = "loop", default)]
    pub looped: bool,
}

/// An entry as the registry cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    pub id: String,
    pub value: EntryValue,
    pub mod_revision: i64,
}

/// Where an entry is, as the node playing it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayoutState {
    Waiting,
    Playing,
    /// Gave way to a live publisher of its name; it goes on when the name is free.
    Displaced,
    Done,
    Failed,
    /// A state a later version reports.
    #[serde(other)]
    Unknown,
}

impl PlayoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlayoutState::Waiting => "waiting",
            PlayoutState::Playing => "playing",
            PlayoutState::Displaced => "displaced",
            PlayoutState::Done => "done",
            PlayoutState::Failed => "failed",
            PlayoutState::Unknown => "unknown",
        }
    }
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("invalid stream name {0}")]
    Name(String),
    #[error("file {0:?}: a path inside the playout directory (no '..', not absolute)")]
    Path(String),
    #[error("file {0:?}: only FLV (.flv) and MP4 (.mp4, .m4v, .mov) files are played out")]
    Format(String),
    #[error("invalid entry id {0:?} (1 to 32 letters, digits, '-' or '_')")]
    Id(String),
    #[error("an entry plays a file or a recording: give one of them")]
    Input,
    #[error("invalid recording {0:?} (APP/NAME/ID, as the recordings API lists it)")]
    Recording(String),
    #[error("start {0} is not a time (Unix ms, 0 to year 9999)")]
    Start(i64),
}

/// The latest start accepted (the year 9999), in Unix ms.
pub const MAX_START_MS: i64 = 253_402_300_799_000;

/// Check an entry's name and file (not whether the file exists: only the node that plays it
/// can tell).
pub fn validate(e: &EntryValue) -> Result<StreamKey, EntryError> {
    let key = match StreamKey::parse(&e.app, &e.stream) {
        Ok((key, None)) if key.app() == e.app && key.name() == e.stream => key,
        _ => return Err(EntryError::Name(format!("{}/{}", e.app, e.stream))),
    };
    if !(0..=MAX_START_MS).contains(&e.start_ms) {
        return Err(EntryError::Start(e.start_ms));
    }
    match (&e.recording, e.file.is_empty()) {
        (None, false) => check_file(&e.file)?,
        (Some(r), true) => check_recording(r)?,
        _ => return Err(EntryError::Input),
    }
    Ok(key)
}

/// `r`, checked to name a recording: `APP/NAME/ID`, ID its start in Unix ms.
pub fn check_recording(r: &str) -> Result<(), EntryError> {
    let bad = || EntryError::Recording(r.chars().take(300).collect());
    let mut parts = r.split('/');
    let (Some(app), Some(name), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let named =
        matches!(StreamKey::parse(app, name), Ok((k, None)) if k.app() == app && k.name() == name);
    let numbered = !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit());
    if named && numbered {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `file`, checked to name an FLV or MP4 file inside the playout directory.
pub fn check_file(file: &str) -> Result<(), EntryError> {
    let rel = Path::new(file);
    let inside = !file.is_empty()
        && file.len() <= MAX_FILE_LEN
        && rel.components().all(|c| matches!(c, Component::Normal(_)))
        && !file.contains('\0');
    if !inside {
        return Err(EntryError::Path(file.into()));
    }
    let playable = ["flv", "mp4", "m4v", "mov"];
    if rel.extension().is_none_or(|x| !playable.iter().any(|p| x.eq_ignore_ascii_case(p))) {
        return Err(EntryError::Format(file.into()));
    }
    Ok(())
}

/// Whether `id` may name an entry (it is a key segment).
pub fn check_id(id: &str) -> Result<(), EntryError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(EntryError::Id(id.chars().take(MAX_ID_LEN + 1).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(app: &str, stream: &str, file: &str) -> EntryValue {
        EntryValue {
            app: app.into(),
            stream: stream.into(),
            file: file.into(),
            recording: None,
            start_ms: 0,
            looped: false,
        }
    }

    #[test]
    fn names_files_and_ids_are_checked() {
        assert_eq!(validate(&entry("live", "tv", "shows/a.flv")).unwrap().name(), "tv");
        assert!(validate(&entry("live", "tv", "A.FLV")).is_ok());
        assert!(matches!(validate(&entry("live", "a b", "a.flv")), Err(EntryError::Name(_))));
        for bad in ["../etc/passwd.flv", "/etc/x.flv", "a/../../b.flv", "", "./a.flv"] {
            assert!(matches!(check_file(bad), Err(EntryError::Path(_))), "{bad}");
        }
        assert!(check_file("a.mp4").is_ok() && check_file("a.MOV").is_ok());
        assert!(matches!(check_file("a.mkv"), Err(EntryError::Format(_))));
        assert!(check_id("0a1b-c_d").is_ok());
        for bad in ["", "a/b", "a.b", &"x".repeat(33)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        let mut rec = entry("live", "tv", "");
        rec.recording = Some("live/cam/1700000000000".into());
        assert!(validate(&rec).is_ok());
        rec.file = "a.flv".into();
        assert_eq!(validate(&rec), Err(EntryError::Input), "both");
        assert_eq!(validate(&entry("live", "tv", "")), Err(EntryError::Input), "neither");
        for bad in ["live/cam", "live/cam/x1", "live/cam/1/2", "a b/cam/1", ""] {
            assert!(check_recording(bad).is_err(), "{bad}");
        }
        let mut early = entry("live", "tv", "a.flv");
        early.start_ms = i64::MIN;
        assert_eq!(validate(&early), Err(EntryError::Start(i64::MIN)));
        let state: PlayoutState = serde_json::from_str(r#""paused""#).unwrap();
        assert_eq!(state, PlayoutState::Unknown, "a later version's state");
        let json = serde_json::to_string(&entry("live", "tv", "a.flv")).unwrap();
        assert_eq!(
            json,
            r#"{"app":"live","stream":"tv","file":"a.flv","start_ms":0,"loop":false}"#
        );
    }
}
