//! The schedule of files played out as live streams (sans-IO): entries, checked when they are
//! added, and which are due at a given time.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use sluice_media::stream_name::StreamKey;

/// Most entries one node's schedule holds.
pub const MAX_ENTRIES: usize = 1000;

/// One entry: `file` (under the playout directory) goes out as `app/stream` from `start_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: u64,
    pub app: String,
    pub stream: String,
    /// Relative to the playout directory.
    pub file: String,
    /// Unix ms.
    pub start_ms: i64,
    /// Start the file again at its end, until the entry is removed.
    #[serde(rename = "loop")]
    pub looped: bool,
    pub state: State,
}

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Waiting,
    Playing,
    /// Gave way to a live publisher of its name; it goes on when the name is free.
    Displaced,
    Done,
    Failed,
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid stream name {0}")]
    Name(String),
    #[error("file {0:?}: a path inside the playout directory (no '..', not absolute)")]
    Path(String),
    #[error("file {0:?}: only FLV files (.flv) are played out")]
    Format(String),
    #[error("file {0:?} is not in the playout directory")]
    Missing(String),
    #[error("the schedule is full ({MAX_ENTRIES} entries)")]
    Full,
    #[error("no such schedule entry")]
    NotFound,
}

/// `file`, checked to stay inside `dir`: the full path.
pub fn resolve(dir: &Path, file: &str) -> Result<PathBuf, ScheduleError> {
    let rel = Path::new(file);
    let inside = !file.is_empty()
        && rel.components().all(|c| matches!(c, Component::Normal(_)))
        && !file.contains('\0');
    if !inside {
        return Err(ScheduleError::Path(file.into()));
    }
    if rel.extension().is_none_or(|x| !x.eq_ignore_ascii_case("flv")) {
        return Err(ScheduleError::Format(file.into()));
    }
    Ok(dir.join(rel))
}

/// The entries of one node.
#[derive(Debug, Default)]
pub struct Schedule {
    entries: Vec<Entry>,
    next_id: u64,
}

impl Schedule {
    /// Add an entry (its name checked); returns it.
    pub fn add(
        &mut self,
        app: &str,
        stream: &str,
        file: &str,
        start_ms: i64,
        looped: bool,
    ) -> Result<Entry, ScheduleError> {
        match StreamKey::parse(app, stream) {
            Ok((key, None)) if key.app() == app && key.name() == stream => {}
            _ => return Err(ScheduleError::Name(format!("{app}/{stream}"))),
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(ScheduleError::Full);
        }
        self.next_id += 1;
        let entry = Entry {
            id: self.next_id,
            app: app.into(),
            stream: stream.into(),
            file: file.into(),
            start_ms,
            looped,
            state: State::Waiting,
        };
        self.entries.push(entry.clone());
        Ok(entry)
    }

    pub fn remove(&mut self, id: u64) -> Result<Entry, ScheduleError> {
        let i = self.entries.iter().position(|e| e.id == id).ok_or(ScheduleError::NotFound)?;
        Ok(self.entries.remove(i))
    }

    /// Every entry, by start.
    pub fn list(&self) -> Vec<Entry> {
        let mut all = self.entries.clone();
        all.sort_by_key(|e| (e.start_ms, e.id));
        all
    }

    /// The waiting entries due at `now_ms`, marked playing.
    pub fn start_due(&mut self, now_ms: i64) -> Vec<Entry> {
        let mut due = Vec::new();
        for e in &mut self.entries {
            if e.state == State::Waiting && e.start_ms <= now_ms {
                e.state = State::Playing;
                due.push(e.clone());
            }
        }
        due
    }

    /// Entry `id` is now in `state` (nothing when it was removed meanwhile).
    pub fn set_state(&mut self, id: u64, state: State) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.state = state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_start_when_due_and_bad_ones_are_refused() {
        let mut s = Schedule::default();
        let a = s.add("live", "tv", "show.flv", 2_000, false).unwrap();
        let b = s.add("live", "news", "news.flv", 1_000, true).unwrap();
        assert_eq!(s.list().iter().map(|e| e.id).collect::<Vec<_>>(), vec![b.id, a.id]);
        assert!(s.start_due(500).is_empty());
        assert_eq!(s.start_due(1_500).iter().map(|e| e.id).collect::<Vec<_>>(), vec![b.id]);
        assert!(s.start_due(1_600).is_empty(), "started once");
        assert_eq!(s.start_due(2_000)[0].id, a.id);
        s.set_state(a.id, State::Done);
        assert_eq!(s.list()[1].state, State::Done);
        assert_eq!(s.remove(a.id).unwrap().id, a.id);
        assert_eq!(s.remove(a.id), Err(ScheduleError::NotFound));
        assert!(matches!(s.add("live", "a b", "x.flv", 0, false), Err(ScheduleError::Name(_))));
    }

    #[test]
    fn files_stay_inside_the_playout_directory() {
        let dir = Path::new("/srv/playout");
        assert_eq!(resolve(dir, "shows/a.flv").unwrap(), dir.join("shows/a.flv"));
        assert_eq!(resolve(dir, "A.FLV").unwrap(), dir.join("A.FLV"));
        for bad in ["../etc/passwd.flv", "/etc/x.flv", "a/../../b.flv", "", "./a.flv"] {
            assert!(matches!(resolve(dir, bad), Err(ScheduleError::Path(_))), "{bad}");
        }
        assert!(matches!(resolve(dir, "a.mp4"), Err(ScheduleError::Format(_))));
    }
}
