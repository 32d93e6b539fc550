//! Fuzz the AMF0 decoder: any input must decode or fail cleanly, and whatever decodes must
//! re-encode to bytes that decode to an equal number of values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::amf0::{decode_all, encode_all, Amf0Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Amf0Limits { max_depth: 16, max_items: 256, ..Amf0Limits::default() };
    if let Ok(values) = decode_all(data, &limits) {
        let bytes = encode_all(&values);
        let again = decode_all(&bytes, &limits).expect("re-encoded AMF0 decodes");
        assert_eq!(again.len(), values.len());
    }
});
