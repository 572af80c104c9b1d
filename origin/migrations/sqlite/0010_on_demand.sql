-- Just-in-time encoding: the materialisation state of every rung, what viewers ask for, who
-- encodes which segment, and which workers are alive. Keep it column-for-column identical to
-- ../postgres/0010_on_demand.sql.

-- One row per video rung once the video is ready. `stored` counts segments in transcoded
-- storage, `segments` how many the rung has.
CREATE TABLE rungs (
    video_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    state      TEXT NOT NULL,
    stored     INTEGER NOT NULL,
    segments   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (video_id, name)
);
CREATE INDEX rungs_state ON rungs (state, updated_at);

-- An operator's choice for a video: 'full' (always every rung) or 'floor' (never promoted).
CREATE TABLE pins (
    video_id TEXT PRIMARY KEY NOT NULL,
    pin      TEXT NOT NULL
);

-- Requests per video per minute (PoP heartbeats and the origin's own object requests), so
-- popularity survives a restart and is shared by every API node.
CREATE TABLE demand (
    video_id TEXT NOT NULL,
    minute   INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (video_id, minute)
);
CREATE INDEX demand_minute ON demand (minute);

-- Who encodes a segment now: at most one claim per (video, rung, segment).
CREATE TABLE segment_claims (
    video_id   TEXT NOT NULL,
    rung       TEXT NOT NULL,
    segment    INTEGER NOT NULL,
    owner      TEXT NOT NULL,
    worker     TEXT,
    attempt    INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (video_id, rung, segment)
);

-- Workers announce the kinds they run and their free slots, and heartbeat.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY NOT NULL,
    host         TEXT NOT NULL,
    kinds        TEXT NOT NULL,
    slots        INTEGER NOT NULL,
    busy         INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
