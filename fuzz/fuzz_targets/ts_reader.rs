//! Fuzz the other MPEG-TS pieces that see untrusted bytes or names: the strict TS reader
//! (`ts::reader::read_ts`, used on segments in tests and diagnostics), the TS segment name
//! parser (an HTTP path), NAL splitting and Annex B conversion of a sample under any
//! decoder configuration record, and ADTS headers from an AudioSpecificConfig. Never panics;
//! a parsed segment name renders back to itself; a split's NAL units lie inside the sample.
//!
//! Input: `[mode][bytes...]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_media::ts::adts::AdtsConfig;
use sluice_media::ts::annexb::{split_nals, AnnexBConfig};
use sluice_media::ts::reader::read_ts;
use sluice_media::ts::{parse_ts_segment_name, ts_segment_name};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => drop(read_ts(rest)),
        1 => {
            let name = String::from_utf8_lossy(rest);
            if let Some(msn) = parse_ts_segment_name(&name) {
                assert_eq!(ts_segment_name(msn), name, "segment names are canonical");
            }
        }
        2 => {
            // [record len][record][sample]: configuration record then one sample.
            let Some((&n, rest)) = rest.split_first() else {
                return;
            };
            let (record, sample) = rest.split_at(usize::from(n).min(rest.len()));
            for size in [1, 2, 4] {
                if let Ok(nals) = split_nals(sample, size) {
                    let total: usize = nals.iter().map(|n| n.len() + size).sum();
                    assert!(total <= sample.len());
                }
            }
            for cfg in [
                AnnexBConfig::from_avcc(record),
                AnnexBConfig::from_hvcc(record),
            ] {
                if let Ok(cfg) = cfg {
                    let mut out = Vec::new();
                    if cfg.convert(sample, true, &mut out).is_err() {
                        assert!(out.is_empty(), "output written on error");
                    }
                }
            }
        }
        _ => {
            if let Ok(c) = AdtsConfig::from_asc(rest) {
                for len in [0usize, 1, 100, 0x1FFF - 7, 0x1FFF - 6, 1 << 20] {
                    let _ = c.header(len);
                }
            }
        }
    }
});
