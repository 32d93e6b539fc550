//! Signed stream tokens, shared by the nodes that check them and the control plane that mints
//! them: `EXPIRY.SIGNATURE`, where `EXPIRY` is a Unix time in seconds and `SIGNATURE` the hex
//! HMAC-SHA256, under a shared secret, of `PURPOSE:app/name:EXPIRY`. A publish token lets an
//! encoder in; a play token makes a private stream's signed URL. The purpose is signed, so one
//! never stands for the other. Sans-IO: the time is an argument.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_media::stream_name::StreamKey;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted (anything longer is refused unread).
pub const MAX_TOKEN_LEN: usize = 512;

/// Shortest secret a node or the control plane accepts.
pub const MIN_SECRET_LEN: usize = 16;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Publish,
    Play,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Publish => "publish",
            Purpose::Play => "play",
        }
    }
}

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading {}: {source}", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: the secret must be at least {MIN_SECRET_LEN} bytes", path.display())]
    Short { path: std::path::PathBuf },
}

/// The secret in the file at `path` (surrounding whitespace, such as a final newline, is not
/// part of it), at least [`MIN_SECRET_LEN`] bytes.
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, SecretError> {
    let text = std::fs::read(path)
        .map_err(|source| SecretError::Read { path: path.to_path_buf(), source })?;
    let secret = text.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_LEN {
        return Err(SecretError::Short { path: path.to_path_buf() });
    }
    Ok(secret)
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not valid for this stream")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// The marker between expiry and signature of a token bound to a client address.
const BOUND: &str = "ip";

fn mac(
    secret: &[u8],
    purpose: Purpose,
    stream: &StreamKey,
    expiry_unix: u64,
    client: Option<IpAddr>,
) -> HmacSha256 {
    #[allow(clippy::expect_used)] // HMAC takes a key of any length
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    let mut text = format!("{}:{stream}:{expiry_unix}", purpose.as_str());
    if let Some(ip) = client {
        // One spelling per address: an IPv4 client seen as ::ffff:a.b.c.d is a.b.c.d.
        text.push_str(&format!(":ip={}", ip.to_canonical()));
    }
    mac.update(text.as_bytes());
    mac
}

/// A token for `stream` and `purpose`, valid until `expiry_unix`, signed with `secret`.
#[must_use]
pub fn sign(secret: &[u8], purpose: Purpose, stream: &StreamKey, expiry_unix: u64) -> String {
    sign_for(secret, purpose, stream, expiry_unix, None)
}

/// [`sign`], and with `client` the token holds only for a client at that address
/// (`EXPIRY.ip.SIGNATURE`: the address is signed, not written in the token).
#[must_use]
pub fn sign_for(
    secret: &[u8],
    purpose: Purpose,
    stream: &StreamKey,
    expiry_unix: u64,
    client: Option<IpAddr>,
) -> String {
    let tag =
        hex::encode(mac(secret, purpose, stream, expiry_unix, client).finalize().into_bytes());
    match client {
        Some(_) => format!("{expiry_unix}.{BOUND}.{tag}"),
        None => format!("{expiry_unix}.{tag}"),
    }
}

/// Whether `token` was signed with `secret` for `stream` and `purpose`, and is still valid at
/// `now_unix`. The signature is compared in constant time. A token bound to a client address
/// is refused here: see [`verify_from`].
pub fn verify(
    secret: &[u8],
    purpose: Purpose,
    stream: &StreamKey,
    token: &str,
    now_unix: u64,
) -> Result<(), TokenError> {
    verify_from(secret, purpose, stream, token, now_unix, None)
}

/// [`verify`] for a client at `client` (when known): a token bound to an address holds only
/// for that address.
pub fn verify_from(
    secret: &[u8],
    purpose: Purpose,
    stream: &StreamKey,
    token: &str,
    now_unix: u64,
    client: Option<IpAddr>,
) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Invalid);
    }
    let (expiry, rest) = token.split_once('.').ok_or(TokenError::Invalid)?;
    let (bound_to, signature) = match rest.split_once('.') {
        Some((BOUND, signature)) => (Some(client.ok_or(TokenError::Invalid)?), signature),
        Some(_) => return Err(TokenError::Invalid),
        None => (None, rest),
    };
    let expiry_unix: u64 = expiry.parse().map_err(|_| TokenError::Invalid)?;
    let signature = hex::decode(signature).map_err(|_| TokenError::Invalid)?;
    mac(secret, purpose, stream, expiry_unix, bound_to)
        .verify_slice(&signature)
        .map_err(|_| TokenError::Invalid)?;
    if now_unix > expiry_unix {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> StreamKey {
        StreamKey::parse("live", name).unwrap().0
    }

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    #[test]
    fn a_token_holds_for_its_stream_purpose_and_time_only() {
        let t = sign(SECRET, Purpose::Play, &key("x"), 1000);
        assert_eq!(verify(SECRET, Purpose::Play, &key("x"), &t, 999), Ok(()));
        assert_eq!(verify(SECRET, Purpose::Play, &key("x"), &t, 1000), Ok(()));
        assert_eq!(verify(SECRET, Purpose::Play, &key("x"), &t, 1001), Err(TokenError::Expired));
        assert_eq!(verify(SECRET, Purpose::Play, &key("y"), &t, 0), Err(TokenError::Invalid));
        assert_eq!(verify(SECRET, Purpose::Publish, &key("x"), &t, 0), Err(TokenError::Invalid));
        assert_eq!(
            verify(b"another-secret-16b", Purpose::Play, &key("x"), &t, 0),
            Err(TokenError::Invalid)
        );
        // A later expiry under the same signature is not the signed one.
        let forged = t.replacen("1000", "9999", 1);
        assert_eq!(verify(SECRET, Purpose::Play, &key("x"), &forged, 0), Err(TokenError::Invalid));
        for junk in
            ["", ".", "1000", "1000.", "x.00", "1000.zz", &"9".repeat(600), "1.ip.", "1.x.00"]
        {
            assert_eq!(verify(SECRET, Purpose::Play, &key("x"), junk, 0), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn a_bound_token_holds_for_its_client_address_only() {
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        let t = sign_for(SECRET, Purpose::Play, &key("x"), 1000, Some(a));
        assert!(t.starts_with("1000.ip."), "{t}");
        let check = |client| verify_from(SECRET, Purpose::Play, &key("x"), &t, 0, client);
        assert_eq!(check(Some(a)), Ok(()));
        // The same address seen as IPv4-mapped IPv6.
        assert_eq!(check(Some("::ffff:203.0.113.7".parse().unwrap())), Ok(()));
        assert_eq!(check(Some(b)), Err(TokenError::Invalid));
        assert_eq!(check(None), Err(TokenError::Invalid), "the address is needed");
        // Stripping the binding does not make an unbound token of it.
        let stripped = t.replacen(".ip.", ".", 1);
        assert_eq!(
            verify(SECRET, Purpose::Play, &key("x"), &stripped, 0),
            Err(TokenError::Invalid)
        );
        // An unbound token holds from any address.
        let free = sign(SECRET, Purpose::Play, &key("x"), 1000);
        assert_eq!(verify_from(SECRET, Purpose::Play, &key("x"), &free, 0, Some(b)), Ok(()));
    }
}
