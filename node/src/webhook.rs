//! The publish webhook (`--webhook-url`): for operators who keep their own user database, the
//! ingest origin asks an HTTP endpoint before a publisher may go on (`on_publish`) and tells it
//! when the publish ends (`on_unpublish`), in the spirit of nginx-rtmp's and SRS's callbacks.
//!
//! Each call is a `POST` of a JSON object: `event`, `app`, `name`, `query` (what the encoder
//! put after `?`: its token, say), `client_ip`, `node`. For `on_publish` a 2xx answer admits
//! the publisher; anything else refuses it, and so does no answer within `--webhook-timeout`
//! unless `--webhook-fail-open` (fail-closed by default). `on_unpublish` is a notice: its
//! answer is not waited for, and at most [`MAX_NOTICES`] are in flight (more are dropped and
//! counted in the log).

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
    #[error("--webhook-url {0:?}: only http:// is supported (put the endpoint next to the origin, or behind a local TLS proxy)")]
    Scheme(String),
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
}

/// The publish webhook of a node.
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
    pub fn new(
        url: &str,
        timeout: Duration,
        fail_open: bool,
        node: &str,
    ) -> Result<Webhook, WebhookConfigError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| WebhookConfigError::Url(url.into(), e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(WebhookConfigError::Scheme(url.into()));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebhookConfigError::Client(e.to_string()))?;
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
        let call = self.call("on_publish", app, name, query, client);
        match self.client.post(self.url.clone()).json(&call).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => {
                let status = resp.status();
                let body = reason_text(resp).await;
                let reason = crate::log_limit::printable(body.trim(), MAX_REASON);
                if reason.is_empty() {
                    Err(format!("refused by the publish webhook (HTTP {})", status.as_u16()))
                } else {
                    Err(format!(
                        "refused by the publish webhook (HTTP {}): {reason}",
                        status.as_u16()
                    ))
                }
            }
            Err(e) => {
                if self.log.allow() {
                    warn!(error = %e, fail_open = self.fail_open, "the publish webhook did not answer");
                }
                if self.fail_open {
                    Ok(())
                } else {
                    Err("the publish webhook did not answer; try again later".into())
                }
            }
        }
    }

    /// Tell the webhook that a publish ended (not waited for).
    pub fn notify_unpublish(self: &Arc<Self>, app: &str, name: &str, client: IpAddr) {
        let Ok(permit) = self.notices.clone().try_acquire_owned() else {
            if self.log.allow() {
                warn!(app, name, "on_unpublish dropped: {MAX_NOTICES} notices already in flight");
            }
            return;
        };
        let body = serde_json::to_vec(&self.call("on_unpublish", app, name, "", client));
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
                debug!(error = %e, "on_unpublish not delivered");
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
        Call { event, app, name, query, client_ip: client.to_string(), node: &self.node }
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
