-- Where an upload's bytes are: each acknowledged run of bytes is one object in blob storage,
-- recorded in the same transaction that moves the upload's offset past it, so any API node
-- continues any upload and the job assembles the original from them. Keep identical to the
-- other backend's file.
CREATE TABLE upload_pieces (
    upload_id     TEXT NOT NULL,
    upload_offset BIGINT NOT NULL,
    length        BIGINT NOT NULL,
    object        TEXT NOT NULL,
    PRIMARY KEY (upload_id, upload_offset)
);
