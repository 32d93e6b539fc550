//! The content catalog calls: the control plane reads and edits the database the origins
//! write (`--catalog`, PostgreSQL in a cluster) through `sluice_catalog`, and keeps nothing.

use sluice_catalog::{Catalog, CatalogError, Item, Kind, Metadata, Query};
use sluice_proto::control::v1 as pb;
use tonic::Status;

fn status(e: CatalogError) -> Status {
    match e {
        CatalogError::Invalid(m) => Status::invalid_argument(m),
        CatalogError::NotFound => Status::not_found("no such catalog item"),
        e => {
            tracing::warn!(error = %e, "catalog: the database failed");
            Status::unavailable(
                "the catalog database did not answer (the control plane's log says why)",
            )
        }
    }
}

fn catalog(c: Option<&Catalog>) -> Result<&Catalog, Status> {
    c.ok_or_else(|| Status::failed_precondition("this control plane has no --catalog"))
}

/// An item as the API shows it.
pub fn item(i: Item) -> pb::CatalogItem {
    pb::CatalogItem {
        id: i.id,
        kind: i.kind.as_str().to_string(),
        app: i.app,
        stream: i.stream,
        title: i.title,
        description: i.description,
        tags: i.tags,
        started_ms: i.started_ms,
        ended_ms: i.ended_ms,
        duration_ms: i.duration_ms,
        video_codec: i.video_codec.unwrap_or_default(),
        audio_codec: i.audio_codec.unwrap_or_default(),
        width: i.width.and_then(|w| u32::try_from(w).ok()).unwrap_or(0),
        height: i.height.and_then(|h| u32::try_from(h).ok()).unwrap_or(0),
        size_bytes: u64::try_from(i.size_bytes).unwrap_or(0),
        location: i.location,
        thumbnail: i.thumbnail.unwrap_or_default(),
        node: i.node,
        updated_ms: i.updated_ms,
    }
}

/// `SearchCatalog`.
pub async fn search(
    c: Option<&Catalog>,
    req: pb::SearchCatalogRequest,
) -> Result<pb::SearchCatalogResponse, Status> {
    let c = catalog(c)?;
    let kind =
        match req.kind.as_str() {
            "" => None,
            k => Some(Kind::parse(k).ok_or_else(|| {
                Status::invalid_argument(format!("kind {k:?}: live or recording"))
            })?),
        };
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    let query = Query {
        text: req.text,
        tags: req.tags,
        kind,
        app: nonempty(req.app),
        stream: nonempty(req.stream),
        from_ms: req.from_ms,
        to_ms: req.to_ms,
        limit: req.limit as usize,
        page: nonempty(req.page_token),
    };
    let page = c.search(&query).await.map_err(status)?;
    Ok(pb::SearchCatalogResponse {
        items: page.items.into_iter().map(item).collect(),
        next_page_token: page.next_page.unwrap_or_default(),
    })
}

/// `GetCatalogItem`.
pub async fn get(
    c: Option<&Catalog>,
    req: pb::GetCatalogItemRequest,
) -> Result<pb::CatalogItem, Status> {
    let found = catalog(c)?.get(&req.id).await.map_err(status)?;
    found.map(item).ok_or_else(|| status(CatalogError::NotFound))
}

/// `UpdateCatalogItem`.
pub async fn update(
    c: Option<&Catalog>,
    req: pb::UpdateCatalogItemRequest,
) -> Result<pb::CatalogItem, Status> {
    let change = Metadata {
        title: req.title,
        description: req.description,
        tags: req.set_tags.then_some(req.tags),
    };
    let updated = catalog(c)?.describe(&req.id, change).await.map_err(status)?;
    tracing::info!(id = %updated.id, "catalog item updated");
    Ok(item(updated))
}
