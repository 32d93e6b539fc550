//! `onMetaData` script data, including the `@setDataFrame` wrapper publishers send.

use bytes::Bytes;

use crate::amf0::Amf0Limits;

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

/// For an AMF0 data message: if it is `@setDataFrame, onMetaData, {...}` or `onMetaData, {...}`,
/// return the payload as viewers must receive it (`onMetaData, {...}`, the wrapper removed) and
/// the parsed fields. Other data messages return `None` (they are forwarded unchanged).
pub fn normalize_data_message(payload: &Bytes, limits: &Amf0Limits) -> Option<(Bytes, Metadata)> {
    todo!()
}
