//! Transcoding ladders through the control plane: written to etcd (`{prefix}/ladders/{app}`),
//! where every origin reads them from its registry cache; the control plane keeps none.

use crate::service::ControlPlane;
use sluice_cluster::ladder::{validate, LadderValue, Rung};
use sluice_cluster::{OrderWriter, RegistryError};
use sluice_media::stream_name::StreamKey;
use sluice_proto::control::v1 as pb;
use tonic::Status;

fn writer(cp: &ControlPlane) -> Result<&OrderWriter, Status> {
    cp.orders()
        .ok_or_else(|| Status::failed_precondition("this control plane cannot write to etcd"))
}

fn write_failed(e: &RegistryError) -> Status {
    Status::unavailable(format!("writing the ladder to etcd failed: {e}"))
}

/// `app` if it is one an app may be called (as in stream URLs).
fn app_name(app: &str) -> Result<String, Status> {
    match StreamKey::parse(app, "x") {
        Ok((key, None)) if key.app() == app => Ok(app.to_string()),
        _ => Err(Status::invalid_argument(format!("invalid app name {app:?}"))),
    }
}

fn rung(r: &pb::Rendition) -> Rung {
    Rung {
        name: r.name.clone(),
        height: r.height,
        video_kbps: r.video_kbps,
        audio_kbps: (r.audio_kbps > 0).then_some(r.audio_kbps),
        fps: (r.fps > 0.0).then_some(r.fps),
    }
}

fn shown(app: &str, renditions: &[Rung]) -> pb::Ladder {
    pb::Ladder {
        app: app.to_string(),
        renditions: renditions
            .iter()
            .map(|r| pb::Rendition {
                name: r.name.clone(),
                height: r.height,
                video_kbps: r.video_kbps,
                audio_kbps: r.audio_kbps.unwrap_or(0),
                fps: r.fps.unwrap_or(0.0),
            })
            .collect(),
    }
}

/// Set an app's ladder (see `SetLadder` in control.proto).
pub async fn set(cp: &ControlPlane, req: pb::SetLadderRequest) -> Result<pb::Ladder, Status> {
    let ladder = req.ladder.ok_or_else(|| Status::invalid_argument("no ladder"))?;
    let app = app_name(&ladder.app)?;
    if let Some(r) = ladder.renditions.iter().find(|r| r.fps.is_nan() || r.fps < 0.0) {
        return Err(Status::invalid_argument(format!(
            "{}: fps must be 0 (the source's) or 1 to 240",
            r.name
        )));
    }
    let renditions: Vec<Rung> = ladder.renditions.iter().map(rung).collect();
    validate(&renditions).map_err(|m| Status::invalid_argument(format!("ladder of {app}: {m}")))?;
    let value = LadderValue { renditions };
    writer(cp)?.set_ladder(&app, &value).await.map_err(|e| write_failed(&e))?;
    tracing::info!(%app, renditions = value.renditions.len(), "ladder set");
    Ok(shown(&app, &value.renditions))
}

/// Delete an app's ladder.
pub async fn delete(
    cp: &ControlPlane,
    req: pb::DeleteLadderRequest,
) -> Result<pb::DeleteLadderResponse, Status> {
    let app = app_name(&req.app)?;
    if !writer(cp)?.delete_ladder(&app).await.map_err(|e| write_failed(&e))? {
        return Err(Status::not_found(format!(
            "{app} has no ladder set through the control plane"
        )));
    }
    tracing::info!(%app, "ladder deleted");
    Ok(pb::DeleteLadderResponse {})
}

/// Every ladder in the registry, by app.
pub fn list(cp: &ControlPlane) -> pb::ListLaddersResponse {
    let snap = cp.snapshot();
    pb::ListLaddersResponse {
        ladders: snap.ladders.values().map(|l| shown(&l.app, &l.renditions)).collect(),
    }
}
