//! Which side of a relay connection a node is ([`Side`]), and so which half of the request
//! id space its requests use. A leaf: the requesting side (`client`), the serving side
//! (`server`) and the connection's tasks (`session`) all speak it.

/// Which side of the connection a node is; decides its half of the request id space. (Not
/// a node's role in the cluster: either kind of node may be either side.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Opened the connection; request ids below 2^63.
    Dialler,
    /// Accepted it; request ids with the top bit set.
    Acceptor,
}

/// The top bit of a request id: set on the acceptor's requests.
const ACCEPTOR_BIT: u64 = 1 << 63;

impl Side {
    /// Whether `request_id` is in this side's half of the id space.
    pub(crate) fn owns(self, request_id: u64) -> bool {
        (request_id & ACCEPTOR_BIT != 0) == (self == Side::Acceptor)
    }

    /// The request id numbered `n` in this side's half.
    pub(crate) fn request_id(self, n: u64) -> u64 {
        match self {
            Side::Dialler => n & !ACCEPTOR_BIT,
            Side::Acceptor => n | ACCEPTOR_BIT,
        }
    }

    /// The other side of the same connection.
    pub(crate) fn peer(self) -> Side {
        match self {
            Side::Dialler => Side::Acceptor,
            Side::Acceptor => Side::Dialler,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_sides_number_requests_in_disjoint_halves() {
        for n in [0, 1, 7, u64::MAX >> 1, u64::MAX] {
            let (d, a) = (Side::Dialler.request_id(n), Side::Acceptor.request_id(n));
            assert!(Side::Dialler.owns(d) && !Side::Acceptor.owns(d), "{n}");
            assert!(Side::Acceptor.owns(a) && !Side::Dialler.owns(a), "{n}");
            assert_ne!(d, a);
        }
        assert_eq!(Side::Dialler.request_id(5), 5);
        assert_eq!(Side::Acceptor.request_id(5), (1 << 63) | 5);
        assert_eq!(Side::Dialler.peer(), Side::Acceptor);
        assert_eq!(Side::Acceptor.peer(), Side::Dialler);
    }
}
