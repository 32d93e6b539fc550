//! The key layout in the registry: one prefix, then `nodes/{role}/{id}`,
//! `streams/{app}/{name}` and `load/{role}/{id}`.
//!
//! ```text
//! {prefix}/nodes/origin/{node-id}     NodeInfo JSON, under the node's lease
//! {prefix}/nodes/edge/{node-id}       NodeInfo JSON, under the node's lease
//! {prefix}/streams/{app}/{name}       StreamInfo JSON, under the claiming origin's lease
//! {prefix}/load/{origin|edge}/{id}    LoadReport JSON, rewritten every ~2 s under the node's lease
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
    Node { role: Role, id: NodeId },
    Stream(StreamKey),
    Load { role: Role, id: NodeId },
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

    /// Parse a key of this keyspace; `None` for anything else.
    pub fn parse(&self, key: &str) -> Option<KeyKind> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let kind = match (parts.next()?, parts.next()?, parts.next()?) {
            ("nodes", role, id) => {
                KeyKind::Node { role: Role::parse(role)?, id: NodeId::new(id).ok()? }
            }
            ("load", role, id) => {
                KeyKind::Load { role: Role::parse(role)?, id: NodeId::new(id).ok()? }
            }
            ("streams", app, name) => {
                let (stream, query) = StreamKey::parse(app, name).ok()?;
                // Only the canonical key of a stream names it (`live/cam?` must not alias
                // `live/cam`: its deletion would drop the real claim from the cache).
                if query.is_some() || stream.app() != app || stream.name() != name {
                    return None;
                }
                KeyKind::Stream(stream)
            }
            _ => return None,
        };
        // Exactly three segments.
        parts.next().is_none().then_some(kind)
    }
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
        assert_eq!(ks.parse(&lk), Some(KeyKind::Load { role: Role::Edge, id }));
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
            "/a",
            "",
        ] {
            assert_eq!(ks.parse(key), None, "{key}");
        }
    }
}
