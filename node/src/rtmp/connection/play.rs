//! A connection's `play`: the name, the play gate (token, drain, publisher reserve), the
//! webhook's answer for `--play-webhook-apps` streams (the connection waits for it as an
//! activity, like a publish waits for its claim), then the subscription.

use std::future::Future;
use std::pin::Pin;

use sluice_media::stream_name::StreamKey;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Activity, Connection};
use crate::hub::SubscribeError;
use crate::log_limit::printable;
use crate::metrics::Protocol;
use crate::rtmp::play_gate;

/// The webhook's answer to a play in flight (bounded by `--webhook-timeout`).
pub(super) type PendingAnswer = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

impl Connection {
    pub(super) fn on_play(&mut self, stream_id: u32, name: &str, reset: bool) {
        if !matches!(self.activity, Activity::None) {
            self.session.play_not_found(stream_id, name);
            return;
        }
        let key = match self.key_for(name) {
            Ok(key) => key,
            Err(e) => {
                if self.ctx.client_log.allow() {
                    info!(name = %printable(name, 64), error = %e, "play refused: bad stream name");
                }
                self.session.play_not_found(stream_id, name);
                return;
            }
        };
        let app = self.app.as_deref().unwrap_or_default();
        if let Err(reason) = play_gate::admit(&self.ctx, &key, app, name, self.client_ip()) {
            self.session.reject_play(stream_id, "NetStream.Play.Failed", &reason, key.name());
            return;
        }
        match (&self.ctx.webhook, self.ctx.play_auth.asks_webhook(&key)) {
            (Some(webhook), true) => {
                let webhook = webhook.clone();
                // The play name's query, else the app's (where some clients keep it).
                let query_of = |s: &str| s.split_once('?').map(|(_, q)| q.to_string());
                let query = query_of(name).or_else(|| query_of(app)).unwrap_or_default();
                let (client, ask_key) = (self.client_ip(), key.clone());
                let answer = Box::pin(async move {
                    let (app, name) = (ask_key.app(), ask_key.name());
                    webhook.allow_play(app, name, &query, client, "rtmp").await
                });
                let name = name.to_string();
                self.activity = Activity::Asking { stream_id, key, name, reset, answer };
            }
            _ => self.subscribe(stream_id, key, name, reset),
        }
    }

    /// The webhook answered a play: subscribe, or refuse with its reason.
    pub(super) fn on_answered(&mut self, answer: Result<(), String>) {
        let Activity::Asking { stream_id, key, name, reset, .. } =
            std::mem::replace(&mut self.activity, Activity::None)
        else {
            return;
        };
        match answer {
            Ok(()) => {
                if let Some(webhook) = &self.ctx.webhook {
                    let client = self.client_ip();
                    self.play_done =
                        Some(Box::new(webhook.play_done(key.app(), key.name(), client, "rtmp")));
                }
                self.subscribe(stream_id, key, &name, reset);
            }
            Err(reason) => {
                self.ctx.metrics.play_unauthorized(Protocol::Rtmp);
                if self.ctx.client_log.allow() {
                    info!(app = %key.app(), "play refused by the webhook");
                }
                self.session.reject_play(stream_id, "NetStream.Play.Failed", &reason, key.name());
            }
        }
    }

    fn subscribe(&mut self, stream_id: u32, key: StreamKey, name: &str, reset: bool) {
        match self.ctx.hub.subscribe(&key, Protocol::Rtmp) {
            Ok(sub) => {
                self.span.record("stream", tracing::field::display(&key));
                self.span.record("role", "play");
                debug!(stream = %key, live = sub.is_live(), "play");
                let deadline = Instant::now() + self.ctx.limits.play_wait_timeout;
                let name = key.name().to_string();
                // `fill_output` starts playing as soon as the stream is live (maybe right away).
                self.activity = Activity::Waiting { sub, stream_id, name, reset, deadline };
            }
            Err(e @ SubscribeError::NotFound(_)) => {
                if self.ctx.client_log.allow() {
                    info!(stream = %key, error = %e, "play refused");
                }
                self.play_done = None;
                self.session.play_not_found(stream_id, name);
            }
            Err(e @ SubscribeError::TooManyViewers(..)) => {
                if self.ctx.client_log.allow() {
                    warn!(stream = %key, error = %e, "play refused");
                }
                self.play_done = None;
                self.session.reject_play(stream_id, "NetStream.Play.Failed", &e.to_string(), name);
            }
        }
    }
}
