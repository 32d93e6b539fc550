//! Transcoding ladders set through the control plane: `{prefix}/ladders/{app}` holds an
//! app's renditions (the same rungs a node's `--ladder-file` lists), no lease: in force until
//! deleted, and taking precedence over the file for that app on every origin.

use serde::{Deserialize, Serialize};

/// Most renditions in one ladder (each is one more encoder in the stream's ffmpeg).
pub const MAX_RENDITIONS: usize = 8;

/// One rung of a ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rung {
    /// Appended to the source's name after `_`: `[A-Za-z0-9]`, at most 16 bytes.
    pub name: String,
    /// Picture height in pixels (even, 16 to 4320).
    pub height: u32,
    /// Video bit rate, kilobits per second (16 to 200 000).
    pub video_kbps: u32,
    /// AAC at this rate (8 to 512) instead of the source's audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_kbps: Option<u32>,
    /// A lower frame rate than the source's (1 to 240; never a higher one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
}

// `fps` is never NaN in a ladder anyone keeps (see [`validate`]; the cache drops such values),
// so equality is an equivalence.
impl Eq for Rung {}

/// The value stored under an app's ladder key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderValue {
    pub renditions: Vec<Rung>,
}

/// An app's ladder as the registry cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderRecord {
    pub app: String,
    pub renditions: Vec<Rung>,
    pub mod_revision: i64,
}

/// Check a ladder's rungs: at most [`MAX_RENDITIONS`], each named once and within its
/// bounds. The message names the rung at fault.
pub fn validate(rungs: &[Rung]) -> Result<(), String> {
    if rungs.len() > MAX_RENDITIONS {
        return Err(format!("more than {MAX_RENDITIONS} renditions"));
    }
    let mut names = std::collections::BTreeSet::new();
    for r in rungs {
        let n = &r.name;
        if n.is_empty() || n.len() > 16 || !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("rendition name {n:?} must be 1 to 16 letters or digits"));
        }
        if !names.insert(n.as_str()) {
            return Err(format!("rendition {n:?} named twice"));
        }
        if !(16..=4320).contains(&r.height) || r.height % 2 != 0 {
            return Err(format!("{n}: height must be even, 16 to 4320"));
        }
        if !(16..=200_000).contains(&r.video_kbps) {
            return Err(format!("{n}: video-kbps must be 16 to 200000"));
        }
        if r.audio_kbps.is_some_and(|k| !(8..=512).contains(&k)) {
            return Err(format!("{n}: audio-kbps must be 8 to 512"));
        }
        if r.fps.is_some_and(|f| !f.is_finite() || !(1.0..=240.0).contains(&f)) {
            return Err(format!("{n}: fps must be 1 to 240"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung(name: &str, height: u32) -> Rung {
        Rung { name: name.into(), height, video_kbps: 500, audio_kbps: None, fps: None }
    }

    #[test]
    fn bounds() {
        assert!(validate(&[rung("720p", 720), rung("240p", 240)]).is_ok());
        assert!(validate(&[rung("a", 720), rung("a", 240)]).unwrap_err().contains("twice"));
        assert!(validate(&[rung("a b", 720)]).is_err());
        assert!(validate(&[rung("a", 721)]).is_err());
        assert!(validate(&vec![rung("a", 240); 9]).is_err());
        let json =
            serde_json::to_string(&LadderValue { renditions: vec![rung("x", 240)] }).unwrap();
        assert_eq!(json, r#"{"renditions":[{"name":"x","height":240,"video-kbps":500}]}"#);
    }
}
