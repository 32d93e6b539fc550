//! The relay endpoint: one UDP socket that both accepts connections (serving media, taking
//! forwards) and dials other nodes (subscribing, forwarding).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::client::RelayConnection;
use crate::config::RelayConfig;
use crate::forward_in::ForwardSink;
use crate::server::{self, MediaSource};
use crate::{codes, RelayError, Result};

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
        Ok(Self {
            endpoint,
            config: Arc::new(config),
        })
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
        let endpoint = self.endpoint.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let source = source.clone();
                let sink = sink.clone();
                let config = config.clone();
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => server::run(conn, source, sink, config).await,
                        Err(e) => tracing::debug!(error = %e, "relay handshake failed"),
                    }
                });
            }
        })
    }

    /// Dials `addr`, checks its certificate against `server_name` (a node id), and exchanges
    /// `Hello`s.
    pub async fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<RelayConnection> {
        let conn = self.connect_quic(addr, server_name).await?;
        RelayConnection::handshake(conn, self.config.clone()).await
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

    /// Closes every connection of this endpoint and stops accepting.
    pub fn close(&self) {
        self.endpoint
            .close(codes::CLOSE_NORMAL.into(), b"endpoint closed");
    }

    /// Waits until every connection of this endpoint is gone (after [`Self::close`]).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

impl From<quinn::ClosedStream> for RelayError {
    fn from(_: quinn::ClosedStream) -> Self {
        RelayError::Closed
    }
}
