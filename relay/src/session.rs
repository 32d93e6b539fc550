//! One relay connection, whichever side dialled it: the Hello exchange with its version and
//! identity checks ([`dial`], [`accept`]), then the tasks every connection runs: one writer
//! of the control stream, one reader that hands the peer's requests to this node's serving
//! side ([`crate::server::Ctx`]) and the answers to this node's own requests to its
//! requesting side ([`crate::client`]), and one acceptor of GOP streams that routes each by
//! its request id's half of the id space.

use std::sync::Arc;

use sluice_proto::v1::{control_message::Msg, ControlMessage, Hello};
use tokio::sync::mpsc;

use crate::client::{self, RelayConnection, Shared};
use crate::config::RelayConfig;
use crate::forward_in::{self, ForwardSink};
use crate::identity;
use crate::receive;
use crate::server::{Ctx, MediaSource};
use crate::wire::{self, ControlReader};
use crate::{codes, IdentityOf, RelayError, Result, VERSION};

/// Which side of the connection a node is; decides its half of the request id space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Opened the connection; request ids below 2^63.
    Dialler,
    /// Accepted it; request ids with the top bit set.
    Acceptor,
}

/// The top bit of a request id: set on the acceptor's requests.
const ACCEPTOR_BIT: u64 = 1 << 63;

impl Role {
    /// Whether `request_id` is in this side's half of the id space.
    pub(crate) fn owns(self, request_id: u64) -> bool {
        (request_id & ACCEPTOR_BIT != 0) == (self == Role::Acceptor)
    }

    /// The request id numbered `n` in this side's half.
    pub(crate) fn request_id(self, n: u64) -> u64 {
        match self {
            Role::Dialler => n & !ACCEPTOR_BIT,
            Role::Acceptor => n | ACCEPTOR_BIT,
        }
    }

    pub(crate) fn peer(self) -> Role {
        match self {
            Role::Dialler => Role::Acceptor,
            Role::Acceptor => Role::Dialler,
        }
    }
}

/// What a node serves on a connection: subscriptions from `source`, forwards into `sink`
/// (`None` refuses them).
#[derive(Clone)]
pub(crate) struct Serving {
    pub(crate) source: Arc<dyn MediaSource>,
    pub(crate) sink: Option<Arc<dyn ForwardSink>>,
}

/// Dials' second half: opens the control stream, exchanges Hellos (saying whether this node
/// serves the acceptor's requests) and starts the connection's tasks.
pub(crate) async fn dial(
    conn: quinn::Connection,
    config: Arc<RelayConfig>,
    serving: Option<Serving>,
) -> Result<RelayConnection> {
    let hello = async {
        let (mut send, recv) = conn.open_bi().await?;
        let hello = Hello {
            version: VERSION,
            node_id: config.node_id.clone(),
            serves_requests: serving.is_some(),
        };
        wire::write_control(&mut send, &ControlMessage { msg: Some(Msg::Hello(hello)) }).await?;
        let mut reader = ControlReader::new(recv);
        let reply = reader.next().await?;
        Ok::<_, RelayError>((send, reader, reply))
    };
    let exchanged = tokio::time::timeout(config.request_timeout, hello)
        .await
        .map_err(|_| RelayError::Timeout("hello"))
        .and_then(|r| r);
    let (send, reader, reply) = match exchanged {
        Ok(x) => x,
        Err(e) => return Err(refused_identity(&conn, &config).unwrap_or(e)),
    };
    let peer_node_id = match reply {
        Some(ControlMessage { msg: Some(Msg::Hello(h)) }) if h.version == VERSION => h.node_id,
        Some(ControlMessage { msg: Some(Msg::Hello(h)) }) => {
            conn.close(codes::UNSUPPORTED_VERSION.into(), b"unsupported version");
            return Err(RelayError::UnsupportedVersion(h.version));
        }
        _ => {
            conn.close(codes::PROTOCOL_VIOLATION.into(), b"expected Hello");
            return Err(RelayError::Protocol("reply is not Hello".into()));
        }
    };
    if let Err(certified) = identity::check_peer(&conn, &config.tls, &peer_node_id) {
        conn.close(
            codes::IDENTITY_MISMATCH.into(),
            b"Hello node id is not a name of the certificate",
        );
        return Err(RelayError::Identity {
            of: IdentityOf::Peer,
            node_id: peer_node_id,
            certified,
        });
    }
    let handle = start(conn, config, Role::Dialler, peer_node_id, send, reader, serving);
    Ok(handle)
}

/// When the acceptor closed the connection because of this node's identity: the error
/// saying so.
fn refused_identity(conn: &quinn::Connection, config: &RelayConfig) -> Option<RelayError> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == codes::IDENTITY_MISMATCH.into() =>
        {
            Some(RelayError::Identity {
                of: IdentityOf::Local,
                node_id: config.node_id.clone(),
                certified: identity::own_names(&config.tls),
            })
        }
        _ => None,
    }
}

/// An accepted connection: the handle for this node's requests to the dialler, and whether
/// the dialler serves them (its Hello's `serves_requests`).
pub(crate) struct Accepted {
    pub(crate) handle: RelayConnection,
    pub(crate) peer_serves: bool,
}

/// Takes the dialler's Hello, checks it, answers and starts the connection's tasks. On
/// failure the connection is closed with the matching code.
pub(crate) async fn accept(
    conn: quinn::Connection,
    config: Arc<RelayConfig>,
    serving: Serving,
) -> Result<Accepted> {
    let result = accept_hello(&conn, config, serving).await;
    if let Err(e) = &result {
        let (code, reason) = match e {
            RelayError::Protocol(_) => (codes::PROTOCOL_VIOLATION, "protocol violation"),
            RelayError::UnsupportedVersion(_) => {
                (codes::UNSUPPORTED_VERSION, "unsupported version; supported: 1")
            }
            RelayError::Timeout(_) => (codes::HANDSHAKE_TIMEOUT, "hello timeout"),
            RelayError::Identity { .. } => {
                (codes::IDENTITY_MISMATCH, "Hello node id is not a name of the certificate")
            }
            _ => (codes::CLOSE_NORMAL, "closed"),
        };
        conn.close(code.into(), reason.as_bytes());
    }
    result
}

async fn accept_hello(
    conn: &quinn::Connection,
    config: Arc<RelayConfig>,
    serving: Serving,
) -> Result<Accepted> {
    let hello = async {
        let (send, recv) = conn.accept_bi().await?;
        let mut reader = ControlReader::new(recv);
        let msg = reader.next().await?;
        Ok::<_, RelayError>((send, reader, msg))
    };
    let (mut send, reader, first) = tokio::time::timeout(config.request_timeout, hello)
        .await
        .map_err(|_| RelayError::Timeout("hello"))??;
    let peer = match first {
        Some(ControlMessage { msg: Some(Msg::Hello(h)) }) if h.version == VERSION => h,
        Some(ControlMessage { msg: Some(Msg::Hello(h)) }) => {
            return Err(RelayError::UnsupportedVersion(h.version))
        }
        _ => return Err(RelayError::Protocol("first control message is not Hello".into())),
    };
    if let Err(certified) = identity::check_peer(conn, &config.tls, &peer.node_id) {
        return Err(RelayError::Identity {
            of: IdentityOf::Peer,
            node_id: peer.node_id,
            certified,
        });
    }
    let reply = Hello { version: VERSION, node_id: config.node_id.clone(), serves_requests: false };
    wire::write_control(&mut send, &ControlMessage { msg: Some(Msg::Hello(reply)) }).await?;
    let handle =
        start(conn.clone(), config, Role::Acceptor, peer.node_id, send, reader, Some(serving));
    Ok(Accepted { handle, peer_serves: peer.serves_requests })
}

/// Starts the tasks of a connection past its Hellos. `serving`: whether (and what) this node
/// serves of the peer's requests; a request from a peer it does not serve is a protocol
/// violation.
fn start(
    conn: quinn::Connection,
    config: Arc<RelayConfig>,
    role: Role,
    peer_node_id: String,
    mut send: quinn::SendStream,
    reader: ControlReader,
    serving: Option<Serving>,
) -> RelayConnection {
    // Every control message this node sends goes through one bounded writer.
    let (control, mut control_rx) = mpsc::channel::<ControlMessage>(256);
    tokio::spawn(async move {
        while let Some(msg) = control_rx.recv().await {
            if wire::write_control(&mut send, &msg).await.is_err() {
                break;
            }
        }
        let _ = send.finish();
    });
    let shared = Arc::new(Shared::new(
        conn.clone(),
        control.clone(),
        peer_node_id.clone(),
        config.clone(),
        role,
    ));
    let ctx = serving.map(|serving| {
        Arc::new(Ctx::new(
            conn.clone(),
            serving,
            config.clone(),
            shared.priority.clone(),
            control,
            peer_node_id,
            role.peer(),
        ))
    });
    let (routing, serving_ctx, violations) = (shared.clone(), ctx.clone(), shared.clone());
    let gops = tokio::spawn(receive::accept_gops(
        conn,
        config,
        move |request_id, reader| {
            if role.owns(request_id) {
                // One of this node's subscriptions, served by the opener.
                routing.route_gop(request_id, reader)
            } else {
                // One of the opener's forwards to this node.
                match serving_ctx.as_ref() {
                    Some(ctx) => forward_in::route(&ctx.forwards, request_id, reader),
                    None => Some(reader),
                }
            }
        },
        move |what| violations.violation(what),
    ));
    let looping = shared.clone();
    tokio::spawn(async move {
        let result = control_loop(&looping, ctx.as_deref(), reader).await;
        match result {
            Err(RelayError::Protocol(what)) => looping.violation(&what),
            // The peer finished the control stream: no more requests either way.
            Ok(()) => looping.conn.close(codes::CLOSE_NORMAL.into(), b"control stream finished"),
            Err(e) => {
                tracing::debug!(peer = %looping.peer_node_id(), error = %e, "relay connection ended")
            }
        }
        // Wake everyone: requests see their channels close, publications and forwards stop.
        client::teardown(&looping);
        if let Some(ctx) = ctx {
            ctx.teardown();
        }
        gops.abort();
    });
    RelayConnection::from_shared(shared)
}

/// Dispatches the peer's control messages until the stream ends: requests to `ctx` (this
/// node serving), answers to this node's requests. `Err(Protocol)` is a violation.
async fn control_loop(shared: &Shared, ctx: Option<&Ctx>, mut reader: ControlReader) -> Result<()> {
    loop {
        let Some(msg) = reader.next().await? else {
            return Ok(());
        };
        match msg.msg {
            Some(
                answer @ (Msg::SubscribeOk(_)
                | Msg::SubscribeError(_)
                | Msg::ForwardOk(_)
                | Msg::ForwardError(_)),
            ) => client::on_answer(shared, answer).map_err(|w| RelayError::Protocol(w.into()))?,
            Some(
                request @ (Msg::Subscribe(_)
                | Msg::Unsubscribe(_)
                | Msg::Forward(_)
                | Msg::Unforward(_)),
            ) => {
                let Some(ctx) = ctx else {
                    return Err(RelayError::Protocol(
                        "request from a peer this node does not serve".into(),
                    ));
                };
                if let Some(answer) = ctx.on_request(request)? {
                    let answer = ControlMessage { msg: Some(answer) };
                    if shared.control.send(answer).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Some(Msg::Hello(_)) => return Err(RelayError::Protocol("a second Hello".into())),
            None => return Err(RelayError::Protocol("empty control message".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_sides_number_requests_in_disjoint_halves() {
        for n in [0, 1, 7, u64::MAX >> 1, u64::MAX] {
            let (d, a) = (Role::Dialler.request_id(n), Role::Acceptor.request_id(n));
            assert!(Role::Dialler.owns(d) && !Role::Acceptor.owns(d), "{n}");
            assert!(Role::Acceptor.owns(a) && !Role::Dialler.owns(a), "{n}");
            assert_ne!(d, a);
        }
        assert_eq!(Role::Dialler.request_id(5), 5);
        assert_eq!(Role::Acceptor.request_id(5), (1 << 63) | 5);
        assert_eq!(Role::Dialler.peer(), Role::Acceptor);
        assert_eq!(Role::Acceptor.peer(), Role::Dialler);
    }
}
