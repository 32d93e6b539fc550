//! Stream addresses: `rtmp://HOST[:PORT]/APP/STREAM` and `http://HOST[:PORT]/PATH`.

use sluice_media::rtmp::client::{ClientConfig, ClientMode};
use thiserror::Error;

/// A stream address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("{0:?} is not an rtmp:// URL")]
    NotRtmp(String),
    #[error("{0:?} has no /APP/STREAM")]
    NoPath(String),
    #[error("{0:?} must be rtmp://HOST/APP/STREAM")]
    NotAppStream(String),
    #[error("{0:?} is not an http:// URL")]
    NotHttp(String),
    #[error("URL has no host")]
    NoHost,
}

/// A parsed `rtmp://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `host:port` to connect to.
    pub addr: String,
    pub app: String,
    /// Stream name, may carry `?query`.
    pub stream: String,
    /// `rtmp://host:port/app`.
    pub tc_url: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let rest = url.strip_prefix("rtmp://").ok_or_else(|| UrlError::NotRtmp(url.into()))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| UrlError::NoPath(url.into()))?;
        let addr = with_default_port(authority, 1935)?;
        let (app, stream) =
            path.split_once('/').ok_or_else(|| UrlError::NotAppStream(url.into()))?;
        if app.is_empty() || stream.is_empty() {
            return Err(UrlError::NotAppStream(url.into()));
        }
        Ok(RtmpUrl {
            tc_url: format!("rtmp://{addr}/{app}"),
            addr,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }

    /// The client configuration for this URL.
    pub fn client_config(&self, mode: ClientMode) -> ClientConfig {
        ClientConfig {
            app: self.app.clone(),
            tc_url: self.tc_url.clone(),
            stream: self.stream.clone(),
            mode,
            digest_handshake: false,
            chunk_size: match mode {
                ClientMode::Publish => Some(4096),
                ClientMode::Play => None,
            },
        }
    }
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub addr: String,
    /// The authority as written (for the Host header).
    pub host: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| UrlError::NotHttp(url.into()))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        Ok(HttpUrl {
            addr: with_default_port(authority, 80)?,
            host: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The `.flv` URL conventionally paired with an RTMP URL: `http://HOST:PORT/APP/STREAM.flv`.
    pub fn flv_for(rtmp: &RtmpUrl, http_port: u16) -> Self {
        let host = rtmp.addr.rsplit_once(':').map_or(rtmp.addr.as_str(), |(h, _)| h);
        let authority = format!("{host}:{http_port}");
        HttpUrl {
            addr: authority.clone(),
            host: authority,
            path: format!("/{}/{}.flv", rtmp.app, rtmp.stream),
        }
    }

    /// The LL-HLS multivariant playlist URL paired with an RTMP URL:
    /// `http://HOST:PORT/APP/STREAM.m3u8`.
    pub fn hls_for(rtmp: &RtmpUrl, http_port: u16) -> Self {
        let mut url = Self::flv_for(rtmp, http_port);
        url.path = format!("/{}/{}.m3u8", rtmp.app, rtmp.stream);
        url
    }

    /// The GET request a player sends.
    pub fn request(&self) -> String {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sluice-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.host
        )
    }
}

fn with_default_port(authority: &str, port: u16) -> Result<String, UrlError> {
    if authority.is_empty() {
        return Err(UrlError::NoHost);
    }
    // `[::1]:1935`, `host:1935`, or a bare host.
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    Ok(if has_port { authority.to_string() } else { format!("{authority}:{port}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_urls() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1:1936/live/bench?key=1").unwrap();
        assert_eq!(url.addr, "127.0.0.1:1936");
        assert_eq!(url.app, "live");
        assert_eq!(url.stream, "bench?key=1");
        assert_eq!(url.tc_url, "rtmp://127.0.0.1:1936/live");
        assert_eq!(RtmpUrl::parse("rtmp://example/live/x").unwrap().addr, "example:1935");
        assert_eq!(
            RtmpUrl::parse("rtmp://host/live"),
            Err(UrlError::NotAppStream("rtmp://host/live".into()))
        );
        assert_eq!(
            RtmpUrl::parse("http://host/live/x"),
            Err(UrlError::NotRtmp("http://host/live/x".into()))
        );
        assert_eq!(RtmpUrl::parse("rtmp:///live/x"), Err(UrlError::NoHost));
    }

    #[test]
    fn http_urls() {
        let url = HttpUrl::parse("http://127.0.0.1:8080/live/bench.flv").unwrap();
        assert_eq!(url.addr, "127.0.0.1:8080");
        assert_eq!(url.path, "/live/bench.flv");
        assert!(url
            .request()
            .starts_with("GET /live/bench.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        let rtmp = RtmpUrl::parse("rtmp://127.0.0.1:1935/live/s").unwrap();
        assert_eq!(HttpUrl::flv_for(&rtmp, 8080).addr, "127.0.0.1:8080");
        assert_eq!(HttpUrl::flv_for(&rtmp, 8080).path, "/live/s.flv");
        let hls = HttpUrl::hls_for(&rtmp, 8081);
        assert_eq!((hls.addr.as_str(), hls.path.as_str()), ("127.0.0.1:8081", "/live/s.m3u8"));
    }
}
