//! The webhook (`--webhook-url`): for operators who keep their own user database, a node asks
//! an HTTP endpoint before a publisher may go on (`on_publish`, on the ingest origin) and before
//! a viewer of a stream whose app asks it (`--play-webhook-apps`) may play (`on_play`, on the
//! node the viewer reaches), and tells it when either ends (`on_unpublish`, `on_play_done`), in
//! the spirit of nginx-rtmp's and SRS's callbacks.
//!
//! Each call is a `POST` of a JSON object: `event`, `app`, `name`, `query` (what the client put
//! after `?`: its token, say), `client_ip`, `node`, and for plays `protocol` (`rtmp`, `flv`,
//! `hls`). For `on_publish` and `on_play` a 2xx answer admits the client; anything else refuses
//! it with the start of the answer's body as the reason, and so does no answer within
//! `--webhook-timeout` unless `--webhook-fail-open` (fail-closed by default). `on_unpublish` and
//! `on_play_done` are notices: their answers are not waited for, and at most [`MAX_NOTICES`]
//! are in flight (more are dropped and counted in the log). `https://` endpoints are verified
//! against the system's roots, or `--webhook-ca-file`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// `on_unpublish` notices in flight at most.
pub const MAX_NOTICES: usize = 64;
/// Longest part of an error body quoted back to the encoder.
const MAX_REASON: usize = 120;
/// Most bytes of a refusal's body read (the rest is never read).
const MAX_REASON_BYTES: usize = 1024;

/// A webhook URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("--webhook-url {0:?} is not a URL: {1}")]
    Url(String, String),
    #[error("--webhook-url {0:?}: only http:// and https:// are supported")]
    Scheme(String),
    #[error("--webhook-ca-file {0}: {1}")]
    Ca(String, String),
    #[error("the webhook's HTTP client: {0}")]
    Client(String),
}

/// The call's body.
#[derive(Debug, Serialize)]
struct Call<'a> {
    event: &'a str,
    app: &'a str,
    name: &'a str,
    query: &'a str,
    client_ip: String,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
}

/// The webhook of a node.
pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    fail_open: bool,
    node: String,
    notices: Arc<Semaphore>,
    log: crate::log_limit::RateLimitedLog,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook at `url`; `ca_file`: a PEM CA (or bundle) trusted for `https://` besides the
    /// system's roots.
    pub fn new(
        url: &str,
        timeout: Duration,
        fail_open: bool,
        node: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Webhook, WebhookConfigError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| WebhookConfigError::Url(url.into(), e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WebhookConfigError::Scheme(url.into()));
        }
        // reqwest's rustls takes the process's provider: ring, as everywhere in Sluice.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = ca_file {
            let ca_error = |e: String| WebhookConfigError::Ca(path.display().to_string(), e);
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in it".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| WebhookConfigError::Client(e.to_string()))?;
        Ok(Webhook {
            client,
            url: parsed,
            fail_open,
            node: node.to_string(),
            notices: Arc::new(Semaphore::new(MAX_NOTICES)),
            log: crate::log_limit::RateLimitedLog::new(5),
        })
    }

    /// Ask whether `app/name` (with the encoder's `query`) may be published from `client`;
    /// `Err` with the reason to tell the encoder.
    pub async fn allow_publish(
        &self,
        app: &str,
        name: &str,
        query: &str,
        client: IpAddr,
    ) -> Result<(), String> {
        self.ask(self.call("on_publish", app, name, query, client), "publish").await
    }

    /// Ask whether `app/name` (with the viewer's `query`) may be played from `client` over
    /// `protocol`; `Err` with the reason to tell the viewer.
    pub async fn allow_play(
        &self,
        app: &str,
        name: &str,
        query: &str,
        client: IpAddr,
        protocol: &str,
    ) -> Result<(), String> {
        let mut call = self.call("on_play", app, name, query, client);
        call.protocol = Some(protocol);
        self.ask(call, "play").await
    }

    async fn ask(&self, call: Call<'_>, what: &str) -> Result<(), String> {
        match self.client.post(self.url.clone()).json(&call).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => {
                let status = resp.status();
                let body = reason_text(resp).await;
                let reason = crate::log_limit::printable(body.trim(), MAX_REASON);
                if reason.is_empty() {
                    Err(format!("refused by the {what} webhook (HTTP {})", status.as_u16()))
                } else {
                    Err(format!(
                        "refused by the {what} webhook (HTTP {}): {reason}",
                        status.as_u16()
                    ))
                }
            }
            Err(e) => {
                if self.log.allow() {
                    warn!(error = %e, event = call.event, fail_open = self.fail_open, "the webhook did not answer");
                }
                if self.fail_open {
                    Ok(())
                } else {
                    Err(format!("the {what} webhook did not answer; try again later"))
                }
            }
        }
    }

    /// A guard that tells the webhook `on_play_done` for this viewer when dropped.
    pub fn play_done(
        self: &Arc<Self>,
        app: &str,
        name: &str,
        client: IpAddr,
        protocol: &'static str,
    ) -> PlayDone {
        PlayDone {
            webhook: self.clone(),
            app: app.to_string(),
            name: name.to_string(),
            client,
            protocol,
        }
    }

    /// Tell the webhook that a publish ended (not waited for).
    pub fn notify_unpublish(self: &Arc<Self>, app: &str, name: &str, client: IpAddr) {
        self.notify(self.call("on_unpublish", app, name, "", client));
    }

    /// Send a notice, not waited for; dropped when [`MAX_NOTICES`] are in flight.
    fn notify(self: &Arc<Self>, call: Call<'_>) {
        let Ok(permit) = self.notices.clone().try_acquire_owned() else {
            if self.log.allow() {
                warn!(
                    event = call.event,
                    app = call.app,
                    "webhook notice dropped: {MAX_NOTICES} notices already in flight"
                );
            }
            return;
        };
        let body = serde_json::to_vec(&call);
        let (this, body) = (self.clone(), body.unwrap_or_default());
        tokio::spawn(async move {
            let sent = this
                .client
                .post(this.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await;
            if let Err(e) = sent {
                debug!(error = %e, "webhook notice not delivered");
            }
            drop(permit);
        });
    }

    fn call<'a>(
        &'a self,
        event: &'a str,
        app: &'a str,
        name: &'a str,
        query: &'a str,
        client: IpAddr,
    ) -> Call<'a> {
        Call {
            event,
            app,
            name,
            query,
            client_ip: client.to_string(),
            node: &self.node,
            protocol: None,
        }
    }
}

/// Sends `on_play_done` for one viewer when dropped (its connection, response or HLS session
/// ended).
pub struct PlayDone {
    webhook: Arc<Webhook>,
    app: String,
    name: String,
    client: IpAddr,
    protocol: &'static str,
}

impl Drop for PlayDone {
    fn drop(&mut self) {
        // Notices are sent from a task: without a runtime (a process exiting) there is none.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut call = self.webhook.call("on_play_done", &self.app, &self.name, "", self.client);
        call.protocol = Some(self.protocol);
        self.webhook.notify(call);
    }
}

/// The start of a refusal's body, at most [`MAX_REASON_BYTES`] read whatever the endpoint
/// sends (within the client's timeout).
async fn reason_text(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_REASON_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(MAX_REASON_BYTES - body.len())]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}
