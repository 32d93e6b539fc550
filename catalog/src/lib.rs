//! The content catalog (#15): every recording and live stream is an item (id, title,
//! description, tags, app/stream, start/end, duration, codecs, resolution, size, where it
//! plays, thumbnail), searchable by text, tags and time range, a page at a time.
//!
//! One query layer over two databases (sqlx's `Any` driver): SQLite, embedded in one file, by
//! default; PostgreSQL for a cluster, whose origins and control plane share it. The schema is
//! one set of migrations (`migrations/`) both accept, and text search runs over a lowercased
//! copy the writer keeps, so both answer the same.
//!
//! [`item`] and [`query`] are sans-IO (ids, validation, the search's SQL); [`db`] runs them.
//! Imports nothing of Sluice's.

pub mod db;
pub mod item;
pub mod query;

pub use db::Catalog;
pub use item::{Facts, Item, Kind, Metadata};
pub use query::{Page, Query};

/// What went wrong with a catalog call.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The caller's input (a search, a title, a tag): the message says what to change.
    #[error("{0}")]
    Invalid(String),
    #[error("no such catalog item")]
    NotFound,
    #[error("catalog URL {0:?} is not sqlite://PATH, sqlite::memory: or postgres://...")]
    Url(String),
    #[error("the catalog database did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("catalog schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}
