use super::*;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sluice_cluster::types::{NodeId, NodeInfo, NodeRecord};
use std::time::Duration;

fn target(id: &str) -> Target {
    Target {
        id: id.into(),
        api: Some(format!("{id}:9000")),
        http: Some(format!("{id}.example:80")),
    }
}

fn rec(app: &str, stream: &str, started: u64, finished: bool) -> Recording {
    let id = started.to_string();
    Recording {
        app: app.into(),
        stream: stream.into(),
        hls: format!("/vod/{app}/{stream}/{id}/index.m3u8"),
        mp4: finished.then(|| format!("/vod/{app}/{stream}/{id}.mp4")),
        id,
        started_at_ms: started,
        duration_s: 10.0,
        segments: 5,
        periods: 1,
        bytes: 1 << 20,
        finished,
    }
}

fn listing(recordings: Vec<Recording>, truncated: bool) -> Result<Listing, OriginApiError> {
    Ok(Listing { recordings, truncated })
}

#[test]
fn listings_merge_newest_first_within_the_limit() {
    let answers = vec![
        (
            target("o1"),
            listing(vec![rec("live", "a", 300, false), rec("live", "a", 100, true)], false),
        ),
        (target("o2"), Err(OriginApiError::Timeout(Duration::from_secs(5)))),
        (
            target("o3"),
            listing(vec![rec("live", "b", 200, true), rec("live", "b", 100, true)], false),
        ),
    ];
    let (all, failed) = merge(answers.clone(), 10);
    let order: Vec<(&str, u64)> =
        all.recordings.iter().map(|r| (r.origin_id.as_str(), r.started_at_ms)).collect();
    assert_eq!(order, [("o1", 300), ("o3", 200), ("o1", 100), ("o3", 100)], "ties by origin");
    assert!(!all.truncated);
    assert_eq!(all.unreachable_origins, ["o2"]);
    assert_eq!(failed, [("o2".to_string(), OriginApiError::Timeout(Duration::from_secs(5)))]);
    let first = &all.recordings[0];
    assert_eq!(first.hls_url, "http://o1.example:80/vod/live/a/300/index.m3u8");
    assert_eq!(first.mp4_url, "", "no MP4 before it finishes");
    assert_eq!(all.recordings[1].mp4_url, "http://o3.example:80/vod/live/b/200.mp4");

    let (two, _) = merge(answers.clone(), 2);
    let ids: Vec<u64> = two.recordings.iter().map(|r| r.started_at_ms).collect();
    assert_eq!((ids, two.truncated), (vec![300, 200], true));
    // An origin's own truncation shows even when the merged list fits.
    let (one, _) = merge(vec![(target("o1"), listing(vec![rec("live", "a", 1, true)], true))], 5);
    assert!(one.truncated);
    // Origins sharing a store list the same recording: it is listed once, under the first.
    let shared = vec![rec("live", "s", 50, true)];
    let (once, _) = merge(
        vec![
            (target("o2"), listing(shared.clone(), false)),
            (target("o1"), listing(shared, false)),
        ],
        5,
    );
    let origins: Vec<&str> = once.recordings.iter().map(|r| r.origin_id.as_str()).collect();
    assert_eq!(origins, ["o1"]);
    let (none, failed) = merge(Vec::new(), 5);
    assert!(none.recordings.is_empty() && !none.truncated && failed.is_empty());
}

#[test]
fn limits_default_and_cap() {
    assert_eq!((limit(0), limit(7), limit(1000), limit(5000)), (100, 7, 1000, 1000));
}

#[test]
fn names_are_checked_before_any_origin_is_asked() {
    assert_eq!(name_filter("app", "").unwrap(), None);
    assert_eq!(name_filter("stream", "x-1").unwrap().as_deref(), Some("x-1"));
    for (what, bad) in [("app", "a/b"), ("app", "api"), ("stream", "x?y"), ("stream", "a b")] {
        let e = name_filter(what, bad).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what} {bad}");
    }
    assert!(recording_ref("live", "x", "1700000000000").is_ok());
    for (app, stream, id) in
        [("live", "x", ""), ("live", "x", "12a"), ("live", "", "1"), ("..", "x", "1")]
    {
        let e = recording_ref(app, stream, id).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{app}/{stream}/{id}");
    }
}

#[test]
fn missing_recordings_and_failed_deletes_are_clear_statuses() {
    let timeout = || ("o2".to_string(), OriginApiError::Timeout(Duration::from_secs(5)));
    let e = not_found("live/x/1", "", &[]);
    assert_eq!(
        (e.code(), e.message()),
        (tonic::Code::NotFound, "no origin holds recording live/x/1")
    );
    let e = not_found("live/x/1", "o1", &[]);
    assert_eq!(e.message(), "origin o1 holds no recording live/x/1");
    let e = not_found("live/x/1", "", &[timeout()]);
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert_eq!(
        e.message(),
        "recording live/x/1 is on none of the origins that answered; could not ask o2 (no answer within 5s)"
    );
    let e = not_found("live/x/1", "o2", &[timeout()]);
    assert_eq!(e.message(), "could not ask o2 (no answer within 5s)");
    let many: Failures = (0..5).map(|i| (format!("o{i}"), OriginApiError::NoApiAddress)).collect();
    assert!(not_found("a/b/1", "", &many).message().ends_with(", and 2 more"));

    let e = delete_failed("live/x/1", &[], &[("o1".into(), OriginApiError::InProgress)]);
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("still being written"), "{}", e.message());
    let e = delete_failed("live/x/1", &[], &[("o1".into(), OriginApiError::NotFound)]);
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = delete_failed("live/x/1", &["o1".into()], &[timeout()]);
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert_eq!(
        e.message(),
        "recording live/x/1 deleted on o1, but not on o2 (no answer within 5s)"
    );
}

// --- Against origins serving the recordings API (axum, on loopback). ---

const TOKEN: &str = "Bearer cp-token";

type Store = Arc<Mutex<Vec<Recording>>>;

fn json(r: &Recording) -> serde_json::Value {
    serde_json::json!({
        "app": r.app, "stream": r.stream, "id": r.id, "started_at_ms": r.started_at_ms,
        "duration_s": r.duration_s, "segments": r.segments, "periods": r.periods,
        "bytes": r.bytes, "finished": r.finished, "hls": r.hls, "mp4": r.mp4,
    })
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").is_some_and(|v| v == TOKEN)
}

async fn fake_list(State(store): State<Store>, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let all: Vec<_> = lock(&store).iter().map(json).collect();
    axum::Json(serde_json::json!({ "recordings": all, "truncated": false })).into_response()
}

async fn fake_one(
    State(store): State<Store>,
    headers: HeaderMap,
    method: axum::http::Method,
    Path((app, stream, id)): Path<(String, String, String)>,
) -> Response {
    if !authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut store = lock(&store);
    let Some(i) = store.iter().position(|r| (&r.app, &r.stream, &r.id) == (&app, &stream, &id))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if method == axum::http::Method::DELETE {
        if !store[i].finished {
            return StatusCode::CONFLICT.into_response();
        }
        store.remove(i);
        return StatusCode::NO_CONTENT.into_response();
    }
    axum::Json(json(&store[i])).into_response()
}

/// An origin holding `recordings`; its address and store.
async fn fake_origin(recordings: Vec<Recording>) -> (String, Store) {
    let store = Arc::new(Mutex::new(recordings));
    let app = axum::Router::new()
        .route("/api/recordings", get(fake_list))
        .route("/api/recordings/{app}/{stream}/{id}", get(fake_one).delete(fake_one))
        .with_state(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, store)
}

fn snapshot(origins: &[(&str, Option<&str>)]) -> Snapshot {
    let mut snap = Snapshot { revision: 3, connected: true, ..Snapshot::default() };
    for (name, api) in origins {
        let id = NodeId::new(name).unwrap();
        let mut info = NodeInfo::default();
        info.addresses.insert("http".into(), format!("{name}.example:8080"));
        if let Some(api) = api {
            info.addresses.insert("api".into(), (*api).to_string());
        }
        let rec = NodeRecord {
            role: Role::Origin,
            id: id.clone(),
            info,
            lease: 1,
            create_revision: 1,
            mod_revision: 1,
        };
        snap.nodes.insert((Role::Origin, id), rec);
    }
    snap
}

fn service(counters: &Arc<Counters>) -> Recordings {
    let api =
        OriginApi::with_timeout(Some(HeaderValue::from_static(TOKEN)), Duration::from_secs(2));
    Recordings::new(api, counters.clone())
}

fn req(origin: &str, id: u64) -> pb::GetRecordingRequest {
    pb::GetRecordingRequest {
        origin_id: origin.into(),
        app: "live".into(),
        stream: "x".into(),
        id: id.to_string(),
    }
}

fn del(origin: &str, id: u64) -> pb::DeleteRecordingRequest {
    let r = req(origin, id);
    pb::DeleteRecordingRequest { origin_id: r.origin_id, app: r.app, stream: r.stream, id: r.id }
}

#[tokio::test]
async fn the_origins_are_listed_looked_up_and_deleted_from() {
    let (a1, s1) =
        fake_origin(vec![rec("live", "x", 3000, false), rec("live", "x", 1000, true)]).await;
    let (a2, _) = fake_origin(vec![rec("live", "y", 2000, true)]).await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let snap = snapshot(&[
        ("o1", Some(&a1)),
        ("o2", Some(&a2)),
        ("o3", Some(&refused.to_string())),
        ("o4", None),
    ]);
    let counters = Arc::new(Counters::default());
    let svc = service(&counters);

    let list = svc.list(&snap, pb::ListRecordingsRequest::default()).await.unwrap();
    let got: Vec<(&str, &str)> =
        list.recordings.iter().map(|r| (r.origin_id.as_str(), r.id.as_str())).collect();
    assert_eq!(got, [("o1", "3000"), ("o2", "2000"), ("o1", "1000")]);
    assert_eq!(list.unreachable_origins, ["o3", "o4"]);
    assert_eq!(list.recordings[1].hls_url, "http://o2.example:8080/vod/live/y/2000/index.m3u8");
    assert_eq!(counters.origin_api_failures(), 2);
    let two = pb::ListRecordingsRequest { limit: 2, ..Default::default() };
    assert!(svc.list(&snap, two).await.unwrap().truncated);
    let bad = pb::ListRecordingsRequest { app: "no/app".into(), ..Default::default() };
    assert_eq!(svc.list(&snap, bad).await.unwrap_err().code(), tonic::Code::InvalidArgument);

    // One recording: wherever it is, or on the named origin.
    let r = svc.get(&snap, req("", 1000)).await.unwrap();
    assert_eq!((r.origin_id.as_str(), r.finished), ("o1", true));
    assert_eq!(r.mp4_url, "http://o1.example:8080/vod/live/x/1000.mp4");
    let e = svc.get(&snap, req("o2", 1000)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (tonic::Code::NotFound, "origin o2 holds no recording live/x/1000")
    );
    let e = svc.get(&snap, req("", 5)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "o3 and o4 might hold it: {}", e.message());
    let unknown = Snapshot::default();
    let e = svc.list(&unknown, pb::ListRecordingsRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "not listed yet: {}", e.message());
    let e = svc.get(&snap, req("o9", 1000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("no origin \"o9\""), "{}", e.message());

    // Delete: refused while written, done once finished, then gone.
    let e = svc.delete(&snap, del("", 3000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
    assert_eq!(lock(&s1).len(), 2, "nothing deleted");
    let done = svc.delete(&snap, del("o1", 1000)).await.unwrap();
    assert_eq!(done.deleted.len(), 1);
    assert_eq!((done.deleted[0].origin_id.as_str(), done.deleted[0].id.as_str()), ("o1", "1000"));
    assert_eq!(lock(&s1).len(), 1);
    let e = svc.delete(&snap, del("o1", 1000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn an_origin_refusing_the_token_is_unreachable_not_empty() {
    let (addr, _) = fake_origin(vec![rec("live", "x", 1000, true)]).await;
    let snap = snapshot(&[("o1", Some(&addr))]);
    let counters = Arc::new(Counters::default());
    let api = OriginApi::with_timeout(None, Duration::from_secs(2));
    let svc = Recordings::new(api, counters);
    let list = svc.list(&snap, pb::ListRecordingsRequest::default()).await.unwrap();
    assert!(list.recordings.is_empty());
    assert_eq!(list.unreachable_origins, ["o1"]);
    let e = svc.get(&snap, req("o1", 1000)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert!(
        e.message().contains("refused the control plane's token (HTTP 401)"),
        "{}",
        e.message()
    );
}
