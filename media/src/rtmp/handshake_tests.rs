//! Tests for the RTMP handshake: server against client in memory, plain and digest.

use super::*;

const SEED_S: [u8; 32] = [7; 32];
const SEED_C: [u8; 32] = [9; 32];

/// Feed `data` to a receive function either all at once or one byte at a time; returns whether
/// it reported completion and the bytes it wrote.
fn feed<F>(mut recv: F, data: &[u8], one_by_one: bool) -> (bool, BytesMut, BytesMut)
where
    F: FnMut(&mut BytesMut, &mut BytesMut) -> Result<bool, HandshakeError>,
{
    let mut out = BytesMut::new();
    let mut input = BytesMut::new();
    let mut done = false;
    if one_by_one {
        for &b in data {
            assert!(!done, "finished before all handshake bytes arrived");
            input.extend_from_slice(&[b]);
            done = recv(&mut input, &mut out).unwrap();
            assert!(input.is_empty() || done, "handshake byte left unconsumed");
        }
    } else {
        input.extend_from_slice(data);
        done = recv(&mut input, &mut out).unwrap();
    }
    (done, out, input)
}

fn run(digest: bool, one_by_one: bool) -> (ServerHandshake, ClientHandshake, BytesMut, BytesMut) {
    let mut c0c1 = BytesMut::new();
    let mut client = ClientHandshake::new(SEED_C, 1000, digest, &mut c0c1);
    assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
    assert_eq!(c0c1[0], 3);
    let mut server = ServerHandshake::new(SEED_S, 5000);
    let (done, s0s1s2, _) = feed(|i, o| server.receive(i, o), &c0c1, one_by_one);
    assert!(!done);
    assert_eq!(s0s1s2.len(), 1 + 2 * HANDSHAKE_SIZE);
    let (done, c2, _) = feed(|i, o| client.receive(i, o), &s0s1s2, one_by_one);
    assert!(done);
    assert_eq!(c2.len(), HANDSHAKE_SIZE);
    let (done, nothing, rest) = feed(|i, o| server.receive(i, o), &c2, one_by_one);
    assert!(done);
    assert!(nothing.is_empty());
    assert!(rest.is_empty());
    (server, client, c0c1, s0s1s2)
}

#[test]
fn plain_handshake_in_memory() {
    for one in [false, true] {
        let (server, client, c0c1, s0s1s2) = run(false, one);
        assert!(!server.used_digest());
        assert!(!client.server_used_digest());
        // S1 carries the server epoch and zero version; S2 echoes C1.
        assert_eq!(&s0s1s2[1..5], &5000u32.to_be_bytes());
        assert_eq!(&s0s1s2[5..9], &[0, 0, 0, 0]);
        assert_eq!(&s0s1s2[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
        assert_eq!(&c0c1[1..5], &1000u32.to_be_bytes());
    }
}

#[test]
fn digest_handshake_in_memory() {
    for one in [false, true] {
        let (server, client, c0c1, s0s1s2) = run(true, one);
        assert!(server.used_digest());
        assert!(client.server_used_digest());
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        c1.copy_from_slice(&c0c1[1..]);
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        s1.copy_from_slice(&s0s1s2[1..1 + HANDSHAKE_SIZE]);
        let mut s2 = [0u8; HANDSHAKE_SIZE];
        s2.copy_from_slice(&s0s1s2[1 + HANDSHAKE_SIZE..]);
        // The client signs with schema 1; the server answers in the same schema.
        let (schema, c1_digest) = find_digest(&c1, FP_TEXT).expect("C1 digest");
        assert_eq!(schema, 1);
        let (s_schema, _) = find_digest(&s1, FMS_TEXT).expect("S1 digest");
        assert_eq!(s_schema, 1);
        assert!(s1[4] >= 3, "ffmpeg checks the digest only when S1[4] >= 3");
        assert!(is_digest_response(&s2, &fms_key(), &c1_digest));
        assert_ne!(&s2[..], &c1[..]);
    }
}

#[test]
fn server_accepts_schema_0_digest_and_answers_in_kind() {
    // ffmpeg and librtmp put the digest in the first half (schema 0).
    let mut c1 = hello_packet(&SEED_C, 0, [9, 0, 124, 2]);
    sign_packet(&mut c1, 0, FP_TEXT);
    let c1_digest = find_digest(&c1, FP_TEXT).unwrap();
    assert_eq!(c1_digest.0, 0);
    let mut server = ServerHandshake::new(SEED_S, 0);
    let mut input = BytesMut::from(&[3u8][..]);
    input.extend_from_slice(&c1[..]);
    let mut out = BytesMut::new();
    assert!(!server.receive(&mut input, &mut out).unwrap());
    assert!(server.used_digest());
    let mut s1 = [0u8; HANDSHAKE_SIZE];
    s1.copy_from_slice(&out[1..1 + HANDSHAKE_SIZE]);
    assert_eq!(find_digest(&s1, FMS_TEXT).unwrap().0, 0);
    let mut s2 = [0u8; HANDSHAKE_SIZE];
    s2.copy_from_slice(&out[1 + HANDSHAKE_SIZE..]);
    assert!(is_digest_response(&s2, &fms_key(), &c1_digest.1));
}

#[test]
fn corrupted_digest_falls_back_to_plain() {
    let mut c1 = hello_packet(&SEED_C, 0, CLIENT_VERSION);
    sign_packet(&mut c1, 1, FP_TEXT);
    c1[100] ^= 1; // covered by the digest
    let mut server = ServerHandshake::new(SEED_S, 0);
    let mut input = BytesMut::from(&[3u8][..]);
    input.extend_from_slice(&c1[..]);
    let mut out = BytesMut::new();
    server.receive(&mut input, &mut out).unwrap();
    assert!(!server.used_digest());
    assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
}

#[test]
fn digest_client_accepts_plain_server() {
    let mut c0c1 = BytesMut::new();
    let mut client = ClientHandshake::new(SEED_C, 0, true, &mut c0c1);
    // A plain server: S1 random with zero version, S2 echo.
    let s1 = hello_packet(&SEED_S, 0, [0; 4]);
    let mut input = BytesMut::from(&[3u8][..]);
    input.extend_from_slice(&s1[..]);
    input.extend_from_slice(&c0c1[1..]);
    let mut out = BytesMut::new();
    assert!(client.receive(&mut input, &mut out).unwrap());
    assert!(!client.server_used_digest());
    assert_eq!(&out[..], &s1[..], "C2 echoes a plain S1");
}

#[test]
fn wrong_version_is_refused_on_first_byte() {
    let mut server = ServerHandshake::new(SEED_S, 0);
    let mut out = BytesMut::new();
    let mut input = BytesMut::from(&[6u8][..]);
    assert_eq!(server.receive(&mut input, &mut out), Err(HandshakeError::UnsupportedVersion(6)));
    assert!(out.is_empty());
    // An HTTP request on the RTMP port.
    let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    let mut server = ServerHandshake::new(SEED_S, 0);
    assert_eq!(server.receive(&mut input, &mut out), Err(HandshakeError::UnsupportedVersion(b'G')));

    let mut c0c1 = BytesMut::new();
    let mut client = ClientHandshake::new(SEED_C, 0, false, &mut c0c1);
    let mut input = BytesMut::from(&[1u8, 2, 3][..]);
    assert_eq!(client.receive(&mut input, &mut out), Err(HandshakeError::UnsupportedVersion(1)));
}

#[test]
fn leftover_bytes_after_c2_are_preserved() {
    let mut c0c1 = BytesMut::new();
    let mut client = ClientHandshake::new(SEED_C, 0, true, &mut c0c1);
    let mut server = ServerHandshake::new(SEED_S, 0);
    let mut s_out = BytesMut::new();
    let mut input = c0c1.clone();
    assert!(!server.receive(&mut input, &mut s_out).unwrap());
    assert!(input.is_empty());

    // S0S1S2 followed by the server's first chunk bytes.
    let mut c_in = s_out.clone();
    c_in.extend_from_slice(b"\x02chunk");
    let mut c2 = BytesMut::new();
    assert!(client.receive(&mut c_in, &mut c2).unwrap());
    assert_eq!(&c_in[..], b"\x02chunk");

    // C2 followed by the client's connect chunk.
    let mut s_in = c2.clone();
    s_in.extend_from_slice(b"\x03connect");
    let mut out = BytesMut::new();
    assert!(server.receive(&mut s_in, &mut out).unwrap());
    assert_eq!(&s_in[..], b"\x03connect");
    // Finished handshakes consume nothing more.
    assert!(server.receive(&mut s_in, &mut out).unwrap());
    assert_eq!(&s_in[..], b"\x03connect");
    assert!(out.is_empty());
}

#[test]
fn output_is_deterministic_for_a_seed() {
    let mut a = BytesMut::new();
    let mut b = BytesMut::new();
    ClientHandshake::new(SEED_C, 42, true, &mut a);
    ClientHandshake::new(SEED_C, 42, true, &mut b);
    assert_eq!(a, b);
    let mut c = BytesMut::new();
    ClientHandshake::new(SEED_S, 42, true, &mut c);
    assert_ne!(a, c);
}

#[test]
fn genuine_keys_have_spec_lengths() {
    assert_eq!(fms_key().len(), 68);
    assert_eq!(fp_key().len(), 62);
    assert_eq!(&fms_key()[..36], b"Genuine Adobe Flash Media Server 001");
    assert_eq!(&fp_key()[..30], b"Genuine Adobe Flash Player 001");
}
