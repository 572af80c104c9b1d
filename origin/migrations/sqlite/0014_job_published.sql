-- Whether a job's message is known to be on the queue. A job is recorded (with its video's
-- move to queued) before its message is published; if the publish fails or the node dies in
-- between, the job stays unpublished and a sweeper publishes it (`jobs::publish_stranded`).
-- Jobs recorded before this column existed were published: they default to 1; new jobs are
-- inserted with 0. Keep identical to the other backend's file but for the type.
ALTER TABLE jobs ADD COLUMN published INTEGER NOT NULL DEFAULT 1;
