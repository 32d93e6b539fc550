//! A search of the catalog ([`Query`]) and the SQL it becomes: sans-IO, the same statement on
//! SQLite and PostgreSQL (`$N` parameters, `LIKE` over the lowercased `search_text`, keyset
//! pages ordered newest first).

use crate::item::{normalise_tag, Item, Kind};
use crate::CatalogError;

/// The most items one page holds.
pub const MAX_LIMIT: usize = 100;
/// A page's size when none is asked for.
pub const DEFAULT_LIMIT: usize = 20;
/// The most words (and the most tags) one search takes.
pub const MAX_TERMS: usize = 8;
/// The longest search text, in characters.
pub const MAX_TEXT: usize = 200;

/// What to find. Every word of `text` must appear in the title, description or stream name
/// (case-insensitively), every tag must be on the item, and the item must overlap
/// `[from_ms, to_ms)` (a live item lasts until now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub text: String,
    pub tags: Vec<String>,
    pub kind: Option<Kind>,
    pub app: Option<String>,
    pub stream: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Items per page (0: [`DEFAULT_LIMIT`]; at most [`MAX_LIMIT`]).
    pub limit: usize,
    /// The `next_page` of the page before.
    pub page: Option<String>,
}

/// One page of a search, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page {
    pub items: Vec<Item>,
    /// Ask again with this as `page` for the next items (`None`: this was the last page).
    pub next_page: Option<String>,
}

/// A statement's parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// A statement and its parameters, `$1` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
}

/// The columns an [`Item`] is read from (without its tags).
pub(crate) const ITEM_COLUMNS: &str = "id, kind, app, stream, title, description, started_ms, \
     ended_ms, duration_ms, video_codec, audio_codec, width, height, size_bytes, location, \
     thumbnail, node, updated_ms";

/// Where a page starts: after the item `(started_ms, id)`.
fn parse_page(token: &str) -> Result<(i64, String), CatalogError> {
    let bad = || CatalogError::Invalid("not a page token from this catalog".into());
    let (started, id) = token.split_once(':').ok_or_else(bad)?;
    Ok((started.parse().map_err(|_| bad())?, id.to_string()))
}

/// The token of the page after `last`.
pub(crate) fn page_after(last: &Item) -> String {
    format!("{}:{}", last.started_ms, last.id)
}

/// `word` as a `LIKE` pattern matching it anywhere (`\` escapes).
fn contains_pattern(word: &str) -> String {
    let mut p = String::with_capacity(word.len() + 2);
    p.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Query {
    /// The page size this query asks for.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        }
    }

    /// The statement finding one page (one row more than the page, to know whether another
    /// follows); `now_ms` ends the items still live.
    pub(crate) fn to_sql(&self, now_ms: i64) -> Result<Sql, CatalogError> {
        if self.text.chars().count() > MAX_TEXT {
            return Err(CatalogError::Invalid(format!(
                "the search text is longer than {MAX_TEXT} characters"
            )));
        }
        let words: Vec<String> = self.text.split_whitespace().map(str::to_lowercase).collect();
        if words.len() > MAX_TERMS || self.tags.len() > MAX_TERMS {
            return Err(CatalogError::Invalid(format!(
                "at most {MAX_TERMS} words and {MAX_TERMS} tags in one search"
            )));
        }
        let tags = self.tags.iter().map(|t| normalise_tag(t)).collect::<Result<Vec<_>, _>>()?;
        if let (Some(from), Some(to)) = (self.from_ms, self.to_ms) {
            if from > to {
                return Err(CatalogError::Invalid("the time range ends before it starts".into()));
            }
        }
        let mut sql =
            Sql { text: format!("SELECT {ITEM_COLUMNS} FROM catalog_items"), args: vec![] };
        let mut wheres = Vec::new();
        if let Some(kind) = self.kind {
            wheres.push(format!("kind = {}", sql.bind(Arg::Text(kind.as_str().into()))));
        }
        if let Some(app) = &self.app {
            wheres.push(format!("app = {}", sql.bind(Arg::Text(app.clone()))));
        }
        if let Some(stream) = &self.stream {
            wheres.push(format!("stream = {}", sql.bind(Arg::Text(stream.clone()))));
        }
        for word in &words {
            let p = sql.bind(Arg::Text(contains_pattern(word)));
            wheres.push(format!("search_text LIKE {p} ESCAPE '\\'"));
        }
        for tag in tags {
            let p = sql.bind(Arg::Text(tag));
            wheres.push(format!(
                "EXISTS (SELECT 1 FROM catalog_tags t WHERE t.item_id = catalog_items.id \
                 AND t.tag = {p})"
            ));
        }
        if let Some(to) = self.to_ms {
            wheres.push(format!("started_ms < {}", sql.bind(Arg::Int(to))));
        }
        if let Some(from) = self.from_ms {
            let now = sql.bind(Arg::Int(now_ms));
            let from = sql.bind(Arg::Int(from));
            wheres.push(format!("COALESCE(ended_ms, {now}) >= {from}"));
        }
        if let Some(token) = &self.page {
            let (started, id) = parse_page(token)?;
            let s = sql.bind(Arg::Int(started));
            let i = sql.bind(Arg::Text(id));
            wheres.push(format!("(started_ms < {s} OR (started_ms = {s} AND id > {i}))"));
        }
        if !wheres.is_empty() {
            sql.text.push_str(" WHERE ");
            sql.text.push_str(&wheres.join(" AND "));
        }
        let limit = sql.bind(Arg::Int(self.page_size() as i64 + 1));
        sql.text.push_str(&format!(" ORDER BY started_ms DESC, id ASC LIMIT {limit}"));
        Ok(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_becomes_one_statement_with_its_parameters_in_order() {
        let q = Query {
            text: "Final  100%".into(),
            tags: vec!["Sport".into()],
            kind: Some(Kind::Recording),
            from_ms: Some(10),
            to_ms: Some(20),
            limit: 5,
            page: Some("15:live/a/15".into()),
            ..Query::default()
        };
        let sql = q.to_sql(99).unwrap();
        assert_eq!(
            sql.args,
            vec![
                Arg::Text("recording".into()),
                Arg::Text("%final%".into()),
                Arg::Text("%100\\%%".into()),
                Arg::Text("sport".into()),
                Arg::Int(20),
                Arg::Int(99),
                Arg::Int(10),
                Arg::Int(15),
                Arg::Text("live/a/15".into()),
                Arg::Int(6),
            ]
        );
        assert!(sql.text.ends_with("ORDER BY started_ms DESC, id ASC LIMIT $10"), "{}", sql.text);
        assert!(sql.text.contains("(started_ms < $8 OR (started_ms = $8 AND id > $9))"));
    }

    #[test]
    fn bad_searches_are_refused_with_the_reason() {
        let bad = |q: Query| q.to_sql(0).unwrap_err().to_string();
        assert!(bad(Query { page: Some("x".into()), ..Query::default() }).contains("page token"));
        let range = Query { from_ms: Some(2), to_ms: Some(1), ..Query::default() };
        assert!(bad(range).contains("ends before"));
        assert!(bad(Query { text: "a ".repeat(9), ..Query::default() }).contains("at most"));
        assert!(bad(Query { tags: vec!["a b".into()], ..Query::default() }).contains("tag"));
        assert!(
            bad(Query { text: "x".repeat(MAX_TEXT + 1), ..Query::default() }).contains("longer")
        );
        assert_eq!(Query { limit: 1000, ..Query::default() }.page_size(), MAX_LIMIT);
        assert_eq!(Query::default().page_size(), DEFAULT_LIMIT);
    }
}
