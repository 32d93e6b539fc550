//! A media message serialised once for every viewer.

use bytes::{Bytes, BytesMut};
use sluice_media::flv;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::chunk::encode_type0;
use sluice_media::rtmp::csid;
use sluice_media::rtmp::server::{MEDIA_CHUNK_SIZE, MEDIA_STREAM_ID};

/// One message of a stream, in the exact bytes each delivery protocol sends. Built once by the
/// publisher's task and shared (`Arc`) by every viewer: fan-out never copies media.
#[derive(Debug)]
pub struct Prepared {
    /// Position in the stream's log (monotonic for the life of the stream entry).
    pub seq: u64,
    /// Media bytes appended to the log before this message (to measure a viewer's lag).
    pub offset: u64,
    pub kind: MediaKind,
    /// Output timestamp (ms), rebased per stream so it keeps increasing across publishers.
    pub timestamp: u32,
    /// A point a viewer can start from: a video keyframe, or any audio frame of a stream
    /// without video.
    pub sync: bool,
    /// A sequence header or metadata (always delivered, never skipped).
    pub header: bool,
    /// The payload as the publisher sent it (FLV tag body).
    pub payload: Bytes,
    /// RTMP chunks: type-0 header and type-3 continuations at [`MEDIA_CHUNK_SIZE`] on message
    /// stream [`MEDIA_STREAM_ID`].
    pub rtmp: Bytes,
    /// FLV tag header (11 bytes); the tag is `flv_head`, `payload`, `flv_tail`.
    pub flv_head: Bytes,
    /// FLV PreviousTagSize (4 bytes).
    pub flv_tail: Bytes,
    /// The tag as one HTTP/1.1 body chunk: the chunk size line and the tag header; then
    /// `payload`, then [`Prepared::flv_chunk_tail`]. Framed once here, so a chunked HTTP-FLV
    /// viewer allocates nothing per message.
    pub flv_chunk_head: Bytes,
    /// PreviousTagSize and the chunk's closing CRLF.
    pub flv_chunk_tail: Bytes,
    /// On a keyframe that opened an HLS segment at the ingest origin: where, so every node
    /// that relays the stream cuts its HLS the same way (see `sluice_media::hls::SegmentStamp`).
    pub hls_stamp: Option<sluice_media::hls::SegmentStamp>,
}

impl Prepared {
    pub fn new(
        seq: u64,
        offset: u64,
        message: &MediaMessage,
        timestamp: u32,
        sync: bool,
        header: bool,
    ) -> Self {
        let csid = match message.kind {
            MediaKind::Audio => csid::AUDIO,
            MediaKind::Video => csid::VIDEO,
            MediaKind::Data => csid::DATA,
        };
        let len = message.payload.len();
        // One header per chunk (at most 12 + 4 bytes for the first, 1 + 4 for the others).
        let chunks = len / MEDIA_CHUNK_SIZE as usize + 1;
        let mut rtmp = BytesMut::with_capacity(len + 16 + chunks * 5);
        encode_type0(
            csid,
            timestamp,
            message.kind.type_id(),
            MEDIA_STREAM_ID,
            &message.payload,
            MEDIA_CHUNK_SIZE,
            &mut rtmp,
        );

        let mut flv_bytes =
            BytesMut::with_capacity(flv::TAG_HEADER_LEN + flv::PREVIOUS_TAG_SIZE_LEN);
        flv_bytes.extend_from_slice(&flv::tag_header(message.kind, timestamp, len));
        let tag_size = (flv::TAG_HEADER_LEN + len) as u32;
        flv_bytes.extend_from_slice(&tag_size.to_be_bytes());
        let mut flv_bytes = flv_bytes.freeze();
        let flv_head = flv_bytes.split_to(flv::TAG_HEADER_LEN);
        let chunk_len = flv::TAG_HEADER_LEN + len + flv::PREVIOUS_TAG_SIZE_LEN;
        let size_line = format!("{chunk_len:x}\r\n");
        let mut chunk = BytesMut::with_capacity(size_line.len() + flv::TAG_HEADER_LEN + 6);
        chunk.extend_from_slice(size_line.as_bytes());
        chunk.extend_from_slice(&flv_head);
        chunk.extend_from_slice(&flv_bytes);
        chunk.extend_from_slice(b"\r\n");
        let mut flv_chunk_tail = chunk.freeze();
        let flv_chunk_head = flv_chunk_tail.split_to(size_line.len() + flv::TAG_HEADER_LEN);

        Prepared {
            seq,
            offset,
            kind: message.kind,
            timestamp,
            sync,
            header,
            payload: message.payload.clone(),
            rtmp: rtmp.freeze(),
            flv_head,
            flv_tail: flv_bytes,
            flv_chunk_head,
            flv_chunk_tail,
            hls_stamp: None,
        }
    }

    /// Size counted against buffers and lag (the RTMP form, the largest).
    pub fn size(&self) -> usize {
        self.rtmp.len()
    }

    /// The message as the publisher sent it, with the output timestamp.
    pub fn message(&self) -> MediaMessage {
        MediaMessage { kind: self.kind, timestamp: self.timestamp, payload: self.payload.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunked_form_is_one_http_chunk_around_the_flv_tag() {
        for len in [0usize, 1, 15, 16, 4096, 70_000] {
            let payload = Bytes::from(vec![0x27; len]);
            let msg = MediaMessage { kind: MediaKind::Video, timestamp: 40, payload };
            let p = Prepared::new(0, 0, &msg, 40, false, false);
            let tag = [&p.flv_head[..], &p.payload[..], &p.flv_tail[..]].concat();
            let chunk = [&p.flv_chunk_head[..], &p.payload[..], &p.flv_chunk_tail[..]].concat();
            let line_end = chunk.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&chunk[..line_end]).unwrap(), 16);
            assert_eq!(size.unwrap(), tag.len(), "payload {len}");
            assert_eq!(&chunk[line_end + 2..chunk.len() - 2], &tag[..], "payload {len}");
            assert!(chunk.ends_with(b"\r\n"));
        }
    }
}
