//! A standalone origin's schedule of files played out as live streams (sans-IO): entries,
//! checked when they are added, which are due at a given time, and the JSON it is kept in
//! across restarts. (A cluster's schedule lives in the registry: `sluice_cluster::schedule`.)

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use sluice_cluster::schedule::{EntryError, EntryValue, PlayoutState as State, MAX_ENTRIES};

/// One entry: `file` (under the playout directory) goes out as `app/stream` from `start_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    #[serde(flatten)]
    pub value: EntryValue,
    pub state: State,
}

/// Why an entry was refused or not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error("file {0:?} is not in the playout directory")]
    Missing(String),
    #[error("the schedule is full ({MAX_ENTRIES} entries)")]
    Full,
    #[error("no such schedule entry")]
    NotFound,
    #[error("in a cluster the schedule is set through the control plane (sluicectl schedule)")]
    Clustered,
    #[error("this origin keeps no recordings (no --record-dir)")]
    NoRecordings,
    #[error("recording {0} cannot be played: {1}")]
    Recording(String, String),
}

/// `file`, checked to stay inside `dir`: the full path.
pub fn resolve(dir: &Path, file: &str) -> Result<PathBuf, ScheduleError> {
    sluice_cluster::schedule::check_file(file)?;
    Ok(dir.join(file))
}

/// The entries of one node, as kept on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Schedule {
    entries: Vec<Entry>,
    next_id: u64,
}

impl Schedule {
    /// A schedule read back from its JSON: entries that were playing start again (at their
    /// place in time); bad ones are dropped.
    pub fn restore(json: &[u8]) -> Result<Schedule, serde_json::Error> {
        let mut s: Schedule = serde_json::from_slice(json)?;
        s.entries.retain(|e| {
            sluice_cluster::schedule::validate(&e.value).is_ok()
                && sluice_cluster::schedule::check_id(&e.id).is_ok()
        });
        s.entries.truncate(MAX_ENTRIES);
        for e in &mut s.entries {
            if matches!(e.state, State::Playing | State::Displaced) {
                e.state = State::Waiting;
            }
        }
        Ok(s)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Add an entry (its name and file checked); returns it.
    pub fn add(&mut self, value: EntryValue) -> Result<Entry, ScheduleError> {
        sluice_cluster::schedule::validate(&value)?;
        if self.entries.len() >= MAX_ENTRIES {
            return Err(ScheduleError::Full);
        }
        self.next_id += 1;
        let entry = Entry { id: self.next_id.to_string(), value, state: State::Waiting };
        self.entries.push(entry.clone());
        Ok(entry)
    }

    pub fn remove(&mut self, id: &str) -> Result<Entry, ScheduleError> {
        let i = self.entries.iter().position(|e| e.id == id).ok_or(ScheduleError::NotFound)?;
        Ok(self.entries.remove(i))
    }

    /// Every entry, by start.
    pub fn list(&self) -> Vec<Entry> {
        let mut all = self.entries.clone();
        all.sort_by_key(|e| (e.value.start_ms, e.id.parse::<u64>().unwrap_or(0)));
        all
    }

    /// The waiting entries due at `now_ms`, marked playing.
    pub fn start_due(&mut self, now_ms: i64) -> Vec<Entry> {
        let mut due = Vec::new();
        for e in &mut self.entries {
            if e.state == State::Waiting && e.value.start_ms <= now_ms {
                e.state = State::Playing;
                due.push(e.clone());
            }
        }
        due
    }

    /// Entry `id` is now in `state` (nothing when it was removed meanwhile); whether it
    /// changed.
    pub fn set_state(&mut self, id: &str, state: State) -> bool {
        match self.entries.iter_mut().find(|e| e.id == id) {
            Some(e) if e.state != state => {
                e.state = state;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(stream: &str, file: &str, start_ms: i64, looped: bool) -> EntryValue {
        EntryValue {
            app: "live".into(),
            stream: stream.into(),
            file: file.into(),
            recording: None,
            start_ms,
            looped,
        }
    }

    #[test]
    fn entries_start_when_due_and_bad_ones_are_refused() {
        let mut s = Schedule::default();
        let a = s.add(value("tv", "show.flv", 2_000, false)).unwrap();
        let b = s.add(value("news", "news.flv", 1_000, true)).unwrap();
        assert_eq!(
            s.list().iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            vec![b.id.clone(), a.id.clone()]
        );
        assert!(s.start_due(500).is_empty());
        assert_eq!(s.start_due(1_500).iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![b.id]);
        assert!(s.start_due(1_600).is_empty(), "started once");
        assert_eq!(s.start_due(2_000)[0].id, a.id);
        assert!(s.set_state(&a.id, State::Done));
        assert!(!s.set_state(&a.id, State::Done), "no change");
        assert_eq!(s.list()[1].state, State::Done);
        assert_eq!(s.remove(&a.id).unwrap().id, a.id);
        assert_eq!(s.remove(&a.id), Err(ScheduleError::NotFound));
        assert!(matches!(
            s.add(value("a b", "x.flv", 0, false)),
            Err(ScheduleError::Entry(EntryError::Name(_)))
        ));
    }

    #[test]
    fn a_restored_schedule_plays_on_and_keeps_its_ids() {
        let mut s = Schedule::default();
        let a = s.add(value("tv", "show.flv", 1_000, true)).unwrap();
        let b = s.add(value("news", "news.flv", 1_000, false)).unwrap();
        s.start_due(1_000);
        s.set_state(&b.id, State::Done);
        let mut back = Schedule::restore(&s.to_json()).unwrap();
        let states: Vec<_> = back.list().iter().map(|e| (e.id.clone(), e.state)).collect();
        assert_eq!(states, vec![(a.id.clone(), State::Waiting), (b.id, State::Done)]);
        assert_eq!(back.start_due(5_000)[0].id, a.id, "due again: it goes on");
        let c = back.add(value("c", "c.flv", 0, false)).unwrap();
        assert_eq!(c.id, "3", "ids are not reused");
        assert!(Schedule::restore(b"{").is_err());
    }

    #[test]
    fn files_stay_inside_the_playout_directory() {
        let dir = Path::new("/srv/playout");
        assert_eq!(resolve(dir, "shows/a.flv").unwrap(), dir.join("shows/a.flv"));
        assert!(resolve(dir, "../etc/passwd.flv").is_err());
    }
}
