//! Items: what the system knows of a recording or a live stream ([`Facts`], written by the node
//! that holds it) and what people say of it ([`Metadata`]: title, description, tags). Sans-IO:
//! ids, validation and normalisation.

use serde::Serialize;

use crate::CatalogError;

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 4000;
/// Most tags on one item.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes (tags are ASCII).
pub const MAX_TAG: usize = 64;

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A stream being published (or one that was: `ended_ms` says when it stopped).
    Live,
    /// A recording of a stream, finished or still being written.
    Recording,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Live => "live",
            Kind::Recording => "recording",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "live" => Some(Kind::Live),
            "recording" => Some(Kind::Recording),
            _ => None,
        }
    }
}

/// The id of the live item of `app/stream`: `APP/STREAM`.
pub fn live_id(app: &str, stream: &str) -> String {
    format!("{app}/{stream}")
}

/// The id of the recording `rec` (its start in Unix ms) of `app/stream`: `APP/STREAM/REC`.
pub fn recording_id(app: &str, stream: &str, rec: &str) -> String {
    format!("{app}/{stream}/{rec}")
}

/// What the node holding an item knows of it; written again whenever it changes, never
/// touching what people said of the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub id: String,
    pub kind: Kind,
    pub app: String,
    pub stream: String,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms; `None` while live or being recorded.
    pub ended_ms: Option<i64>,
    pub duration_ms: i64,
    /// `h264`, `h265`, ... as `/api/streams` names them.
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub size_bytes: i64,
    /// Where it plays (a path on any node): `/APP/STREAM.m3u8`, `/vod/APP/STREAM/ID/index.m3u8`.
    pub location: String,
    /// A keyframe as JPEG (a path on any node), when there is one.
    pub thumbnail: Option<String>,
    /// The node that wrote these facts.
    pub node: String,
}

impl Facts {
    /// A live stream's facts, started at `started_ms`, with nothing else known yet.
    pub fn live(app: &str, stream: &str, started_ms: i64, node: &str) -> Facts {
        Facts {
            id: live_id(app, stream),
            kind: Kind::Live,
            app: app.into(),
            stream: stream.into(),
            started_ms,
            ended_ms: None,
            duration_ms: 0,
            video_codec: None,
            audio_codec: None,
            width: None,
            height: None,
            size_bytes: 0,
            location: format!("/{app}/{stream}.m3u8"),
            thumbnail: None,
            node: node.into(),
        }
    }

    /// A recording's facts: `rec` is its id (its start in Unix ms).
    pub fn recording(app: &str, stream: &str, rec: &str, started_ms: i64, node: &str) -> Facts {
        Facts {
            id: recording_id(app, stream, rec),
            kind: Kind::Recording,
            location: format!("/vod/{app}/{stream}/{rec}/index.m3u8"),
            ..Facts::live(app, stream, started_ms, node)
        }
    }

    /// The title an item gets when nobody gave it one.
    pub fn default_title(&self) -> String {
        format!("{}/{}", self.app, self.stream)
    }
}

/// A change of what people say of an item: `None` leaves that field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Replaces every tag.
    pub tags: Option<Vec<String>>,
}

impl Metadata {
    /// Checked and normalised: title and description trimmed and bounded, tags lowercased,
    /// deduplicated and sorted, each 1 to [`MAX_TAG`] bytes of `a-z 0-9 - _ . :`.
    pub fn normalised(self) -> Result<Metadata, CatalogError> {
        let title = match self.title {
            Some(t) => {
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(CatalogError::Invalid("the title is empty".into()));
                }
                if t.contains(['\n', '\t']) {
                    return Err(CatalogError::Invalid("the title is one line".into()));
                }
                Some(bounded_text("title", t, MAX_TITLE)?)
            }
            None => None,
        };
        let description = match self.description {
            Some(d) => Some(bounded_text("description", d.trim().to_string(), MAX_DESCRIPTION)?),
            None => None,
        };
        let tags = match self.tags {
            Some(tags) => Some(normalise_tags(&tags)?),
            None => None,
        };
        Ok(Metadata { title, description, tags })
    }
}

fn bounded_text(what: &str, text: String, max: usize) -> Result<String, CatalogError> {
    if text.chars().count() > max {
        return Err(CatalogError::Invalid(format!("the {what} is longer than {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(CatalogError::Invalid(format!("the {what} holds control characters")));
    }
    Ok(text)
}

/// One tag, lowercased; an error names what is wrong with it.
pub fn normalise_tag(tag: &str) -> Result<String, CatalogError> {
    let tag = tag.trim().to_ascii_lowercase();
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(c);
    if tag.is_empty() || tag.len() > MAX_TAG || !tag.chars().all(ok) {
        return Err(CatalogError::Invalid(format!(
            "tag {tag:?}: 1 to {MAX_TAG} characters of a-z, 0-9, '-', '_', '.', ':'"
        )));
    }
    Ok(tag)
}

/// Tags lowercased, deduplicated and sorted; at most [`MAX_TAGS`].
pub fn normalise_tags(tags: &[String]) -> Result<Vec<String>, CatalogError> {
    let mut out = tags.iter().map(|t| normalise_tag(t)).collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    if out.len() > MAX_TAGS {
        return Err(CatalogError::Invalid(format!("more than {MAX_TAGS} tags")));
    }
    Ok(out)
}

/// What text search matches: title, description and stream name, lowercased (the same on
/// every database).
pub(crate) fn search_text(title: &str, description: &str, stream: &str) -> String {
    format!("{title}\n{description}\n{stream}").to_lowercase()
}

/// A catalog item as listed and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub id: String,
    pub kind: Kind,
    pub app: String,
    pub stream: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub duration_ms: i64,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub size_bytes: i64,
    pub location: String,
    pub thumbnail: Option<String>,
    pub node: String,
    pub updated_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_normalised_and_bounded() {
        let m = Metadata {
            title: Some("  Match day \n".into()),
            description: Some("Final\tround".into()),
            tags: Some(vec!["Sport".into(), "sport".into(), "2026:final".into()]),
        }
        .normalised()
        .unwrap();
        assert_eq!(m.title.as_deref(), Some("Match day"));
        assert_eq!(m.tags, Some(vec!["2026:final".to_string(), "sport".to_string()]));
        let bad = |m: Metadata| m.normalised().unwrap_err().to_string();
        assert!(bad(Metadata { title: Some(" ".into()), ..Default::default() }).contains("empty"));
        let long = "é".repeat(MAX_TITLE + 1);
        assert!(bad(Metadata { title: Some(long), ..Default::default() }).contains("longer"));
        let ctl = Metadata { description: Some("a\u{7}".into()), ..Default::default() };
        assert!(bad(ctl).contains("control"));
        let spaced = Metadata { tags: Some(vec!["two words".into()]), ..Default::default() };
        assert!(bad(spaced).contains("a-z"));
        let many = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(bad(Metadata { tags: Some(many), ..Default::default() }).contains("more than"));
        assert_eq!(Metadata::default().normalised().unwrap(), Metadata::default());
    }

    #[test]
    fn ids_and_locations() {
        let live = Facts::live("live", "cam", 5, "n1");
        assert_eq!((live.id.as_str(), live.location.as_str()), ("live/cam", "/live/cam.m3u8"));
        let rec = Facts::recording("live", "cam", "1700", 1700, "n1");
        assert_eq!(rec.id, "live/cam/1700");
        assert_eq!(rec.location, "/vod/live/cam/1700/index.m3u8");
        assert_eq!(rec.kind, Kind::Recording);
        assert_eq!(Kind::parse(Kind::Recording.as_str()), Some(Kind::Recording));
        assert_eq!(Kind::parse("vod"), None);
    }
}
