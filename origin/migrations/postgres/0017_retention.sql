-- A ready video a moderator takes down is kept, unservable, until `retained_until` (Unix ms):
-- its bytes and wrapped key stay so that a mistaken takedown can be restored; after it, the
-- housekeeping loop removes them and clears the column. NULL: nothing retained. Keep
-- identical to the other backend's file but for the type.
ALTER TABLE videos ADD COLUMN retained_until BIGINT;
CREATE INDEX videos_retained ON videos (retained_until);
