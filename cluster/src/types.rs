//! The values the registry stores and the local cache ([`Snapshot`]) built from them.
//!
//! Pure vocabulary: plain types and their small accessors, importing nothing else from this
//! crate. How a listing or a watch event changes a [`Snapshot`] is the watch cache's job
//! (`cache.rs`); key layout is `keys.rs`.

use serde::{Deserialize, Serialize};
use sluice_media::stream_name::StreamKey;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Longest node id accepted.
pub const MAX_NODE_ID_LEN: usize = 128;

/// A node's identity in the cluster: 1 to 128 bytes of ASCII letters, digits, `_`, `-`, `.`,
/// not starting with `.` (a host name fits). Ids order byte-wise; that order decides which node
/// of a pair dials (`rules::dialer`). Ids must be unique within a cluster and role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

/// A node id that breaks the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid node id {0:?}: 1-{MAX_NODE_ID_LEN} bytes of [A-Za-z0-9_.-], not starting with '.'"
)]
pub struct InvalidNodeId(pub String);

impl NodeId {
    pub fn new(id: &str) -> Result<NodeId, InvalidNodeId> {
        let ok_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
        if id.is_empty()
            || id.len() > MAX_NODE_ID_LEN
            || id.starts_with('.')
            || !id.bytes().all(ok_byte)
        {
            return Err(InvalidNodeId(id.to_string()));
        }
        Ok(NodeId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = InvalidNodeId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeId::new(&s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a node does; the `{role}` segment of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Origin,
    Edge,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::Edge => "edge",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "origin" => Some(Role::Origin),
            "edge" => Some(Role::Edge),
            _ => None,
        }
    }
}

/// A node's life-cycle state as advertised in its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Registered but not yet serving (not placed in the ring).
    Starting,
    /// Serving; an origin in this state is a ring member.
    #[default]
    Ready,
    /// Shutting down: leaves the ring so its streams move elsewhere.
    Draining,
}

/// How much a node can take (advisory; 0 means "not stated").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capacity {
    pub max_streams: u64,
    pub max_connections: u64,
}

/// The value of `{prefix}/nodes/{role}/{id}`. Unknown fields are ignored and missing ones take
/// defaults, so versions can add fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeInfo {
    /// Named addresses, e.g. `"rtmp" → "10.0.0.5:1935"`, `"http"`, `"relay"` (QUIC, UDP),
    /// `"api"` (the node's HTTP API on its own host, for the control plane).
    pub addresses: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub state: NodeState,
    /// The node's software version (its crate version); empty from nodes that predate it.
    pub version: String,
    /// When the node process started, milliseconds since the Unix epoch (0: not stated).
    pub started_at_ms: u64,
    /// An origin marked as a transcoder (`--transcoder`): when the cluster has any, streams
    /// are transcoded on them (placed on a ring of their own) rather than on their homes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub transcoder: bool,
    /// An origin that plays scheduled files out (`--playout-dir`): an entry is played by the
    /// first such origin in its stream's ring order.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub playout: bool,
}

/// Longest node registration value a cache accepts, in bytes.
pub const MAX_NODE_VALUE_LEN: usize = 4096;
/// Longest stream claim value a cache accepts, in bytes.
pub const MAX_STREAM_VALUE_LEN: usize = 1024;
/// Longest `NodeInfo::version` and codec name a cache accepts.
pub const MAX_LABEL_LEN: usize = 64;
/// Longest address (`host:port`, possibly a DNS name) in a `NodeInfo`.
pub const MAX_ADDRESS_LEN: usize = 256;
/// Most addresses in a `NodeInfo`, and codecs in a `StreamInfo`.
pub const MAX_LIST_LEN: usize = 8;

/// Printable text of at most `max` bytes: what the API and `sluicectl` may show as is.
fn printable(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(char::is_control)
}

fn is_label(s: &str) -> bool {
    printable(s, MAX_LABEL_LEN)
}

impl NodeInfo {
    /// Whether a registration read from the store keeps the bounds a reader enforces: a short
    /// printable version, a few short printable addresses.
    pub fn within_bounds(&self) -> bool {
        is_label(&self.version)
            && self.addresses.len() <= MAX_LIST_LEN
            && self.addresses.iter().all(|(k, v)| is_label(k) && printable(v, MAX_ADDRESS_LEN))
    }
}

impl StreamInfo {
    /// Whether a claim read from the store keeps the bounds a reader enforces: a few short
    /// printable codec names.
    pub fn within_bounds(&self) -> bool {
        self.codecs.len() <= MAX_LIST_LEN
            && self.codecs.iter().all(|c| is_label(c))
            && self.rendition_of.as_deref().is_none_or(|name| {
                // A stream name of its own (any app will do to check it).
                StreamKey::parse("app", name).is_ok_and(|(k, q)| q.is_none() && k.name() == name)
            })
    }
}

/// The value of `{prefix}/streams/{app}/{name}`: who publishes it and what it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The origin holding the publisher (and the claim).
    pub origin: NodeId,
    /// Codec names as the API shows them (e.g. `"h264"`, `"aac"`); may be empty at claim time.
    #[serde(default)]
    pub codecs: Vec<String>,
    /// Publish start, milliseconds since the Unix epoch.
    #[serde(default)]
    pub started_at_ms: u64,
    /// A rendition of a transcoded stream: the source's name (same app), so every node can
    /// list the ladder in the source's multivariant playlist and MPD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendition_of: Option<String>,
    /// A scheduled playout holds the name (not a live encoder): a live encoder at another
    /// origin may ask for it ([`crate::Registry::request_takeover`]) and the playout gives way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub playout: bool,
}

/// Longest protocol name accepted in [`LoadReport::viewers`].
pub const MAX_PROTOCOL_NAME_LEN: usize = 16;
/// Most protocols accepted in [`LoadReport::viewers`].
pub const MAX_PROTOCOLS: usize = 8;
/// Most streams one load report lists in [`LoadReport::by_stream`]: a node with more lists
/// those with the most viewers. It bounds the report (and so [`MAX_LOAD_VALUE_LEN`]) whatever
/// the node carries, so the value stays far below etcd's request limit (1.5 MiB by default) and
/// a control plane holding every node's report stays small.
pub const MAX_REPORT_STREAMS: usize = 256;
/// Largest JSON text of one [`StreamLoad`] entry with its key: a `"app/name":` key of at most
/// 2 × 128 + 1 bytes plus every field at its largest number is about 390 bytes.
const MAX_STREAM_LOAD_JSON_LEN: usize = 512;
/// Largest load value accepted from the registry, in bytes: the node-wide figures (about 300
/// bytes) within 4 KiB, plus [`MAX_REPORT_STREAMS`] stream entries at their largest
/// (132 KiB in all).
pub const MAX_LOAD_VALUE_LEN: usize = 4096
    + MAX_REPORT_STREAMS * MAX_STREAM_LOAD_JSON_LEN
    + MAX_REPORT_PLAYOUTS * MAX_PLAYOUT_JSON_LEN;

/// Most playout entries one load report tells the state of (those running or ended on the
/// node; the rest are waiting).
pub const MAX_REPORT_PLAYOUTS: usize = 256;
/// Longest JSON of one playout in a report: `"id":"displaced",` with the longest id.
const MAX_PLAYOUT_JSON_LEN: usize = crate::schedule::MAX_ID_LEN + 16;

/// What a node can serve, as configured (`--max-viewers`, `--max-egress`); 0 means "no limit
/// stated".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadCapacity {
    pub max_viewers: u64,
    /// Bits per second.
    pub max_egress_bps: u64,
    /// Streams the node may transcode at once (`--max-transcodes`; 0: it does not transcode).
    #[serde(default)]
    pub max_transcodes: u64,
}

/// The value of `{prefix}/load/{role}/{id}`: a node's load, rewritten every few seconds under
/// its lease. Unknown fields are ignored and missing ones take defaults. Values come from other
/// processes: the cache bounds them (`MAX_*` above) before showing them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadReport {
    /// Viewers by protocol (`"rtmp"`, `"flv"`, `"hls"`, `"relay"`).
    pub viewers: BTreeMap<String, u64>,
    /// Streams live in the node's hub.
    pub streams: u64,
    /// Bits per second sent (received) over the last few seconds.
    pub egress_bps: u64,
    pub ingress_bps: u64,
    /// CPU use of the process over the last few seconds, in thousandths of a core (1500 = one
    /// and a half cores busy).
    pub cpu_millicores: u64,
    /// Resident memory of the process.
    pub memory_bytes: u64,
    /// Streams whose ladder the node transcodes now.
    #[serde(default)]
    pub transcodes: u64,
    pub capacity: LoadCapacity,
    pub draining: bool,
    /// When the report was taken, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Figures of the streams live on the node, by stream (at most [`MAX_REPORT_STREAMS`]).
    #[serde(with = "stream_keys", skip_serializing_if = "BTreeMap::is_empty")]
    pub by_stream: BTreeMap<StreamKey, StreamLoad>,
    /// How the playout schedule entries this node plays (or played) stand, by entry id (at
    /// most [`MAX_REPORT_PLAYOUTS`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub playouts: BTreeMap<String, crate::schedule::PlayoutState>,
}

/// One stream's figures in a node's [`LoadReport`]. Fields at zero are left out of the JSON
/// (an edge reports viewers; the figures of the media itself matter on the ingest origin).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamLoad {
    /// Viewers on this node, every protocol but node-to-node relays.
    #[serde(skip_serializing_if = "is_zero")]
    pub viewers: u64,
    /// Picture size from the video codec configuration (0 when unknown).
    #[serde(skip_serializing_if = "is_zero")]
    pub width: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub height: u32,
    /// Video frames per second received over the last few seconds, in thousandths.
    #[serde(skip_serializing_if = "is_zero")]
    pub fps_milli: u32,
    /// Media bits per second received for the stream over the last few seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub ingress_bps: u64,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// `by_stream` as a JSON object keyed by `app/name`. A key that is not a valid stream name
/// fails the whole report (values come from other processes).
mod stream_keys {
    use super::StreamLoad;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use sluice_media::stream_name::StreamKey;
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<StreamKey, StreamLoad>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k.to_string(), v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<StreamKey, StreamLoad>, D::Error> {
        let raw = BTreeMap::<String, StreamLoad>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                let key = k
                    .split_once('/')
                    .and_then(|(app, name)| match StreamKey::parse(app, name) {
                        Ok((key, None)) if key.to_string() == k => Some(key),
                        _ => None,
                    })
                    .ok_or_else(|| D::Error::custom(format!("invalid stream key {k:?}")))?;
                Ok((key, v))
            })
            .collect()
    }
}

impl LoadReport {
    /// Viewers of every protocol except node-to-node relays.
    pub fn total_viewers(&self) -> u64 {
        self.viewers
            .iter()
            .filter(|(p, _)| p.as_str() != "relay")
            .map(|(_, v)| *v)
            .fold(0, u64::saturating_add)
    }

    /// Whether the report keeps the bounds a reader enforces (see the `MAX_*` constants):
    /// at most [`MAX_PROTOCOLS`] protocols with names of 1 to [`MAX_PROTOCOL_NAME_LEN`] bytes
    /// and at most [`MAX_REPORT_STREAMS`] streams.
    pub fn within_bounds(&self) -> bool {
        self.viewers.len() <= MAX_PROTOCOLS
            && self.viewers.keys().all(|p| !p.is_empty() && p.len() <= MAX_PROTOCOL_NAME_LEN)
            && self.by_stream.len() <= MAX_REPORT_STREAMS
            && self.playouts.len() <= MAX_REPORT_PLAYOUTS
            && self.playouts.keys().all(|id| crate::schedule::check_id(id).is_ok())
    }
}

/// Longest order value accepted from the registry, in bytes (an order is about 60).
pub const MAX_ORDER_VALUE_LEN: usize = 512;
/// Longest drain deadline an order may ask for (a day): a larger value is not an order.
pub const MAX_DRAIN_DEADLINE_SECS: u32 = 86_400;

/// The value of `{prefix}/orders/drain/{role}/{id}`: an operator asked node `id` to drain. The
/// key has no lease: the order stays in force until it is deleted (`UndrainNode`), even across
/// restarts of the node or of the control plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DrainOrder {
    /// How long viewers (publishers, on an origin) may stay once the node has seen the order;
    /// 0 means the node's own `drain_timeout`. Counted on the node's clock from when it sees
    /// the order, so clocks that disagree do not shorten it.
    pub deadline_seconds: u32,
    /// When the order was issued, milliseconds since the Unix epoch (the issuer's clock).
    pub issued_at_ms: u64,
}

/// The value of `{prefix}/orders/kick/{app}/{name}`: close the stream's publisher. Written
/// under a short lease of its own, so a kick expires by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KickOrder {
    /// When the kick was issued, milliseconds since the Unix epoch (the issuer's clock).
    pub issued_at_ms: u64,
}

/// A drain order as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainRecord {
    pub role: Role,
    pub id: NodeId,
    pub order: DrainOrder,
    pub mod_revision: i64,
}

/// A kick order as the cache sees it. It applies to a publisher whose claim is older than the
/// order (`mod_revision` > the claim's `create_revision`): an encoder that reconnects after the
/// kick makes a new claim, which the same order does not touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KickRecord {
    pub stream: StreamKey,
    pub order: KickOrder,
    pub mod_revision: i64,
}

impl KickRecord {
    /// Whether this kick was issued after `claim` (a stream record's `create_revision`) began.
    pub fn applies_to(&self, claim_revision: i64) -> bool {
        self.mod_revision > claim_revision
    }
}

/// A node's latest load report as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRecord {
    pub role: Role,
    pub id: NodeId,
    pub report: LoadReport,
    pub lease: i64,
    pub mod_revision: i64,
}

/// A stream claim this node holds: the exclusive right to publish `stream` cluster-wide.
///
/// `create_revision` is the registry revision at which the key was created; it is the claim's
/// fencing token. A later claim of the same name (after this one was released or expired) has a
/// larger one, so a relay subscription carrying the revision tells a stale origin from the
/// current one. `mod_revision` changes when the value is updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub stream: StreamKey,
    pub info: StreamInfo,
    pub create_revision: i64,
    pub mod_revision: i64,
    /// The lease the key is attached to.
    pub lease: i64,
}

impl Claim {
    /// The fencing token: the claim key's `create_revision`.
    pub fn revision(&self) -> i64 {
        self.create_revision
    }
}

/// A node as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub role: Role,
    pub id: NodeId,
    pub info: NodeInfo,
    pub lease: i64,
    pub create_revision: i64,
    pub mod_revision: i64,
}

/// A claimed (live) stream as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub stream: StreamKey,
    pub info: StreamInfo,
    pub lease: i64,
    pub create_revision: i64,
    pub mod_revision: i64,
}

impl StreamRecord {
    /// The claim's fencing token (see [`Claim::revision`]).
    pub fn revision(&self) -> i64 {
        self.create_revision
    }
}

/// One key-value pair as read from a backend (crate-internal transport between backend and
/// cache).
#[derive(Debug, Clone)]
pub(crate) struct RawKv {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// The local cache of one cluster's registry: every registered node, every claimed stream and
/// every node's latest load report and the management orders in force, as of `revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The registry revision this snapshot reflects (0 before the first list).
    pub revision: i64,
    pub nodes: BTreeMap<(Role, NodeId), NodeRecord>,
    pub streams: BTreeMap<StreamKey, StreamRecord>,
    pub loads: BTreeMap<(Role, NodeId), LoadRecord>,
    /// Drain orders by node (the node need not be registered).
    pub drains: BTreeMap<(Role, NodeId), DrainRecord>,
    /// Kick orders by stream (until their lease expires).
    pub kicks: BTreeMap<StreamKey, KickRecord>,
    /// Transcoding ladders set through the control plane, by app.
    pub ladders: BTreeMap<String, crate::ladder::LadderRecord>,
    /// Playout schedule entries set through the control plane, by id.
    pub schedule: BTreeMap<String, crate::schedule::EntryRecord>,
    /// Names a live encoder at another origin wants from the playout that holds them, with
    /// the node asking (each under the asking node's lease).
    pub takeovers: BTreeMap<StreamKey, NodeId>,
    /// Whether the cache follows the registry now: `true` from a listing or an established
    /// watch, `false` from a failed watch until the next one is established (the contents are
    /// then as last seen, and may be stale).
    pub connected: bool,
}

impl Snapshot {
    /// The record of node `id` in `role`, if registered.
    pub fn node(&self, role: Role, id: &NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&(role, id.clone()))
    }

    /// Every registered node of `role`.
    pub fn nodes_of(&self, role: Role) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values().filter(move |n| n.role == role)
    }

    /// Origins in state [`NodeState::Ready`]: the input of placement.
    pub fn ready_origins(&self) -> BTreeSet<NodeId> {
        self.nodes_of(Role::Origin)
            .filter(|n| n.info.state == NodeState::Ready)
            .map(|n| n.id.clone())
            .collect()
    }

    /// The latest load report of node `id` in `role`, if any.
    pub fn load(&self, role: Role, id: &NodeId) -> Option<&LoadRecord> {
        self.loads.get(&(role, id.clone()))
    }

    /// The drain order in force for node `id` in `role`, if any.
    pub fn drain_order(&self, role: Role, id: &NodeId) -> Option<&DrainRecord> {
        self.drains.get(&(role, id.clone()))
    }

    /// The live claim on `stream`, if any.
    pub fn stream(&self, stream: &StreamKey) -> Option<&StreamRecord> {
        self.streams.get(stream)
    }
}

/// Something the caller must act on, broadcast by a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// The node's lease was lost (the store no longer has it: expired or revoked) and a new
    /// one was granted; the node key was written again under it.
    LeaseRenewed { old: i64, new: i64 },
    /// A claim was re-taken under the new lease. Its revision changed: announce the new one.
    ClaimRenewed { claim: Claim },
    /// A claim could not be re-taken: another node claimed the stream while this node's lease
    /// was gone. Stop that publisher.
    ClaimLost { stream: StreamKey, holder: Option<NodeId> },
    /// No keep-alive was answered for so long that the lease may have ended: the node's claims
    /// may be taken over by others. Followed by `Unfenced` once the store answers (the lease
    /// lived through it, or a new one was granted and the claims re-taken).
    Fenced,
    /// The fence is lifted.
    Unfenced,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        assert!(NodeId::new("origin-1.example_com").is_ok());
        for bad in ["", ".x", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(NodeId::new(bad).is_err(), "{bad:?}");
        }
        let id: Result<NodeId, _> = serde_json::from_str("\"a/b\"");
        assert!(id.is_err());
    }
}
