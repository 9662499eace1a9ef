-- 003: the performance feedback loop (issue 13). Idempotent: safe to run more than once.
--   clip            every rendered clip: stable id, job, cut points, the score's feature vector
--   clip_outcome    how a published clip did, one row per (clip, channel), latest export wins
--   scoring_weights versioned score weights; the newest adopted row is in force (none: the
--                   shipped defaults, version 0)

CREATE TABLE IF NOT EXISTS clip (
    clip_id         text PRIMARY KEY CHECK (clip_id ~ '^[0-9a-f]{32}$'),
    job_id          bigint REFERENCES video_job (id) ON DELETE SET NULL,
    source_sha256   text NOT NULL CHECK (source_sha256 ~ '^[0-9a-f]{64}$'),
    rank            integer NOT NULL CHECK (rank >= 1),
    start_us        bigint NOT NULL CHECK (start_us >= 0),
    end_us          bigint NOT NULL CHECK (end_us > start_us),
    output_name     text,
    features        jsonb NOT NULL,
    settings        jsonb NOT NULL DEFAULT '{}',
    weights_version integer NOT NULL DEFAULT 0 CHECK (weights_version >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS clip_output_name_idx ON clip (output_name);
CREATE INDEX IF NOT EXISTS clip_job_idx ON clip (job_id);

CREATE TABLE IF NOT EXISTS clip_outcome (
    clip_id             text NOT NULL REFERENCES clip (clip_id) ON DELETE CASCADE,
    channel             text NOT NULL CHECK (length(channel) BETWEEN 1 AND 100),
    views               bigint NOT NULL CHECK (views >= 0),
    avg_view_duration_s double precision NOT NULL CHECK (avg_view_duration_s >= 0),
    likes               bigint CHECK (likes >= 0),
    shares              bigint CHECK (shares >= 0),
    published_at        timestamptz NOT NULL,
    row_hash            text NOT NULL,
    imported_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clip_id, channel)
);

CREATE TABLE IF NOT EXISTS scoring_weights (
    version           integer PRIMARY KEY CHECK (version >= 1),
    weights           jsonb NOT NULL,
    sample_count      integer NOT NULL CHECK (sample_count >= 0),
    heldout_spearman  double precision,
    baseline_spearman double precision,
    adopted           boolean NOT NULL DEFAULT false,
    detail            jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS scoring_weights_adopted_idx
    ON scoring_weights (version DESC) WHERE adopted;
