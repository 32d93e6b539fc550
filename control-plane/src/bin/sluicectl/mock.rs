//! Tests of the commands end to end in process: a mock `ControlPlane` server answering
//! hand-built messages (including the management RPCs a real replica does not serve yet:
//! drain, undrain, kick, watch; and the recordings calls), requiring a bearer token, and the
//! commands' printed output.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_server::{ControlPlane, ControlPlaneServer};
use tonic::{Request, Response, Status};

use crate::args::Cli;
use crate::config::{Settings, Token};
use crate::error::CtlError;

const TOKEN: &str = "s3cret";
const DEADLINE_MS: u64 = 1_700_000_030_000;

#[derive(Default)]
struct Mock {
    /// The deadline of the last DrainNode call.
    drain_seconds: Arc<AtomicU32>,
}

fn node(id: &str) -> pb::Node {
    pb::Node { id: id.into(), role: "edge".into(), state: "draining".into(), ..pb::Node::default() }
}

fn stream_x() -> pb::Stream {
    pb::Stream {
        app: "live".into(),
        name: "x".into(),
        origin: "o1".into(),
        codecs: vec!["h264".into()],
        ..pb::Stream::default()
    }
}

fn recording(id: &str, finished: bool) -> pb::Recording {
    pb::Recording {
        origin_id: "o1".into(),
        app: "live".into(),
        stream: "x".into(),
        id: id.into(),
        started_at_ms: id.parse::<u64>().unwrap() * 1_000_000,
        duration_s: 10.0,
        segments: 5,
        periods: 1,
        bytes: 2 << 20,
        finished,
        hls_url: format!("http://o1:8080/vod/live/x/{id}/index.m3u8"),
        mp4_url: if finished {
            format!("http://o1:8080/vod/live/x/{id}.mp4")
        } else {
            String::new()
        },
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ControlPlane for Mock {
    async fn assign_viewer(
        &self,
        _: Request<pb::AssignViewerRequest>,
    ) -> Answer<pb::AssignViewerResponse> {
        Err(Status::unavailable("no edge is available"))
    }
    async fn resolve_ingest(
        &self,
        _: Request<pb::ResolveIngestRequest>,
    ) -> Answer<pb::ResolveIngestResponse> {
        Ok(Response::new(pb::ResolveIngestResponse {
            url: "rtmp://o1/live/x".into(),
            origin_id: "o1".into(),
        }))
    }
    async fn get_capacity(
        &self,
        _: Request<pb::GetCapacityRequest>,
    ) -> Answer<pb::GetCapacityResponse> {
        Err(Status::internal("boom"))
    }
    async fn list_nodes(&self, _: Request<pb::ListNodesRequest>) -> Answer<pb::ListNodesResponse> {
        Ok(Response::new(pb::ListNodesResponse { nodes: vec![node("e1")] }))
    }
    async fn list_streams(
        &self,
        _: Request<pb::ListStreamsRequest>,
    ) -> Answer<pb::ListStreamsResponse> {
        Ok(Response::new(pb::ListStreamsResponse { streams: vec![stream_x()] }))
    }
    async fn get_node(&self, r: Request<pb::GetNodeRequest>) -> Answer<pb::Node> {
        Err(Status::not_found(format!("no node {:?} is registered", r.get_ref().id)))
    }
    async fn get_stream(&self, _: Request<pb::GetStreamRequest>) -> Answer<pb::Stream> {
        Ok(Response::new(stream_x()))
    }
    async fn drain_node(&self, r: Request<pb::DrainNodeRequest>) -> Answer<pb::DrainNodeResponse> {
        self.drain_seconds.store(r.get_ref().deadline_seconds, Ordering::Relaxed);
        let node = Some(node(&r.get_ref().id));
        Ok(Response::new(pb::DrainNodeResponse { node, deadline_ms: DEADLINE_MS }))
    }
    async fn undrain_node(
        &self,
        r: Request<pb::UndrainNodeRequest>,
    ) -> Answer<pb::UndrainNodeResponse> {
        Ok(Response::new(pb::UndrainNodeResponse { node: Some(node(&r.get_ref().id)) }))
    }
    async fn set_ladder(&self, r: Request<pb::SetLadderRequest>) -> Answer<pb::Ladder> {
        r.into_inner()
            .ladder
            .map(Response::new)
            .ok_or_else(|| Status::invalid_argument("no ladder"))
    }
    async fn delete_ladder(
        &self,
        r: Request<pb::DeleteLadderRequest>,
    ) -> Answer<pb::DeleteLadderResponse> {
        if r.get_ref().app == "live" {
            Ok(Response::new(pb::DeleteLadderResponse {}))
        } else {
            Err(Status::not_found("tv has no ladder set through the control plane"))
        }
    }
    async fn list_ladders(
        &self,
        _: Request<pb::ListLaddersRequest>,
    ) -> Answer<pb::ListLaddersResponse> {
        Ok(Response::new(pb::ListLaddersResponse { ladders: vec![] }))
    }
    async fn add_schedule_entry(
        &self,
        r: Request<pb::AddScheduleEntryRequest>,
    ) -> Answer<pb::ScheduleEntry> {
        let r = r.into_inner();
        if !r.file.ends_with(".flv") {
            return Err(Status::invalid_argument("only FLV files (.flv) are played out"));
        }
        Ok(Response::new(pb::ScheduleEntry {
            id: "0123456789ab".into(),
            app: r.app,
            stream: r.stream,
            file: r.file,
            start_ms: r.start_ms,
            r#loop: r.r#loop,
            state: "waiting".into(),
            node: String::new(),
            recording: r.recording,
        }))
    }
    async fn remove_schedule_entry(
        &self,
        r: Request<pb::RemoveScheduleEntryRequest>,
    ) -> Answer<pb::RemoveScheduleEntryResponse> {
        match r.get_ref().id.as_str() {
            "0123456789ab" => Ok(Response::new(pb::RemoveScheduleEntryResponse {})),
            id => Err(Status::not_found(format!("no schedule entry {id}"))),
        }
    }
    async fn list_schedule(
        &self,
        _: Request<pb::ListScheduleRequest>,
    ) -> Answer<pb::ListScheduleResponse> {
        Ok(Response::new(pb::ListScheduleResponse { entries: vec![] }))
    }
    async fn search_catalog(
        &self,
        r: Request<pb::SearchCatalogRequest>,
    ) -> Answer<pb::SearchCatalogResponse> {
        let r = r.into_inner();
        if r.text == "nothing" {
            return Ok(Response::new(pb::SearchCatalogResponse::default()));
        }
        Ok(Response::new(pb::SearchCatalogResponse {
            items: vec![catalog_item(&format!("found by {:?} {:?}", r.text, r.tags))],
            next_page_token: "1700000000000:live/cup/1700000000000".into(),
        }))
    }
    async fn get_catalog_item(
        &self,
        r: Request<pb::GetCatalogItemRequest>,
    ) -> Answer<pb::CatalogItem> {
        match r.get_ref().id.as_str() {
            "live/cup/1700000000000" => Ok(Response::new(catalog_item("Cup final"))),
            _ => Err(Status::not_found("no such catalog item")),
        }
    }
    async fn update_catalog_item(
        &self,
        r: Request<pb::UpdateCatalogItemRequest>,
    ) -> Answer<pb::CatalogItem> {
        let r = r.into_inner();
        let mut item = catalog_item(r.title.as_deref().unwrap_or("Cup final"));
        if r.set_tags {
            item.tags = r.tags;
        }
        Ok(Response::new(item))
    }
    async fn kick_publisher(
        &self,
        r: Request<pb::KickPublisherRequest>,
    ) -> Answer<pb::KickPublisherResponse> {
        if r.get_ref().stream == "x" {
            Ok(Response::new(pb::KickPublisherResponse { origin_id: "o1".into() }))
        } else {
            Err(Status::not_found("the stream has no publisher"))
        }
    }
    async fn list_recordings(
        &self,
        r: Request<pb::ListRecordingsRequest>,
    ) -> Answer<pb::ListRecordingsResponse> {
        let r = r.into_inner();
        let mut recordings = vec![recording("2000", false), recording("1000", true)];
        recordings.retain(|x| r.app.is_empty() || x.app == r.app);
        recordings.truncate(r.limit as usize);
        Ok(Response::new(pb::ListRecordingsResponse {
            truncated: recordings.len() < 2,
            recordings,
            unreachable_origins: vec!["o2".into()],
        }))
    }
    async fn get_recording(&self, r: Request<pb::GetRecordingRequest>) -> Answer<pb::Recording> {
        match r.get_ref().id.as_str() {
            id @ ("1000" | "2000") => Ok(Response::new(recording(id, id == "1000"))),
            _ => Err(Status::not_found("no origin holds recording live/x/3")),
        }
    }
    async fn delete_recording(
        &self,
        r: Request<pb::DeleteRecordingRequest>,
    ) -> Answer<pb::DeleteRecordingResponse> {
        match r.get_ref().id.as_str() {
            "1000" => Ok(Response::new(pb::DeleteRecordingResponse {
                deleted: vec![recording("1000", true)],
            })),
            "2000" => Err(Status::failed_precondition(
                "recording live/x/2000 on o1 is still being written: it can be deleted once it \
                 finishes",
            )),
            _ => Err(Status::not_found("no origin holds recording live/x/3")),
        }
    }
    type WatchStream = tokio_stream::Iter<std::vec::IntoIter<Result<pb::WatchEvent, Status>>>;
    async fn watch(&self, r: Request<pb::WatchRequest>) -> Answer<Self::WatchStream> {
        let mut events = vec![Ok(pb::WatchEvent {
            kind: pb::watch_event::Kind::StreamEnded.into(),
            stream: Some(stream_x()),
            revision: 9,
            at_ms: 3_600_000,
            node: None,
        })];
        if r.get_ref().initial {
            let added = pb::WatchEvent {
                kind: pb::watch_event::Kind::NodeAdded.into(),
                node: Some(node("e1")),
                revision: 8,
                ..pb::WatchEvent::default()
            };
            events.insert(0, Ok(added));
        }
        Ok(Response::new(tokio_stream::iter(events)))
    }
}

fn require_token(request: Request<()>) -> Result<Request<()>, Status> {
    match request.metadata().get("authorization") {
        Some(v) if v == format!("Bearer {TOKEN}").as_str() => Ok(request),
        _ => Err(Status::unauthenticated("a valid bearer token is required")),
    }
}

/// Serve the mock on a free port; its endpoint URL and drain record.
async fn serve() -> (String, Arc<AtomicU32>) {
    let mock = Mock::default();
    let drain_seconds = mock.drain_seconds.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = ControlPlaneServer::with_interceptor(mock, require_token);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (url, drain_seconds)
}

/// Run a command line against the mock; its stdout text.
async fn run(url: &str, token: Option<&str>, line: &[&str]) -> Result<String, CtlError> {
    let cli = Cli::try_parse_from(std::iter::once("sluicectl").chain(line.iter().copied()))
        .expect("valid command line");
    let settings = Settings {
        endpoint: url.to_string(),
        token: token.map(|t| Token::Literal(t.to_string())),
        timeout: Duration::from_secs(5),
        ca: None,
        context: None,
    };
    let mut out = Vec::new();
    crate::commands::run(cli.command, &settings, cli.global.output, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn drain_and_undrain_send_the_deadline_and_print_one_line() {
    let (url, drain_seconds) = serve().await;
    let text = run(&url, Some(TOKEN), &["nodes", "drain", "e1", "--deadline", "30s", "-o", "json"])
        .await
        .unwrap();
    assert_eq!(drain_seconds.load(Ordering::Relaxed), 30);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["deadline_ms"].as_u64(), &v["node"]["id"]), (Some(DEADLINE_MS), &"e1".into()));
    run(&url, Some(TOKEN), &["nodes", "drain", "e1", "--deadline", "1500ms"]).await.unwrap();
    assert_eq!(drain_seconds.load(Ordering::Relaxed), 2, "rounded up to whole seconds");
    let text = run(&url, Some(TOKEN), &["nodes", "undrain", "e1"]).await.unwrap();
    assert_eq!(text, "node e1 takes new work again\n");
}

#[tokio::test]
async fn kick_names_the_origin_or_says_there_is_no_publisher() {
    let (url, _) = serve().await;
    let text = run(&url, Some(TOKEN), &["streams", "kick", "live/x"]).await.unwrap();
    assert_eq!(text, "publisher of live/x closed on o1\n");
    let err = run(&url, Some(TOKEN), &["streams", "kick", "live/none"]).await.unwrap_err();
    assert_eq!(err.to_string(), "stream live/none has no publisher");
    assert_eq!(err.exit_code(), crate::error::exit::NOT_FOUND);
}

#[tokio::test]
async fn ladders_set_show_what_was_set_and_rm_names_a_missing_one() {
    let (url, _) = serve().await;
    let args = ["ladders", "set", "live", "--rendition", "480p:480:1000", "--rendition"];
    let text =
        run(&url, Some(TOKEN), &[&args[..], &["240p:240:400:64@15"]].concat()).await.unwrap();
    assert_eq!(
        text,
        "APP   RENDITION  HEIGHT  VIDEO        AUDIO          FPS\n\
         live  480p       480     1000 kbit/s  source         source\n\
         live  240p       240     400 kbit/s   AAC 64 kbit/s  15\n"
    );
    let text = run(&url, Some(TOKEN), &["ladders", "ls"]).await.unwrap();
    assert_eq!(text, "no ladders set through the control plane\n");
    let text = run(&url, Some(TOKEN), &["ladders", "rm", "live"]).await.unwrap();
    assert_eq!(text, "ladder of live deleted: its origins use their files\n");
    let err = run(&url, Some(TOKEN), &["ladders", "rm", "tv"]).await.unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::NOT_FOUND);
}

#[tokio::test]
async fn catalog_search_show_and_set() {
    let (url, _) = serve().await;
    let args = ["catalog", "search", "cup", "final", "--tag", "sport"];
    let text = run(&url, Some(TOKEN), &args).await.unwrap();
    assert_eq!(
        text,
        "ID                      KIND       TITLE                           STARTED              LENGTH  SIZE    TAGS\n\
         live/cup/1700000000000  recording  found by \"cup final\" [\"sport\"]  2023-11-14 22:13:20  1m30s   12 MiB  sport\n\
         more: --page '1700000000000:live/cup/1700000000000'\n"
    );
    let text = run(&url, Some(TOKEN), &["catalog", "search", "nothing"]).await.unwrap();
    assert_eq!(text, "no items found\n");
    let text = run(&url, Some(TOKEN), &["catalog", "show", "live/cup/1700000000000"]).await;
    let text = text.unwrap();
    assert!(text.contains("h264 1280x720") && text.contains("Cup final"), "{text}");
    let err = run(&url, Some(TOKEN), &["catalog", "show", "live/none"]).await.unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::NOT_FOUND);
    let args = ["catalog", "set", "live/cup/1700000000000", "--title", "Final", "--tag", "x"];
    let text = run(&url, Some(TOKEN), &[&args[..], &["-o", "json"]].concat()).await.unwrap();
    let item: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (item["title"].as_str(), item["tags"].clone()),
        (Some("Final"), serde_json::json!(["x"]))
    );
}

#[tokio::test]
async fn watch_prints_one_record_per_event_until_the_stream_ends() {
    let (url, _) = serve().await;
    let text = run(&url, Some(TOKEN), &["streams", "watch", "-o", "json"]).await.unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(kinds, ["\"node_added\"", "\"stream_ended\""]);
    let text = run(&url, Some(TOKEN), &["streams", "watch", "--no-initial"]).await.unwrap();
    assert_eq!(text, "01:00:00Z  stream_ended    live/x on o1 h264  (revision 9)\n");
}

#[tokio::test]
async fn the_token_is_sent_and_a_missing_one_is_reported() {
    let (url, _) = serve().await;
    let err = run(&url, None, &["nodes", "ls"]).await.unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::UNAUTHORISED);
    assert!(err.to_string().contains("a valid bearer token is required"), "{err}");
    let text = run(&url, Some(TOKEN), &["nodes", "ls", "-o", "yaml"]).await.unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(v["nodes"][0]["id"], "e1", "{text}");
}

#[tokio::test]
async fn server_answers_become_clear_errors() {
    let (url, _) = serve().await;
    let err = run(&url, Some(TOKEN), &["nodes", "show", "nobody"]).await.unwrap_err();
    assert_eq!(err.to_string(), "no node \"nobody\" is registered");
    let err = run(&url, Some(TOKEN), &["assign", "live/x"]).await.unwrap_err();
    assert_eq!((err.to_string().as_str(), err.exit_code()), ("no edge is available", 3));
    let err = run(&url, Some(TOKEN), &["capacity"]).await.unwrap_err();
    assert_eq!(err.to_string(), "GetCapacity failed: boom (Internal)");
    let text = run(&url, Some(TOKEN), &["ingest", "live/x", "-o", "json"]).await.unwrap();
    assert!(text.contains("\"origin_id\": \"o1\""), "{text}");
}

#[tokio::test]
async fn recordings_are_listed_shown_and_removed() {
    let (url, _) = serve().await;
    let text = run(&url, Some(TOKEN), &["recordings", "ls"]).await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ORIGIN  STREAM  ID"), "{text}");
    assert!(
        lines[1].starts_with("o1      live/x  2000  ") && lines[1].ends_with("recording"),
        "{text}"
    );
    assert!(text.contains("not listed: what o2 holds"), "{text}");
    let json =
        run(&url, Some(TOKEN), &["recordings", "ls", "--limit", "1", "-o", "json"]).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["recordings"][0]["id"].as_str(), v["truncated"].as_bool()),
        (Some("2000"), Some(true))
    );
    assert_eq!(v["unreachable_origins"][0], "o2");

    let show = run(&url, Some(TOKEN), &["recordings", "show", "live/x/1000"]).await.unwrap();
    assert!(show.contains("mp4:       http://o1:8080/vod/live/x/1000.mp4\n"), "{show}");
    let err = run(&url, Some(TOKEN), &["recordings", "show", "live/x/3"]).await.unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.exit_code()),
        ("no origin holds recording live/x/3", 4)
    );

    let text = run(&url, Some(TOKEN), &["recordings", "rm", "live/x/1000"]).await.unwrap();
    assert_eq!(text, "recording live/x/1000 deleted on o1 (10s, 2 MiB)\n");
    let err = run(&url, Some(TOKEN), &["recordings", "rm", "live/x/2000"]).await.unwrap_err();
    assert!(err.to_string().contains("still being written"), "{err}");
    assert_eq!(err.exit_code(), crate::error::exit::FAILED);
    let err = run(&url, Some(TOKEN), &["recordings", "rm", "live/x"]).await.unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{err}");
    let err = run(&url, None, &["recordings", "ls"]).await.unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::UNAUTHORISED, "{err}");
}

/// A control plane that accepts connections but never answers: the call gives up at the
/// timeout with one clear error instead of hanging.
#[tokio::test]
async fn a_silent_control_plane_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cli = Cli::try_parse_from(["sluicectl", "nodes", "ls"]).unwrap();
    let settings = Settings {
        endpoint: url.clone(),
        token: None,
        timeout: Duration::from_millis(300),
        ca: None,
        context: None,
    };
    let err = crate::commands::run(cli.command, &settings, cli.global.output, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::UNREACHABLE, "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    drop(listener);
}

/// The catalog item the mock answers with.
fn catalog_item(title: &str) -> pb::CatalogItem {
    pb::CatalogItem {
        id: "live/cup/1700000000000".into(),
        kind: "recording".into(),
        app: "live".into(),
        stream: "cup".into(),
        title: title.into(),
        tags: vec!["sport".into()],
        started_ms: 1_700_000_000_000,
        ended_ms: Some(1_700_000_090_000),
        duration_ms: 90_000,
        video_codec: "h264".into(),
        audio_codec: "aac".into(),
        width: 1280,
        height: 720,
        size_bytes: 12_500_000,
        location: "/vod/live/cup/1700000000000/index.m3u8".into(),
        node: "o1".into(),
        ..pb::CatalogItem::default()
    }
}
