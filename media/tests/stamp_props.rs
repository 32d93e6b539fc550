//! Property tests of `SegmentStamp`'s wire format (a stamp arrives from a peer over the
//! relay): any stamp round-trips, any bytes decode without panicking, and bytes decode exactly
//! when they have the right length, version 1 and 0/1 flag bytes.

use proptest::prelude::*;
use sluice_media::hls::SegmentStamp;

/// Offsets of the one-byte fields in the version-1 layout.
const VERSION: usize = 0;
const DISCONTINUITY: usize = 17;
const HAS_EPOCH: usize = 34;
const EPOCH: std::ops::Range<usize> = 35..43;
const HAS_AUDIO: usize = 59;
const AUDIO: std::ops::Range<usize> = 60..68;

fn arb_stamp() -> impl Strategy<Value = SegmentStamp> {
    (
        (any::<u64>(), any::<u64>(), any::<bool>(), any::<u32>()),
        (any::<u32>(), any::<u64>(), any::<Option<u64>>()),
        (any::<u64>(), any::<u64>(), any::<Option<u64>>()),
    )
        .prop_map(|((msn, dseq, disc, init_id), (frag, start, epoch), (td, mpt, audio))| {
            SegmentStamp {
                msn,
                discontinuity_sequence: dseq,
                discontinuity: disc,
                init_id,
                fragment_sequence: frag,
                start_ticks: start,
                epoch_ms: epoch,
                target_duration_s: td,
                max_part_ticks: mpt,
                audio_next_dts: audio,
            }
        })
}

/// The rule `decode` must follow.
fn is_valid(b: &[u8]) -> bool {
    b.len() == SegmentStamp::LEN
        && b[VERSION] == 1
        && [DISCONTINUITY, HAS_EPOCH, HAS_AUDIO].iter().all(|&i| b[i] <= 1)
}

#[test]
fn layout_offsets_match_the_encoder() {
    let s = SegmentStamp {
        msn: 0,
        discontinuity_sequence: 0,
        discontinuity: true,
        init_id: 0,
        fragment_sequence: 0,
        start_ticks: 0,
        epoch_ms: Some(u64::MAX),
        target_duration_s: 0,
        max_part_ticks: 0,
        audio_next_dts: Some(u64::MAX),
    };
    let e = s.encode();
    assert_eq!(SegmentStamp::LEN, 68);
    assert_eq!(e.len(), 68);
    let mut expected = [0u8; 68];
    expected[VERSION] = 1;
    expected[DISCONTINUITY] = 1;
    expected[HAS_EPOCH] = 1;
    expected[EPOCH].fill(0xFF);
    expected[HAS_AUDIO] = 1;
    expected[AUDIO].fill(0xFF);
    assert_eq!(&e[..], &expected[..]);
}

#[test]
fn absent_optionals_ignore_their_value_bytes() {
    let mut b = vec![0u8; SegmentStamp::LEN];
    b[VERSION] = 1;
    b[EPOCH].fill(0xAB);
    b[AUDIO].fill(0xCD);
    let s = SegmentStamp::decode(&b).expect("valid stamp");
    assert_eq!((s.epoch_ms, s.audio_next_dts), (None, None));
    assert!(s.encode().iter().all(|&x| x <= 1), "absent values encode as zeros");
}

proptest! {
    #[test]
    fn any_stamp_round_trips(s in arb_stamp()) {
        let e = s.encode();
        prop_assert_eq!(e.len(), SegmentStamp::LEN);
        prop_assert_eq!(SegmentStamp::decode(&e), Some(s));
    }

    #[test]
    fn arbitrary_bytes_decode_only_when_valid(
        b in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2 * SegmentStamp::LEN),
            proptest::collection::vec(any::<u8>(), SegmentStamp::LEN),
        ],
    ) {
        let decoded = SegmentStamp::decode(&b);
        prop_assert_eq!(decoded.is_some(), is_valid(&b));
        if let Some(s) = decoded {
            // Re-encoding gives back the bytes, up to the value bytes of absent optionals.
            let mut expected = b.clone();
            if b[HAS_EPOCH] == 0 { expected[EPOCH].fill(0); }
            if b[HAS_AUDIO] == 0 { expected[AUDIO].fill(0); }
            prop_assert_eq!(&s.encode()[..], &expected[..]);
        }
    }

    #[test]
    fn valid_layouts_always_decode(
        mut b in proptest::collection::vec(any::<u8>(), SegmentStamp::LEN),
        flags in (0u8..=1, 0u8..=1, 0u8..=1),
    ) {
        b[VERSION] = 1;
        b[DISCONTINUITY] = flags.0;
        b[HAS_EPOCH] = flags.1;
        b[HAS_AUDIO] = flags.2;
        let s = SegmentStamp::decode(&b).expect("valid layout decodes");
        prop_assert_eq!(s.discontinuity, flags.0 == 1);
        prop_assert_eq!(s.epoch_ms.is_some(), flags.1 == 1);
        prop_assert_eq!(s.audio_next_dts.is_some(), flags.2 == 1);
        prop_assert_eq!(s.msn.to_be_bytes(), <[u8; 8]>::try_from(&b[1..9]).unwrap());
        prop_assert_eq!(s.init_id.to_be_bytes(), <[u8; 4]>::try_from(&b[18..22]).unwrap());
    }

    #[test]
    fn one_corrupted_flag_or_version_byte_is_refused(
        s in arb_stamp(),
        at in prop::sample::select(vec![VERSION, DISCONTINUITY, HAS_EPOCH, HAS_AUDIO]),
        v in 2u8..=255,
    ) {
        let mut b = s.encode().to_vec();
        b[at] = v;
        prop_assert_eq!(SegmentStamp::decode(&b), None);
        let mut b = s.encode().to_vec();
        b[VERSION] = 0;
        prop_assert_eq!(SegmentStamp::decode(&b), None);
        let mut longer = s.encode().to_vec();
        longer.push(0);
        prop_assert_eq!(SegmentStamp::decode(&longer), None);
        prop_assert_eq!(SegmentStamp::decode(&longer[..SegmentStamp::LEN - 1]), None);
    }
}
