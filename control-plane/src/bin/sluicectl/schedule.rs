//! `sluicectl schedule ls|add|rm`: the cluster's playout schedule (files the stream's home
//! origin publishes as live streams at their time).

use std::io::Write;

use clap::Subcommand;
use serde::Serialize;
use sluice_proto::control::v1 as pb;

use crate::args::{stream_ref, Format};
use crate::client::Conn;
use crate::error::CtlError;
use crate::output::{encode, write};
use crate::table::Table;
use crate::units::utc;

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List the entries by start, with how each stands and the origin playing it.
    #[command(alias = "list")]
    Ls,
    /// Schedule FILE (under the origins' --playout-dir, an FLV or MP4 file), or a finished
    /// recording, to go out as the live stream APP/NAME from --at.
    Add {
        /// The stream, as APP/NAME (e.g. live/tv).
        stream: String,
        /// The file, relative to the origins' --playout-dir (e.g. shows/news.mp4).
        #[arg(required_unless_present = "recording", conflicts_with = "recording")]
        file: Option<String>,
        /// A finished recording instead of a file: APP/NAME/ID, as `recordings ls` shows it
        /// (from the origins' shared --record-dir or --record-store bucket).
        #[arg(long, value_name = "APP/NAME/ID")]
        recording: Option<String>,
        /// When it starts: RFC 3339 (2026-12-07T20:00:00Z), Unix ms, or +DURATION from now
        /// (+90s, +2h); now when left out.
        #[arg(long, value_parser = parse_start)]
        at: Option<i64>,
        /// Start the file again at its end, until the entry is removed.
        #[arg(long = "loop")]
        looped: bool,
    },
    /// Remove an entry: its playout stops.
    Rm {
        /// The entry's id (as `schedule ls` shows it).
        id: String,
    },
}

/// RFC 3339, Unix ms, or `+DURATION` from now: Unix ms.
pub fn parse_start(text: &str) -> Result<i64, String> {
    if let Some(after) = text.strip_prefix('+') {
        let d = humantime::parse_duration(after)
            .map_err(|_| format!("{text:?}: +DURATION is like +90s, +5m or +2h"))?;
        let at = std::time::SystemTime::now().checked_add(d).ok_or("too far ahead")?;
        let since = at.duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
        return i64::try_from(since.as_millis()).map_err(|_| "too far ahead".to_string());
    }
    crate::catalog::parse_time(text)
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub id: String,
    pub app: String,
    pub stream: String,
    pub file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub recording: String,
    pub start_ms: i64,
    #[serde(rename = "loop")]
    pub looped: bool,
    pub state: String,
    pub node: String,
}

#[derive(Debug, Serialize)]
pub struct EntryList {
    pub entries: Vec<EntryView>,
}

fn view(e: pb::ScheduleEntry) -> EntryView {
    EntryView {
        id: e.id,
        app: e.app,
        stream: e.stream,
        file: e.file,
        recording: e.recording,
        start_ms: e.start_ms,
        looped: e.r#loop,
        state: e.state,
        node: e.node,
    }
}

fn render(list: &EntryList) -> String {
    if list.entries.is_empty() {
        return "no playout scheduled\n".into();
    }
    let mut t = Table::new(&["ID", "STREAM", "PLAYS", "START (UTC)", "LOOP", "STATE", "ORIGIN"]);
    for e in &list.entries {
        t.row(vec![
            e.id.clone(),
            format!("{}/{}", e.app, e.stream),
            if e.recording.is_empty() {
                e.file.clone()
            } else {
                format!("recording {}", e.recording)
            },
            utc(u64::try_from(e.start_ms).unwrap_or(0)),
            if e.looped { "yes" } else { "no" }.into(),
            e.state.clone(),
            if e.node.is_empty() { "-".into() } else { e.node.clone() },
        ]);
    }
    t.render()
}

pub async fn run(
    conn: &Conn,
    cmd: ScheduleCommand,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match cmd {
        ScheduleCommand::Ls => {
            let list = conn
                .call("ListSchedule", conn.control().list_schedule(pb::ListScheduleRequest {}))
                .await?;
            let view = EntryList { entries: list.entries.into_iter().map(view).collect() };
            write(out, &encode(format, &view, render)?);
        }
        ScheduleCommand::Add { stream, file, recording, at, looped } => {
            let (app, stream) = stream_ref(&stream)?;
            let request = pb::AddScheduleEntryRequest {
                app,
                stream,
                file: file.unwrap_or_default(),
                recording: recording.unwrap_or_default(),
                start_ms: at.unwrap_or(0),
                r#loop: looped,
            };
            let added =
                conn.call("AddScheduleEntry", conn.control().add_schedule_entry(request)).await?;
            let view = EntryList { entries: vec![view(added)] };
            write(out, &encode(format, &view, render)?);
        }
        ScheduleCommand::Rm { id } => {
            let request = pb::RemoveScheduleEntryRequest { id: id.clone() };
            conn.call("RemoveScheduleEntry", conn.control().remove_schedule_entry(request)).await?;
            if format == Format::Table {
                write(out, &format!("schedule entry {id} removed\n"));
            } else {
                let json = serde_json::json!({ "removed": id });
                write(out, &encode(format, &json, |_| String::new())?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times() {
        assert_eq!(parse_start("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_start("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                as i64;
        let later = parse_start("+90s").unwrap();
        assert!((later - now - 90_000).abs() < 5_000, "{later} {now}");
        for bad in ["+soon", "tomorrow", "+"] {
            assert!(parse_start(bad).is_err(), "{bad}");
        }
    }
}
