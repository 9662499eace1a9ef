-- 001: jobs and their stage checkpoints. Idempotent: safe to run more than once.

CREATE TABLE IF NOT EXISTS video_job (
    id                 bigserial PRIMARY KEY,
    job_key            text NOT NULL,
    status             text NOT NULL
                       CHECK (status IN ('queued', 'running', 'succeeded', 'failed',
                                         'budget_exceeded')),
    checkpoint         text,
    prompt             text NOT NULL,
    source             text NOT NULL,
    source_sha256      text,
    parameters         jsonb NOT NULL DEFAULT '{}',
    priority           integer NOT NULL DEFAULT 0,
    error_code         text,
    error              text,
    source_duration    double precision,
    processing_seconds double precision,
    cost_usd           numeric(14, 6) NOT NULL DEFAULT 0,
    output_dir         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz
);

CREATE INDEX IF NOT EXISTS video_job_queue_idx
    ON video_job (status, priority DESC, created_at);
CREATE INDEX IF NOT EXISTS video_job_job_key_idx ON video_job (job_key);

CREATE TABLE IF NOT EXISTS job_checkpoint (
    job_id     bigint NOT NULL REFERENCES video_job (id) ON DELETE CASCADE,
    stage      text NOT NULL,
    seconds    double precision,
    detail     jsonb NOT NULL DEFAULT '{}',
    reached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, stage)
);
