//! Values read from the registry, which other processes wrote: each parsed only within its
//! size bound and checked against the bounds its type states (`within_bounds`) before the
//! cache shows it. `None` for anything else; the cache ignores it.

use crate::types::{
    DrainOrder, LoadReport, NodeInfo, StreamInfo, MAX_DRAIN_DEADLINE_SECS, MAX_LOAD_VALUE_LEN,
    MAX_NODE_VALUE_LEN, MAX_ORDER_VALUE_LEN, MAX_STREAM_VALUE_LEN,
};

/// A load report from untrusted bytes: at most [`MAX_LOAD_VALUE_LEN`] bytes of JSON within
/// [`LoadReport::within_bounds`] (protocols, streams), every stream key a valid stream name.
/// Numbers that are negative, fractional or beyond their type fail to parse; `None` for
/// anything else.
pub(crate) fn parse_load(value: &[u8]) -> Option<LoadReport> {
    if value.len() > MAX_LOAD_VALUE_LEN {
        return None;
    }
    let report: LoadReport = serde_json::from_slice(value).ok()?;
    report.within_bounds().then_some(report)
}

/// A node's registration from untrusted bytes: at most [`MAX_NODE_VALUE_LEN`] bytes of JSON
/// within [`NodeInfo::within_bounds`].
pub(crate) fn parse_node(value: &[u8]) -> Option<NodeInfo> {
    if value.len() > MAX_NODE_VALUE_LEN {
        return None;
    }
    let info: NodeInfo = serde_json::from_slice(value).ok()?;
    info.within_bounds().then_some(info)
}

/// A stream claim's value from untrusted bytes: at most [`MAX_STREAM_VALUE_LEN`] bytes of JSON
/// within [`StreamInfo::within_bounds`].
pub(crate) fn parse_stream(value: &[u8]) -> Option<StreamInfo> {
    if value.len() > MAX_STREAM_VALUE_LEN {
        return None;
    }
    let info: StreamInfo = serde_json::from_slice(value).ok()?;
    info.within_bounds().then_some(info)
}

/// An order value from untrusted bytes: at most [`MAX_ORDER_VALUE_LEN`] bytes of JSON.
pub(crate) fn parse_small<T: serde::de::DeserializeOwned>(value: &[u8]) -> Option<T> {
    if value.len() > MAX_ORDER_VALUE_LEN {
        return None;
    }
    serde_json::from_slice(value).ok()
}

/// Largest ladder value accepted (eight rungs of the longest fields take about 800 bytes).
pub const MAX_LADDER_VALUE_LEN: usize = 4096;

/// A ladder from untrusted bytes: bounded, and every rung within its bounds.
pub(crate) fn parse_ladder(value: &[u8]) -> Option<crate::ladder::LadderValue> {
    if value.len() > MAX_LADDER_VALUE_LEN {
        return None;
    }
    let v: crate::ladder::LadderValue = serde_json::from_slice(value).ok()?;
    crate::ladder::validate(&v.renditions).is_ok().then_some(v)
}

/// Largest schedule entry value accepted (a path of [`MAX_FILE_LEN`] bytes and the rest).
///
/// [`MAX_FILE_LEN`]: crate::schedule::MAX_FILE_LEN
pub const MAX_SCHEDULE_VALUE_LEN: usize = 2048;

/// A schedule entry from untrusted bytes: bounded, its name and file checked.
pub(crate) fn parse_schedule_entry(value: &[u8]) -> Option<crate::schedule::EntryValue> {
    if value.len() > MAX_SCHEDULE_VALUE_LEN {
        return None;
    }
    let v: crate::schedule::EntryValue = serde_json::from_slice(value).ok()?;
    crate::schedule::validate(&v).is_ok().then_some(v)
}

/// A drain order from untrusted bytes: bounded like every order, and a deadline of at most
/// [`MAX_DRAIN_DEADLINE_SECS`] (a larger one is a mistake, not an order to keep viewers a year).
pub(crate) fn parse_drain(value: &[u8]) -> Option<DrainOrder> {
    parse_small::<DrainOrder>(value).filter(|o| o.deadline_seconds <= MAX_DRAIN_DEADLINE_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_parse_with_defaults_and_unknown_fields() {
        let r = parse_load(
            br#"{"viewers":{"flv":3,"rtmp":2,"relay":1},"streams":2,"egress_bps":1000,
                "capacity":{"max_viewers":500},"draining":true,"future":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(r.total_viewers(), 5);
        assert_eq!(r.streams, 2);
        assert_eq!(r.capacity.max_viewers, 500);
        assert_eq!(r.capacity.max_egress_bps, 0);
        assert!(r.draining);
        assert_eq!(parse_load(b"{}"), Some(LoadReport::default()));
    }

    #[test]
    fn hostile_load_values_are_refused_not_trusted() {
        let many: String = (0..9).map(|i| format!("\"p{i}\":1")).collect::<Vec<_>>().join(",");
        let long_name = format!(r#"{{"viewers":{{"{}":1}}}}"#, "x".repeat(17));
        let huge = format!(r#"{{"streams":1,"pad":"{}"}}"#, "x".repeat(MAX_LOAD_VALUE_LEN));
        for bad in [
            b"not json".to_vec(),
            br#"{"streams":-1}"#.to_vec(),
            br#"{"streams":1.5}"#.to_vec(),
            br#"{"streams":18446744073709551616}"#.to_vec(),
            br#"{"viewers":{"flv":-3}}"#.to_vec(),
            br#"{"viewers":{"":1}}"#.to_vec(),
            br#"{"draining":"yes"}"#.to_vec(),
            format!(r#"{{"viewers":{{{many}}}}}"#).into_bytes(),
            long_name.into_bytes(),
            huge.into_bytes(),
            vec![0xff, 0xfe, 0x00],
        ] {
            assert_eq!(parse_load(&bad), None, "{}", String::from_utf8_lossy(&bad));
        }
        // The largest numbers that fit are accepted; sums saturate.
        let max = u64::MAX;
        let r = parse_load(format!(r#"{{"viewers":{{"a":{max},"b":{max}}}}}"#).as_bytes()).unwrap();
        assert_eq!(r.total_viewers(), u64::MAX);
    }

    #[test]
    fn hostile_node_and_stream_values_are_refused_not_trusted() {
        let json = |info: &NodeInfo| serde_json::to_vec(info).unwrap();
        let mut good = NodeInfo { version: "0.1.0".into(), ..NodeInfo::default() };
        good.addresses.insert("rtmp".into(), "10.0.0.5:1935".into());
        assert_eq!(parse_node(&json(&good)), Some(good.clone()));
        let mut bad = Vec::new();
        bad.push(NodeInfo { version: "v".repeat(65), ..good.clone() });
        bad.push(NodeInfo { version: "0.1\u{1b}[2J".into(), ..good.clone() });
        let mut many = good.clone();
        many.addresses = (0..9).map(|i| (format!("a{i}"), "h:1".to_string())).collect();
        bad.push(many);
        let mut long = good.clone();
        long.addresses.insert("http".into(), "h".repeat(300));
        bad.push(long);
        for info in bad {
            assert_eq!(parse_node(&json(&info)), None, "{info:?}");
        }
        let padded = format!(r#"{{"state":"ready","pad":"{}"}}"#, "x".repeat(MAX_NODE_VALUE_LEN));
        assert_eq!(parse_node(padded.as_bytes()), None);

        let stream = |codecs: &[&str]| {
            format!(r#"{{"origin":"o1","codecs":{}}}"#, serde_json::to_string(codecs).unwrap())
        };
        assert!(parse_stream(stream(&["h264", "aac"]).as_bytes()).is_some());
        assert_eq!(parse_stream(stream(&["x"; 9]).as_bytes()), None);
        assert_eq!(parse_stream(stream(&["h264\n"]).as_bytes()), None);
        assert_eq!(parse_stream(stream(&[&"c".repeat(65)]).as_bytes()), None);
    }

    #[test]
    fn stream_figures_parse_and_are_bounded() {
        use crate::types::{StreamLoad, MAX_REPORT_STREAMS};
        use sluice_media::stream_name::{StreamKey, MAX_NAME_LEN};
        let r = parse_load(
            br#"{"by_stream":{"live/x":{"viewers":2,"width":1280,"height":720,"fps_milli":30000,
                "ingress_bps":2500000,"future":1},"live/y":{}}}"#,
        )
        .unwrap();
        let x = StreamKey::parse("live", "x").unwrap().0;
        let want = StreamLoad {
            viewers: 2,
            width: 1280,
            height: 720,
            fps_milli: 30_000,
            ingress_bps: 2_500_000,
        };
        assert_eq!(r.by_stream.get(&x), Some(&want));
        assert_eq!(r.by_stream.len(), 2);
        // Zero figures are left out of the JSON, and it reads back the same.
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""live/y":{}"#), "{json}");
        assert_eq!(parse_load(json.as_bytes()), Some(r));

        // Keys that are not stream names, and figures out of range, refuse the report.
        for bad in [
            r#"{"by_stream":{"x":{}}}"#,
            r#"{"by_stream":{"live/x?token=1":{}}}"#,
            r#"{"by_stream":{"api/x":{}}}"#,
            r#"{"by_stream":{"live/a/b":{}}}"#,
            r#"{"by_stream":{"live/x":{"width":4294967296}}}"#,
            r#"{"by_stream":{"live/x":{"viewers":-1}}}"#,
            r#"{"by_stream":{"live/x":3}}"#,
        ] {
            assert_eq!(parse_load(bad.as_bytes()), None, "{bad}");
        }

        // The largest report a node can write (every stream name and figure at its largest)
        // fits the value limit and is accepted; one stream more is refused.
        let long = |i: usize| format!("{i:0>width$}", width = MAX_NAME_LEN);
        let max = StreamLoad {
            viewers: u64::MAX,
            width: u32::MAX,
            height: u32::MAX,
            fps_milli: u32::MAX,
            ingress_bps: u64::MAX,
        };
        let mut report = LoadReport::default();
        for i in 0..MAX_REPORT_STREAMS {
            report.by_stream.insert(StreamKey::parse(&long(i), &long(i)).unwrap().0, max);
        }
        let json = serde_json::to_vec(&report).unwrap();
        assert!(json.len() <= MAX_LOAD_VALUE_LEN, "{} bytes", json.len());
        assert_eq!(parse_load(&json), Some(report.clone()));
        report.by_stream.insert(StreamKey::parse("live", "one-more").unwrap().0, max);
        assert_eq!(parse_load(&serde_json::to_vec(&report).unwrap()), None);
    }
}
