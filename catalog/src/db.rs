//! [`Catalog`]: the items in SQLite or PostgreSQL. Every call is bounded by a deadline; the
//! writes of one item run in a transaction.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;
use sqlx::{AssertSqlSafe, Row};

use crate::item::{search_text, Facts, Item, Kind, Metadata};
use crate::query::{page_after, Arg, Page, Query, ITEM_COLUMNS};
use crate::CatalogError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a catalog is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The catalog, in the database its URL names.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
    timeout: Duration,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `url` as sqlx opens it (a SQLite file is created when missing) and its backend.
fn normalise_url(url: &str) -> Result<(String, Backend), CatalogError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_string(), Backend::Postgres));
    }
    if url == "sqlite::memory:" {
        return Ok((url.to_string(), Backend::Sqlite));
    }
    if url.starts_with("sqlite:") {
        if url.contains("mode=") {
            return Ok((url.to_string(), Backend::Sqlite));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        return Ok((format!("{url}{sep}mode=rwc"), Backend::Sqlite));
    }
    // Only the scheme: a URL may carry a password.
    Err(CatalogError::Url(url.split(':').next().unwrap_or_default().to_string()))
}

fn item_from_row(row: &AnyRow) -> Result<Item, CatalogError> {
    let kind: String = row.try_get("kind")?;
    Ok(Item {
        id: row.try_get("id")?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Live),
        app: row.try_get("app")?,
        stream: row.try_get("stream")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        tags: Vec::new(),
        started_ms: row.try_get("started_ms")?,
        ended_ms: row.try_get("ended_ms")?,
        duration_ms: row.try_get("duration_ms")?,
        video_codec: row.try_get("video_codec")?,
        audio_codec: row.try_get("audio_codec")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        size_bytes: row.try_get("size_bytes")?,
        location: row.try_get("location")?,
        thumbnail: row.try_get("thumbnail")?,
        node: row.try_get("node")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

impl Catalog {
    /// Open (and migrate) the catalog at `url`: `sqlite://PATH` (created when missing),
    /// `sqlite::memory:`, or `postgres://USER:PASSWORD@HOST/DB`. `timeout` bounds every call.
    pub async fn open(url: &str, timeout: Duration) -> Result<Catalog, CatalogError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalise_url(url)?;
        let options = AnyPoolOptions::new().acquire_timeout(timeout);
        let options = match backend {
            // One connection: SQLite serialises writers anyway, and an in-memory database
            // lives as long as its connection.
            Backend::Sqlite => {
                options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
            }
            Backend::Postgres => options.max_connections(4),
        };
        let pool = tokio::time::timeout(timeout, options.connect(&url))
            .await
            .map_err(|_| CatalogError::Timeout(timeout))??;
        let catalog = Catalog { pool, backend, timeout };
        catalog.bounded(async { Ok(MIGRATOR.run(&catalog.pool).await?) }).await?;
        Ok(catalog)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn bounded<T>(
        &self,
        f: impl Future<Output = Result<T, CatalogError>>,
    ) -> Result<T, CatalogError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| CatalogError::Timeout(self.timeout))?
    }

    /// Write what the system knows of an item, leaving what people said of it. A new
    /// recording takes the title, description and tags of its stream's live item.
    pub async fn record(&self, facts: &Facts) -> Result<(), CatalogError> {
        self.bounded(self.record_inner(facts)).await
    }

    async fn record_inner(&self, f: &Facts) -> Result<(), CatalogError> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM catalog_items WHERE id = $1")
            .bind(&f.id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let (mut title, mut description, mut tags) = (f.default_title(), String::new(), vec![]);
        if !exists && f.kind == Kind::Recording {
            let live = crate::item::live_id(&f.app, &f.stream);
            if let Some(row) =
                sqlx::query("SELECT title, description FROM catalog_items WHERE id = $1")
                    .bind(&live)
                    .fetch_optional(&mut *tx)
                    .await?
            {
                title = row.try_get("title")?;
                description = row.try_get("description")?;
                tags = tags_of(&mut tx, &live).await?;
            }
        }
        let search = search_text(&title, &description, &f.stream);
        sqlx::query(
            "INSERT INTO catalog_items (id, kind, app, stream, title, description, search_text, \
             started_ms, ended_ms, duration_ms, video_codec, audio_codec, width, height, \
             size_bytes, location, thumbnail, node, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, \
             $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, started_ms = excluded.started_ms, \
             ended_ms = excluded.ended_ms, duration_ms = excluded.duration_ms, \
             video_codec = COALESCE(excluded.video_codec, catalog_items.video_codec), \
             audio_codec = COALESCE(excluded.audio_codec, catalog_items.audio_codec), \
             width = COALESCE(excluded.width, catalog_items.width), \
             height = COALESCE(excluded.height, catalog_items.height), \
             size_bytes = excluded.size_bytes, location = excluded.location, \
             thumbnail = COALESCE(excluded.thumbnail, catalog_items.thumbnail), \
             node = excluded.node, updated_ms = excluded.updated_ms",
        )
        .bind(&f.id)
        .bind(f.kind.as_str())
        .bind(&f.app)
        .bind(&f.stream)
        .bind(&title)
        .bind(&description)
        .bind(&search)
        .bind(f.started_ms)
        .bind(f.ended_ms)
        .bind(f.duration_ms)
        .bind(f.video_codec.clone())
        .bind(f.audio_codec.clone())
        .bind(f.width)
        .bind(f.height)
        .bind(f.size_bytes)
        .bind(&f.location)
        .bind(f.thumbnail.clone())
        .bind(&f.node)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if !exists {
            set_tags(&mut tx, &f.id, &tags).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Change what people say of item `id`; returns the item as it is now. Said of a live
    /// stream, it is said of the recording of it being written too.
    pub async fn describe(&self, id: &str, change: Metadata) -> Result<Item, CatalogError> {
        let change = change.normalised()?;
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            // Lock the item first (PostgreSQL: its row; SQLite: the database), so concurrent
            // changes apply one after the other instead of overwriting each other.
            let touched = sqlx::query("UPDATE catalog_items SET updated_ms = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if touched == 0 {
                return Err(CatalogError::NotFound);
            }
            let row = sqlx::query("SELECT kind, app, stream FROM catalog_items WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(CatalogError::NotFound)?;
            let mut ids = vec![id.to_string()];
            if row.try_get::<String, _>("kind")? == Kind::Live.as_str() {
                let open = sqlx::query(
                    "SELECT id FROM catalog_items WHERE kind = 'recording' AND app = $1 \
                     AND stream = $2 AND ended_ms IS NULL",
                )
                .bind(row.try_get::<String, _>("app")?)
                .bind(row.try_get::<String, _>("stream")?)
                .fetch_all(&mut *tx)
                .await?;
                for r in open {
                    ids.push(r.try_get("id")?);
                }
            }
            for id in &ids {
                change_one(&mut tx, id, &change).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await?;
        self.get(id).await?.ok_or(CatalogError::NotFound)
    }

    /// Item `id`, with its tags.
    pub async fn get(&self, id: &str) -> Result<Option<Item>, CatalogError> {
        self.bounded(async {
            let text = format!("SELECT {ITEM_COLUMNS} FROM catalog_items WHERE id = $1");
            let Some(row) =
                sqlx::query(AssertSqlSafe(text)).bind(id).fetch_optional(&self.pool).await?
            else {
                return Ok(None);
            };
            let mut item = item_from_row(&row)?;
            let mut conn = self.pool.acquire().await?;
            item.tags = tags_of(&mut conn, id).await?;
            Ok(Some(item))
        })
        .await
    }

    /// Remove item `id`; whether there was one.
    pub async fn remove(&self, id: &str) -> Result<bool, CatalogError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM catalog_tags WHERE item_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let gone = sqlx::query("DELETE FROM catalog_items WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(gone > 0)
        })
        .await
    }

    /// End, at `ended_ms`, the live items `node` wrote (any node's, without one) that are
    /// still open (it restarted, so they are not live any more); returns how many.
    pub async fn end_live_of(
        &self,
        node: Option<&str>,
        ended_ms: i64,
    ) -> Result<u64, CatalogError> {
        self.bounded(async {
            Ok(sqlx::query(
                "UPDATE catalog_items SET ended_ms = $1, duration_ms = $1 - started_ms, \
                 updated_ms = $1 WHERE kind = 'live' AND ($2 = '' OR node = $2) \
                 AND ended_ms IS NULL",
            )
            .bind(ended_ms)
            .bind(node.unwrap_or(""))
            .execute(&self.pool)
            .await?
            .rows_affected())
        })
        .await
    }

    /// The ids of every item of `kind` (only those `node` wrote last, when given).
    pub async fn ids(&self, kind: Kind, node: Option<&str>) -> Result<Vec<String>, CatalogError> {
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT id FROM catalog_items WHERE kind = $1 AND ($2 = '' OR node = $2) \
                 ORDER BY id",
            )
            .bind(kind.as_str())
            .bind(node.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
        })
        .await
    }

    /// One page of the items `query` finds, newest first.
    pub async fn search(&self, query: &Query) -> Result<Page, CatalogError> {
        let sql = query.to_sql(now_ms())?;
        let size = query.page_size();
        self.bounded(async {
            let mut q = sqlx::query(AssertSqlSafe(sql.text));
            for arg in sql.args {
                q = match arg {
                    Arg::Int(v) => q.bind(v),
                    Arg::Text(v) => q.bind(v),
                };
            }
            let rows = q.fetch_all(&self.pool).await?;
            let mut items = rows.iter().map(item_from_row).collect::<Result<Vec<_>, _>>()?;
            let more = items.len() > size;
            items.truncate(size);
            let mut conn = self.pool.acquire().await?;
            for item in &mut items {
                item.tags = tags_of(&mut conn, &item.id).await?;
            }
            let next_page = if more { items.last().map(page_after) } else { None };
            Ok(Page { items, next_page })
        })
        .await
    }
}

/// Apply `change` to item `id` (which exists).
async fn change_one(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    change: &Metadata,
) -> Result<(), CatalogError> {
    let row = sqlx::query("SELECT title, description, stream FROM catalog_items WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let title = change.title.clone().unwrap_or(row.try_get("title")?);
    let description = change.description.clone().unwrap_or(row.try_get("description")?);
    let stream: String = row.try_get("stream")?;
    sqlx::query(
        "UPDATE catalog_items SET title = $1, description = $2, search_text = $3, \
         updated_ms = $4 WHERE id = $5",
    )
    .bind(&title)
    .bind(&description)
    .bind(search_text(&title, &description, &stream))
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if let Some(tags) = &change.tags {
        sqlx::query("DELETE FROM catalog_tags WHERE item_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        set_tags(conn, id, tags).await?;
    }
    Ok(())
}

async fn tags_of(conn: &mut sqlx::AnyConnection, id: &str) -> Result<Vec<String>, CatalogError> {
    let rows = sqlx::query("SELECT tag FROM catalog_tags WHERE item_id = $1 ORDER BY tag")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.iter().map(|r| r.try_get("tag")).collect::<Result<_, _>>()?)
}

async fn set_tags(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    tags: &[String],
) -> Result<(), CatalogError> {
    for tag in tags {
        sqlx::query(
            "INSERT INTO catalog_tags (item_id, tag) VALUES ($1, $2) \
             ON CONFLICT (item_id, tag) DO NOTHING",
        )
        .bind(id)
        .bind(tag)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_and_their_secrets_never_shown() {
        assert_eq!(normalise_url("sqlite:///x/c.db").unwrap().0, "sqlite:///x/c.db?mode=rwc");
        assert_eq!(
            normalise_url("sqlite://c.db?cache=shared").unwrap().0,
            "sqlite://c.db?cache=shared&mode=rwc"
        );
        assert_eq!(normalise_url("sqlite::memory:").unwrap().1, Backend::Sqlite);
        assert_eq!(normalise_url("postgres://u:p@h/db").unwrap().1, Backend::Postgres);
        let err = normalise_url("mysql://u:secret@h/db").unwrap_err().to_string();
        assert!(err.contains("mysql") && !err.contains("secret"), "{err}");
    }
}
