//! Fuzz the FLV reader (small tag limit, input pushed in pieces) and the codec parsers on every
//! tag it yields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::amf0::Amf0Limits;
use sluice_media::codec::{parse_audio_tag, parse_video_tag, video_info, AudioSpecificConfig};
use sluice_media::flv::{normalize_data_message, FlvReader};
use sluice_media::frame::MediaKind;

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |&b| (b as usize % 64) + 1);
    let mut r = FlvReader::new(4096);
    for chunk in data.chunks(step) {
        r.push(chunk);
        loop {
            match r.next_tag() {
                Ok(Some(tag)) => {
                    assert!(tag.payload.len() <= 4096);
                    match tag.kind {
                        MediaKind::Video => {
                            if let Ok(t) = parse_video_tag(&tag.payload) {
                                let _ = video_info(t.codec, &t.body);
                            }
                        }
                        MediaKind::Audio => {
                            if let Ok(t) = parse_audio_tag(&tag.payload) {
                                let _ = AudioSpecificConfig::parse(&t.body);
                            }
                        }
                        MediaKind::Data => {
                            let _ = normalize_data_message(&tag.payload, &Amf0Limits::default());
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
