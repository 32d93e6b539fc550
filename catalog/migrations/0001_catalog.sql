-- One dialect for SQLite and PostgreSQL: TEXT and BIGINT only.
CREATE TABLE catalog_items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    app TEXT NOT NULL,
    stream TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    -- title, description and stream lowercased by the writer: searched the same on both.
    search_text TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT,
    duration_ms BIGINT NOT NULL,
    video_codec TEXT,
    audio_codec TEXT,
    width BIGINT,
    height BIGINT,
    size_bytes BIGINT NOT NULL,
    location TEXT NOT NULL,
    thumbnail TEXT,
    node TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX catalog_items_started ON catalog_items (started_ms DESC, id);
CREATE INDEX catalog_items_stream ON catalog_items (app, stream);
CREATE TABLE catalog_tags (
    item_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (item_id, tag)
);
CREATE INDEX catalog_tags_tag ON catalog_tags (tag, item_id);
