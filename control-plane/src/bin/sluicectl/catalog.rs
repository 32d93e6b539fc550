//! `sluicectl catalog search|show|set`: the content catalog (recordings and live streams) the
//! origins keep in the database the control plane shares (`--catalog`).

use std::io::Write;

use clap::Subcommand;
use serde::Serialize;
use sluice_proto::control::v1 as pb;

use crate::args::Format;
use crate::client::Conn;
use crate::error::CtlError;
use crate::output::{encode, write};
use crate::table::{fields, Table};
use crate::units;

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Find items, newest first: every WORD must be in the title, description or stream name.
    #[command(alias = "find")]
    Search {
        /// Words to find (any case).
        words: Vec<String>,
        /// A tag the items must have (repeat: all of them).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Only live streams or only recordings.
        #[arg(long, value_parser = ["live", "recording"])]
        kind: Option<String>,
        /// Only this app's.
        #[arg(long)]
        app: Option<String>,
        /// Only streams of this name.
        #[arg(long)]
        stream: Option<String>,
        /// Items that last until at least this time (RFC 3339, e.g. 2026-12-07T10:00:00Z, or
        /// Unix ms).
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// Items that started before this time (RFC 3339 or Unix ms).
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
        /// Items per page (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The page a previous search named as next.
        #[arg(long)]
        page: Option<String>,
    },
    /// One item: APP/STREAM (a live stream) or APP/STREAM/START (a recording).
    Show { id: String },
    /// Change an item's title, description or tags (said of a live stream, also of the
    /// recording of it being written).
    Set {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The item's tags, replacing the ones it has (repeat for more).
        #[arg(long = "tag", value_name = "TAG", conflicts_with = "no_tags")]
        tags: Vec<String>,
        /// Remove every tag.
        #[arg(long)]
        no_tags: bool,
    },
}

/// RFC 3339 (`2026-12-07T10:00:00Z`) or Unix milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let at = humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("{text:?} is not RFC 3339 (2026-12-07T10:00:00Z) or Unix ms"))?;
    let since = at.duration_since(std::time::UNIX_EPOCH).map_err(|_| "before 1970".to_string())?;
    i64::try_from(since.as_millis()).map_err(|_| "too far ahead".to_string())
}

#[derive(Debug, Serialize)]
pub struct ItemView {
    pub id: String,
    pub kind: String,
    pub app: String,
    pub stream: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub duration_ms: i64,
    pub video_codec: String,
    pub audio_codec: String,
    pub width: u32,
    pub height: u32,
    pub size_bytes: u64,
    pub location: String,
    pub thumbnail: String,
    pub node: String,
}

#[derive(Debug, Serialize)]
pub struct Page {
    pub items: Vec<ItemView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

fn view(i: pb::CatalogItem) -> ItemView {
    ItemView {
        id: i.id,
        kind: i.kind,
        app: i.app,
        stream: i.stream,
        title: i.title,
        description: i.description,
        tags: i.tags,
        started_ms: i.started_ms,
        ended_ms: i.ended_ms,
        duration_ms: i.duration_ms,
        video_codec: i.video_codec,
        audio_codec: i.audio_codec,
        width: i.width,
        height: i.height,
        size_bytes: i.size_bytes,
        location: i.location,
        thumbnail: i.thumbnail,
        node: i.node,
    }
}

fn length(i: &ItemView) -> String {
    match i.ended_ms {
        Some(_) => units::duration_ms(u64::try_from(i.duration_ms).unwrap_or(0)),
        None if i.kind == "live" => "live".into(),
        None => format!("{} so far", units::duration_ms(u64::try_from(i.duration_ms).unwrap_or(0))),
    }
}

fn render_page(page: &Page) -> String {
    if page.items.is_empty() {
        return "no items found\n".into();
    }
    let mut t = Table::new(&["ID", "KIND", "TITLE", "STARTED", "LENGTH", "SIZE", "TAGS"]);
    for i in &page.items {
        t.row(vec![
            i.id.clone(),
            i.kind.clone(),
            i.title.clone(),
            units::utc(u64::try_from(i.started_ms).unwrap_or(0)),
            length(i),
            if i.kind == "recording" { units::bytes(i.size_bytes) } else { "-".into() },
            i.tags.join(","),
        ]);
    }
    let mut text = t.render();
    if let Some(next) = &page.next_page {
        text.push_str(&format!("more: --page '{next}'\n"));
    }
    text
}

fn render_item(i: &ItemView) -> String {
    let or_dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    fields(&[
        ("id", i.id.clone()),
        ("kind", i.kind.clone()),
        ("title", i.title.clone()),
        ("description", or_dash(&i.description)),
        ("tags", or_dash(&i.tags.join(", "))),
        ("started", units::utc(u64::try_from(i.started_ms).unwrap_or(0))),
        ("length", length(i)),
        ("video", format!("{} {}", or_dash(&i.video_codec), units::resolution(i.width, i.height))),
        ("audio", or_dash(&i.audio_codec)),
        ("size", units::bytes(i.size_bytes)),
        ("plays at", i.location.clone()),
        ("thumbnail", or_dash(&i.thumbnail)),
        ("written by", i.node.clone()),
    ])
}

pub async fn run(
    conn: &Conn,
    cmd: CatalogCommand,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match cmd {
        CatalogCommand::Search { words, tags, kind, app, stream, from, to, limit, page } => {
            let request = pb::SearchCatalogRequest {
                text: words.join(" "),
                tags,
                kind: kind.unwrap_or_default(),
                app: app.unwrap_or_default(),
                stream: stream.unwrap_or_default(),
                from_ms: from,
                to_ms: to,
                limit,
                page_token: page.unwrap_or_default(),
            };
            let found = conn.call("SearchCatalog", conn.control().search_catalog(request)).await?;
            let page = Page {
                items: found.items.into_iter().map(view).collect(),
                next_page: (!found.next_page_token.is_empty()).then_some(found.next_page_token),
            };
            write(out, &encode(format, &page, render_page)?);
        }
        CatalogCommand::Show { id } => {
            let request = pb::GetCatalogItemRequest { id };
            let item =
                conn.call("GetCatalogItem", conn.control().get_catalog_item(request)).await?;
            write(out, &encode(format, &view(item), render_item)?);
        }
        CatalogCommand::Set { id, title, description, tags, no_tags } => {
            let request = pb::UpdateCatalogItemRequest {
                id,
                title,
                description,
                set_tags: no_tags || !tags.is_empty(),
                tags,
            };
            let item =
                conn.call("UpdateCatalogItem", conn.control().update_catalog_item(request)).await?;
            write(out, &encode(format, &view(item), render_item)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_ms() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
