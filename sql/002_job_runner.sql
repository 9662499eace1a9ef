-- 002: which process runs a job (host:pid), so a rerun can tell a crashed job from a live one.
ALTER TABLE video_job ADD COLUMN IF NOT EXISTS runner text;
