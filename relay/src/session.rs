//! One relay connection, whichever side dialled it: the Hello exchange with its version and
//! identity checks ([`dial`], [`accept`]), then the tasks every connection runs: one writer
//! of the control stream, one reader that hands the peer's requests to this node's serving
//! side ([`crate::server::Ctx`]) and the answers to this node's own requests to its
//! requesting side ([`crate::client`]), and one acceptor of GOP streams that routes each by
//! its request id's half of the id space.

use std::sync::Arc;

use sluice_proto::v1::{control_message::Msg, ControlMessage, Hello};
use sluice_proto::VERSION;
use tokio::sync::mpsc;

use crate::client::{self, RelayConnection, Shared};
use crate::codes;
use crate::config::RelayConfig;
use crate::error::{Awaited, IdentityOf, ProtocolViolation, RelayError, Result};
use crate::identity;
use crate::receive;
use crate::server::Ctx;
use crate::serving::Serving;
use crate::side::Side;
use crate::wire::{self, ControlReader};

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
        .map_err(|_| RelayError::Timeout(Awaited::Hello))
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
            return Err(ProtocolViolation::ReplyNotHello.into());
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
    let handle = start(conn, config, Side::Dialler, peer_node_id, send, reader, serving);
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
        .map_err(|_| RelayError::Timeout(Awaited::Hello))??;
    let peer = match first {
        Some(ControlMessage { msg: Some(Msg::Hello(h)) }) if h.version == VERSION => h,
        Some(ControlMessage { msg: Some(Msg::Hello(h)) }) => {
            return Err(RelayError::UnsupportedVersion(h.version))
        }
        _ => return Err(ProtocolViolation::FirstNotHello.into()),
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
        start(conn.clone(), config, Side::Acceptor, peer.node_id, send, reader, Some(serving));
    Ok(Accepted { handle, peer_serves: peer.serves_requests })
}

/// Starts the tasks of a connection past its Hellos. `serving`: whether (and what) this node
/// serves of the peer's requests; a request from a peer it does not serve is a protocol
/// violation.
fn start(
    conn: quinn::Connection,
    config: Arc<RelayConfig>,
    side: Side,
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
        side,
    ));
    let ctx = serving.map(|serving| {
        Arc::new(Ctx::new(
            conn.clone(),
            serving,
            config.clone(),
            shared.priorities.clone(),
            control,
            peer_node_id,
            side.peer(),
        ))
    });
    let (routing, serving_ctx, violations) = (shared.clone(), ctx.clone(), shared.clone());
    let gops = tokio::spawn(receive::accept_gops(
        conn,
        config,
        move |request_id, reader| {
            if side.owns(request_id) {
                // One of this node's subscriptions, served by the opener.
                routing.route_gop(request_id, reader)
            } else {
                // One of the opener's forwards to this node.
                match serving_ctx.as_ref() {
                    Some(ctx) => ctx.route_gop(request_id, reader),
                    None => Some(reader),
                }
            }
        },
        move |what| violations.violation(&what),
    ));
    let looping = shared.clone();
    tokio::spawn(async move {
        let result = control_loop(&looping, ctx.as_deref(), reader).await;
        match result {
            Err(RelayError::Protocol(what)) => looping.violation(&what),
            // The peer finished the control stream: no more requests either way.
            Ok(()) => looping.conn.close(codes::CLOSE_NORMAL.into(), b"control stream finished"),
            Err(e) => {
                tracing::debug!(peer = %looping.peer_node_id(), error = %e, "relay connection ended");
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
            ) => client::on_answer(shared, answer)?,
            Some(
                request @ (Msg::Subscribe(_)
                | Msg::Unsubscribe(_)
                | Msg::Forward(_)
                | Msg::Unforward(_)),
            ) => {
                let Some(ctx) = ctx else {
                    return Err(ProtocolViolation::RequestNotServed.into());
                };
                if let Some(answer) = ctx.on_request(request)? {
                    let answer = ControlMessage { msg: Some(answer) };
                    if shared.control.send(answer).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Some(Msg::Hello(_)) => return Err(ProtocolViolation::SecondHello.into()),
            None => return Err(ProtocolViolation::EmptyControlMessage.into()),
        }
    }
}
