//! The Sluice relay protocol: protobuf control messages generated from `relay.proto`.
//!
//! `relay.proto` is the specification of the whole protocol (transport, control stream,
//! media stream layout); this crate only holds the generated prost types. The framing of
//! control messages and the media codec live in `sluice-relay`.

/// Protocol version 1 messages (`package sluice.relay.v1`).
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/sluice.relay.v1.rs"));
}

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The QUIC ALPN protocol id of the relay.
pub const ALPN: &[u8] = b"sluice-relay/1";

#[cfg(test)]
mod tests {
    use super::v1::*;
    use prost::Message;

    #[test]
    fn control_message_round_trip() {
        let msg = ControlMessage {
            msg: Some(control_message::Msg::Subscribe(Subscribe {
                request_id: 7,
                app: "live".into(),
                name: "cam".into(),
                claim_revision: 42,
            })),
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(ControlMessage::decode(bytes.as_slice()).unwrap(), msg);
    }

    #[test]
    fn error_code_values_are_stable() {
        assert_eq!(SubscribeErrorCode::NotFound as i32, 1);
        assert_eq!(SubscribeErrorCode::NotHome as i32, 2);
        assert_eq!(SubscribeErrorCode::Stale as i32, 3);
    }
}
