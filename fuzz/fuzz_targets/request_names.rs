//! Fuzz what an HTTP request line carries to the HLS and FLV routes: stream names
//! (`StreamKey::parse`), HLS resource names (`Resource::parse`), MPEG-TS segment names
//! (`parse_ts_segment_name`) and the HLS query (`HlsQuery::parse`: `sid`, `_HLS_msn`,
//! `_HLS_part`, `_HLS_skip`). Every byte of a request line is the client's. Checks:
//! - nothing panics, whatever the bytes;
//! - a name that parses is the one canonical name of its value (formatting the value gives the
//!   input back), so two URLs never alias one resource;
//! - a parsed stream key parses again from its own parts, with no query;
//! - a parsed HLS query never hands client bytes back: the suffix written into playlist URIs
//!   is empty or `?sid=` and 32 hex digits, and `_HLS_part` never comes without `_HLS_msn`.
//!
//! Input: UTF-8 text; before the first `?` it is split at the first two `/` into app, stream
//! and resource name, after it is the query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::hls::Resource;
use sluice_media::stream_name::StreamKey;
use sluice_media::ts::{parse_ts_segment_name, ts_segment_name};
use sluice_node::hls::http::HlsQuery;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    if let Ok(q) = HlsQuery::parse(query) {
        let suffix = q.uri_suffix();
        assert!(
            suffix.is_empty()
                || (suffix.len() == 5 + 32
                    && suffix.starts_with("?sid=")
                    && suffix[5..].bytes().all(|b| b.is_ascii_hexdigit())),
            "suffix {suffix:?} echoes client bytes"
        );
        assert!(q.part.is_none() || q.msn.is_some());
    }
    let mut parts = path.splitn(3, '/');
    let app = parts.next().unwrap_or("");
    let stream = parts.next().unwrap_or("");
    let resource = parts.next().unwrap_or(path);

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
