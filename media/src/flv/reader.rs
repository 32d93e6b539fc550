//! Incremental FLV stream reader (for HTTP-FLV players: the load tool and tests).

use bytes::{Buf, Bytes, BytesMut};

use super::tag::{FILE_HEADER_LEN, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};
use crate::frame::MediaKind;

/// Largest FLV header (DataOffset) accepted; the real header is 9 bytes.
pub const MAX_HEADER_LEN: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV stream (bad signature)")]
    BadSignature,
    #[error("FLV tag type {0} is not audio, video or script data")]
    UnknownTagType(u8),
    #[error("FLV tag of {size} bytes exceeds the limit of {limit}")]
    TagTooLarge { size: usize, limit: usize },
    #[error("FLV tag is encrypted/filtered, which is not supported")]
    Filtered,
}

/// Feed bytes with [`FlvReader::push`], take tags with [`FlvReader::next_tag`] until `Ok(None)`.
///
/// The reader buffers at most one tag (header + payload, bounded by `max_tag_size`) plus
/// whatever the caller pushed beyond it. PreviousTagSize fields and any extra FLV header bytes
/// are skipped without being buffered. Errors are sticky: once `next_tag` fails, it keeps
/// returning the same error.
#[derive(Debug)]
pub struct FlvReader {
    max_tag_size: usize,
    buf: BytesMut,
    /// Bytes still to drop from the stream before the next structure.
    skip: usize,
    header_done: bool,
    error: Option<FlvError>,
}

impl FlvReader {
    /// A reader that refuses tags whose payload exceeds `max_tag_size` bytes.
    pub fn new(max_tag_size: usize) -> Self {
        FlvReader { max_tag_size, buf: BytesMut::new(), skip: 0, header_done: false, error: None }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.skip > 0 && self.buf.is_empty() {
            let n = self.skip.min(data.len());
            data = &data[n..];
            self.skip -= n;
        }
        self.buf.extend_from_slice(data);
    }

    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.read_tag();
        if let Err(e) = &r {
            self.error = Some(e.clone());
            self.buf = BytesMut::new();
        }
        r
    }

    fn apply_skip(&mut self) -> bool {
        let n = self.skip.min(self.buf.len());
        self.buf.advance(n);
        self.skip -= n;
        self.skip == 0
    }

    fn read_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if !self.apply_skip() {
            return Ok(None);
        }
        if !self.header_done {
            if !self.read_header()? {
                return Ok(None);
            }
            if !self.apply_skip() {
                return Ok(None);
            }
        }
        let Some(h) = self.buf.get(..TAG_HEADER_LEN) else {
            return Ok(None);
        };
        if h[0] & 0x20 != 0 {
            return Err(FlvError::Filtered);
        }
        let type_id = h[0] & 0x1F;
        let kind = MediaKind::from_type_id(type_id).ok_or(FlvError::UnknownTagType(type_id))?;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if size > self.max_tag_size {
            return Err(FlvError::TagTooLarge { size, limit: self.max_tag_size });
        }
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        if self.buf.len() < TAG_HEADER_LEN + size {
            self.buf.reserve(TAG_HEADER_LEN + size - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(TAG_HEADER_LEN);
        let payload = self.buf.split_to(size).freeze();
        self.skip = PREVIOUS_TAG_SIZE_LEN;
        self.apply_skip();
        Ok(Some(FlvTag { kind, timestamp, payload }))
    }

    /// Parse the FLV file header; returns false until all 9 bytes are there.
    fn read_header(&mut self) -> Result<bool, FlvError> {
        let sig_len = self.buf.len().min(3);
        if !b"FLV".starts_with(&self.buf[..sig_len]) {
            return Err(FlvError::BadSignature);
        }
        let Some(h) = self.buf.get(..FILE_HEADER_LEN) else {
            return Ok(false);
        };
        let data_offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        if !(FILE_HEADER_LEN as u32..=MAX_HEADER_LEN).contains(&data_offset) {
            return Err(FlvError::BadSignature);
        }
        self.buf.advance(FILE_HEADER_LEN);
        self.skip = data_offset as usize - FILE_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN;
        self.header_done = true;
        Ok(true)
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
