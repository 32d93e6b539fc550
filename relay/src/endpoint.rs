//! The relay endpoint: one UDP socket that both accepts connections and dials other nodes.
//! On every connection, the dialler subscribes and forwards; the acceptor serves media and
//! takes forwards, and, when the dialler serves too ([`RelayEndpoint::connect_serving`]),
//! subscribes and forwards the other way through the handle
//! [`RelayEndpoint::serve_with_peers`] hands out.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::client::RelayConnection;
use crate::codes;
use crate::config::RelayConfig;
use crate::error::{RelayError, Result};
use crate::serving::{ForwardSink, MediaSource, Serving};
use crate::session;

/// A bound relay endpoint.
#[derive(Debug, Clone)]
pub struct RelayEndpoint {
    endpoint: quinn::Endpoint,
    config: Arc<RelayConfig>,
}

impl RelayEndpoint {
    /// Binds a UDP socket on `addr` (port 0 picks one) with the server and client TLS
    /// configs and transport settings of `config`.
    pub fn bind(addr: SocketAddr, config: RelayConfig) -> Result<Self> {
        let transport = config.transport();
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(config.tls.server_crypto()?));
        server.transport_config(transport.clone());
        let mut client = quinn::ClientConfig::new(Arc::new(config.tls.client_crypto()?));
        client.transport_config(transport);
        let mut endpoint = quinn::Endpoint::server(server, addr)?;
        endpoint.set_default_client_config(client);
        Ok(Self { endpoint, config: Arc::new(config) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// The configuration this endpoint was bound with.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Accepts connections until the endpoint closes, serving subscriptions from `source`.
    /// Each connection runs in its own task; a failing connection affects no other.
    /// Forwards are refused (`FORWARD_REFUSED`); see [`Self::serve_with`].
    pub fn serve(&self, source: Arc<dyn MediaSource>) -> tokio::task::JoinHandle<()> {
        self.serve_with(source, None)
    }

    /// [`Self::serve`], also taking forwards into `sink` (an origin that is home to
    /// streams); `None` refuses them.
    pub fn serve_with(
        &self,
        source: Arc<dyn MediaSource>,
        sink: Option<Arc<dyn ForwardSink>>,
    ) -> tokio::task::JoinHandle<()> {
        self.accept_loop(Serving { source, sink }, None)
    }

    /// [`Self::serve_with`], also handing out, through `peers`, a [`RelayConnection`] for
    /// each accepted connection whose dialler serves requests (it dialled with
    /// [`Self::connect_serving`]), once its Hellos are exchanged: through it this node
    /// subscribes and forwards to the dialler on the same connection, exactly as the
    /// dialler does the other way ([`RelayConnection::peer_node_id`] says who it is).
    /// Connections from diallers that do not serve (plain [`Self::connect`], or nodes built
    /// before this) are served as usual but not handed out. A full `peers` channel delays
    /// only the hand-out, not the serving; a closed one drops the handles (the connections
    /// go on).
    pub fn serve_with_peers(
        &self,
        source: Arc<dyn MediaSource>,
        sink: Option<Arc<dyn ForwardSink>>,
        peers: mpsc::Sender<RelayConnection>,
    ) -> tokio::task::JoinHandle<()> {
        self.accept_loop(Serving { source, sink }, Some(peers))
    }

    fn accept_loop(
        &self,
        serving: Serving,
        peers: Option<mpsc::Sender<RelayConnection>>,
    ) -> tokio::task::JoinHandle<()> {
        let endpoint = self.endpoint.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let (serving, peers, config) = (serving.clone(), peers.clone(), config.clone());
                tokio::spawn(async move {
                    let conn = match incoming.await {
                        Ok(conn) => conn,
                        Err(e) => return tracing::debug!(error = %e, "relay handshake failed"),
                    };
                    let remote = conn.remote_address();
                    match session::accept(conn, config, serving).await {
                        Ok(accepted) => {
                            if let (Some(peers), true) = (peers, accepted.peer_serves) {
                                let _ = peers.send(accepted.handle).await;
                            }
                        }
                        Err(e) => {
                            tracing::info!(peer = %remote, error = %e, "relay connection refused");
                        }
                    }
                });
            }
        })
    }

    /// Dials `addr`, checks its certificate against `server_name` (a node id), and exchanges
    /// `Hello`s (the peer's node id must be a name of its certificate, see
    /// [`RelayError::Identity`]). Only this node makes requests on the connection.
    pub async fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<RelayConnection> {
        let conn = self.connect_quic(addr, server_name).await?;
        session::dial(conn, self.config.clone(), None).await
    }

    /// [`Self::connect`], also serving the peer's requests on the connection: its
    /// subscriptions from `source` and its forwards into `sink` (`None` refuses them), as
    /// [`Self::serve_with`] does for accepted connections. The peer (serving with
    /// [`Self::serve_with_peers`]) gets its own [`RelayConnection`] for this connection, so
    /// one connection per node pair carries requests both ways.
    pub async fn connect_serving(
        &self,
        addr: SocketAddr,
        server_name: &str,
        source: Arc<dyn MediaSource>,
        sink: Option<Arc<dyn ForwardSink>>,
    ) -> Result<RelayConnection> {
        let conn = self.connect_quic(addr, server_name).await?;
        session::dial(conn, self.config.clone(), Some(Serving { source, sink })).await
    }

    /// Dials and completes the QUIC/TLS handshake only, without the relay `Hello`. For tools
    /// and protocol tests that drive the control stream themselves.
    pub async fn connect_quic(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<quinn::Connection> {
        Ok(self.endpoint.connect(addr, server_name)?.await?)
    }

    /// Accepts the next connection and completes the QUIC/TLS handshake only, without the
    /// relay `Hello` (the counterpart of [`Self::connect_quic`], for tools and protocol
    /// tests that drive the control stream themselves). Do not combine with the `serve`
    /// methods on one endpoint. [`RelayError::Closed`] once the endpoint is closed.
    pub async fn accept_quic(&self) -> Result<quinn::Connection> {
        let incoming = self.endpoint.accept().await.ok_or(RelayError::Closed)?;
        Ok(incoming.await?)
    }

    /// Closes every connection of this endpoint and stops accepting.
    pub fn close(&self) {
        self.endpoint.close(codes::CLOSE_NORMAL.into(), b"endpoint closed");
    }

    /// Waits until every connection of this endpoint is gone (after [`Self::close`]).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}
