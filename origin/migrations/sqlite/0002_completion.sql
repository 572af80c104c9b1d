-- The one upload whose completion queued the video (or is queuing it now). Set by a
-- conditional update while the video is `uploading`, so of two uploads finishing at once,
-- on any API nodes, exactly one completes the video. Keep identical to ../postgres.
ALTER TABLE videos ADD COLUMN completed_upload TEXT;
