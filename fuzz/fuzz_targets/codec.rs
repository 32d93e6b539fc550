//! Fuzz the codec parsers directly: video tag headers, every configuration record parser, the
//! SPS parsers and AudioSpecificConfig.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_media::codec::{
    hevc_sps_dimensions, parse_audio_tag, parse_video_tag, video_info, AudioSpecificConfig, AvcDecoderConfig,
    SpsInfo, VideoCodec,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let payload = Bytes::copy_from_slice(rest);
    match selector % 8 {
        0 => {
            if let Ok(t) = parse_video_tag(&payload) {
                let _ = video_info(t.codec, &t.body);
            }
        }
        1 => {
            let _ = video_info(VideoCodec::Avc, rest);
            if let Ok(cfg) = AvcDecoderConfig::parse(rest) {
                cfg.sps.iter().for_each(|s| drop(SpsInfo::parse_h264(s)));
            }
        }
        2 => drop(video_info(VideoCodec::Hevc, rest)),
        3 => drop(video_info(VideoCodec::Av1, rest)),
        4 => drop(video_info(VideoCodec::Vp9, rest)),
        5 => drop(SpsInfo::parse_h264(rest)),
        6 => drop(hevc_sps_dimensions(rest)),
        _ => {
            if let Ok(t) = parse_audio_tag(&payload) {
                let _ = AudioSpecificConfig::parse(&t.body);
            }
            let _ = AudioSpecificConfig::parse(rest);
        }
    }
});
