-- What each region's PoPs report their viewers ask for, per minute, so that every API node
-- ranks a region's titles the same way (the heartbeat's prefetch). Rows older than the
-- ranking's horizon are removed as heartbeats arrive. Keep identical to the other backend's
-- file.
CREATE TABLE popularity (
    region   TEXT NOT NULL,
    video_id TEXT NOT NULL,
    minute   BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (region, minute, video_id)
);
