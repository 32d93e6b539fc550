//! The connection to a control plane: the channel (plain or TLS with `--ca`), the bearer
//! token on every call, the timeout, and gRPC statuses as [`CtlError`]s.

use std::future::Future;
use std::time::Duration;

use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_client::HealthClient;

use crate::config::{Settings, Token};
use crate::error::{root_cause, CtlError};

/// Adds `authorization: Bearer TOKEN` to every call when a token is set.
#[derive(Debug, Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Control = ControlPlaneClient<InterceptedService<Channel, Auth>>;

/// A connected control plane.
pub struct Conn {
    pub endpoint: String,
    timeout: Duration,
    channel: Channel,
    auth: Auth,
}

/// The `Bearer` header value of the configured token (read from its file if need be).
pub fn bearer(token: Option<&Token>) -> Result<Option<MetadataValue<Ascii>>, CtlError> {
    let token = match token {
        None => return Ok(None),
        Some(Token::Literal(t)) => t.trim().to_string(),
        Some(Token::File(path)) => std::fs::read_to_string(path)
            .map_err(|source| CtlError::Read { path: path.clone(), source })?
            .trim()
            .to_string(),
    };
    if token.is_empty() {
        return Err(CtlError::Usage("the token is empty".into()));
    }
    format!("Bearer {token}")
        .parse()
        .map(Some)
        .map_err(|_| CtlError::Usage("the token holds characters a header cannot carry".into()))
}

/// The channel endpoint for the settings (no I/O but reading the CA file).
fn endpoint(settings: &Settings) -> Result<Endpoint, CtlError> {
    let url = &settings.endpoint;
    let invalid = |why: &str| CtlError::Usage(format!("invalid endpoint {url:?}: {why}"));
    let https = if url.starts_with("https://") {
        true
    } else if url.starts_with("http://") {
        false
    } else {
        return Err(invalid("it starts with http:// or https://"));
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| invalid(&root_cause(&e)))?
        .connect_timeout(settings.timeout);
    match (&settings.ca, https) {
        (Some(ca), true) => {
            let pem =
                std::fs::read(ca).map_err(|source| CtlError::Read { path: ca.clone(), source })?;
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).map_err(|e| invalid(&root_cause(&e)))?;
        }
        (None, true) => {
            return Err(CtlError::Usage(format!(
                "{url} is https: give --ca FILE (or SLUICE_CA), the CA that signed the control \
                 plane's certificate"
            )))
        }
        (Some(_), false) => {
            return Err(CtlError::Usage(format!(
                "--ca is given but {url} is plain http: use an https:// endpoint"
            )))
        }
        (None, false) => {}
    }
    Ok(endpoint)
}

impl Conn {
    /// Connect now, so an unreachable control plane is reported as such before any call.
    pub async fn connect(settings: &Settings) -> Result<Conn, CtlError> {
        let auth = Auth(bearer(settings.token.as_ref())?);
        let endpoint = endpoint(settings)?;
        let unreachable =
            |reason: String| CtlError::Unreachable { endpoint: settings.endpoint.clone(), reason };
        let channel = match tokio::time::timeout(settings.timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return Err(unreachable(root_cause(&e))),
            Err(_) => return Err(unreachable("timed out".into())),
        };
        Ok(Conn { endpoint: settings.endpoint.clone(), timeout: settings.timeout, channel, auth })
    }

    pub fn control(&self) -> Control {
        ControlPlaneClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }

    /// Await a call within the timeout; a failed status becomes the matching error.
    pub async fn call<T>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T, CtlError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status_error(&status, name, &self.endpoint)),
            Err(_) => Err(CtlError::TimedOut {
                endpoint: self.endpoint.clone(),
                timeout_ms: self.timeout.as_millis(),
            }),
        }
    }
}

/// A gRPC status as the error a person reads.
pub fn status_error(status: &Status, call: &'static str, endpoint: &str) -> CtlError {
    let message = status.message().to_string();
    match status.code() {
        Code::NotFound => CtlError::NotFound(message),
        Code::InvalidArgument => CtlError::Usage(message),
        Code::FailedPrecondition => CtlError::Refused(message),
        Code::Unauthenticated | Code::PermissionDenied => CtlError::Unauthorised(message),
        Code::Unimplemented => CtlError::Unsupported { endpoint: endpoint.to_string(), call },
        Code::DeadlineExceeded => {
            CtlError::TimedOut { endpoint: endpoint.to_string(), timeout_ms: 0 }
        }
        // A transport failure (the connection went away) carries its cause; the server's own
        // UNAVAILABLE answers ("no edge is available") carry only a message.
        Code::Unavailable => match std::error::Error::source(status) {
            Some(cause) => {
                CtlError::Unreachable { endpoint: endpoint.to_string(), reason: root_cause(cause) }
            }
            None => CtlError::Unavailable(message),
        },
        _ => CtlError::Server { call, message: format!("{message} ({:?})", status.code()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_TIMEOUT;

    fn settings(endpoint: &str, ca: Option<&str>) -> Settings {
        Settings {
            endpoint: endpoint.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            ca: ca.map(Into::into),
            context: None,
        }
    }

    #[test]
    fn bearer_values() {
        assert!(bearer(None).unwrap().is_none());
        let v = bearer(Some(&Token::Literal(" s3cret\n".into()))).unwrap().unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer s3cret");
        assert!(matches!(bearer(Some(&Token::Literal("".into()))), Err(CtlError::Usage(_))));
        assert!(matches!(bearer(Some(&Token::Literal("a\u{7}b".into()))), Err(CtlError::Usage(_))));
        let missing = bearer(Some(&Token::File("/nonexistent/token".into()))).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read /nonexistent/token: "), "{missing}");
    }

    #[test]
    fn the_interceptor_adds_the_header() {
        let mut auth = Auth(bearer(Some(&Token::Literal("t".into()))).unwrap());
        let request = auth.call(Request::new(())).unwrap();
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer t");
        let request = Auth(None).call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn endpoints_need_a_scheme_and_https_needs_a_ca() {
        assert!(endpoint(&settings("http://127.0.0.1:1", None)).is_ok());
        for (url, ca) in [("127.0.0.1:1", None), ("https://h:1", None), ("http://h:1", Some("/ca"))]
        {
            assert!(matches!(endpoint(&settings(url, ca)), Err(CtlError::Usage(_))), "{url}");
        }
    }

    #[test]
    fn statuses_map_to_errors() {
        let e = |s: Status| status_error(&s, "GetStream", "http://h:1");
        assert!(matches!(e(Status::not_found("x")), CtlError::NotFound(m) if m == "x"));
        assert!(matches!(e(Status::unauthenticated("no")), CtlError::Unauthorised(_)));
        assert_eq!(
            e(Status::unimplemented("")).to_string(),
            "the control plane at http://h:1 does not support GetStream yet"
        );
        assert_eq!(
            e(Status::unavailable("no edge is available")).to_string(),
            "no edge is available"
        );
        assert!(matches!(e(Status::internal("boom")), CtlError::Server { .. }));
        let busy = e(Status::failed_precondition("recording live/x/1 is still being written"));
        assert_eq!(busy.to_string(), "recording live/x/1 is still being written");
        assert_eq!(busy.exit_code(), crate::error::exit::FAILED);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_one_clear_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let err = Conn::connect(&settings(&url, None)).await.err().expect("refused");
        assert_eq!(
            err.to_string(),
            format!("cannot reach the control plane at {url}: connection refused")
        );
        assert_eq!(err.exit_code(), crate::error::exit::UNREACHABLE);
    }

    /// `--ca` against a TLS server: the channel verifies the server's certificate with the
    /// given CA, and a call goes through.
    #[tokio::test]
    async fn https_with_the_ca_that_signed_the_server() {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        use tonic::transport::{Identity, Server, ServerTlsConfig};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let identity = Identity::from_pem(cert.pem(), key.serialize_pem());
        let server = Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        let server = tokio::spawn(server);

        let dir = std::env::temp_dir().join(format!("sluicectl-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let url = format!("https://{addr}");
        let conn = Conn::connect(&settings(&url, Some(ca_path.to_str().unwrap()))).await.unwrap();
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        let answer = conn.call("Health.Check", conn.health().check(request)).await.unwrap();
        assert_eq!(
            answer.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );

        // A CA that did not sign the server's certificate: the handshake fails.
        let other = CertificateParams::new(vec!["x".to_string()]).unwrap();
        std::fs::write(&ca_path, other.self_signed(&KeyPair::generate().unwrap()).unwrap().pem())
            .unwrap();
        let err = Conn::connect(&settings(&url, Some(ca_path.to_str().unwrap())))
            .await
            .err()
            .expect("untrusted certificate");
        assert!(matches!(err, CtlError::Unreachable { .. }), "{err}");
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
