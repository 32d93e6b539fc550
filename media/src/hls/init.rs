//! The CMAF init segment: `ftyp` + `moov` with one track per configured stream (video id 1,
//! audio id 2), empty sample tables and `mvex`/`trex`, as fragmented MP4 requires.

use bytes::Bytes;

use super::boxes::BoxWriter;
use super::track::{
    AudioConfig, AudioFormat, OpusHead, VideoConfig, VideoFormat, AUDIO_TRACK_ID, TICKS_PER_SECOND,
    VIDEO_TRACK_ID,
};

/// Serialise the init segment for the given tracks (at least one must be present).
pub(crate) fn write_init(video: Option<&VideoConfig>, audio: Option<&AudioConfig>) -> Bytes {
    let mut w = BoxWriter::with_capacity(1024);
    let ftyp = w.open(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41"] {
        w.bytes(brand);
    }
    w.close(ftyp);

    let moov = w.open(b"moov");
    let mvhd = w.open_full(b"mvhd", 0, 0);
    w.u32(0); // creation_time
    w.u32(0); // modification_time
    w.u32(1000); // timescale
    w.u32(0); // duration
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    w.matrix();
    w.zeros(24); // pre_defined
    w.u32(AUDIO_TRACK_ID + 1); // next_track_ID
    w.close(mvhd);
    if let Some(v) = video {
        write_video_trak(&mut w, v);
    }
    if let Some(a) = audio {
        write_audio_trak(&mut w, a);
    }
    let mvex = w.open(b"mvex");
    for (id, present) in [(VIDEO_TRACK_ID, video.is_some()), (AUDIO_TRACK_ID, audio.is_some())] {
        if present {
            let trex = w.open_full(b"trex", 0, 0);
            w.u32(id);
            w.u32(1); // default_sample_description_index
            w.u32(0); // default_sample_duration
            w.u32(0); // default_sample_size
            w.u32(0); // default_sample_flags
            w.close(trex);
        }
    }
    w.close(mvex);
    w.close(moov);
    Bytes::from(w.buf)
}

fn tkhd(w: &mut BoxWriter, id: u32, audio: bool, width: u32, height: u32) {
    let tkhd = w.open_full(b"tkhd", 0, 0x3); // enabled | in_movie
    w.u32(0);
    w.u32(0);
    w.u32(id);
    w.u32(0); // reserved
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate_group
    w.u16(if audio { 0x0100 } else { 0 });
    w.u16(0);
    w.matrix();
    w.u32(width.min(0xFFFF) << 16);
    w.u32(height.min(0xFFFF) << 16);
    w.close(tkhd);
}

fn mdhd_hdlr(w: &mut BoxWriter, timescale: u32, handler: &[u8; 4], name: &str) {
    let mdhd = w.open_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(timescale);
    w.u32(0);
    w.u16(0x55C4); // language "und"
    w.u16(0);
    w.close(mdhd);
    let hdlr = w.open_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(handler);
    w.zeros(12);
    w.bytes(name.as_bytes());
    w.u8(0);
    w.close(hdlr);
}

/// `dinf` and the empty sample tables, around the sample entry written by `entry`.
fn dinf_stbl(w: &mut BoxWriter, entry: impl FnOnce(&mut BoxWriter)) {
    let dinf = w.open(b"dinf");
    let dref = w.open_full(b"dref", 0, 0);
    w.u32(1);
    let url = w.open_full(b"url ", 0, 1); // media in the same file
    w.close(url);
    w.close(dref);
    w.close(dinf);
    let stbl = w.open(b"stbl");
    let stsd = w.open_full(b"stsd", 0, 0);
    w.u32(1);
    entry(w);
    w.close(stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = w.open_full(kind, 0, 0);
        w.u32(0);
        w.close(b);
    }
    let stsz = w.open_full(b"stsz", 0, 0);
    w.u32(0);
    w.u32(0);
    w.close(stsz);
    w.close(stbl);
}

fn write_video_trak(w: &mut BoxWriter, v: &VideoConfig) {
    let trak = w.open(b"trak");
    tkhd(w, VIDEO_TRACK_ID, false, v.width, v.height);
    let mdia = w.open(b"mdia");
    mdhd_hdlr(w, TICKS_PER_SECOND as u32, b"vide", "VideoHandler");
    let minf = w.open(b"minf");
    let vmhd = w.open_full(b"vmhd", 0, 1);
    w.zeros(8);
    w.close(vmhd);
    dinf_stbl(w, |w| {
        let (entry, config) = match v.format {
            VideoFormat::Avc => (b"avc1", b"avcC"),
            VideoFormat::Hevc => (b"hvc1", b"hvcC"),
        };
        let e = w.open(entry);
        w.zeros(6);
        w.u16(1); // data_reference_index
        w.zeros(16); // pre_defined, reserved
        w.u16(v.width.min(0xFFFF) as u16);
        w.u16(v.height.min(0xFFFF) as u16);
        w.u32(0x0048_0000); // 72 dpi
        w.u32(0x0048_0000);
        w.u32(0);
        w.u16(1); // frame_count
        w.zeros(32); // compressorname
        w.u16(0x0018); // depth
        w.u16(0xFFFF); // pre_defined -1
        let c = w.open(config);
        w.bytes(&v.record);
        w.close(c);
        w.close(e);
    });
    w.close(minf);
    w.close(mdia);
    w.close(trak);
}

fn write_audio_trak(w: &mut BoxWriter, a: &AudioConfig) {
    let trak = w.open(b"trak");
    tkhd(w, AUDIO_TRACK_ID, true, 0, 0);
    let mdia = w.open(b"mdia");
    mdhd_hdlr(w, a.sample_rate, b"soun", "SoundHandler");
    let minf = w.open(b"minf");
    let smhd = w.open_full(b"smhd", 0, 0);
    w.u32(0);
    w.close(smhd);
    dinf_stbl(w, |w| {
        let e = w.open(match a.format {
            AudioFormat::Aac => b"mp4a",
            AudioFormat::Opus => b"Opus",
        });
        w.zeros(6);
        w.u16(1);
        w.zeros(8);
        w.u16(u16::from(a.channels));
        w.u16(16);
        w.u32(0);
        w.u32(a.sample_rate.min(0xFFFF) << 16);
        match a.format {
            AudioFormat::Aac => esds(w, &a.record),
            AudioFormat::Opus => dops(w, &a.record),
        }
        w.close(e);
    });
    w.close(minf);
    w.close(mdia);
    w.close(trak);
}

/// An MPEG-4 descriptor header with the 4-byte length form.
fn descriptor(w: &mut BoxWriter, tag: u8, len: usize) {
    let len = len.min(0x0FFF_FFFF) as u32;
    w.u8(tag);
    w.u8(0x80 | (len >> 21) as u8 & 0x7F);
    w.u8(0x80 | (len >> 14) as u8 & 0x7F);
    w.u8(0x80 | (len >> 7) as u8 & 0x7F);
    w.u8(len as u8 & 0x7F);
}

fn esds(w: &mut BoxWriter, asc: &[u8]) {
    let b = w.open_full(b"esds", 0, 0);
    let dsi = 5 + asc.len();
    let dcd = 13 + dsi;
    let sl = 5 + 1;
    descriptor(w, 0x03, 3 + 5 + dcd + sl);
    w.u16(AUDIO_TRACK_ID as u16); // ES_ID
    w.u8(0);
    descriptor(w, 0x04, dcd);
    w.u8(0x40); // Audio ISO/IEC 14496-3
    w.u8(0x15); // AudioStream, upstream 0, reserved 1
    w.u24(0); // bufferSizeDB
    w.u32(0); // maxBitrate
    w.u32(0); // avgBitrate
    descriptor(w, 0x05, asc.len());
    w.bytes(asc);
    descriptor(w, 0x06, 1);
    w.u8(0x02);
    w.close(b);
}

/// `dOps` (Opus in ISOBMFF, section 4.3.2): OpusHead fields, big-endian.
fn dops(w: &mut BoxWriter, head: &[u8]) {
    let Ok(h) = OpusHead::parse(head) else {
        return; // validated when the config was built
    };
    let b = w.open(b"dOps");
    w.u8(0);
    w.u8(h.channels);
    w.u16(h.pre_skip);
    w.u32(h.input_rate);
    w.u16(h.gain as u16);
    w.u8(h.mapping_family);
    w.bytes(&h.mapping);
    w.close(b);
}
