//! Small deterministic rules every node applies the same way.

use crate::types::NodeId;

/// Which node of a pair dials the one shared relay connection: the one with the lower id
/// (byte-wise). Both sides compute the same answer, so exactly one dials and neither waits.
pub fn dialer<'a>(a: &'a NodeId, b: &'a NodeId) -> &'a NodeId {
    if a <= b {
        a
    } else {
        b
    }
}

/// `true` if `local` should dial `remote` (it has the lower id).
pub fn should_dial(local: &NodeId, remote: &NodeId) -> bool {
    local < remote
}

/// Default maximum hop count of a forwarded stream.
pub const DEFAULT_MAX_HOPS: u8 = 2;

/// What a node answers to a forwarded stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardVerdict {
    /// This node is the home by its own ring: take the stream.
    Accept,
    /// This node's ring says someone else (or no one) is the home. The sender may retry at
    /// `owner` with `hop + 1`, or keep the stream itself if that would pass the limit.
    NotHome { owner: Option<NodeId> },
    /// The forward already made too many hops: refuse it (a loop or a long disagreement).
    HopLimit,
}

/// Decide on a forward that arrived at `local` after `hop` hops (the ingest origin's first
/// forward has `hop == 1`), given `owners`, the stream's home and standbys by `local`'s ring
/// (`Ring::owners`: the home first).
///
/// Rule: accept only if this node is the home or a standby by its own view; otherwise answer
/// "not home" with the home it believes in (never forward onwards itself), so while nodes
/// disagree about the ring a stream bounces at most `max_hops` times and never loops.
pub fn should_accept_forward(
    local: &NodeId,
    owners: &[NodeId],
    hop: u8,
    max_hops: u8,
) -> ForwardVerdict {
    if hop > max_hops {
        return ForwardVerdict::HopLimit;
    }
    if owners.contains(local) {
        ForwardVerdict::Accept
    } else {
        ForwardVerdict::NotHome { owner: owners.first().cloned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn lower_id_dials_and_both_agree() {
        let (a, b) = (id("origin-a"), id("origin-b"));
        assert_eq!(dialer(&a, &b), &a);
        assert_eq!(dialer(&b, &a), &a);
        assert!(should_dial(&a, &b));
        assert!(!should_dial(&b, &a));
        assert!(!should_dial(&a, &a));
    }

    #[test]
    fn forwards() {
        let (me, other) = (id("me"), id("other"));
        let (me_home, other_home) = ([me.clone(), other.clone()], [other.clone(), me.clone()]);
        assert_eq!(should_accept_forward(&me, &me_home, 1, 2), ForwardVerdict::Accept);
        assert_eq!(should_accept_forward(&me, &me_home, 2, 2), ForwardVerdict::Accept);
        // A standby takes the stream too.
        assert_eq!(should_accept_forward(&me, &other_home, 1, 2), ForwardVerdict::Accept);
        assert_eq!(
            should_accept_forward(&me, &other_home[..1], 1, 2),
            ForwardVerdict::NotHome { owner: Some(other.clone()) }
        );
        assert_eq!(should_accept_forward(&me, &[], 1, 2), ForwardVerdict::NotHome { owner: None });
        assert_eq!(should_accept_forward(&me, &me_home, 3, 2), ForwardVerdict::HopLimit);
        assert_eq!(should_accept_forward(&me, &other_home, 255, 2), ForwardVerdict::HopLimit);
    }
}
