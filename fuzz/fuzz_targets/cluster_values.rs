//! Fuzz what `sluice-cluster` reads back from etcd (untrusted: anyone with write access to the
//! keyspace, or another version, may have written it). The cache's own entry point
//! (`Snapshot::apply_put` over a `RawKv`) is crate-private, so this drives the public pieces
//! it is made of, the same way: the key as `String::from_utf8_lossy` (as `etcd.rs` does),
//! `Keyspace::parse`, then `serde_json::from_slice` of `NodeInfo` or `StreamInfo`. Checks:
//! - never panics;
//! - a key that parses is canonical: rebuilding it from what it parsed to gives the same key
//!   (otherwise two different etcd keys would name one node or stream in the cache);
//! - a value that parses survives `to_vec` -> `from_slice` unchanged, and the node ids inside
//!   obey the naming rule.
//!
//! Input: `[prefix selector][key len][key][value]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_cluster::{KeyKind, Keyspace, NodeId, NodeInfo, StreamInfo};

/// Known bug, reported (reproducers in `fuzz/artifacts-found/cluster_values/`):
/// `Keyspace::parse` accepts `{prefix}/streams/live/cam?` and `{prefix}/streams/live?/cam` as
/// the stream `live/cam`, because `StreamKey::parse` strips an empty `?` query and returns no
/// query for it. Tolerated (and nothing else) while true so the target keeps fuzzing the rest;
/// set to `false` once `Keyspace::parse` refuses those keys.
const KNOWN_EMPTY_QUERY_ALIAS: bool = false;

fuzz_target!(|data: &[u8]| {
    let [sel, n, rest @ ..] = data else { return };
    let (key, value) = rest.split_at(usize::from(*n).min(rest.len()));
    let ks = match sel % 3 {
        0 => Keyspace::default(),
        1 => Keyspace::new("a"),
        _ => Keyspace::new("/x/y/"),
    };
    let key = String::from_utf8_lossy(key);
    match ks.parse(&key) {
        Some(KeyKind::Node { role, id }) => {
            assert_eq!(ks.node(role, &id), key, "node key is not canonical");
            if let Ok(info) = serde_json::from_slice::<NodeInfo>(value) {
                let again = serde_json::to_vec(&info).expect("NodeInfo serialises");
                assert_eq!(serde_json::from_slice::<NodeInfo>(&again).ok(), Some(info));
            }
        }
        Some(KeyKind::Stream(stream)) => {
            let rebuilt = ks.stream(&stream);
            if KNOWN_EMPTY_QUERY_ALIAS && rebuilt != key {
                // The known alias only: the key is the canonical one with `?` after the app
                // and/or the name.
                assert_eq!(key.replace('?', ""), rebuilt, "stream key is not canonical");
                assert!(key.contains("?/") || key.ends_with('?'));
            } else {
                assert_eq!(rebuilt, key, "stream key is not canonical");
            }
        }
        None => {}
    }
    // Values are parsed whatever the key (the cache tries both shapes over its life).
    if let Ok(info) = serde_json::from_slice::<StreamInfo>(value) {
        assert_eq!(NodeId::new(info.origin.as_str()).as_ref(), Ok(&info.origin));
        let again = serde_json::to_vec(&info).expect("StreamInfo serialises");
        assert_eq!(
            serde_json::from_slice::<StreamInfo>(&again).ok(),
            Some(info)
        );
    }
    if let Ok(info) = serde_json::from_slice::<NodeInfo>(value) {
        let again = serde_json::to_vec(&info).expect("NodeInfo serialises");
        assert_eq!(serde_json::from_slice::<NodeInfo>(&again).ok(), Some(info));
    }
});
