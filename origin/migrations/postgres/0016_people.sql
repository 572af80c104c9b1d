-- People (P2, P3, P21): accounts, their sessions and API tokens, channels, who a private video
-- is shared with, views counted once per viewer, and reports for moderators; and what videos
-- gain from them. Secrets are kept as SHA-256s, passwords as Argon2id PHC strings. Handles are
-- unique ignoring case through `handle_folded`: the handle lower-cased in Rust, as
-- `title_folded` is. Booleans are integers, as in `pops`. Keep identical to the other
-- backend's file but for the types.

-- Who may find and play a video ('public', 'unlisted', 'private'); the channel it is listed
-- in (none for a bootstrap creator's videos); views counted; gated as sensitive (0 or 1).
-- Videos made before accounts existed are public.
ALTER TABLE videos ADD COLUMN privacy TEXT NOT NULL DEFAULT 'public';
ALTER TABLE videos ADD COLUMN channel TEXT;
ALTER TABLE videos ADD COLUMN views BIGINT NOT NULL DEFAULT 0;
ALTER TABLE videos ADD COLUMN gated BIGINT NOT NULL DEFAULT 0;
-- The catalogue (public videos, newest first) and a channel's page.
CREATE INDEX videos_privacy_newest ON videos (privacy, created_at DESC, id DESC);
CREATE INDEX videos_channel_newest ON videos (channel, created_at DESC, id DESC);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    handle        TEXT NOT NULL,
    handle_folded TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    email         TEXT,
    role          TEXT NOT NULL,
    password_phc  TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
-- Whether an admin exists yet (until one does, the configuration's tokens act as one).
CREATE INDEX users_role ON users (role);

-- A signed-in browser, by the SHA-256 of its cookie's secret.
CREATE TABLE sessions (
    secret_sha256 TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- `scopes` is a comma-separated list of scope names.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL,
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at);

-- An account's first channel has the account's handle, so a handle taken by either an account
-- or a channel is taken here.
CREATE TABLE channels (
    id            TEXT PRIMARY KEY NOT NULL,
    owner         TEXT NOT NULL,
    handle        TEXT NOT NULL,
    handle_folded TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX channels_owner ON channels (owner, created_at);

CREATE TABLE video_shares (
    video_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (video_id, user_id)
);
CREATE INDEX video_shares_user ON video_shares (user_id);

-- One row per video and viewer (a hash of the session or of an anonymous viewer's id): a view
-- is counted once.
CREATE TABLE views (
    video_id  TEXT NOT NULL,
    viewer    TEXT NOT NULL,
    viewed_at BIGINT NOT NULL,
    PRIMARY KEY (video_id, viewer)
);

-- Undecided while `resolution` is NULL.
CREATE TABLE reports (
    id          TEXT PRIMARY KEY NOT NULL,
    video_id    TEXT NOT NULL,
    reporter    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    text        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    resolution  TEXT,
    resolved_by TEXT,
    resolved_at BIGINT,
    note        TEXT
);
CREATE INDEX reports_open ON reports (created_at, id) WHERE resolution IS NULL;
CREATE INDEX reports_video ON reports (video_id, created_at, id);
