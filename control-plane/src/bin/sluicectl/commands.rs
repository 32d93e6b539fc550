//! The commands that talk to a control plane: each makes its calls, builds its view and
//! prints it in the chosen format.

use std::io::Write;

use sluice_proto::control::v1 as pb;

use crate::args::{
    recording_ref, stream_ref, Command, Format, NodeRef, NodesCommand, PlayProtocol, RecordingRef,
    RecordingsCommand, StreamsCommand,
};
use crate::client::{status_error, Conn};
use crate::config::Settings;
use crate::error::CtlError;
use crate::output::{encode, encode_record, write};
use crate::render;
use crate::units::now_ms;
use crate::views::{
    self, AssignView, CapacityView, DeletedView, DrainView, IngestView, KickView, NodeList,
    NodeView, RecordingList, RecordingView, StreamList, StreamView,
};

/// Run a command that needs a connection (`check` makes its own, to report a failed one as a
/// check).
pub async fn run(
    command: Command,
    settings: &Settings,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    if let Command::Check(args) = command {
        return crate::check::run(&args, settings, format, out).await;
    }
    check_names(&command)?;
    let conn = Conn::connect(settings).await?;
    match command {
        Command::Nodes(cmd) => nodes(&conn, cmd, format, out).await,
        Command::Streams(cmd) => streams(&conn, cmd, format, out).await,
        Command::Recordings(cmd) => recordings(&conn, cmd, format, out).await,
        Command::Ladders(cmd) => crate::ladders::run(&conn, cmd, format, out).await,
        Command::Catalog(cmd) => crate::catalog::run(&conn, cmd, format, out).await,
        Command::Schedule(cmd) => crate::schedule::run(&conn, cmd, format, out).await,
        Command::Capacity => {
            let c = conn
                .call("GetCapacity", conn.control().get_capacity(pb::GetCapacityRequest {}))
                .await?;
            write(out, &encode(format, &CapacityView::from(c), render::capacity)?);
            Ok(())
        }
        Command::Assign { stream, protocol, hint, avoid, client_ip } => {
            let (app, name) = stream_ref(&stream)?;
            let protocol = match protocol {
                PlayProtocol::Flv => pb::Protocol::HttpFlv,
                PlayProtocol::Hls => pb::Protocol::Hls,
                PlayProtocol::Rtmp => pb::Protocol::Rtmp,
            };
            let request = pb::AssignViewerRequest {
                app,
                stream: name,
                protocol: protocol.into(),
                client_hint: hint,
                avoid_edges: avoid,
                client_ip: client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            };
            let answer = conn
                .call("AssignViewer", conn.control().assign_viewer(request))
                .await
                .map_err(|e| no_publisher(e, &stream))?;
            write(out, &encode(format, &AssignView::from(answer), render::assign)?);
            Ok(())
        }
        Command::Ingest { stream } => {
            let (app, name) = stream_ref(&stream)?;
            let request = pb::ResolveIngestRequest { app, stream: name };
            let answer = conn.call("ResolveIngest", conn.control().resolve_ingest(request)).await?;
            write(out, &encode(format, &IngestView::from(answer), render::ingest)?);
            Ok(())
        }
        // Handled by `main` without a connection.
        Command::Check(_) | Command::Config(_) | Command::Completion { .. } => {
            Err(CtlError::Usage("this command takes no connection".into()))
        }
    }
}

/// A misspelt stream name is a usage error, reported before any connection is tried.
fn check_names(command: &Command) -> Result<(), CtlError> {
    match command {
        Command::Assign { stream, .. }
        | Command::Ingest { stream }
        | Command::Streams(StreamsCommand::Show { stream } | StreamsCommand::Kick { stream }) => {
            stream_ref(stream).map(drop)
        }
        Command::Recordings(
            RecordingsCommand::Show(RecordingRef { recording, .. })
            | RecordingsCommand::Rm(RecordingRef { recording, .. }),
        ) => recording_ref(recording).map(drop),
        Command::Schedule(crate::schedule::ScheduleCommand::Add { stream, .. }) => {
            stream_ref(stream).map(drop)
        }
        _ => Ok(()),
    }
}

/// NOT_FOUND for a stream means it has no publisher: say so with its name.
fn no_publisher(e: CtlError, stream: &str) -> CtlError {
    match e {
        CtlError::NotFound(_) => CtlError::NotFound(format!("stream {stream} has no publisher")),
        other => other,
    }
}

async fn nodes(
    conn: &Conn,
    cmd: NodesCommand,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match cmd {
        NodesCommand::Ls => {
            let list =
                conn.call("ListNodes", conn.control().list_nodes(pb::ListNodesRequest {})).await?;
            let view = NodeList { nodes: views::nodes(list.nodes) };
            let now = now_ms();
            write(out, &encode(format, &view, |v| render::node_list(v, now))?);
        }
        NodesCommand::Show(NodeRef { id, role }) => {
            let node = conn
                .call("GetNode", conn.control().get_node(pb::GetNodeRequest { id, role }))
                .await?;
            let now = now_ms();
            write(out, &encode(format, &NodeView::from(node), |v| render::node(v, now))?);
        }
        NodesCommand::Drain { node: NodeRef { id, role }, deadline } => {
            let deadline_seconds = match deadline {
                None => 0,
                Some(d) => {
                    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                    u32::try_from(secs)
                        .map_err(|_| CtlError::Usage("the deadline is too long".into()))?
                }
            };
            let request = pb::DrainNodeRequest { id: id.clone(), role, deadline_seconds };
            let answer = conn.call("DrainNode", conn.control().drain_node(request)).await?;
            let view = DrainView {
                node: answer.node.map(NodeView::from),
                deadline_ms: Some(answer.deadline_ms),
            };
            let now = now_ms();
            write(out, &encode(format, &view, |v| render::drain(v, &id, now))?);
        }
        NodesCommand::Undrain(NodeRef { id, role }) => {
            let request = pb::UndrainNodeRequest { id: id.clone(), role };
            let answer = conn.call("UndrainNode", conn.control().undrain_node(request)).await?;
            let view = DrainView { node: answer.node.map(NodeView::from), deadline_ms: None };
            write(out, &encode(format, &view, |v| render::drain(v, &id, 0))?);
        }
    }
    Ok(())
}

async fn streams(
    conn: &Conn,
    cmd: StreamsCommand,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match cmd {
        StreamsCommand::Ls => {
            let list = conn
                .call("ListStreams", conn.control().list_streams(pb::ListStreamsRequest {}))
                .await?;
            let view = StreamList { streams: views::streams(list.streams) };
            let now = now_ms();
            write(out, &encode(format, &view, |v| render::stream_list(v, now))?);
        }
        StreamsCommand::Show { stream } => {
            let (app, name) = stream_ref(&stream)?;
            let request = pb::GetStreamRequest { app, stream: name };
            let answer = conn
                .call("GetStream", conn.control().get_stream(request))
                .await
                .map_err(|e| no_publisher(e, &stream))?;
            let now = now_ms();
            write(out, &encode(format, &StreamView::from(answer), |v| render::stream(v, now))?);
        }
        StreamsCommand::Kick { stream } => {
            let (app, name) = stream_ref(&stream)?;
            let request = pb::KickPublisherRequest { app, stream: name };
            let answer = conn
                .call("KickPublisher", conn.control().kick_publisher(request))
                .await
                .map_err(|e| no_publisher(e, &stream))?;
            let view = KickView { stream, origin_id: answer.origin_id };
            write(out, &encode(format, &view, render::kick)?);
        }
        StreamsCommand::Watch { no_initial } => watch(conn, !no_initial, format, out).await?,
    }
    Ok(())
}

async fn recordings(
    conn: &Conn,
    cmd: RecordingsCommand,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match cmd {
        RecordingsCommand::Ls { app, stream, limit } => {
            let request = pb::ListRecordingsRequest {
                app: app.unwrap_or_default(),
                stream: stream.unwrap_or_default(),
                limit,
            };
            let list = conn.call("ListRecordings", conn.control().list_recordings(request)).await?;
            write(out, &encode(format, &RecordingList::from(list), render::recording_list)?);
        }
        RecordingsCommand::Show(RecordingRef { recording, origin }) => {
            let (app, stream, id) = recording_ref(&recording)?;
            let request = pb::GetRecordingRequest { origin_id: origin, app, stream, id };
            let answer = conn.call("GetRecording", conn.control().get_recording(request)).await?;
            write(out, &encode(format, &RecordingView::from(answer), render::recording)?);
        }
        RecordingsCommand::Rm(RecordingRef { recording, origin }) => {
            let (app, stream, id) = recording_ref(&recording)?;
            let request = pb::DeleteRecordingRequest { origin_id: origin, app, stream, id };
            let answer =
                conn.call("DeleteRecording", conn.control().delete_recording(request)).await?;
            write(out, &encode(format, &DeletedView::from(answer), render::deleted)?);
        }
    }
    Ok(())
}

/// Print events until the control plane ends the stream (or the user interrupts).
async fn watch(
    conn: &Conn,
    initial: bool,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    // Only opening the stream is bounded by the timeout: events may be minutes apart.
    let mut events = conn.call("Watch", conn.control().watch(pb::WatchRequest { initial })).await?;
    loop {
        match events.message().await {
            Ok(Some(event)) => {
                write(out, &encode_record(format, &views::EventView::from(event), render::event)?);
            }
            Ok(None) => return Ok(()),
            Err(status) => return Err(status_error(&status, "Watch", &conn.endpoint)),
        }
    }
}
