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

/// The control plane's gRPC API (`package sluice.control.v1`, `control.proto`): messages,
/// the `ControlPlane` client and server.
#[cfg(feature = "tonic")]
pub mod control {
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic, unused_qualifications)]
        tonic::include_proto!("sluice.control.v1");
    }

    /// The encoded descriptor set of `control.proto`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("control_descriptor");
}

/// KEDA's external scaler API (`package externalscaler`, `externalscaler.proto`), which the
/// control plane serves so KEDA can scale the edges on the cluster's own figures.
#[cfg(feature = "tonic")]
pub mod externalscaler {
    #![allow(missing_docs, clippy::all, clippy::pedantic, unused_qualifications)]
    tonic::include_proto!("externalscaler");

    /// The encoded descriptor set of `externalscaler.proto`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("externalscaler_descriptor");
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
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            })),
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(ControlMessage::decode(bytes.as_slice()).unwrap(), msg);
        let msg = ControlMessage {
            msg: Some(control_message::Msg::Forward(Forward {
                request_id: 8,
                app: "live".into(),
                name: "cam".into(),
                claim_revision: 42,
                hops: 1,
                traceparent: String::new(),
            })),
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(ControlMessage::decode(bytes.as_slice()).unwrap(), msg);
    }

    #[test]
    fn a_version_1_subscribe_without_traceparent_still_decodes() {
        // Fields 1-4 only, as a node built before field 5 existed sends them.
        let old = [0x12, 0x06, 0x08, 0x07, 0x1a, 0x00, 0x20, 0x05];
        let msg = ControlMessage::decode(&old[..]).unwrap();
        match msg.msg {
            Some(control_message::Msg::Subscribe(s)) => {
                assert_eq!((s.request_id, s.claim_revision), (7, 5));
                assert!(s.traceparent.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hello_from_a_node_before_serves_requests_still_decodes() {
        // Fields 1-2 only: version 1, node id "a".
        let old = [0x0a, 0x05, 0x08, 0x01, 0x12, 0x01, b'a'];
        let msg = ControlMessage::decode(&old[..]).unwrap();
        match msg.msg {
            Some(control_message::Msg::Hello(h)) => {
                assert_eq!((h.version, h.node_id.as_str()), (1, "a"));
                assert!(!h.serves_requests);
            }
            other => panic!("{other:?}"),
        }
        let new = ControlMessage {
            msg: Some(control_message::Msg::Hello(Hello {
                version: 1,
                node_id: "a".into(),
                serves_requests: true,
            })),
        };
        let bytes = new.encode_to_vec();
        assert_eq!(&bytes[..old.len()], &[0x0a, 0x07, 0x08, 0x01, 0x12, 0x01, b'a']);
        assert_eq!(ControlMessage::decode(bytes.as_slice()).unwrap(), new);
    }

    #[test]
    fn error_code_values_are_stable() {
        assert_eq!(SubscribeErrorCode::NotFound as i32, 1);
        assert_eq!(SubscribeErrorCode::NotHome as i32, 2);
        assert_eq!(SubscribeErrorCode::Stale as i32, 3);
        assert_eq!(SubscribeErrorCode::Ended as i32, 4);
        assert_eq!(ForwardErrorCode::ForwardNotHome as i32, 1);
        assert_eq!(ForwardErrorCode::ForwardRefused as i32, 2);
        assert_eq!(ForwardErrorCode::ForwardLoop as i32, 3);
        assert_eq!(ForwardErrorCode::ForwardClosed as i32, 4);
        assert_eq!(UnforwardReason::SourceEnded as i32, 1);
        assert_eq!(UnforwardReason::Cancelled as i32, 2);
    }
}
