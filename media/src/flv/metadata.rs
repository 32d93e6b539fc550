//! `onMetaData` script data, including the `@setDataFrame` wrapper publishers send.

use bytes::Bytes;

use crate::amf0::{self, Amf0Limits, Amf0Value};

/// Fields of `onMetaData` Sluice reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub framerate: Option<f64>,
    pub video_data_rate: Option<f64>,
    pub audio_data_rate: Option<f64>,
    pub video_codec_id: Option<String>,
    pub audio_codec_id: Option<String>,
    pub encoder: Option<String>,
}

impl Metadata {
    /// Read the reported fields from an `onMetaData` object or ECMA array.
    pub fn from_amf0(obj: &Amf0Value) -> Metadata {
        let num = |key: &str| obj.get(key).and_then(Amf0Value::as_f64).filter(|v| v.is_finite());
        Metadata {
            width: num("width"),
            height: num("height"),
            framerate: num("framerate").or_else(|| num("fps")),
            video_data_rate: num("videodatarate"),
            audio_data_rate: num("audiodatarate"),
            video_codec_id: obj.get("videocodecid").and_then(codec_id),
            audio_codec_id: obj.get("audiocodecid").and_then(codec_id),
            encoder: obj.get("encoder").and_then(Amf0Value::as_str).map(str::to_string),
        }
    }
}

/// A codec id as a string: strings as sent, integral numbers in decimal, except numbers that
/// spell a printable FourCC (ffmpeg writes `hvc1` as 1752589105), which become the FourCC.
fn codec_id(v: &Amf0Value) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    let n = v.as_f64().filter(|n| n.is_finite())?;
    if n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&n) {
        let id = n as u32;
        let b = id.to_be_bytes();
        if id > 0xFFFF && b.iter().all(u8::is_ascii_graphic) {
            return Some(b.iter().map(|&c| c as char).collect());
        }
        return Some(id.to_string());
    }
    Some(n.to_string())
}

/// For an AMF0 data message: if it is `@setDataFrame, onMetaData, {...}` or `onMetaData, {...}`,
/// return the payload as viewers must receive it (`onMetaData, {...}`, the wrapper removed) and
/// the parsed fields. Other data messages return `None` (they are forwarded unchanged).
///
/// The returned payload is a zero-copy slice of `payload` starting at the `onMetaData` string,
/// so the metadata reaches viewers byte for byte as the publisher encoded it (including any
/// values after the object). Malformed AMF0 returns `None`.
pub fn normalize_data_message(payload: &Bytes, limits: &Amf0Limits) -> Option<(Bytes, Metadata)> {
    let total = payload.len();
    let mut rest: &[u8] = payload;
    let mut name = amf0::decode(&mut rest, limits).ok()?;
    let mut start = 0;
    if name.as_str() == Some("@setDataFrame") {
        start = total - rest.len();
        name = amf0::decode(&mut rest, limits).ok()?;
    }
    if name.as_str() != Some("onMetaData") {
        return None;
    }
    let obj = amf0::decode(&mut rest, limits).ok()?;
    if !matches!(obj, Amf0Value::Object(_) | Amf0Value::EcmaArray(_)) {
        return None;
    }
    Some((payload.slice(start..), Metadata::from_amf0(&obj)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn s(v: &str) -> Amf0Value {
        Amf0Value::String(v.to_string())
    }

    fn props() -> Vec<(String, Amf0Value)> {
        vec![
            ("width".into(), Amf0Value::Number(1280.0)),
            ("height".into(), Amf0Value::Number(720.0)),
            ("framerate".into(), Amf0Value::Number(30.0)),
            ("videodatarate".into(), Amf0Value::Number(2500.0)),
            ("audiodatarate".into(), Amf0Value::Number(128.0)),
            ("videocodecid".into(), Amf0Value::Number(7.0)),
            ("audiocodecid".into(), s("mp4a")),
            ("encoder".into(), s("obs-output module (libobs version 30.0.0)")),
        ]
    }

    fn expected() -> Metadata {
        Metadata {
            width: Some(1280.0),
            height: Some(720.0),
            framerate: Some(30.0),
            video_data_rate: Some(2500.0),
            audio_data_rate: Some(128.0),
            video_codec_id: Some("7".into()),
            audio_codec_id: Some("mp4a".into()),
            encoder: Some("obs-output module (libobs version 30.0.0)".into()),
        }
    }

    #[test]
    fn unwraps_set_data_frame_with_ecma_array() {
        let inner = [s("onMetaData"), Amf0Value::EcmaArray(props())];
        let mut wrapped = vec![s("@setDataFrame")];
        wrapped.extend(inner.iter().cloned());
        let payload = amf0::encode_all(&wrapped);
        let (out, meta) = normalize_data_message(&payload, &Amf0Limits::default()).unwrap();
        assert_eq!(out, amf0::encode_all(&inner));
        assert_eq!(&out[..13], b"\x02\x00\x0aonMetaData");
        assert_eq!(meta, expected());
    }

    #[test]
    fn plain_on_metadata_with_object_passes_through() {
        let payload = amf0::encode_all(&[s("onMetaData"), Amf0Value::Object(props())]);
        let (out, meta) = normalize_data_message(&payload, &Amf0Limits::default()).unwrap();
        assert_eq!(out, payload);
        assert_eq!(meta, expected());
    }

    #[test]
    fn real_ffmpeg_metadata() {
        // The first tag of `ffmpeg -c:v libx265 -f flv` (ffmpeg 7+, enhanced FLV), truncated
        // after the encoder property and closed with an object end.
        let mut b = BytesMut::new();
        b.extend_from_slice(&hex("02000a6f6e4d65746144617461080000000800086475726174696f6e003fd77ced916872b0000577696474680040940000000000000006686569676874004086800000000000000d766964656f646174617261746500000000000000000000096672616d657261746500403e000000000000000c766964656f636f64656369640041da1d98cc4000000007656e636f64657202000c4c61766636332e312e313032000009"));
        let payload = b.freeze();
        let (out, meta) = normalize_data_message(&payload, &Amf0Limits::default()).unwrap();
        assert_eq!(out, payload);
        assert_eq!(meta.width, Some(1280.0));
        assert_eq!(meta.height, Some(720.0));
        assert_eq!(meta.framerate, Some(30.0));
        assert_eq!(meta.video_data_rate, Some(0.0));
        assert_eq!(meta.video_codec_id.as_deref(), Some("hvc1"));
        assert_eq!(meta.encoder.as_deref(), Some("Lavf63.1.102"));
        assert_eq!(meta.audio_codec_id, None);
    }

    #[test]
    fn other_data_messages_are_not_touched() {
        let limits = Amf0Limits::default();
        let cue = amf0::encode_all(&[s("onCuePoint"), Amf0Value::Object(vec![])]);
        assert_eq!(normalize_data_message(&cue, &limits), None);
        let wrapped_other =
            amf0::encode_all(&[s("@setDataFrame"), s("onFI"), Amf0Value::Object(vec![])]);
        assert_eq!(normalize_data_message(&wrapped_other, &limits), None);
        let no_obj = amf0::encode_all(&[s("onMetaData"), Amf0Value::Number(1.0)]);
        assert_eq!(normalize_data_message(&no_obj, &limits), None);
        assert_eq!(normalize_data_message(&Bytes::new(), &limits), None);
        assert_eq!(
            normalize_data_message(&Bytes::from_static(b"\x02\x00\x0aonMeta"), &limits),
            None
        );
    }

    #[test]
    fn codec_id_forms() {
        assert_eq!(codec_id(&Amf0Value::Number(7.0)).as_deref(), Some("7"));
        assert_eq!(codec_id(&Amf0Value::Number(1635135537.0)).as_deref(), Some("av01"));
        assert_eq!(codec_id(&s("avc1")).as_deref(), Some("avc1"));
        assert_eq!(codec_id(&Amf0Value::Number(2.5)).as_deref(), Some("2.5"));
        assert_eq!(codec_id(&Amf0Value::Number(f64::NAN)), None);
        assert_eq!(codec_id(&Amf0Value::Null), None);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
