-- What each PoP said about itself in its latest heartbeat, so that every API node steers
-- viewers and creators the same way (content steering). One row per PoP, replaced by each
-- beat; `requests` and `failed` are decayed sums (each beat halves them and adds its own).
-- Booleans are integers, as in `pops`. Keep identical to the other backend's file but for
-- the types.
CREATE TABLE pop_status (
    pop      TEXT PRIMARY KEY NOT NULL,
    url      TEXT,
    every_ms BIGINT NOT NULL,
    load     DOUBLE PRECISION NOT NULL,
    requests BIGINT NOT NULL,
    failed   BIGINT NOT NULL,
    uploads  BIGINT NOT NULL,
    beat_at  BIGINT NOT NULL
);
