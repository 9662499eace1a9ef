"""All feedback-loop SQL: ``clip``, ``clip_outcome`` and ``scoring_weights`` (sql/003).

:class:`ClipStore` runs on a :class:`clipforge.store.JobStore`'s bounded pool (its
``run`` helper: one transaction per call, a broken connection retried once), so there is
one pool and one migration runner. All SQL is parameterised.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

from psycopg2.extensions import connection as Conn
from psycopg2.extras import Json

from clipforge.errors import FeedbackImportError
from clipforge.feedback.ids import CLIP_ID_RE
from clipforge.feedback.record import ClipRow
from clipforge.feedback.rows import ImportReport, OutcomeRow, Sample
from clipforge.feedback.weights import DEFAULT_WEIGHTS, ScoreWeights
from clipforge.store import JobStore

_WEIGHTS_COLS = ("version, weights, sample_count, heldout_spearman, baseline_spearman,"
                 " adopted, detail, created_at")


def outcome_hash(clip_id: str, r: OutcomeRow) -> str:
    """The imported row's identity: same values for the same clip -> same hash."""
    doc = [clip_id, r.channel, r.views, repr(float(r.avg_view_duration_s)), r.likes, r.shares,
           r.published_at.isoformat()]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def _weights_row(row: tuple[Any, ...]) -> dict[str, Any]:
    version, weights, n, held, base, adopted, detail, created = row
    return {"version": version, "weights": weights, "sample_count": n,
            "heldout_spearman": held, "baseline_spearman": base, "adopted": adopted,
            "detail": detail, "created_at": created.isoformat()}


class ClipStore:
    """Rendered clips, their published outcomes and the versioned score weights."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.pool = jobs.pool

    # ------------------------------------------------------------------ clips

    def record_clips(self, rows: Sequence[ClipRow]) -> int:
        """Upsert clip rows (a re-render of the same clip updates job, rank, name,
        features and weights version); returns how many rows were written."""
        def work(conn: Conn) -> int:
            with conn.cursor() as cur:
                for r in rows:
                    cur.execute(
                        "INSERT INTO clip (clip_id, job_id, source_sha256, rank, start_us,"
                        " end_us, output_name, features, settings, weights_version)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (clip_id) DO UPDATE SET job_id = EXCLUDED.job_id,"
                        " rank = EXCLUDED.rank, output_name = EXCLUDED.output_name,"
                        " features = EXCLUDED.features, settings = EXCLUDED.settings,"
                        " weights_version = EXCLUDED.weights_version, updated_at = now()",
                        (r.clip_id, r.job_id, r.source_sha256, r.rank, r.start_us, r.end_us,
                         r.output_name, Json(r.features), Json(r.settings), r.weights_version),
                    )
            return len(rows)

        return self.pool.run(work)

    def get_clip(self, clip_id: str) -> dict[str, Any] | None:
        def work(conn: Conn) -> dict[str, Any] | None:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT clip_id, job_id, source_sha256, rank, start_us, end_us,"
                    " output_name, features, settings, weights_version FROM clip"
                    " WHERE clip_id = %s", (clip_id,))
                row = cur.fetchone()
                if row is None:
                    return None
                keys = ("clip_id", "job_id", "source_sha256", "rank", "start_us", "end_us",
                        "output_name", "features", "settings", "weights_version")
                return dict(zip(keys, row, strict=True))

        return self.pool.run(work)

    # ------------------------------------------------------------------ outcomes

    @staticmethod
    def _resolve(cur: Any, r: OutcomeRow) -> tuple[str | None, str]:
        """``(clip_id, "")`` or ``(None, why)``."""
        ids = list(r.ids)
        if not ids and CLIP_ID_RE.match(r.key):
            ids = [r.key]
        if len(ids) > 1:
            return None, (f"names {len(ids)} clips (a reel); outcomes are learned per clip, "
                          "so import a short's row instead")
        if ids:
            cur.execute("SELECT clip_id FROM clip WHERE clip_id = %s", (ids[0],))
            return (ids[0], "") if cur.fetchone() else (None, "no clip with this id")
        name = os.path.basename(r.key.replace("\\", "/"))
        stem = os.path.splitext(name)[0]
        cur.execute(
            "SELECT DISTINCT clip_id FROM clip WHERE output_name = %s"
            " OR regexp_replace(output_name, '[.][A-Za-z0-9]{1,5}$', '') = %s"
            " ORDER BY clip_id LIMIT 3", (name, stem))
        found = [row[0] for row in cur.fetchall()]
        if not found:
            return None, "no clip with this id or output file name"
        if len(found) > 1:
            return None, ("several clips have this output file name (a reel, or a name "
                          "reused across jobs); use the clip_id column instead")
        return found[0], ""

    def import_outcomes(self, rows: Sequence[OutcomeRow], *, source: str = "the file"
                        ) -> ImportReport:
        """Resolve every row to a clip and upsert its outcome, all in ONE transaction.

        Rows whose clip is unknown are skipped and listed in the report. Two rows that
        resolve to the same (clip, channel) abort the whole import
        (:class:`FeedbackImportError`, nothing written). A row whose values equal the
        stored ones changes nothing, so re-importing a file is a no-op.
        """
        def work(conn: Conn) -> ImportReport:
            inserted = updated = unchanged = 0
            unknown: list[tuple[int, str, str]] = []
            seen: dict[tuple[str, str], int] = {}
            problems: list[tuple[int, str]] = []
            resolved: list[tuple[str, OutcomeRow]] = []
            with conn.cursor() as cur:
                for r in rows:
                    cid, why = self._resolve(cur, r)
                    if cid is None:
                        unknown.append((r.row, r.key, why))
                        continue
                    if (cid, r.channel) in seen:
                        problems.append((r.row, f"clip {cid} on channel {r.channel!r} is "
                                         f"also in row {seen[(cid, r.channel)]}"))
                        continue
                    seen[(cid, r.channel)] = r.row
                    resolved.append((cid, r))
                if problems:
                    raise FeedbackImportError(source, problems)
                for cid, r in resolved:
                    cur.execute(
                        "INSERT INTO clip_outcome (clip_id, channel, views,"
                        " avg_view_duration_s, likes, shares, published_at, row_hash)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (clip_id, channel) DO UPDATE SET views = EXCLUDED.views,"
                        " avg_view_duration_s = EXCLUDED.avg_view_duration_s,"
                        " likes = EXCLUDED.likes, shares = EXCLUDED.shares,"
                        " published_at = EXCLUDED.published_at, row_hash = EXCLUDED.row_hash,"
                        " imported_at = now()"
                        " WHERE clip_outcome.row_hash <> EXCLUDED.row_hash"
                        " RETURNING (xmax = 0)",
                        (cid, r.channel, r.views, r.avg_view_duration_s, r.likes, r.shares,
                         r.published_at, outcome_hash(cid, r)),
                    )
                    got = cur.fetchone()
                    if got is None:
                        unchanged += 1
                    elif got[0]:
                        inserted += 1
                    else:
                        updated += 1
            return ImportReport(inserted, updated, unchanged, tuple(unknown))

        return self.pool.run(work)

    def samples(self) -> list[Sample]:
        """Every clip with an outcome, in a fixed order (published_at, clip_id, channel)."""
        def work(conn: Conn) -> list[Sample]:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT c.clip_id, c.source_sha256, o.channel, c.features, o.views,"
                    " o.avg_view_duration_s, o.published_at FROM clip c"
                    " JOIN clip_outcome o ON o.clip_id = c.clip_id"
                    " ORDER BY o.published_at, c.clip_id, o.channel")
                return [Sample(cid, sha, ch, feats, int(v), float(d), pub)
                        for cid, sha, ch, feats, v, d, pub in cur.fetchall()]

        return self.pool.run(work)

    def sample_count(self) -> int:
        def work(conn: Conn) -> int:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM clip_outcome o JOIN clip c"
                            " ON c.clip_id = o.clip_id")
                row = cur.fetchone()
                return int(row[0]) if row else 0

        return self.pool.run(work)

    # ------------------------------------------------------------------ weights

    def weights_in_force(self) -> ScoreWeights:
        """The newest adopted weights, or the shipped defaults (version 0)."""
        def work(conn: Conn) -> ScoreWeights:
            with conn.cursor() as cur:
                cur.execute("SELECT version, weights FROM scoring_weights WHERE adopted"
                            " ORDER BY version DESC LIMIT 1")
                row = cur.fetchone()
                return ScoreWeights.from_json(row[1], row[0]) if row else DEFAULT_WEIGHTS

        return self.pool.run(work)

    def weights_rows(self, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first."""
        def work(conn: Conn) -> list[dict[str, Any]]:
            with conn.cursor() as cur:
                cur.execute(f"SELECT {_WEIGHTS_COLS} FROM scoring_weights"  # noqa: S608
                            " ORDER BY version DESC LIMIT %s", (limit,))
                return [_weights_row(r) for r in cur.fetchall()]

        return self.pool.run(work)

    def add_weights(self, weights: ScoreWeights, *, sample_count: int,
                    heldout_spearman: float | None, baseline_spearman: float | None,
                    adopted: bool, detail: dict[str, Any]) -> int:
        """Record a candidate (adopted or not) as the next version; returns it."""
        def work(conn: Conn) -> int:
            with conn.cursor() as cur:
                cur.execute("LOCK TABLE scoring_weights IN SHARE ROW EXCLUSIVE MODE")
                cur.execute("SELECT COALESCE(max(version), 0) + 1 FROM scoring_weights")
                row = cur.fetchone()
                assert row is not None
                version = int(row[0])
                cur.execute(
                    "INSERT INTO scoring_weights (version, weights, sample_count,"
                    " heldout_spearman, baseline_spearman, adopted, detail)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (version, Json(weights.to_json()), sample_count, heldout_spearman,
                     baseline_spearman, adopted, Json(detail)))
                return version

        return self.pool.run(work)
