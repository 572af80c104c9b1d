-- The metadata schema. Keep it column-for-column identical to ../sqlite/0001_meta.sql:
-- `SqlStore` runs one set of query texts against both.

CREATE TABLE videos (
    id            TEXT PRIMARY KEY,
    creator       TEXT NOT NULL,
    title         TEXT NOT NULL,
    -- `title` lower-cased in Rust, so search folds case the same way on both backends
    -- whatever the database collation.
    title_folded  TEXT NOT NULL,
    description   TEXT NOT NULL,
    language      TEXT NOT NULL,
    filename      TEXT NOT NULL,
    size          BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    state         TEXT NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    progress      DOUBLE PRECISION NOT NULL,
    duration      DOUBLE PRECISION,
    renditions    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX videos_newest ON videos (created_at DESC, id DESC);
CREATE INDEX videos_creator_newest ON videos (creator, created_at DESC, id DESC);

CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    video_id      TEXT NOT NULL,
    length        BIGINT NOT NULL,
    upload_offset BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    parts         TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX uploads_video ON uploads (video_id);
CREATE INDEX uploads_expiry ON uploads (expires_at);

CREATE TABLE jobs (
    id         TEXT PRIMARY KEY,
    video_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    error_code TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_state_oldest ON jobs (state, created_at);

CREATE TABLE wrapped_keys (
    video_id       TEXT PRIMARY KEY,
    master_version BIGINT NOT NULL,
    nonce          BYTEA NOT NULL,
    sealed         BYTEA NOT NULL
);

-- `seq` orders rows written within one millisecond.
CREATE TABLE audits (
    seq         BIGSERIAL PRIMARY KEY,
    happened_at BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    video_id    TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX audits_video ON audits (video_id, happened_at, seq);

CREATE TABLE webhooks (
    creator TEXT PRIMARY KEY,
    url     TEXT NOT NULL,
    secret  TEXT NOT NULL
);

CREATE TABLE purges (
    seq        BIGSERIAL PRIMARY KEY,
    video_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
