//! Property tests for the AMF0 codec: random value trees round-trip, random bytes never panic.

use proptest::prelude::*;
use sluice_media::amf0::{decode, decode_all, encode_all, Amf0Limits, Amf0Value};

fn key() -> BoxedStrategy<String> {
    "[a-zA-Z0-9_ éß中]{0,12}".boxed()
}

fn leaf() -> impl Strategy<Value = Amf0Value> {
    prop_oneof![
        any::<f64>().prop_map(Amf0Value::Number),
        any::<u64>().prop_map(|bits| Amf0Value::Number(f64::from_bits(bits))),
        any::<bool>().prop_map(Amf0Value::Boolean),
        ".{0,24}".prop_map(Amf0Value::String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
        any::<u16>().prop_map(Amf0Value::Reference),
        (any::<f64>(), any::<i16>())
            .prop_map(|(millis, time_zone)| Amf0Value::Date { millis, time_zone }),
        ".{0,24}".prop_map(Amf0Value::LongString),
        Just(Amf0Value::Unsupported),
        ".{0,24}".prop_map(Amf0Value::XmlDocument),
    ]
}

fn value() -> impl Strategy<Value = Amf0Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        let props = prop::collection::vec((key(), inner.clone()), 0..6);
        prop_oneof![
            props.clone().prop_map(Amf0Value::Object),
            props.clone().prop_map(Amf0Value::EcmaArray),
            prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
            (key(), props).prop_map(|(class_name, properties)| Amf0Value::TypedObject {
                class_name,
                properties
            }),
        ]
    })
}

/// Equality where numbers compare by bit pattern (so NaN equals the same NaN).
fn same(a: &Amf0Value, b: &Amf0Value) -> bool {
    use Amf0Value::*;
    let props = |x: &[(std::string::String, Amf0Value)], y: &[(std::string::String, Amf0Value)]| {
        x.len() == y.len() && x.iter().zip(y).all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
    };
    match (a, b) {
        (Number(x), Number(y)) => x.to_bits() == y.to_bits(),
        (Date { millis: x, time_zone: tx }, Date { millis: y, time_zone: ty }) => {
            x.to_bits() == y.to_bits() && tx == ty
        }
        (Object(x), Object(y)) | (EcmaArray(x), EcmaArray(y)) => props(x, y),
        (StrictArray(x), StrictArray(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (
            TypedObject { class_name: ca, properties: pa },
            TypedObject { class_name: cb, properties: pb },
        ) => ca == cb && props(pa, pb),
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn value_trees_round_trip(values in prop::collection::vec(value(), 0..5), tail in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut all = values.clone();
        // An avmplus value may only come last: it takes the rest of the buffer.
        all.push(Amf0Value::Avmplus(tail.into()));
        let bytes = encode_all(&all);
        let limits = Amf0Limits { max_depth: 16, max_items: 4096, ..Amf0Limits::default() };
        let decoded = decode_all(&bytes, &limits).unwrap();
        prop_assert_eq!(decoded.len(), all.len());
        for (d, v) in decoded.iter().zip(&all) {
            prop_assert!(same(d, v), "{:?} != {:?}", d, v);
        }
        // Re-encoding the decoded values gives the same bytes.
        prop_assert_eq!(encode_all(&decoded), bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), depth in 0usize..8, items in 0usize..64) {
        let limits = Amf0Limits { max_depth: depth, max_items: items, ..Amf0Limits::default() };
        let _ = decode_all(&bytes, &limits);
        let mut rest: &[u8] = &bytes;
        while !rest.is_empty() {
            let before = rest.len();
            if decode(&mut rest, &limits).is_err() {
                prop_assert_eq!(rest.len(), before);
                break;
            }
            prop_assert!(rest.len() < before);
        }
    }

    #[test]
    fn truncated_encodings_are_errors(v in value()) {
        let bytes = encode_all(std::slice::from_ref(&v));
        let limits = Amf0Limits { max_depth: 16, max_items: 4096, ..Amf0Limits::default() };
        for cut in 0..bytes.len() {
            let mut prefix: &[u8] = &bytes[..cut];
            if cut > 0 {
                prop_assert!(decode(&mut prefix, &limits).is_err(), "prefix of {} bytes decoded", cut);
            }
        }
    }
}

/// A strict array of `width` elements, each `inner`, encoded by hand (no `Amf0Value` tree).
fn strict_array_bytes(width: u32, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![sluice_media::amf0::marker::STRICT_ARRAY];
    out.extend_from_slice(&width.to_be_bytes());
    for _ in 0..width {
        out.extend_from_slice(inner);
    }
    out
}

/// A wide bomb (4096 x 256 nulls: a 1 MiB message that would be ~1M values) and a nested one
/// (arrays of arrays, every level at the per-container limit) stop at the totals, not after
/// building the whole tree.
#[test]
fn bombs_stop_at_the_total_limits() {
    let limits = Amf0Limits::default();
    let null = [sluice_media::amf0::marker::NULL];
    let row = strict_array_bytes(256, &null);
    let wide = strict_array_bytes(4096, &row);
    assert!(matches!(
        decode_all(&wide, &limits),
        Err(sluice_media::amf0::Amf0Error::TooManyValues(65_536))
    ));
    let nested = strict_array_bytes(64, &strict_array_bytes(64, &strict_array_bytes(64, &null)));
    assert!(matches!(
        decode_all(&nested, &limits),
        Err(sluice_media::amf0::Amf0Error::TooManyValues(_))
    ));
    // Long strings: each is within the message, together they pass the byte budget.
    let small = Amf0Limits { max_bytes: 100_000, ..Amf0Limits::default() };
    let text = Amf0Value::String("s".repeat(40_000));
    let three = encode_all(&[text.clone(), text.clone(), text.clone()]);
    assert!(matches!(
        decode_all(&three, &small),
        Err(sluice_media::amf0::Amf0Error::TooLarge(100_000))
    ));
    assert_eq!(decode_all(&encode_all(&[text.clone(), text.clone()]), &small).unwrap().len(), 2);
    // Values split over several top-level values share one budget per message.
    let few = Amf0Limits { max_values: 10, ..Amf0Limits::default() };
    let eleven = vec![0x05u8; 11];
    assert!(decode_all(&eleven, &few).is_err());
    assert_eq!(decode_all(&eleven[..10], &few).unwrap().len(), 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the shape, a decode never holds more than `max_values` values.
    #[test]
    fn total_values_are_bounded(width in 1u32..40, depth in 1usize..5, max_values in 1usize..2000) {
        let mut bytes = vec![0x05u8];
        for _ in 0..depth {
            bytes = strict_array_bytes(width, &bytes);
        }
        let limits = Amf0Limits { max_values, ..Amf0Limits::default() };
        let total: u64 = (0..=depth as u32).map(|d| u64::from(width).pow(d)).sum();
        match decode_all(&bytes, &limits) {
            Ok(_) => prop_assert!(total <= max_values as u64),
            Err(e) => {
                prop_assert!(total > max_values as u64, "{e}");
                prop_assert_eq!(e, sluice_media::amf0::Amf0Error::TooManyValues(max_values));
            }
        }
    }
}
