-- The metadata schema. Keep it column-for-column identical to ../postgres/0001_meta.sql:
-- `SqlStore` runs one set of query texts against both.

CREATE TABLE videos (
    id            TEXT PRIMARY KEY NOT NULL,
    creator       TEXT NOT NULL,
    title         TEXT NOT NULL,
    -- `title` lower-cased in Rust: SQLite's LOWER() and LIKE fold ASCII only, and
    -- PostgreSQL's depend on the database collation.
    title_folded  TEXT NOT NULL,
    description   TEXT NOT NULL,
    language      TEXT NOT NULL,
    filename      TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    state         TEXT NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    progress      REAL NOT NULL,
    duration      REAL,
    renditions    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX videos_newest ON videos (created_at DESC, id DESC);
CREATE INDEX videos_creator_newest ON videos (creator, created_at DESC, id DESC);

CREATE TABLE uploads (
    id            TEXT PRIMARY KEY NOT NULL,
    video_id      TEXT NOT NULL,
    length        INTEGER NOT NULL,
    upload_offset INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    parts         TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX uploads_video ON uploads (video_id);
CREATE INDEX uploads_expiry ON uploads (expires_at);

CREATE TABLE jobs (
    id         TEXT PRIMARY KEY NOT NULL,
    video_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    error_code TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_state_oldest ON jobs (state, created_at);

CREATE TABLE wrapped_keys (
    video_id       TEXT PRIMARY KEY NOT NULL,
    master_version INTEGER NOT NULL,
    nonce          BLOB NOT NULL,
    sealed         BLOB NOT NULL
);

-- `seq` orders rows written within one millisecond.
CREATE TABLE audits (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    happened_at INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    video_id    TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX audits_video ON audits (video_id, happened_at, seq);

CREATE TABLE webhooks (
    creator TEXT PRIMARY KEY NOT NULL,
    url     TEXT NOT NULL,
    secret  TEXT NOT NULL
);

-- AUTOINCREMENT so a sequence number is never reused: edges resume from the last one they saw.
CREATE TABLE purges (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
