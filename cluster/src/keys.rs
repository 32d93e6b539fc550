//! The key layout in the registry: one prefix, then `nodes/{role}/{id}`,
//! `streams/{app}/{name}`, `load/{role}/{id}` and the management orders under `orders/`.
//!
//! ```text
//! {prefix}/nodes/origin/{node-id}     NodeInfo JSON, under the node's lease
//! {prefix}/nodes/edge/{node-id}       NodeInfo JSON, under the node's lease
//! {prefix}/streams/{app}/{name}       StreamInfo JSON, under the claiming origin's lease
//! {prefix}/load/{origin|edge}/{id}    LoadReport JSON, rewritten every ~2 s under the node's lease
//! {prefix}/orders/drain/{role}/{id}   DrainOrder JSON, no lease (in force until deleted)
//! {prefix}/orders/kick/{app}/{name}   KickOrder JSON, under a short lease of its own
//! {prefix}/ladders/{app}              LadderValue JSON, no lease (in force until deleted)
//! {prefix}/schedule/{id}              schedule EntryValue JSON, no lease (in force until deleted)
//! {prefix}/takeovers/{app}/{name}     the asking node's id (JSON string), under its lease
//! ```
//!
//! Node ids, apps and stream names never contain `/` (see [`NodeId`] and
//! [`sluice_media::stream_name`]), so a key parses back unambiguously. Keys that do not parse
//! (written by someone else, or by a newer version) are ignored by the cache, never trusted.

use crate::types::{NodeId, Role};
use sluice_media::stream_name::StreamKey;

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "/sluice";

/// What a registry key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Node {
        role: Role,
        id: NodeId,
    },
    Stream(StreamKey),
    Load {
        role: Role,
        id: NodeId,
    },
    DrainOrder {
        role: Role,
        id: NodeId,
    },
    KickOrder(StreamKey),
    /// An app's transcoding ladder.
    Ladder(String),
    /// A playout schedule entry, by id.
    ScheduleEntry(String),
    /// A live encoder's request for a name a playout holds.
    Takeover(StreamKey),
}

/// Builds and parses the keys of one cluster (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    /// Normalised prefix: starts with `/`, no trailing `/` (e.g. `/sluice`).
    prefix: String,
}

impl Keyspace {
    /// A keyspace under `prefix`; a missing leading `/` is added, trailing `/` removed.
    pub fn new(prefix: &str) -> Keyspace {
        let trimmed = prefix.trim_matches('/');
        Keyspace { prefix: format!("/{trimmed}") }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}/`: every key of this cluster starts with it (the watch range).
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    pub fn node(&self, role: Role, id: &NodeId) -> String {
        format!("{}/nodes/{}/{}", self.prefix, role.as_str(), id)
    }

    pub fn stream(&self, stream: &StreamKey) -> String {
        format!("{}/streams/{}/{}", self.prefix, stream.app(), stream.name())
    }

    pub fn load(&self, role: Role, id: &NodeId) -> String {
        format!("{}/load/{}/{}", self.prefix, role.as_str(), id)
    }

    pub fn drain_order(&self, role: Role, id: &NodeId) -> String {
        format!("{}/orders/drain/{}/{}", self.prefix, role.as_str(), id)
    }

    pub fn kick_order(&self, stream: &StreamKey) -> String {
        format!("{}/orders/kick/{}/{}", self.prefix, stream.app(), stream.name())
    }

    pub fn ladder(&self, app: &str) -> String {
        format!("{}/ladders/{app}", self.prefix)
    }

    pub fn schedule_entry(&self, id: &str) -> String {
        format!("{}/schedule/{id}", self.prefix)
    }

    pub fn takeover(&self, stream: &StreamKey) -> String {
        format!("{}/takeovers/{}/{}", self.prefix, stream.app(), stream.name())
    }

    /// Parse a key of this keyspace; `None` for anything else.
    pub fn parse(&self, key: &str) -> Option<KeyKind> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        if let Some(app) = rest.strip_prefix("ladders/") {
            return canonical_stream(app, "x").map(|s| KeyKind::Ladder(s.app().to_string()));
        }
        if let Some(id) = rest.strip_prefix("schedule/") {
            return crate::schedule::check_id(id).ok().map(|()| KeyKind::ScheduleEntry(id.into()));
        }
        if let Some(order) = rest.strip_prefix("orders/") {
            return parse_order(order);
        }
        let mut parts = rest.split('/');
        let kind = match (parts.next()?, parts.next()?, parts.next()?) {
            ("nodes", role, id) => {
                KeyKind::Node { role: Role::parse(role)?, id: NodeId::new(id).ok()? }
            }
            ("load", role, id) => {
                KeyKind::Load { role: Role::parse(role)?, id: NodeId::new(id).ok()? }
            }
            ("streams", app, name) => KeyKind::Stream(canonical_stream(app, name)?),
            ("takeovers", app, name) => KeyKind::Takeover(canonical_stream(app, name)?),
            _ => return None,
        };
        // Exactly three segments.
        parts.next().is_none().then_some(kind)
    }
}

/// `drain/{role}/{id}` or `kick/{app}/{name}` (after `{prefix}/orders/`), exactly three
/// segments.
fn parse_order(rest: &str) -> Option<KeyKind> {
    let mut parts = rest.split('/');
    let kind = match (parts.next()?, parts.next()?, parts.next()?) {
        ("drain", role, id) => {
            KeyKind::DrainOrder { role: Role::parse(role)?, id: NodeId::new(id).ok()? }
        }
        ("kick", app, name) => KeyKind::KickOrder(canonical_stream(app, name)?),
        _ => return None,
    };
    parts.next().is_none().then_some(kind)
}

/// The stream `app/name` names, only if this is its canonical spelling (`live/cam?` must not
/// alias `live/cam`: its deletion would drop the real claim from the cache).
fn canonical_stream(app: &str, name: &str) -> Option<StreamKey> {
    let (stream, query) = StreamKey::parse(app, name).ok()?;
    (query.is_none() && stream.app() == app && stream.name() == name).then_some(stream)
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sk(app: &str, name: &str) -> StreamKey {
        StreamKey::parse(app, name).unwrap().0
    }

    #[test]
    fn layout_and_round_trip() {
        let ks = Keyspace::new("sluice/");
        assert_eq!(ks.prefix(), "/sluice");
        assert_eq!(ks.root(), "/sluice/");
        let id = NodeId::new("o-1").unwrap();
        let nk = ks.node(Role::Origin, &id);
        assert_eq!(nk, "/sluice/nodes/origin/o-1");
        assert_eq!(ks.parse(&nk), Some(KeyKind::Node { role: Role::Origin, id }));
        let s = sk("live", "cam.1");
        let key = ks.stream(&s);
        assert_eq!(key, "/sluice/streams/live/cam.1");
        assert_eq!(ks.parse(&key), Some(KeyKind::Stream(s)));
        let id = NodeId::new("e-1").unwrap();
        let lk = ks.load(Role::Edge, &id);
        assert_eq!(lk, "/sluice/load/edge/e-1");
        assert_eq!(ks.parse(&lk), Some(KeyKind::Load { role: Role::Edge, id: id.clone() }));
        let dk = ks.drain_order(Role::Edge, &id);
        assert_eq!(dk, "/sluice/orders/drain/edge/e-1");
        assert_eq!(ks.parse(&dk), Some(KeyKind::DrainOrder { role: Role::Edge, id }));
        let s = sk("live", "cam.1");
        let kk = ks.kick_order(&s);
        assert_eq!(kk, "/sluice/orders/kick/live/cam.1");
        assert_eq!(ks.parse(&kk), Some(KeyKind::KickOrder(s)));
        let tk = ks.takeover(&StreamKey::parse("live", "cam").unwrap().0);
        assert_eq!(tk, "/sluice/takeovers/live/cam");
        assert_eq!(
            ks.parse(&tk),
            Some(KeyKind::Takeover(StreamKey::parse("live", "cam").unwrap().0))
        );
        assert_eq!(ks.parse("/sluice/takeovers/live/cam/x"), None);
        let sk = ks.schedule_entry("a1");
        assert_eq!(sk, "/sluice/schedule/a1");
        assert_eq!(ks.parse(&sk), Some(KeyKind::ScheduleEntry("a1".into())));
    }

    #[test]
    fn foreign_and_malformed_keys_are_ignored() {
        let ks = Keyspace::new("/a");
        for key in [
            "/ab/nodes/origin/x",
            "/b/nodes/origin/x",
            "/a/nodes/relay/x",
            "/a/nodes/origin/x/y",
            "/a/nodes/origin/",
            "/a/streams/live",
            "/a/streams/api/x",
            "/a/streams/live/a?b",
            "/a/streams/live/a?",
            "/a/streams/live?/a",
            "/a/other/x/y",
            "/a/load/relay/x",
            "/a/load/edge/x/y",
            "/a/load/edge/.x",
            "/a/load/edge",
            "/a/orders/drain/relay/x",
            "/a/orders/drain/edge/x/y",
            "/a/orders/drain/edge/",
            "/a/orders/drain/edge",
            "/a/orders/kick/live/a?b",
            "/a/orders/kick/live/a/b",
            "/a/orders/kick/api/x",
            "/a/orders/other/x/y",
            "/a/orders/drain",
            "/a/orders",
            "/a/schedule/",
            "/a/schedule/a/b",
            "/a/schedule/a.b",
            "/a",
            "",
        ] {
            assert_eq!(ks.parse(key), None, "{key}");
        }
    }
}
