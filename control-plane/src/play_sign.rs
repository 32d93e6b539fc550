//! Signed play URLs: with the nodes' play secret (`--play-token-secret-file`) and private apps
//! (`--play-private-apps`), the URL `AssignViewer` and `/play/` hand out for a private stream
//! carries `?token=…` ([`sluice_cluster::signed_token`], purpose `play`), valid for
//! `--play-token-ttl`. A player that follows the control plane needs nothing else; the edges
//! check the token (and HLS binds its session to the stream, so the token is only needed to
//! start). Sans-IO: the time is an argument. The secret can be replaced while serving (SIGHUP
//! rereads the file, as on the nodes): URLs are signed with the new one from then on.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::net::IpAddr;

use sluice_cluster::signed_token::{sign_for, Purpose};
use sluice_media::stream_name::StreamKey;

/// Signs the play URLs of private streams.
#[derive(Debug, Clone)]
pub struct PlaySigner {
    secret: Arc<RwLock<Arc<[u8]>>>,
    private_apps: Vec<String>,
    ttl: Duration,
    /// Bind each token to the viewer's address (`--play-token-bind-client`).
    bind_client: bool,
}

impl PlaySigner {
    pub fn new(secret: Vec<u8>, private_apps: Vec<String>, ttl: Duration) -> PlaySigner {
        PlaySigner {
            secret: Arc::new(RwLock::new(secret.into())),
            private_apps,
            ttl,
            bind_client: false,
        }
    }

    /// Bind every token to the viewer's address (which callers must then give).
    #[must_use]
    pub fn binding_clients(mut self) -> PlaySigner {
        self.bind_client = true;
        self
    }

    /// Whether viewers of `stream` get a token.
    #[must_use]
    pub fn is_private(&self, stream: &StreamKey) -> bool {
        self.private_apps.iter().any(|a| a == "*" || a == stream.app())
    }

    /// Whether tokens are bound to viewers' addresses.
    #[must_use]
    pub fn binds_client(&self) -> bool {
        self.bind_client
    }

    /// Sign with `secret` from now on (every clone of this signer).
    pub fn replace_secret(&self, secret: Vec<u8>) {
        *self.secret.write().unwrap_or_else(std::sync::PoisonError::into_inner) = secret.into();
    }

    /// `url` for `stream`, with a token valid from `now_unix` for the TTL when the stream is
    /// private (bound to `client` when this signer binds and it is given).
    #[must_use]
    pub fn sign_url(
        &self,
        url: String,
        stream: &StreamKey,
        now_unix: u64,
        client: Option<IpAddr>,
    ) -> String {
        if !self.is_private(stream) {
            return url;
        }
        let expiry = now_unix.saturating_add(self.ttl.as_secs());
        let secret = self.secret.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let client = client.filter(|_| self.bind_client);
        let token = sign_for(&secret, Purpose::Play, stream, expiry, client);
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}token={token}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::signed_token::{verify, verify_from};

    #[test]
    fn only_private_streams_get_a_token_that_the_nodes_accept_until_it_expires() {
        let secret = b"a-play-secret-long-enough".to_vec();
        let s = PlaySigner::new(secret.clone(), vec!["vip".into()], Duration::from_secs(600));
        let public = StreamKey::parse("live", "x").unwrap().0;
        let private = StreamKey::parse("vip", "x").unwrap().0;
        let url = "rtmp://e:1935/live/x".to_string();
        assert_eq!(s.sign_url(url.clone(), &public, 1000, None), url);
        let signed = s.sign_url("http://e/vip/x.flv".into(), &private, 1000, None);
        let token = signed.strip_prefix("http://e/vip/x.flv?token=").expect("a token");
        assert_eq!(verify(&secret, Purpose::Play, &private, token, 1600), Ok(()));
        assert!(verify(&secret, Purpose::Play, &private, token, 1601).is_err());
        let with_query = s.sign_url("http://e/vip/x.m3u8?a=1".into(), &private, 0, None);
        assert!(with_query.starts_with("http://e/vip/x.m3u8?a=1&token="), "{with_query}");
        // A new secret signs from then on, in every clone.
        let clone = s.clone();
        let new_secret = b"a-rotated-play-secret-here".to_vec();
        s.replace_secret(new_secret.clone());
        let signed = clone.sign_url("http://e/vip/x.flv".into(), &private, 1000, None);
        let token = signed.strip_prefix("http://e/vip/x.flv?token=").expect("a token");
        assert_eq!(verify(&new_secret, Purpose::Play, &private, token, 1600), Ok(()));
        // Binding: the viewer's address is signed in; without binding it is ignored.
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let bound =
            s.clone().binding_clients().sign_url("rtmp://e/vip/x".into(), &private, 0, Some(ip));
        let token = bound.split("token=").nth(1).unwrap();
        assert!(token.contains(".ip."), "{bound}");
        let check = |client| verify_from(&new_secret, Purpose::Play, &private, token, 0, client);
        assert_eq!(check(Some(ip)), Ok(()));
        assert!(check(Some("192.0.2.10".parse().unwrap())).is_err());
        let free = s.sign_url("rtmp://e/vip/x".into(), &private, 0, Some(ip));
        assert!(!free.contains(".ip."), "{free}");
    }
}
