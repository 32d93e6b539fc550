//! `sluicectl ladders ls|set|rm`: the transcoding ladders set through the control plane.

use std::io::Write;

use clap::Subcommand;
use serde::Serialize;
use sluice_proto::control::v1 as pb;

use crate::args::Format;
use crate::client::Conn;
use crate::error::CtlError;
use crate::output::{encode, write};
use crate::table::Table;

#[derive(Debug, Subcommand)]
pub enum LaddersCommand {
    /// List the ladders set through the control plane (origins use their --ladder-file for
    /// the other apps).
    #[command(alias = "list")]
    Ls,
    /// Set an app's ladder, replacing its earlier one: live streams not being transcoded get it
    /// within about a second, and streams published from now on.
    Set {
        /// The app (e.g. live).
        app: String,
        /// One rendition as NAME:HEIGHT:VIDEO_KBPS, with :AUDIO_KBPS for AAC at that rate
        /// and @FPS for a lower frame rate (e.g. 480p:480:1000, 240p:240:400:64@15). Repeat
        /// for each; none turns the app's transcoding off.
        #[arg(long = "rendition", value_name = "SPEC", value_parser = parse_rendition)]
        renditions: Vec<Rendition>,
    },
    /// Delete an app's ladder: its origins go back to their --ladder-file.
    Rm {
        /// The app.
        app: String,
    },
}

/// One rendition as the user wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendition {
    pub name: String,
    pub height: u32,
    pub video_kbps: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_kbps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
}

/// `NAME:HEIGHT:VIDEO_KBPS[:AUDIO_KBPS][@FPS]`.
pub fn parse_rendition(spec: &str) -> Result<Rendition, String> {
    let bad = || format!("{spec:?} is not NAME:HEIGHT:VIDEO_KBPS[:AUDIO_KBPS][@FPS]");
    let (rest, fps) = match spec.split_once('@') {
        Some((rest, fps)) => (rest, Some(fps.parse::<f64>().map_err(|_| bad())?)),
        None => (spec, None),
    };
    let fields: Vec<&str> = rest.split(':').collect();
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
    match fields.as_slice() {
        [name, height, video] | [name, height, video, _] if !name.is_empty() => Ok(Rendition {
            name: (*name).to_string(),
            height: number(height)?,
            video_kbps: number(video)?,
            audio_kbps: fields.get(3).map(|a| number(a)).transpose()?,
            fps,
        }),
        _ => Err(bad()),
    }
}

#[derive(Debug, Serialize)]
pub struct LadderView {
    pub app: String,
    pub renditions: Vec<Rendition>,
}

#[derive(Debug, Serialize)]
pub struct LadderList {
    pub ladders: Vec<LadderView>,
}

fn view(l: pb::Ladder) -> LadderView {
    LadderView {
        app: l.app,
        renditions: l
            .renditions
            .into_iter()
            .map(|r| Rendition {
                name: r.name,
                height: r.height,
                video_kbps: r.video_kbps,
                audio_kbps: (r.audio_kbps > 0).then_some(r.audio_kbps),
                fps: (r.fps > 0.0).then_some(r.fps),
            })
            .collect(),
    }
}

fn render(list: &LadderList) -> String {
    if list.ladders.is_empty() {
        return "no ladders set through the control plane\n".into();
    }
    let mut t = Table::new(&["APP", "RENDITION", "HEIGHT", "VIDEO", "AUDIO", "FPS"]);
    for l in &list.ladders {
        if l.renditions.is_empty() {
            t.row(vec![l.app.clone(), "(none: not transcoded)".into()]);
        }
        for r in &l.renditions {
            t.row(vec![
                l.app.clone(),
                r.name.clone(),
                r.height.to_string(),
                format!("{} kbit/s", r.video_kbps),
                r.audio_kbps.map_or("source".into(), |k| format!("AAC {k} kbit/s")),
                r.fps.map_or("source".into(), |f| f.to_string()),
            ]);
        }
    }
    t.render()
}

pub async fn run(
    conn: &Conn,
    cmd: LaddersCommand,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match cmd {
        LaddersCommand::Ls => {
            let list = conn
                .call("ListLadders", conn.control().list_ladders(pb::ListLaddersRequest {}))
                .await?;
            let view = LadderList { ladders: list.ladders.into_iter().map(view).collect() };
            write(out, &encode(format, &view, render)?);
        }
        LaddersCommand::Set { app, renditions } => {
            let ladder = pb::Ladder {
                app,
                renditions: renditions
                    .into_iter()
                    .map(|r| pb::Rendition {
                        name: r.name,
                        height: r.height,
                        video_kbps: r.video_kbps,
                        audio_kbps: r.audio_kbps.unwrap_or(0),
                        fps: r.fps.unwrap_or(0.0),
                    })
                    .collect(),
            };
            let request = pb::SetLadderRequest { ladder: Some(ladder) };
            let set = conn.call("SetLadder", conn.control().set_ladder(request)).await?;
            let view = LadderList { ladders: vec![view(set)] };
            write(out, &encode(format, &view, render)?);
        }
        LaddersCommand::Rm { app } => {
            let request = pb::DeleteLadderRequest { app: app.clone() };
            conn.call("DeleteLadder", conn.control().delete_ladder(request)).await?;
            if format == Format::Table {
                write(out, &format!("ladder of {app} deleted: its origins use their files\n"));
            } else {
                write(
                    out,
                    &encode(format, &serde_json::json!({ "deleted": app }), |_| String::new())?,
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendition_specs() {
        assert_eq!(
            parse_rendition("240p:240:400:64@15").unwrap(),
            Rendition {
                name: "240p".into(),
                height: 240,
                video_kbps: 400,
                audio_kbps: Some(64),
                fps: Some(15.0)
            }
        );
        assert_eq!(parse_rendition("480p:480:1000").unwrap().audio_kbps, None);
        for bad in ["480p", ":480:1000", "a:b:c", "a:1:2:3:4", "a:1:2@x"] {
            assert!(parse_rendition(bad).is_err(), "{bad}");
        }
    }
}
