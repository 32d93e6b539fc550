//! Fuzz the names an HTTP request path carries to the HLS and FLV routes: stream names
//! (`StreamKey::parse`), HLS resource names (`Resource::parse`) and MPEG-TS segment names
//! (`parse_ts_segment_name`). Every byte of a path is the client's. Checks:
//! - nothing panics, whatever the bytes;
//! - a name that parses is the one canonical name of its value (formatting the value gives the
//!   input back), so two URLs never alias one resource;
//! - a parsed stream key parses again from its own parts, with no query.
//!
//! Input: UTF-8 text split at the first two `/` into app, stream and resource name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::hls::Resource;
use sluice_media::stream_name::StreamKey;
use sluice_media::ts::{parse_ts_segment_name, ts_segment_name};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '/');
    let app = parts.next().unwrap_or("");
    let stream = parts.next().unwrap_or("");
    let resource = parts.next().unwrap_or(text);

    if let Ok((key, query)) = StreamKey::parse(app, stream) {
        assert!(!key.app().contains(['/', '?']) && !key.name().contains(['/', '?']));
        let again = StreamKey::parse(key.app(), key.name()).expect("a parsed key parses again");
        assert_eq!(again, (key.clone(), None), "canonical key");
        if let Some(q) = query {
            assert!(!q.is_empty(), "an empty query is None");
        }
    }
    if let Some(r) = Resource::parse(resource) {
        assert_eq!(r.to_string(), resource, "one name per HLS resource");
    }
    if let Some(msn) = parse_ts_segment_name(resource) {
        assert_eq!(ts_segment_name(msn), resource, "one name per TS segment");
    }
});
