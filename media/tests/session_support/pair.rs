//! The in-memory pair of the session tests: a `ClientSession` wired to a `ServerSession`,
//! bytes shuttled between them (in the spirit of quinn-proto's test `Pair`), plus helpers.

use bytes::Bytes;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use sluice_media::rtmp::server::{ServerConfig, ServerEvent, ServerSession, MEDIA_STREAM_ID};

use super::session_support::Monitor;

/// A client and a server session connected in memory.
pub struct Pair {
    pub server: ServerSession,
    pub client: ClientSession,
    pub server_events: Vec<ServerEvent>,
    pub client_events: Vec<ClientEvent>,
    /// Deliver bytes one at a time.
    pub byte_by_byte: bool,
    /// What the client sent / the server side sent (session output and injected bytes).
    pub c2s: Monitor,
    pub s2c: Monitor,
}

pub fn client_config(mode: ClientMode) -> ClientConfig {
    ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1/live".into(),
        stream: "cam?key=1".into(),
        mode,
        digest_handshake: false,
        chunk_size: None,
    }
}

impl Pair {
    pub fn new(client: ClientConfig, server: ServerConfig) -> Self {
        Pair {
            server: ServerSession::new(server, [7; 32], 1234),
            client: ClientSession::new(client, [9; 32]),
            server_events: Vec::new(),
            client_events: Vec::new(),
            byte_by_byte: false,
            c2s: Monitor::new(),
            s2c: Monitor::new(),
        }
    }

    pub fn deliver_to_server(&mut self, data: &[u8]) {
        self.c2s.feed(data);
        if self.byte_by_byte {
            for b in data {
                self.server.receive(std::slice::from_ref(b)).expect("server receive");
            }
        } else {
            self.server.receive(data).expect("server receive");
        }
    }

    pub fn deliver_to_client(&mut self, data: &[u8]) {
        self.s2c.feed(data);
        if self.byte_by_byte {
            for b in data {
                self.client.receive(std::slice::from_ref(b)).expect("client receive");
            }
        } else {
            self.client.receive(data).expect("client receive");
        }
    }

    /// Shuttle bytes both ways until neither side has anything to send; collect events.
    pub fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                self.deliver_to_server(&bytes);
                moved = true;
            }
            while let Some(bytes) = self.server.poll_transmit() {
                self.deliver_to_client(&bytes);
                moved = true;
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    pub fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    pub fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    /// Handshake + connect, accepted. Returns the server events seen.
    pub fn connect(&mut self) -> Vec<ServerEvent> {
        self.drive();
        let mut events = self.take_server_events();
        assert!(events.iter().any(|e| matches!(e, ServerEvent::Connect { .. })), "{events:?}");
        self.server.accept_connect();
        self.drive();
        assert!(self.client_events.contains(&ClientEvent::Connected), "{:?}", self.client_events);
        events.extend(self.take_server_events());
        self.client_events.retain(|e| *e != ClientEvent::Connected);
        events
    }

    /// A publisher up to PublishStarted.
    pub fn publishing(client: ClientConfig, server: ServerConfig) -> Self {
        let mut pair = Pair::new(client, server);
        pair.connect();
        pair.server.accept_publish(MEDIA_STREAM_ID, "cam");
        pair.drive();
        assert!(pair.take_client_events().contains(&ClientEvent::PublishStarted));
        pair
    }

    /// A player up to PlayStarted.
    pub fn playing(server: ServerConfig) -> Self {
        let mut pair = Pair::new(client_config(ClientMode::Play), server);
        pair.connect();
        pair.server.accept_play(MEDIA_STREAM_ID, "cam", true);
        pair.drive();
        assert!(pair.take_client_events().contains(&ClientEvent::PlayStarted));
        pair
    }
}

pub fn status<'a>(level: &'a str, code: &'a str) -> impl Fn(&ClientEvent) -> bool + 'a {
    move |e| matches!(e, ClientEvent::Status { level: l, code: c, .. } if l == level && c == code)
}

pub fn media(kind: MediaKind, timestamp: u32, len: usize, seed: u8) -> MediaMessage {
    let payload: Vec<u8> =
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    MediaMessage { kind, timestamp, payload: Bytes::from(payload) }
}
