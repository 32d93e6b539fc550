//! Splitting aggregate messages (type 22) into their sub-messages.
//!
//! An aggregate's body is a run of FLV tags: type (1), data size (3), timestamp (3) plus its
//! extension byte (1), stream id (3), data, and a 4-byte back pointer. Sub-message timestamps
//! are rebased so the first one equals the aggregate message's own timestamp.

use bytes::Bytes;

/// FLV tag header length inside an aggregate.
const TAG_HEADER: usize = 11;
/// Back pointer after each tag.
const BACK_POINTER: usize = 4;

/// One message carried inside an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubMessage {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Why an aggregate message could not be split (its FLV tags do not fit in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    #[error("truncated sub-message header at offset {offset}")]
    TruncatedHeader { offset: usize },
    #[error("sub-message of {size} bytes at offset {offset} overruns the message")]
    Overrun { size: usize, offset: usize },
    #[error("truncated back pointer at offset {offset}")]
    TruncatedBackPointer { offset: usize },
}

/// Split `payload` (the aggregate's body, received with timestamp `timestamp`). Payloads are
/// slices of `payload` (no copy). A truncated tag header or body is an error; a missing final
/// back pointer is tolerated.
pub(crate) fn split(timestamp: u32, payload: &Bytes) -> Result<Vec<SubMessage>, AggregateError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < payload.len() {
        let header = payload
            .get(pos..pos.saturating_add(TAG_HEADER))
            .ok_or(AggregateError::TruncatedHeader { offset: pos })?;
        let type_id = header[0];
        let size =
            (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let sub_ts = (u32::from(header[7]) << 24)
            | (u32::from(header[4]) << 16)
            | (u32::from(header[5]) << 8)
            | u32::from(header[6]);
        let body_start = pos + TAG_HEADER;
        let body_end = body_start
            .checked_add(size)
            .filter(|&end| end <= payload.len())
            .ok_or(AggregateError::Overrun { size, offset: pos })?;
        let base = *first_ts.get_or_insert(sub_ts);
        out.push(SubMessage {
            type_id,
            timestamp: timestamp.wrapping_add(sub_ts.wrapping_sub(base)),
            payload: payload.slice(body_start..body_end),
        });
        let remaining = payload.len() - body_end;
        pos = match remaining {
            0 => body_end,
            r if r >= BACK_POINTER => body_end + BACK_POINTER,
            _ => return Err(AggregateError::TruncatedBackPointer { offset: body_end }),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(type_id: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let len = body.len() as u32;
        let mut v = vec![type_id, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        v.extend_from_slice(&[
            (ts >> 16) as u8,
            (ts >> 8) as u8,
            ts as u8,
            (ts >> 24) as u8,
            0,
            0,
            0,
        ]);
        v.extend_from_slice(body);
        v.extend_from_slice(&(len + 11).to_be_bytes());
        v
    }

    #[test]
    fn splits_and_rebases() {
        let mut body = tag(9, 0x0100_0010, b"abc");
        body.extend(tag(8, 0x0100_0030, b"de"));
        let subs = split(500, &Bytes::from(body)).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(
            (subs[0].type_id, subs[0].timestamp, &subs[0].payload[..]),
            (9, 500, &b"abc"[..])
        );
        assert_eq!(
            (subs[1].type_id, subs[1].timestamp, &subs[1].payload[..]),
            (8, 532, &b"de"[..])
        );
    }

    #[test]
    fn rejects_truncation() {
        let mut body = tag(9, 0, b"abcdef");
        body.truncate(14);
        assert_eq!(
            split(0, &Bytes::from(body)),
            Err(AggregateError::Overrun { size: 6, offset: 0 })
        );
        assert_eq!(
            split(0, &Bytes::from_static(&[9, 0, 0])),
            Err(AggregateError::TruncatedHeader { offset: 0 })
        );
        let mut body = tag(9, 0, b"ab");
        body.truncate(body.len() - 2);
        assert_eq!(
            split(0, &Bytes::from(body)),
            Err(AggregateError::TruncatedBackPointer { offset: 13 })
        );
        let mut body = tag(9, 0, b"ab");
        body.truncate(body.len() - 4);
        assert_eq!(split(0, &Bytes::from(body)).unwrap().len(), 1);
        assert!(split(0, &Bytes::new()).unwrap().is_empty());
    }
}
