//! The per-stream media log: the one copy of recent media that every viewer reads from.
//!
//! The publisher appends each message once; each viewer keeps a [`Cursor`] (a sequence number)
//! and collects what it has not sent yet. Nothing is queued per viewer, so a slow viewer costs
//! no memory: when its cursor falls too far behind (in bytes) or off the front of the log, it
//! skips to the latest keyframe. The log is bounded in bytes; within that bound it keeps the
//! current GOP (the fast start for new viewers), the previous one, and anything younger than
//! 3 s (so audio-only streams, where every frame is a start point, keep some slack too).
//!
//! Architecture invariant: the log is synchronous and does no I/O; the hub wraps it in a mutex
//! and wakes viewers with a `watch` channel.

use std::collections::VecDeque;
use std::sync::Arc;

use super::prepared::Prepared;

/// Media older than this (ms) and before the previous start point is dropped from the log.
const RETAIN_MS: i32 = 3000;

/// What a viewer is handed, in order.
#[derive(Debug, Clone)]
pub enum Delivery {
    Media(Arc<Prepared>),
    /// The publisher left: RTMP players get NetStream.Play.UnpublishNotify.
    Unpublished,
    /// A publisher (re)started after an [`Delivery::Unpublished`].
    Republished,
}

impl Delivery {
    /// Room a viewer's delivery list keeps between collects: the first GOP grows it, steady
    /// playback collects a message or two.
    const KEPT: usize = 8;

    /// Give back what a burst grew `list` by, once the caller has drained it.
    pub fn shrink_after_burst(list: &mut Vec<Delivery>) {
        if list.capacity() > Self::KEPT {
            list.shrink_to(Self::KEPT);
        }
    }
}

/// A viewer's position in a [`MediaLog`].
#[derive(Debug, Default, Clone)]
pub struct Cursor {
    next_seq: u64,
    /// The publish session (generation) this viewer is following, if any.
    following: Option<u64>,
    /// Discard media until the next sync point.
    need_sync: bool,
    delivered_any: bool,
    /// The log's generation when this viewer arrived: a viewer that waited for a publish
    /// session to begin gets it from its first start point, not from the latest one.
    joined_generation: u64,
}

/// Headers replayed to every viewer that starts (or skips): decoders need them first.
#[derive(Debug, Default, Clone)]
struct Headers {
    metadata: Option<Arc<Prepared>>,
    video: Option<Arc<Prepared>>,
    audio: Option<Arc<Prepared>>,
}

#[derive(Debug)]
pub struct MediaLog {
    entries: VecDeque<Arc<Prepared>>,
    next_seq: u64,
    appended_bytes: u64,
    retained_bytes: usize,
    max_bytes: usize,
    last_sync: Option<u64>,
    prev_sync: Option<u64>,
    /// First start point of the current publish session, while retained and valid.
    session_first_sync: Option<u64>,
    headers: Headers,
    live: bool,
    generation: u64,
}

/// What kind of header an appended message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Metadata,
    Video,
    Audio,
}

impl MediaLog {
    pub fn new(max_bytes: usize) -> Self {
        MediaLog {
            entries: VecDeque::new(),
            next_seq: 0,
            appended_bytes: 0,
            retained_bytes: 0,
            max_bytes,
            last_sync: None,
            prev_sync: None,
            session_first_sync: None,
            headers: Headers::default(),
            live: false,
            generation: 0,
        }
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    /// A cursor for a viewer arriving now.
    pub fn new_cursor(&self) -> Cursor {
        Cursor { joined_generation: self.generation, ..Cursor::default() }
    }

    /// Sequence number the next appended message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Media bytes appended so far (the next message's offset).
    pub fn appended_bytes(&self) -> u64 {
        self.appended_bytes
    }

    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }

    /// A new publish session begins: viewers following an old one get `Unpublished` (if they
    /// had not yet) and then `Republished`.
    pub fn start_publish(&mut self) {
        self.clear();
        self.generation += 1;
        self.live = true;
    }

    /// The publisher left. Viewers following this session still get what it sent before
    /// leaving, then `Unpublished`; nobody starts on it any more, and a returning publisher
    /// starts a fresh log (no stale GOP is ever replayed).
    pub fn end_publish(&mut self) {
        self.live = false;
        self.last_sync = None;
        self.prev_sync = None;
        self.session_first_sync = None;
    }

    /// Drop what an ended session left (its GOP and headers), keeping the sequence numbers:
    /// viewers' cursors stay valid. Nothing happens while a publisher is live.
    pub fn release(&mut self) {
        if !self.live {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.retained_bytes = 0;
        self.last_sync = None;
        self.prev_sync = None;
        self.session_first_sync = None;
        self.headers = Headers::default();
    }

    /// A sequence header changed (resolution, codec): frames before the next keyframe cannot
    /// start a decoder with the new header, so the GOP cache restarts there.
    pub fn reset_gop(&mut self) {
        self.last_sync = None;
        self.prev_sync = None;
        self.session_first_sync = None;
    }

    /// Append a message built by `build(seq, offset)`; returns it.
    pub fn append(
        &mut self,
        header: Option<HeaderKind>,
        build: impl FnOnce(u64, u64) -> Prepared,
    ) -> Arc<Prepared> {
        let prepared = Arc::new(build(self.next_seq, self.appended_bytes));
        self.next_seq += 1;
        self.appended_bytes += prepared.size() as u64;
        self.retained_bytes += prepared.size();
        match header {
            Some(HeaderKind::Metadata) => self.headers.metadata = Some(prepared.clone()),
            Some(HeaderKind::Video) => self.headers.video = Some(prepared.clone()),
            Some(HeaderKind::Audio) => self.headers.audio = Some(prepared.clone()),
            None => {}
        }
        if prepared.sync {
            if self.last_sync.is_none()
                && self.prev_sync.is_none()
                && self.session_first_sync.is_none()
            {
                self.session_first_sync = Some(prepared.seq);
            }
            self.prev_sync = self.last_sync;
            self.last_sync = Some(prepared.seq);
        }
        self.entries.push_back(prepared.clone());
        self.evict();
        prepared
    }

    fn evict(&mut self) {
        let newest = self.entries.back().map_or(0, |e| e.timestamp);
        while let Some(front) = self.entries.front() {
            // Entries before the previous start point go once they are older than the
            // retention window (so audio-only streams, where every frame is a start point,
            // still keep a few seconds for viewers slightly behind).
            let age_ms = newest.wrapping_sub(front.timestamp) as i32;
            let older_than_kept_gops =
                self.prev_sync.is_some_and(|p| front.seq < p) && age_ms > RETAIN_MS;
            if !(older_than_kept_gops || self.retained_bytes > self.max_bytes)
                || self.entries.len() == 1
            {
                break;
            }
            self.retained_bytes -= front.size();
            self.entries.pop_front();
        }
        let first = self.first_seq();
        if self.prev_sync.is_some_and(|p| p < first) {
            self.prev_sync = None;
        }
        if self.last_sync.is_some_and(|s| s < first) {
            // The GOP outgrew the buffer: no fast start until the next keyframe.
            self.last_sync = None;
        }
        if self.session_first_sync.is_some_and(|s| s < first) {
            self.session_first_sync = None;
        }
    }

    fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |e| e.seq)
    }

    fn get(&self, seq: u64) -> Option<&Arc<Prepared>> {
        let first = self.first_seq();
        let idx = seq.checked_sub(first)?;
        self.entries.get(usize::try_from(idx).ok()?)
    }

    fn push_headers(&self, out: &mut Vec<Delivery>) {
        for h in
            [&self.headers.metadata, &self.headers.video, &self.headers.audio].into_iter().flatten()
        {
            out.push(Delivery::Media(h.clone()));
        }
    }

    /// Move `cursor` to where a starting viewer begins: the latest keyframe, or the next one.
    fn start_position(&self, cursor: &mut Cursor) {
        let waited_for_session = cursor.joined_generation < self.generation;
        let start = if waited_for_session {
            self.session_first_sync.or(self.last_sync)
        } else {
            self.last_sync
        };
        match start {
            Some(sync) => {
                cursor.next_seq = sync;
                cursor.need_sync = false;
            }
            None => {
                cursor.next_seq = self.next_seq;
                cursor.need_sync = true;
            }
        }
    }

    /// Hand `cursor`'s viewer what it has not had yet, up to about `max_bytes`. A viewer more
    /// than `max_lag` bytes behind (or behind the log's front) skips to the latest keyframe;
    /// returns how many messages it skipped.
    pub fn collect(
        &self,
        cursor: &mut Cursor,
        out: &mut Vec<Delivery>,
        max_bytes: usize,
        max_lag: usize,
    ) -> u64 {
        let draining = cursor.following == Some(self.generation) && !self.live;
        if let Some(gen) = cursor.following {
            if gen != self.generation {
                out.push(Delivery::Unpublished);
                cursor.following = None;
            }
        }
        if cursor.following.is_none() {
            if !self.live {
                return 0;
            }
            if cursor.delivered_any {
                out.push(Delivery::Republished);
            }
            cursor.following = Some(self.generation);
            cursor.delivered_any = true;
            self.push_headers(out);
            self.start_position(cursor);
        }

        let mut skipped = 0;
        let behind_front = cursor.next_seq < self.first_seq();
        let lag = self.get(cursor.next_seq).map_or(0, |e| self.appended_bytes - e.offset);
        if behind_front || lag > max_lag as u64 {
            let target = match self.last_sync {
                Some(sync) if sync > cursor.next_seq => sync,
                _ => self.next_seq,
            };
            skipped = target.saturating_sub(cursor.next_seq.max(self.first_seq()));
            if behind_front {
                skipped += self.first_seq() - cursor.next_seq;
            }
            cursor.need_sync = Some(target) != self.last_sync;
            cursor.next_seq = target;
            // A skipped stretch may have held a header change: resend the current headers.
            self.push_headers(out);
        }

        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(entry) = self.get(cursor.next_seq) else { break };
            cursor.next_seq += 1;
            if cursor.need_sync && !entry.sync && !entry.header {
                continue;
            }
            if entry.sync {
                cursor.need_sync = false;
            }
            bytes += entry.size();
            out.push(Delivery::Media(entry.clone()));
        }
        if draining && cursor.next_seq >= self.next_seq {
            out.push(Delivery::Unpublished);
            cursor.following = None;
        }
        skipped
    }

    /// Whether `cursor` has something to collect right now.
    pub fn has_pending(&self, cursor: &Cursor) -> bool {
        match cursor.following {
            Some(gen) => gen != self.generation || !self.live || cursor.next_seq < self.next_seq,
            None => self.live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_media::frame::{MediaKind, MediaMessage};

    fn push(
        log: &mut MediaLog,
        kind: MediaKind,
        ts: u32,
        len: usize,
        sync: bool,
        header: Option<HeaderKind>,
    ) -> u64 {
        let msg = MediaMessage { kind, timestamp: ts, payload: Bytes::from(vec![0u8; len]) };
        log.append(header, |seq, off| Prepared::new(seq, off, &msg, ts, sync, header.is_some())).seq
    }

    fn seqs(out: &[Delivery]) -> Vec<i64> {
        out.iter()
            .map(|d| match d {
                Delivery::Media(p) => p.seq as i64,
                Delivery::Unpublished => -1,
                Delivery::Republished => -2,
            })
            .collect()
    }

    #[test]
    fn new_viewer_starts_with_headers_then_latest_keyframe() {
        let mut log = MediaLog::new(1 << 20);
        log.start_publish();
        let meta = push(&mut log, MediaKind::Data, 0, 50, false, Some(HeaderKind::Metadata));
        let vh = push(&mut log, MediaKind::Video, 0, 40, false, Some(HeaderKind::Video));
        push(&mut log, MediaKind::Video, 0, 1000, true, None);
        push(&mut log, MediaKind::Video, 33, 100, false, None);
        let k2 = push(&mut log, MediaKind::Video, 66, 1000, true, None);
        let f = push(&mut log, MediaKind::Video, 100, 100, false, None);
        let mut c = log.new_cursor();
        let mut out = vec![];
        assert_eq!(log.collect(&mut c, &mut out, usize::MAX, usize::MAX), 0);
        assert_eq!(seqs(&out), vec![meta as i64, vh as i64, k2 as i64, f as i64]);
        assert!(!log.has_pending(&c));
    }

    #[test]
    fn slow_viewer_skips_to_latest_keyframe() {
        let mut log = MediaLog::new(1 << 20);
        log.start_publish();
        push(&mut log, MediaKind::Video, 0, 40, false, Some(HeaderKind::Video));
        push(&mut log, MediaKind::Video, 0, 1000, true, None);
        let mut c = Cursor::default();
        let mut out = vec![];
        log.collect(&mut c, &mut out, usize::MAX, 5000);
        out.clear();
        for i in 1..=10 {
            push(&mut log, MediaKind::Video, i * 33, 1000, false, None);
        }
        let k = push(&mut log, MediaKind::Video, 400, 1000, true, None);
        let f = push(&mut log, MediaKind::Video, 433, 1000, false, None);
        let skipped = log.collect(&mut c, &mut out, usize::MAX, 5000);
        assert_eq!(skipped, 10);
        // Headers resent, then the keyframe.
        assert_eq!(seqs(&out), vec![0, k as i64, f as i64]);
    }

    #[test]
    fn unpublish_and_republish_are_delivered_in_order() {
        let mut log = MediaLog::new(1 << 20);
        log.start_publish();
        push(&mut log, MediaKind::Audio, 0, 10, true, None);
        let mut c = Cursor::default();
        let mut out = vec![];
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        log.end_publish();
        out.clear();
        assert!(log.has_pending(&c));
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![-1]);
        assert!(!log.has_pending(&c));
        log.start_publish();
        let a = push(&mut log, MediaKind::Audio, 5, 10, true, None);
        out.clear();
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![-2, a as i64]);
    }

    #[test]
    fn media_sent_before_unpublish_reaches_viewers_first() {
        let mut log = MediaLog::new(1 << 20);
        log.start_publish();
        let k = push(&mut log, MediaKind::Video, 0, 100, true, None);
        let mut c = Cursor::default();
        let mut out = vec![];
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        let a = push(&mut log, MediaKind::Video, 33, 100, false, None);
        let b = push(&mut log, MediaKind::Video, 66, 100, false, None);
        log.end_publish();
        // A new viewer does not start on an ended session.
        let mut late = Cursor::default();
        let mut late_out = vec![];
        log.collect(&mut late, &mut late_out, usize::MAX, usize::MAX);
        assert!(late_out.is_empty());
        // The follower gets the tail in two batches, then the notice.
        out.clear();
        log.collect(&mut c, &mut out, 100, usize::MAX);
        assert_eq!(seqs(&out), vec![a as i64]);
        out.clear();
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![b as i64, -1]);
        assert!(!log.has_pending(&c));
        assert_eq!(k, 0);
    }

    #[test]
    fn a_viewer_waiting_for_the_publisher_gets_the_session_from_its_start() {
        let mut log = MediaLog::new(1 << 20);
        let mut waiting = log.new_cursor();
        log.start_publish();
        let a0 = push(&mut log, MediaKind::Audio, 0, 10, true, None);
        let a1 = push(&mut log, MediaKind::Audio, 23, 10, true, None);
        let a2 = push(&mut log, MediaKind::Audio, 46, 10, true, None);
        let mut late = log.new_cursor();
        let mut out = vec![];
        log.collect(&mut waiting, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![a0 as i64, a1 as i64, a2 as i64]);
        out.clear();
        log.collect(&mut late, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![a2 as i64]);
    }

    #[test]
    fn log_is_bounded_and_drops_an_oversized_gop_cache() {
        let mut log = MediaLog::new(10_000);
        log.start_publish();
        push(&mut log, MediaKind::Video, 0, 1000, true, None);
        for i in 0..100 {
            push(&mut log, MediaKind::Video, i, 1000, false, None);
            assert!(log.retained_bytes() <= 10_000 + 1100);
        }
        // The keyframe was evicted: a new viewer waits for the next one.
        let mut c = Cursor::default();
        let mut out = vec![];
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        assert!(out.is_empty());
        let k = push(&mut log, MediaKind::Video, 200, 1000, true, None);
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![k as i64]);
    }

    #[test]
    fn header_change_restarts_the_gop_cache() {
        let mut log = MediaLog::new(1 << 20);
        log.start_publish();
        push(&mut log, MediaKind::Video, 0, 40, false, Some(HeaderKind::Video));
        push(&mut log, MediaKind::Video, 0, 1000, true, None);
        log.reset_gop();
        let h2 = push(&mut log, MediaKind::Video, 10, 41, false, Some(HeaderKind::Video));
        push(&mut log, MediaKind::Video, 20, 100, false, None);
        let mut c = Cursor::default();
        let mut out = vec![];
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![h2 as i64]);
        let k = push(&mut log, MediaKind::Video, 30, 1000, true, None);
        out.clear();
        log.collect(&mut c, &mut out, usize::MAX, usize::MAX);
        assert_eq!(seqs(&out), vec![k as i64]);
    }
}
