//! The synthetic RTMP publisher: connects, publishes, then sends the [`Synth`] stream paced by
//! the wall clock (each frame's due time is computed from the start, so pacing never drifts).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sluice_media::rtmp::client::{ClientEvent, ClientMode};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::rtmp_conn::{is_error_status, ConnError, RtmpConn};
use crate::stats::{wall_us, Shared};
use crate::synth::Synth;
use crate::target::RtmpUrl;

/// Why the publisher did not start publishing.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("publisher runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// Fires once: publishing started, or why it did not.
pub type Started = oneshot::Sender<Result<(), StartError>>;

/// How long the server gets to accept the publish.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the publisher did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherReport {
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    pub payload_bytes_sent: u64,
    /// Frames sent more than one frame interval after their due time.
    pub late_frames: u64,
    pub max_lag_ms: f64,
    pub error: Option<String>,
}

/// Publish `synth`'s stream to `url` until `until` (or forever if `None`) or until `stop`
/// turns true. `started` fires once
/// the server answered NetStream.Publish.Start (or with the error). The newest frame sequence
/// number is kept in `shared.publisher_seq` for players.
pub async fn publish(
    url: RtmpUrl,
    synth: Synth,
    until: Option<Instant>,
    stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    started: Started,
) -> PublisherReport {
    let mut report = PublisherReport::default();
    let mut started = Some(started);
    let result = run(&url, &synth, until, stop, &shared, &mut started, &mut report).await;
    if let Err(error) = result {
        let text = error.to_string();
        tracing::warn!("publisher stopped: {text}");
        report.error = Some(text);
        if let Some(tx) = started.take() {
            let _ = tx.send(Err(error.into()));
        }
    }
    report
}

/// Run [`publish`] on its own OS thread with a current-thread runtime, so the player load on the
/// main runtime cannot delay the publisher's pacing. The report arrives on the returned channel
/// (which closes without a value if the thread could not start).
pub fn spawn_on_own_thread(
    url: RtmpUrl,
    synth: Synth,
    until: Option<Instant>,
    stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    started: Started,
) -> oneshot::Receiver<PublisherReport> {
    let (report_tx, report_rx) = oneshot::channel();
    let spawned = std::thread::Builder::new().name("publisher".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = started.send(Err(StartError::Runtime(e)));
                return;
            }
        };
        let report = runtime.block_on(publish(url, synth, until, stop, shared, started));
        let _ = report_tx.send(report);
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the publisher thread: {e}");
    }
    report_rx
}

async fn run(
    url: &RtmpUrl,
    synth: &Synth,
    until: Option<Instant>,
    mut stop: watch::Receiver<bool>,
    shared: &Shared,
    started: &mut Option<Started>,
    report: &mut PublisherReport,
) -> Result<(), ConnError> {
    let mut conn = RtmpConn::connect(url, ClientMode::Publish, START_TIMEOUT).await?;
    let deadline = Instant::now() + START_TIMEOUT;
    // Opening: handshake, connect, createStream, publish.
    'opening: loop {
        while let Some(event) = conn.poll_event() {
            match event {
                ClientEvent::PublishStarted => break 'opening,
                ClientEvent::Status { level, code, .. } if is_error_status(&level) => {
                    return Err(ConnError::Status(code));
                }
                ClientEvent::CommandError { description } => {
                    return Err(ConnError::Command(description))
                }
                _ => {}
            }
        }
        conn.flush().await?;
        tokio::time::timeout_at(deadline, conn.read()).await.map_err(|_| ConnError::Timeout)??;
    }
    tracing::info!("publishing to {}/{}", url.tc_url, url.stream);
    if let Some(tx) = started.take() {
        let _ = tx.send(Ok(()));
    }

    let shape = *synth.shape();
    for message in [Some(synth.metadata()), Some(synth.video_sequence_header())]
        .into_iter()
        .chain([shape.audio.then(|| synth.audio_sequence_header())])
        .flatten()
    {
        report.payload_bytes_sent += message.payload.len() as u64;
        conn.send_media(&message);
    }
    conn.flush().await?;

    let start = Instant::now();
    let frame_interval = shape.frame_offset(1);
    let (mut video_index, mut audio_index) = (0u64, 0u64);
    loop {
        let video_due = start + shape.frame_offset(video_index);
        let audio_due = start + shape.audio_offset(audio_index);
        let (due, is_video) = if !shape.audio || video_due <= audio_due {
            (video_due, true)
        } else {
            (audio_due, false)
        };
        if until.is_some_and(|end| due >= end) {
            break;
        }
        // Wait for the due time while answering whatever the server sends.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => break,
                read = conn.read() => { read?; }
                // A dropped sender also means stop.
                _ = stop.changed() => {
                    conn.close().await;
                    return Ok(());
                }
            }
            while let Some(event) = conn.poll_event() {
                if let ClientEvent::Status { level, code, .. } = event {
                    if is_error_status(&level) {
                        return Err(ConnError::Status(code));
                    }
                }
            }
            conn.flush().await?;
        }
        let lag = Instant::now().saturating_duration_since(due);
        report.max_lag_ms = report.max_lag_ms.max(lag.as_secs_f64() * 1000.0);
        if lag > frame_interval {
            report.late_frames += 1;
        }
        let message = if is_video {
            shared.publisher_seq.store(video_index, Ordering::Release);
            let message = synth.video_frame(video_index, wall_us());
            video_index += 1;
            report.video_frames_sent += 1;
            message
        } else {
            let message = synth.audio_frame(audio_index);
            audio_index += 1;
            report.audio_frames_sent += 1;
            message
        };
        report.payload_bytes_sent += message.payload.len() as u64;
        conn.send_media(&message);
        conn.flush().await?;
    }
    conn.close().await;
    Ok(())
}
