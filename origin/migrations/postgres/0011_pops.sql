-- The PoP registry: every PoP has its own credential (only its SHA-256 is kept), a region,
-- whether a partner runs it, and whether it is enabled. Revoking one refuses its next
-- request without touching any other PoP. Keep it column-for-column identical to
-- ../sqlite/0011_pops.sql.
CREATE TABLE pops (
    id                TEXT PRIMARY KEY NOT NULL,
    region            TEXT NOT NULL,
    partner           BIGINT NOT NULL,
    enabled           BIGINT NOT NULL,
    credential_sha256 TEXT NOT NULL,
    enrolled_at       BIGINT NOT NULL,
    changed_at        BIGINT NOT NULL
);

-- Content keys still wrapped by an older master key are found by version when it rotates.
CREATE INDEX wrapped_keys_master ON wrapped_keys (master_version);
