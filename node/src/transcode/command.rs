//! The ffmpeg command line of one stream's ladder: FLV in on standard input, each rendition
//! out as FLV on its own file descriptor (3, 4, ...). Pure: arguments out, nothing run.
//!
//! The source is decoded once; each output scales it, encodes H.264 with keyframes exactly
//! where the source has them (`-force_key_frames source`, no other keyframes), so every
//! rendition cuts its HLS segments and parts at the same instants as the source. Timestamps
//! are the source's (`-copyts`): renditions share its timeline.

use super::ladder::Output;
pub use crate::settings::VideoEncoder;

/// The first file descriptor outputs are written to (then one more per output).
pub const FIRST_OUTPUT_FD: i32 = 3;

/// How the renditions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub encoder: VideoEncoder,
    /// Threads of the decoder, the filters and each encoder (`--transcode-threads`; 0: as
    /// many as ffmpeg likes, about one per core each).
    pub threads: usize,
}

/// ffmpeg's arguments (without the program) for `outputs`.
pub fn arguments(outputs: &[Output], encoding: Encoding) -> Vec<String> {
    let encoder = encoding.encoder;
    let threads = encoding.threads.to_string();
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(ToString::to_string));
    push(&["-hide_banner", "-nostdin", "-loglevel", "warning", "-nostats"]);
    if encoding.threads > 0 {
        push(&["-threads", &threads, "-filter_threads", &threads]);
    }
    if encoder == VideoEncoder::H264Vaapi {
        push(&["-vaapi_device", "/dev/dri/renderD128"]);
    }
    // Start at once on what arrives (the input is live and begins with its headers).
    // Probing reads up to 1 s (enough to see the audio's format); the backlog is then caught
    // up at once, so the renditions lag their source by no more than an encode.
    push(&["-fflags", "+nobuffer", "-probesize", "1000000", "-analyzeduration", "1000000"]);
    push(&["-f", "flv", "-i", "pipe:0", "-copyts"]);
    for (i, o) in outputs.iter().enumerate() {
        let kbps = o.video_kbps;
        let mut filter = match encoder {
            VideoEncoder::H264Vaapi => {
                format!("format=nv12,hwupload,scale_vaapi=w={}:h={}", o.width, o.height)
            }
            _ => format!("scale={}:{}", o.width, o.height),
        };
        if let Some(fps) = o.fps {
            // Fewer frames, but never the source's keyframes (an fps filter may drop one,
            // and the rendition's GOPs and segments would no longer line up): a frame is
            // kept when it is a keyframe or comes a frame interval (less 5 %) after the last.
            let gap = 0.95 / fps;
            filter = format!("select='eq(pict_type,I)+gte(t-prev_selected_t,{gap:.5})',{filter}");
        }
        let rate = format!("{kbps}k");
        let buffer = format!("{}k", kbps.saturating_mul(2));
        push(&["-map", "0:v:0", "-map", "0:a:0?", "-vf", &filter, "-c:v", encoder.as_str()]);
        if encoding.threads > 0 {
            push(&["-threads:v", &threads]);
        }
        match encoder {
            VideoEncoder::Libx264 => push(&[
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
                "-pix_fmt",
                "yuv420p",
                "-x264-params",
                "keyint=infinite:min-keyint=1:scenecut=0",
            ]),
            VideoEncoder::H264Nvenc => {
                push(&["-preset", "p4", "-tune", "ll", "-g", "1000000", "-bf", "0"]);
            }
            VideoEncoder::H264Vaapi => push(&["-g", "1000000", "-bf", "0"]),
        }
        push(&[
            "-force_key_frames",
            "source",
            "-b:v",
            &rate,
            "-maxrate",
            &rate,
            "-bufsize",
            &buffer,
        ]);
        // Frames keep the source's millisecond timestamps (an encoder's default time base,
        // 1/frame rate, would round them away from the source's and its segments' starts).
        push(&["-enc_time_base:v", "1:1000"]);
        push(&["-fps_mode:v", "passthrough"]);
        if let Some(fps) = o.fps {
            // The rate the encoder budgets its bits for (no frame is dropped or repeated).
            push(&["-r:v", &fps.to_string()]);
        }
        match o.audio_kbps {
            Some(k) => push(&["-c:a", "aac", "-b:a", &format!("{k}k")]),
            None => push(&["-c:a", "copy"]),
        }
        let fd = format!("pipe:{}", FIRST_OUTPUT_FD + i as i32);
        push(&["-flvflags", "no_duration_filesize", "-f", "flv", &fd]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(name: &str, height: u32, audio_kbps: Option<u32>, fps: Option<f64>) -> Output {
        Output {
            name: name.into(),
            width: (height * 16 / 9) & !1,
            height,
            video_kbps: 1000,
            audio_kbps,
            fps,
        }
    }

    #[test]
    fn each_output_has_its_size_rates_keyframes_and_descriptor() {
        let outs = [output("480p", 480, None, None), output("240p", 240, Some(64), Some(15.0))];
        let args =
            arguments(&outs, Encoding { encoder: VideoEncoder::Libx264, threads: 2 }).join(" ");
        assert!(args.contains("-f flv -i pipe:0 -copyts"), "{args}");
        let first = args.find("pipe:3").unwrap();
        let second = args.find("pipe:4").unwrap();
        let (a, b) = (&args[..first], &args[first..second]);
        assert!(a.contains("-vf scale=852:480") && a.contains("-c:a copy"), "{a}");
        assert!(
            b.contains("-vf select='eq(pict_type,I)+gte(t-prev_selected_t,0.06333)',scale=426:240")
                && b.contains("-r:v 15")
                && b.contains("-c:a aac -b:a 64k"),
            "{b}"
        );
        for part in [a, b] {
            assert!(part.contains("-force_key_frames source"), "{part}");
            assert!(part.contains("-b:v 1000k -maxrate 1000k -bufsize 2000k"), "{part}");
            assert!(part.contains("scenecut=0"), "{part}");
            assert!(part.contains("-enc_time_base:v 1:1000"), "{part}");
        }
        assert!(!args.contains("pipe:5"));
        // Two threads for the decoder and filters, and for each encoder.
        assert!(
            args.starts_with(
                "-hide_banner -nostdin -loglevel warning -nostats -threads 2 -filter_threads 2"
            ),
            "{args}"
        );
        assert_eq!(args.matches("-threads:v 2").count(), 2, "{args}");
    }

    #[test]
    fn hardware_encoders_get_their_own_options() {
        let outs = [output("480p", 480, None, None)];
        let vaapi =
            arguments(&outs, Encoding { encoder: VideoEncoder::H264Vaapi, threads: 0 }).join(" ");
        assert!(vaapi.contains("-vaapi_device /dev/dri/renderD128"), "{vaapi}");
        assert!(vaapi.contains("scale_vaapi=w=852:h=480 -c:v h264_vaapi"), "{vaapi}");
        let nvenc =
            arguments(&outs, Encoding { encoder: VideoEncoder::H264Nvenc, threads: 0 }).join(" ");
        assert!(nvenc.contains("-c:v h264_nvenc"), "{nvenc}");
    }
}
