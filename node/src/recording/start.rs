//! How a node opens its recordings: the store, what a crash left open, and the tasks that
//! keep them (retention; in a cluster, finishing recordings whose home died).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{RecordSettings, Recordings};
use crate::metrics::Metrics;

/// In a cluster, a recording left open and untouched this long (at least; more with a long
/// `--ended-stream-linger`) has no home writing it any more (its home died and no origin
/// carried it on): it is finished.
const STALE_RECORDING: Duration = Duration::from_secs(60);

impl Recordings {
    /// Open the recordings `settings` name and start the tasks that keep them.
    /// `linger`: the node's `--ended-stream-linger`.
    pub async fn open_for_node(
        settings: &RecordSettings,
        linger: Duration,
        clustered: bool,
        metrics: Metrics,
    ) -> anyhow::Result<(Arc<Recordings>, Vec<tokio::task::JoinHandle<()>>)> {
        let recordings = Recordings::new(settings, linger, metrics)
            .with_context(|| format!("opening {}", settings.target))?;
        // Standalone, nobody else writes here: finish what a crash left open now. In a
        // cluster another origin may be carrying a recording on (a shared store): only what
        // has been left alone for a while, now and every so often. A live home leaves its
        // index alone for up to twice the linger (the stream's entry lingers, then the
        // recorder waits as long for the publisher).
        let stale = STALE_RECORDING.max(linger * 2 + STALE_RECORDING / 2);
        let min_age = if clustered { stale } else { Duration::ZERO };
        recordings.recover(min_age).await.with_context(|| {
            format!("finishing the recordings left open in {}", settings.target)
        })?;
        let recordings = Arc::new(recordings);
        let mut tasks: Vec<_> = recordings.spawn_retention().into_iter().collect();
        if clustered {
            tasks.push(recordings.spawn_stale_finisher(stale / 2, stale));
        }
        Ok((recordings, tasks))
    }
}
