//! The recordings calls (`ListRecordings`, `GetRecording`, `DeleteRecording`). The control
//! plane keeps no recordings: it asks the origins' HTTP APIs ([`crate::origin_api`]) at the
//! `api` address each origin advertises, at most [`FAN_OUT`] at once and every origin by one
//! deadline, and merges what they answer (sans-IO: [`merge`], [`recording`]). An origin
//! without a usable answer is named in a listing's `unreachable_origins`, or makes a lookup
//! UNAVAILABLE when it might hold the recording; it is logged (rate-limited) and counted.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use sluice_cluster::types::{Role, Snapshot};
use sluice_media::stream_name::StreamKey;
use sluice_proto::control::v1 as pb;
use tokio::time::Instant;
use tonic::Status;

use crate::auth::{WarnLimiter, WARN_INTERVAL};
use crate::convert::stream_key;
use crate::counters::Counters;
use crate::lock::lock;
use crate::origin_api::{is_recording_id, Listing, OriginApi, OriginApiError, Recording};

/// Recordings listed when the request sets no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most one listing gives (the origins' own maximum).
pub const MAX_LIMIT: u32 = 1000;
/// Origins asked at once.
pub const FAN_OUT: usize = 16;
/// Failed origins named in one message before "and N more".
const NAMED_FAILURES: usize = 3;

/// An origin to ask, as the cache shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    /// Where its HTTP API answers (`api`); `None`: it advertises none.
    pub api: Option<String>,
    /// Where players reach it (`http`): the recordings' URLs.
    pub http: Option<String>,
}

/// Origins that gave no usable answer, with why.
pub type Failures = Vec<(String, OriginApiError)>;

/// The origins of `snap` by id, or only the one called `only` (NOT_FOUND when none is);
/// UNAVAILABLE before the cache's first listing (no origin is known yet, not none).
pub fn targets(snap: &Snapshot, only: &str) -> Result<Vec<Target>, Status> {
    if snap.revision == 0 {
        return Err(Status::unavailable("the control plane has not listed the cluster yet"));
    }
    let targets: Vec<Target> = snap
        .nodes
        .values()
        .filter(|n| n.role == Role::Origin && (only.is_empty() || n.id.as_str() == only))
        .map(|n| Target {
            id: n.id.to_string(),
            api: n.info.addresses.get("api").cloned(),
            http: n.info.addresses.get("http").cloned(),
        })
        .collect();
    if !only.is_empty() && targets.is_empty() {
        return Err(Status::not_found(format!("no origin {only:?} is registered")));
    }
    Ok(targets)
}

/// The listing limit a request asks for: 0 is [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`].
pub fn limit(asked: u32) -> u32 {
    match asked {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// An app or stream name to filter on (`None`: no filter); INVALID_ARGUMENT when it cannot
/// be a name.
fn name_filter(what: &str, value: &str) -> Result<Option<String>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    let (app, stream) = if what == "app" { (value, "x") } else { ("x", value) };
    match StreamKey::parse(app, stream) {
        Ok((_, None)) => Ok(Some(value.to_string())),
        _ => Err(Status::invalid_argument(format!("invalid {what} name {value:?}"))),
    }
}

/// A recording's names from a request.
fn recording_ref(app: &str, stream: &str, id: &str) -> Result<(StreamKey, String), Status> {
    let key = stream_key(app, stream)?;
    if !is_recording_id(id) {
        return Err(Status::invalid_argument(format!(
            "a recording id is its start in Unix ms (digits), not {id:?}"
        )));
    }
    Ok((key, id.to_string()))
}

/// A recording as the API shows it: on `origin`, its URLs on the origin's player address.
pub fn recording(origin: &Target, r: Recording) -> pb::Recording {
    let url = |path: &str| {
        origin.http.as_deref().map_or_else(String::new, |http| format!("http://{http}{path}"))
    };
    // Made from the checked names, not the paths the origin sent.
    let base = format!("/vod/{}/{}/{}", r.app, r.stream, r.id);
    pb::Recording {
        origin_id: origin.id.clone(),
        hls_url: url(&format!("{base}/index.m3u8")),
        mp4_url: if r.finished { url(&format!("{base}.mp4")) } else { String::new() },
        app: r.app,
        stream: r.stream,
        id: r.id,
        started_at_ms: r.started_at_ms,
        duration_s: r.duration_s,
        segments: r.segments,
        periods: r.periods,
        bytes: r.bytes,
        finished: r.finished,
    }
}

/// The origins' listings as one: newest first (then by origin, app, stream), at most `limit`,
/// truncated when any origin's or this limit left some out; and the origins that failed.
pub fn merge(
    answers: Vec<(Target, Result<Listing, OriginApiError>)>,
    limit: usize,
) -> (pb::ListRecordingsResponse, Failures) {
    let mut recordings = Vec::new();
    let mut truncated = false;
    let mut failed = Vec::new();
    for (target, answer) in answers {
        match answer {
            Ok(listing) => {
                truncated |= listing.truncated;
                recordings.extend(listing.recordings.into_iter().map(|r| recording(&target, r)));
            }
            Err(e) => failed.push((target.id, e)),
        }
    }
    recordings.sort_by(|a, b| {
        b.started_at_ms.cmp(&a.started_at_ms).then_with(|| {
            (&a.origin_id, &a.app, &a.stream, &a.id).cmp(&(&b.origin_id, &b.app, &b.stream, &b.id))
        })
    });
    // Origins sharing one store (the README's advice for failover) list the same recordings:
    // each once, under the first origin by id.
    let mut seen = std::collections::HashSet::new();
    recordings.retain(|r| seen.insert((r.app.clone(), r.stream.clone(), r.id.clone())));
    truncated |= recordings.len() > limit;
    recordings.truncate(limit);
    let unreachable_origins = failed.iter().map(|(id, _)| id.clone()).collect();
    (pb::ListRecordingsResponse { recordings, truncated, unreachable_origins }, failed)
}

/// `origin-2 (no answer within 5s), origin-3 (...)`, the first few.
fn describe(failed: &[(String, OriginApiError)]) -> String {
    let mut text: Vec<String> =
        failed.iter().take(NAMED_FAILURES).map(|(id, e)| format!("{id} ({e})")).collect();
    if failed.len() > NAMED_FAILURES {
        text.push(format!("and {} more", failed.len() - NAMED_FAILURES));
    }
    text.join(", ")
}

/// No origin that answered holds `what`: NOT_FOUND, or UNAVAILABLE when one that might did
/// not answer.
pub fn not_found(what: &str, only: &str, failed: &[(String, OriginApiError)]) -> Status {
    match (only, failed) {
        ("", []) => Status::not_found(format!("no origin holds recording {what}")),
        (origin, []) => Status::not_found(format!("origin {origin} holds no recording {what}")),
        ("", failed) => Status::unavailable(format!(
            "recording {what} is on none of the origins that answered; could not ask {}",
            describe(failed)
        )),
        (_, failed) => Status::unavailable(format!("could not ask {}", describe(failed))),
    }
}

fn being_written(what: &str, origin: &str) -> Status {
    Status::failed_precondition(format!(
        "recording {what} on {origin} is still being written: it can be deleted once it finishes"
    ))
}

/// The delete calls that failed, as one status (`deleted`: the origins where it worked).
pub fn delete_failed(
    what: &str,
    deleted: &[String],
    failed: &[(String, OriginApiError)],
) -> Status {
    match (deleted, failed) {
        ([], [(origin, OriginApiError::InProgress)]) => being_written(what, origin),
        ([], [(origin, OriginApiError::NotFound)]) => {
            Status::not_found(format!("origin {origin} holds no recording {what}"))
        }
        ([], failed) => {
            Status::unavailable(format!("recording {what} not deleted: {}", describe(failed)))
        }
        (deleted, failed) => Status::unavailable(format!(
            "recording {what} deleted on {}, but not on {}",
            deleted.join(", "),
            describe(failed)
        )),
    }
}

/// Call `call` with the `api` address of every target, at most [`FAN_OUT`] at once; the
/// answers in the targets' order.
async fn fan_out<T, F, Fut>(
    targets: Vec<Target>,
    call: F,
) -> Vec<(Target, Result<T, OriginApiError>)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, OriginApiError>>,
{
    let calls = targets.into_iter().enumerate().map(|(i, target)| {
        let call = target.api.clone().map(&call);
        async move {
            let answer = match call {
                Some(call) => call.await,
                None => Err(OriginApiError::NoApiAddress),
            };
            (i, target, answer)
        }
    });
    let mut answers: Vec<_> =
        futures_util::stream::iter(calls).buffer_unordered(FAN_OUT).collect().await;
    answers.sort_by_key(|(i, ..)| *i);
    answers.into_iter().map(|(_, target, answer)| (target, answer)).collect()
}

/// The recordings calls over one client; shared by the gRPC front end.
pub struct Recordings {
    api: OriginApi,
    counters: Arc<Counters>,
    warnings: Mutex<WarnLimiter>,
}

impl Recordings {
    pub fn new(api: OriginApi, counters: Arc<Counters>) -> Recordings {
        Recordings { api, counters, warnings: Mutex::new(WarnLimiter::new(WARN_INTERVAL)) }
    }

    /// `ListRecordings` over the origins of `snap`.
    pub async fn list(
        &self,
        snap: &Snapshot,
        req: pb::ListRecordingsRequest,
    ) -> Result<pb::ListRecordingsResponse, Status> {
        let app = name_filter("app", &req.app)?;
        let stream = name_filter("stream", &req.stream)?;
        let limit = limit(req.limit);
        let deadline = self.api.deadline();
        let answers = fan_out(targets(snap, "")?, |addr| {
            let (api, app, stream) = (self.api.clone(), app.clone(), stream.clone());
            async move { api.list(&addr, app.as_deref(), stream.as_deref(), limit, deadline).await }
        })
        .await;
        let (response, failed) = merge(answers, limit as usize);
        self.report(&failed, "listing recordings");
        Ok(response)
    }

    /// `GetRecording`: the first origin (by id) of `snap` that holds it.
    pub async fn get(
        &self,
        snap: &Snapshot,
        req: pb::GetRecordingRequest,
    ) -> Result<pb::Recording, Status> {
        let (key, id) = recording_ref(&req.app, &req.stream, &req.id)?;
        let (found, failed) = self.locate(snap, &req.origin_id, &key, &id).await?;
        match found.into_iter().next() {
            Some((origin, r)) => Ok(recording(&origin, r)),
            None => Err(not_found(&format!("{key}/{id}"), &req.origin_id, &failed)),
        }
    }

    /// `DeleteRecording`: on every origin that holds it (the named one only, if any), once
    /// none of them is still writing it.
    pub async fn delete(
        &self,
        snap: &Snapshot,
        req: pb::DeleteRecordingRequest,
    ) -> Result<pb::DeleteRecordingResponse, Status> {
        let (key, id) = recording_ref(&req.app, &req.stream, &req.id)?;
        let what = format!("{key}/{id}");
        let (found, failed) = self.locate(snap, &req.origin_id, &key, &id).await?;
        if found.is_empty() {
            return Err(not_found(&what, &req.origin_id, &failed));
        }
        if let Some((origin, _)) = found.iter().find(|(_, r)| !r.finished) {
            return Err(being_written(&what, &origin.id));
        }
        let deadline = self.api.deadline();
        let holders = found.iter().map(|(origin, _)| origin.clone()).collect();
        let answers = fan_out(holders, |addr| {
            let (api, key, id) = (self.api.clone(), key.clone(), id.clone());
            async move { api.delete(&addr, &key, &id, deadline).await }
        })
        .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for ((origin, answer), (_, r)) in answers.into_iter().zip(found) {
            match answer {
                Ok(()) => {
                    tracing::info!(origin = %origin.id, recording = %what, "recording deleted through the control plane");
                    deleted.push(recording(&origin, r));
                }
                // Found a moment ago: another holder sharing its store deleted it first.
                Err(OriginApiError::NotFound) => {}
                Err(e) => errors.push((origin.id, e)),
            }
        }
        let unanswered: Failures = errors.iter().filter(|(_, e)| !e.is_answer()).cloned().collect();
        self.report(&unanswered, "deleting a recording");
        if errors.is_empty() {
            Ok(pb::DeleteRecordingResponse { deleted })
        } else {
            let ids: Vec<String> = deleted.iter().map(|r| r.origin_id.clone()).collect();
            Err(delete_failed(&what, &ids, &errors))
        }
    }

    /// The origins (of `only`, if named) holding `key/id`, with their records, in id order;
    /// and the origins that gave no usable answer.
    async fn locate(
        &self,
        snap: &Snapshot,
        only: &str,
        key: &StreamKey,
        id: &str,
    ) -> Result<(Vec<(Target, Recording)>, Failures), Status> {
        let deadline = self.api.deadline();
        let answers = fan_out(targets(snap, only)?, |addr| {
            let (api, key, id) = (self.api.clone(), key.clone(), id.to_string());
            async move { api.get(&addr, &key, &id, deadline).await }
        })
        .await;
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for (origin, answer) in answers {
            match answer {
                Ok(r) => found.push((origin, r)),
                Err(OriginApiError::NotFound) => {}
                Err(e) => failed.push((origin.id, e)),
            }
        }
        self.report(&failed, "looking for a recording");
        Ok((found, failed))
    }

    /// Count the failed origins and log them, at most one line per [`WARN_INTERVAL`].
    fn report(&self, failed: &[(String, OriginApiError)], doing: &str) {
        for (origin, reason) in failed {
            self.counters.origin_api_failure();
            if let Some(held) = lock(&self.warnings).allow(Instant::now()) {
                tracing::warn!(%origin, %reason, similar_held_back = held, "{doing}: an origin's recordings API gave no usable answer");
            }
        }
    }
}

#[cfg(test)]
mod tests;
