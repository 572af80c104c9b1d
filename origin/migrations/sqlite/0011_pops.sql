-- The PoP registry: every PoP has its own credential (only its SHA-256 is kept), a region,
-- whether a partner runs it, and whether it is enabled. Revoking one refuses its next
-- request without touching any other PoP. Keep it column-for-column identical to
-- ../postgres/0011_pops.sql.
CREATE TABLE pops (
    id                TEXT PRIMARY KEY NOT NULL,
    region            TEXT NOT NULL,
    partner           INTEGER NOT NULL,
    enabled           INTEGER NOT NULL,
    credential_sha256 TEXT NOT NULL,
    enrolled_at       INTEGER NOT NULL,
    changed_at        INTEGER NOT NULL
);

-- Content keys still wrapped by an older master key are found by version when it rotates.
CREATE INDEX wrapped_keys_master ON wrapped_keys (master_version);
