"""The feedback loop against the real PostgreSQL: record clips, import outcomes, retrain."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipforge.clip_store import ClipStore
from clipforge.edl import Edl
from clipforge.errors import FeedbackImportError
from clipforge.feedback.importer import import_file
from clipforge.feedback.learn import MIN_SAMPLES, retrain, status
from clipforge.feedback.record import ClipRow, clip_rows
from clipforge.feedback.rows import Sample
from clipforge.feedback.synthetic import synthetic_samples
from clipforge.feedback.weights import DEFAULT_WEIGHTS, score

HEADER = "clip_id,views,avg_view_duration_s,likes,shares,published_at,channel\n"


@pytest.fixture()
def clips(job_store) -> ClipStore:
    store = ClipStore(job_store)

    def wipe(conn) -> None:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE clip_outcome, clip, scoring_weights")

    job_store.pool.run(wipe)
    return store


def _job(job_store) -> int:
    return job_store.create_job(job_key="feedback-test", prompt="p", source="/x.mp4",
                                parameters={})


def _edl(n: int = 3) -> Edl:
    return Edl.model_validate({
        "source": {"uri": "file:///x.mp4", "sha256": "ab" * 32, "duration": 600.0},
        "prompt": "pricing",
        "output": {"width": 1080, "height": 1920, "fps": "30", "loudness_lufs": -14.0},
        "highlights": [
            {"rank": i + 1, "start": 10.0 + 40 * i, "end": 30.5 + 40 * i, "score": 0.5,
             "text": "t", "evidence": {"keyword_density": 0.1, "audio_energy": 0.5,
                                       "visual": 0.3, "keyword": 0.5, "semantic": 0.2,
                                       "text": 0.6, "bursts": 0.1, "pitch_var": 0.2,
                                       "speech_rate": 0.7, "delivery": 0.4}}
            for i in range(n)],
        "segments": [{"source_in": 10.0 + 40 * i, "source_out": 30.5 + 40 * i}
                     for i in range(n)],
        "clips": [{"rank": i + 1, "segment": i} for i in range(n)],
    })


def _record(clips: ClipStore, job_store) -> list[ClipRow]:
    rows = clip_rows(_edl(), job_id=_job(job_store), settings={"prompt": "pricing"},
                     output_names={1: "pricing-1.mp4", 2: "pricing-2.mp4", 3: "pricing-3.mp4"},
                     weights_version=0)
    assert clips.record_clips(rows) == 3
    return rows


def _outcome_count(job_store) -> int:
    def work(conn) -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM clip_outcome")
            return int(cur.fetchone()[0])
    return job_store.pool.run(work)


def test_clip_rows_carry_the_feature_vector(clips, job_store) -> None:
    rows = _record(clips, job_store)
    got = clips.get_clip(rows[0].clip_id)
    assert got is not None and got["output_name"] == "pricing-1.mp4"
    assert got["features"]["energy"] == 0.5 and got["features"]["duration_s"] == 20.5
    assert got["start_us"] == 10_000_000 and got["end_us"] == 30_500_000
    assert len({r.clip_id for r in rows}) == 3


def test_import_is_idempotent_and_lists_unknown_ids(clips, job_store, tmp_path: Path) -> None:
    rows = _record(clips, job_store)
    f = tmp_path / "out.csv"
    f.write_text(HEADER + f"{rows[0].clip_id},1200,11.5,30,4,2026-03-01T10:00:00Z,tiktok\n"
                 f"{rows[1].clip_id},800,9,,,2026-03-02,\n"
                 f"{'e' * 32},5,1,0,0,2026-03-02,tiktok\n")
    first = import_file(clips, f)
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    assert [(r, k) for r, k, _ in first.unknown] == [(4, "e" * 32)]
    again = import_file(clips, f)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert _outcome_count(job_store) == 2
    f.write_text(HEADER + f"{rows[0].clip_id},1500,11.5,30,4,2026-03-01T10:00:00Z,tiktok\n")
    assert import_file(clips, f).updated == 1


def test_one_bad_row_imports_nothing(clips, job_store, tmp_path: Path) -> None:
    rows = _record(clips, job_store)
    f = tmp_path / "bad.csv"
    f.write_text(HEADER + f"{rows[0].clip_id},1200,11.5,30,4,2026-03-01,tiktok\n"
                 f"{rows[1].clip_id},-3,9,1,1,2026-03-02,tiktok\n"
                 f"{rows[2].clip_id},10,9,1,1,not-a-date,tiktok\n")
    with pytest.raises(FeedbackImportError) as err:
        import_file(clips, f)
    assert [n for n, _ in err.value.problems] == [3, 4]
    assert "views" in err.value.problems[0][1] and "row 3" in err.value.message
    assert _outcome_count(job_store) == 0
    f.write_text(HEADER + f"{rows[0].clip_id},1,1,1,1,2026-03-01,tik\x07tok\n")
    with pytest.raises(FeedbackImportError, match="control character"):
        import_file(clips, f)


def test_file_name_and_youtube_studio_export(clips, job_store, tmp_path: Path) -> None:
    rows = _record(clips, job_store)
    canon = tmp_path / "names.json"
    canon.write_text(json.dumps([{"file": "pricing-1.mp4", "views": 10,
                                  "avg_view_duration_s": 3, "published_at": "2026-03-01",
                                  "channel": "shorts"}]))
    rep = import_file(clips, canon)
    assert rep.inserted == 1 and not rep.unknown
    yt = tmp_path / "Table data.csv"
    yt.write_text(
        "Content,Video title,Video publish time,Duration,Views,Watch time (hours),"
        "Average view duration,Likes,Shares\n"
        "Total,,,,3000,12.1,,120,9\n"
        "dQw4w9WgXcQ,pricing-2,\"Mar 5, 2026\",21,2000,8.0,0:00:14,100,7\n"
        "aaaaaaaaaaa,pricing-3.mp4,\"Mar 6, 2026\",21,1000,4.1,0:00:09,20,2\n"
        "bbbbbbbbbbb,my holiday,\"Mar 7, 2026\",60,5,0.1,0:01:02,0,0\n")
    rep = import_file(clips, yt)
    assert rep.inserted == 2 and [k for _, k, _ in rep.unknown] == ["my holiday"]

    def got(conn):
        with conn.cursor() as cur:
            cur.execute("SELECT clip_id, channel, views, avg_view_duration_s, likes"
                        " FROM clip_outcome WHERE channel = 'youtube' ORDER BY views DESC")
            return cur.fetchall()
    assert job_store.pool.run(got) == [(rows[1].clip_id, "youtube", 2000, 14.0, 100),
                                       (rows[2].clip_id, "youtube", 1000, 9.0, 20)]


def _store_samples(clips: ClipStore, job_store, samples: list[Sample], tmp: Path) -> None:
    job = _job(job_store)
    clips.record_clips([ClipRow(s.clip_id, job, s.source_sha256, 1, i * 10**8,
                                i * 10**8 + int(float(s.features["duration_s"] or 1) * 1e6),
                                None, s.features, 0) for i, s in enumerate(samples)])
    lines = [HEADER.strip()] + [
        f"{s.clip_id},{s.views},{s.avg_view_duration_s},0,0,{s.published_at.isoformat()},"
        f"{s.channel}" for s in samples]
    path = tmp / "synthetic.csv"
    path.write_text("\n".join(lines) + "\n")
    rep = import_file(clips, path)
    assert rep.inserted == len(samples) and not rep.unknown


def test_below_minimum_nothing_changes(clips, job_store, tmp_path: Path) -> None:
    _store_samples(clips, job_store, synthetic_samples(MIN_SAMPLES - 1, seed=3), tmp_path)
    res = retrain(clips)
    assert res.status == "too_few_samples" and res.sample_count == MIN_SAMPLES - 1
    assert clips.weights_rows() == [] and clips.weights_in_force() == DEFAULT_WEIGHTS
    st = status(clips)
    assert st["in_force"]["version"] == 0 and st["candidate"] is None


def test_retrain_adopts_a_better_candidate_within_the_bound(clips, job_store,
                                                            tmp_path: Path) -> None:
    _store_samples(clips, job_store, synthetic_samples(200, seed=1), tmp_path)
    res = retrain(clips)
    assert res.status == "adopted", res.to_json()
    assert res.heldout_spearman > res.baseline_spearman
    w = clips.weights_in_force()
    assert w.version == 1 and w == res.candidate
    assert all(abs(a - b) <= 0.05 + 1e-6 for a, b in zip(w.to_json().values(),
                                                         DEFAULT_WEIGHTS.to_json().values(),
                                                         strict=True))
    st = status(clips)
    assert st["sample_count"] == 200 and st["in_force"]["version"] == 1
    assert st["candidate"]["adopted"] and math.isfinite(st["heldout_spearman"])


def test_candidate_that_does_not_beat_current_is_not_adopted(clips, job_store,
                                                             tmp_path: Path) -> None:
    # the outcomes are today's score itself: the defaults cannot be beaten by the margin
    samples = []
    for s in synthetic_samples(120, seed=4):
        sc = score({"text": s.features["text"], **{t: s.features[t] for t in
                    ("energy", "bursts", "pitch_var", "speech_rate")},
                    "visual": s.features["visual"]}, DEFAULT_WEIGHTS)
        dur = float(s.features["duration_s"] or 1)
        samples.append(Sample(s.clip_id, s.source_sha256, "one", s.features,
                              int(1e6 * sc), round(dur * sc, 6), s.published_at))
    _store_samples(clips, job_store, samples, tmp_path)
    res = retrain(clips)
    assert res.status == "not_adopted", res.to_json()
    assert clips.weights_in_force() == DEFAULT_WEIGHTS
    rows = clips.weights_rows()
    assert len(rows) == 1 and rows[0]["adopted"] is False
    assert status(clips)["candidate"]["version"] == 1
