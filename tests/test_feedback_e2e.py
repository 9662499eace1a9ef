"""The feedback loop end to end, as a user runs it, against the real services (issue 13).

1. `clipforge run --clips 3` renders: the EDL's highlights, the MP4s' comment tags and the
   ``clip`` rows carry the same clip ids.
2. More samples, honest but cheap: one `clipforge eval` over a truth file of prompts on
   the same episode (every case a real `--no-render` job, analysis from cache) gives real
   EDLs; their highlights' clip rows (real feature vectors) are recorded as a render
   would. Outcomes are generated from known weights that favour ``energy`` and punish
   ``pitch_var``, plus noise, and imported with `clipforge feedback import` (canonical CSV
   for the extra clips, YouTube Studio format with file names for the rendered ones).
3. `clipforge feedback retrain` until a candidate is adopted; `status --json` shows it.
4. The next `clipforge run` records the new weights version, and the scores moved toward
   the energetic highlights.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_environment, clipforge

from clipforge.clip_store import ClipStore
from clipforge.deliver import clip_settings
from clipforge.edl import Edl, load_edl
from clipforge.feedback.ids import parse_comment_tag
from clipforge.feedback.record import clip_rows

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RENDER_PROMPT = "the callers say where they are from"
# Prompts for the extra samples (RENDER_PROMPT is not among them: the same prompt and
# settings would give the same clip ids as the rendered clips).
PROMPTS = [
    "ask not what your country can do for you", "the famous presidential line about patriotism",
    "the software license permission notice", "what the example video may be used for",
    "the time on the bottom right", "when he will say banana",
    "oh hello I didn't know you were there", "I heard a beat", "Diane in New Jersey",
    "Sheila from Texas, originally from Chicago", "they call me a Yankee",
    "free of charge to any person obtaining a copy of this software",
    "the copyright notice shall be included in all copies", "commercial uses are allowed",
    "ask what you can do for your country", "an example video", "greetings on the phone",
    "moving from Chicago to New Jersey", "there isn't that much difference",
    "a speech by a president", "the fruit word", "documentation files",
    "substantial portions of the software", "fellow Americans", "two women meet on a call",
]
CANONICAL = ["clip_id", "views", "avg_view_duration_s", "likes", "shares", "published_at",
             "channel"]
UNKNOWN_ID = "0123456789abcdef0123456789abcdef"


def ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    return p


def outcome(features: dict, rng: np.random.Generator) -> tuple[int, float]:
    """Known ground truth: views grow with energy (and text relevance), fall with
    pitch_var; retention follows the same signal. Noise on top."""
    signal = (2.0 * math.log(max(float(features["text"] or 0.0), 1e-3))
              + 10.0 * float(features["energy"] or 0.0)
              - 5.0 * float(features["pitch_var"] or 0.0))
    views = int(math.exp(8.0 + signal + rng.normal(0, 0.02)))
    retention = min(1.0, max(0.05, 0.35 + 0.01 * signal))
    return views, round(retention * float(features["duration_s"] or 1.0), 2)


def rank_weighted_energy(doc: dict) -> float:
    hs = doc["highlights"]
    w = [1 / h["rank"] for h in hs]
    return sum(wi * h["evidence"]["audio_energy"] for wi, h in zip(w, hs, strict=True)) / sum(w)


@pytest.fixture(scope="module")
def clips(job_store):
    store = ClipStore(job_store)

    def wipe(conn) -> None:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE clip_outcome, clip, scoring_weights")

    job_store.pool.run(wipe)
    yield store
    job_store.pool.run(wipe)  # later modules get the shipped default weights again


@pytest.fixture(scope="module")
def cli_env(service_urls, clipforge_home, tmp_path_factory) -> dict[str, str]:
    return cli_environment(service_urls, clipforge_home, tmp_path_factory.mktemp("prefect"))


@pytest.fixture(scope="module")
def rendered(clips, cli_env, public_episode, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    ok(clipforge(cli_env, "run", str(public_episode), "--prompt", RENDER_PROMPT,
                 "--clips", "3", "--out", str(out)))
    return out


@pytest.fixture(scope="module")
def extra_edls(rendered, cli_env, public_episode, tmp_path_factory) -> list[Edl]:
    """Real EDLs for the extra prompts from one `clipforge eval` (one process, one job
    per prompt, no render)."""
    work = tmp_path_factory.mktemp("extra")
    truth = work / "truth.json"
    truth.write_text(json.dumps({
        "video": str(public_episode), "duration": 148.4, "parts": {},
        "cases": [{"id": f"c{i:02d}", "prompt": p, "expected": [0.0, 1.0]}
                  for i, p in enumerate(PROMPTS)]}))
    ok(clipforge(cli_env, "eval", str(truth), "--out", str(work / "out"),
                 "--target-seconds", "30", "--json"))
    return [load_edl(work / "out" / f"c{i:02d}" / "edl.json") for i in range(len(PROMPTS))]


@pytest.fixture(scope="module")
def imported(rendered, extra_edls, clips, cli_env, tmp_path_factory) -> dict:
    """Clip rows for the extra highlights, outcome files, and the first import."""
    rows = []
    for edl in extra_edls:
        settings = clip_settings(edl, aspect="source", layout="auto",
                                 captions=edl.captions.mode if edl.captions else "off")
        rows += clip_rows(edl, job_id=None, settings=settings, output_names=None,
                          weights_version=int(edl.selection.get("weights_version", 0)))
    assert len({r.clip_id for r in rows}) == len(rows)
    clips.record_clips(rows)
    rng = np.random.default_rng(2026)
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    order = rng.permutation(len(rows) + 3)
    work = tmp_path_factory.mktemp("outcomes")
    canonical = work / "analytics.csv"
    with canonical.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CANONICAL)
        for i, r in enumerate(rows):
            views, avd = outcome(r.features, rng)
            w.writerow([r.clip_id, views, avd, views // 20, views // 200,
                        (t0 + timedelta(hours=int(order[i]))).isoformat(), "youtube"])
        w.writerow([UNKNOWN_ID, 10, 1.0, "", "", "2026-03-01", "youtube"])
    # YouTube Studio "Table data.csv": the rendered shorts, keyed by title = file name.
    doc = json.loads((rendered / "edl.json").read_text())
    studio = work / "Table data.csv"
    with studio.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Content", "Video title", "Video publish time", "Views",
                    "Watch time (hours)", "Average view duration", "Likes", "Shares"])
        w.writerow(["Total", "", "", "0", "0", "", "", ""])
        for k, h in enumerate(doc["highlights"]):
            row = clips.get_clip(h["clip_id"])
            assert row is not None
            views, avd = outcome(row["features"], rng)
            when = t0 + timedelta(hours=int(order[len(rows) + k]))
            w.writerow([f"vid{k}", Path(row["output_name"]).stem, when.strftime("%b %-d, %Y"),
                        f"{views:,}", "1.5", f"0:00:{int(avd):02d}", views // 20, ""])
    first = json.loads(ok(clipforge(cli_env, "feedback", "import", str(canonical))).stdout)
    return {"rows": rows, "canonical": canonical, "studio": studio, "first": first,
            "rendered_highlights": doc["highlights"]}


# --------------------------------------------------------------------------- 1. render


def test_rendered_clips_carry_their_ids_everywhere(rendered: Path, clips: ClipStore) -> None:
    doc = json.loads((rendered / "edl.json").read_text())
    assert len(doc["highlights"]) == 3 and len(doc["clips"]) == 3
    assert doc["selection"]["weights_version"] == 0
    ids = [h["clip_id"] for h in doc["highlights"]]
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)
    for c in doc["clips"]:
        mp4 = rendered / f"clip_{c['rank']:02d}.mp4"
        probe = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format_tags=comment", "-of", "json",
             str(mp4)], capture_output=True, text=True, check=True).stdout)
        tag = probe["format"]["tags"]["comment"]
        h = next(h for h in doc["highlights"] if h["rank"] == c["rank"])
        assert parse_comment_tag(tag) == [h["clip_id"]], tag
        row = clips.get_clip(h["clip_id"])
        assert row is not None, h
        assert row["output_name"] == mp4.name and row["rank"] == h["rank"]
        assert row["start_us"] == round(h["start"] * 1e6) and row["weights_version"] == 0
        assert row["features"]["energy"] == pytest.approx(h["evidence"]["audio_energy"],
                                                          abs=1e-6)


def test_retrain_below_the_minimum_changes_nothing(rendered: Path, cli_env, clips) -> None:
    before = json.loads(ok(clipforge(cli_env, "feedback", "status", "--json")).stdout)
    p = json.loads(ok(clipforge(cli_env, "feedback", "retrain")).stdout)
    assert p["status"] == "too_few_samples" and p["sample_count"] < p["min_samples"] == 30
    after = json.loads(ok(clipforge(cli_env, "feedback", "status", "--json")).stdout)
    assert after["candidate"] is None and before["candidate"] is None
    assert after["in_force"]["version"] == 0


# --------------------------------------------------------------------------- 2. import


def test_import_counts_reports_unknown_and_is_idempotent(imported: dict, cli_env) -> None:
    n = len(imported["rows"])
    assert n >= 30
    first = imported["first"]
    assert (first["inserted"], first["updated"], first["unchanged"]) == (n, 0, 0)
    assert [u["key"] for u in first["unknown"]] == [UNKNOWN_ID]
    again = json.loads(ok(clipforge(cli_env, "feedback", "import",
                                    str(imported["canonical"]))).stdout)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, n)
    assert [u["key"] for u in again["unknown"]] == [UNKNOWN_ID]


def test_youtube_studio_export_resolves_file_names(imported: dict, cli_env) -> None:
    rep = json.loads(ok(clipforge(cli_env, "feedback", "import",
                                  str(imported["studio"]))).stdout)
    assert rep["unknown"] == [] and rep["inserted"] == 3, rep
    status = json.loads(ok(clipforge(cli_env, "feedback", "status", "--json")).stdout)
    assert status["sample_count"] == len(imported["rows"]) + 3


def test_a_bad_row_imports_nothing_and_is_named(imported: dict, cli_env, tmp_path) -> None:
    lines = imported["canonical"].read_text().splitlines()
    bad_line = 6  # CSV line numbers count the header as line 1
    cells = lines[bad_line - 1].split(",")
    cells[1] = "-12"  # negative views
    lines[bad_line - 1] = ",".join(cells)
    # every other row changed too: nothing of it may land
    changed = [lines[0]] + [",".join([c.split(",")[0], "7", *c.split(",")[2:]])
                            if i != bad_line - 1 else c for i, c in enumerate(lines) if i]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(changed) + "\n")
    before = json.loads(ok(clipforge(cli_env, "feedback", "status", "--json")).stdout)
    p = clipforge(cli_env, "feedback", "import", str(bad))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"row {bad_line}:" in p.stderr and "views" in p.stderr and "bad.csv" in p.stderr
    assert "nothing imported" in p.stderr
    again = json.loads(ok(clipforge(cli_env, "feedback", "import",
                                    str(imported["canonical"]))).stdout)
    assert again["updated"] == again["inserted"] == 0  # the stored values are untouched
    after = json.loads(ok(clipforge(cli_env, "feedback", "status", "--json")).stdout)
    assert after["sample_count"] == before["sample_count"]


# --------------------------------------------------------------------------- 3. retrain


@pytest.fixture(scope="module")
def adopted(imported, cli_env) -> dict:
    # The YouTube rows belong to the sample set (import them even if run alone).
    ok(clipforge(cli_env, "feedback", "import", str(imported["studio"])))
    results = []
    for _ in range(3):  # each guarded step moves a weight by at most 0.05
        results.append(json.loads(ok(clipforge(cli_env, "feedback", "retrain")).stdout))
        if results[-1]["status"] != "adopted":
            break
    status = json.loads(ok(clipforge(cli_env, "feedback", "status", "--json")).stdout)
    return {"results": results, "status": status}


def test_retrain_adopts_weights_that_follow_the_outcomes(adopted: dict) -> None:
    results, status = adopted["results"], adopted["status"]
    assert results[0]["status"] == "adopted", json.dumps(results)
    assert all(r["sample_count"] >= 30 for r in results)
    force = status["in_force"]
    assert force["version"] >= 1 and force["name"] == f"v{force['version']}"
    w = force["weights"]
    # the guard: each update moves each weight by at most max_step
    n_adopted = sum(r["status"] == "adopted" for r in results)
    assert abs(w["energy"] - 0.45) <= 0.05 * n_adopted + 1e-6
    # the direction the outcomes imply: more energy, less pitch variation
    assert w["energy"] > 0.45 and w["pitch_var"] < 0.2, w
    assert status["heldout_spearman"] is not None
    adopted_rows = [r for r in results if r["status"] == "adopted"]
    last = adopted_rows[-1]
    assert last["heldout_spearman"] > last["baseline_spearman"]
    assert status["sample_count"] >= 30


# --------------------------------------------------------------------------- 4. next run


def test_next_run_uses_the_new_weights_and_favours_energy(adopted: dict, rendered: Path,
                                                          cli_env, public_episode,
                                                          tmp_path) -> None:
    version = adopted["status"]["in_force"]["version"]
    out = tmp_path / "next"
    p = ok(clipforge(cli_env, "run", str(public_episode), "--prompt", RENDER_PROMPT,
                     "--clips", "3", "--no-render", "--out", str(out)))
    assert "cached: audio-analysis" in p.stdout
    old = json.loads((rendered / "edl.json").read_text())
    new = json.loads((out / "edl.json").read_text())
    assert new["selection"]["weights_version"] == version
    assert new["selection"]["weights"] == f"v{version}"
    # The same moments, scored with the new weights: relative to the least energetic
    # one, the most energetic one gained (the weights moved toward energy).
    def key(h: dict) -> tuple[float, float]:
        return round(h["start"], 1), round(h["end"], 1)

    olds = {key(h): h for h in old["highlights"]}
    common = [(olds[key(h)], h) for h in new["highlights"] if key(h) in olds]
    assert len(common) >= 2, (old["highlights"], new["highlights"])
    hi = max(common, key=lambda c: c[0]["evidence"]["audio_energy"])
    lo = min(common, key=lambda c: c[0]["evidence"]["audio_energy"])
    assert hi[0]["evidence"]["audio_energy"] > lo[0]["evidence"]["audio_energy"] + 0.1
    gain_hi = hi[1]["score"] / hi[0]["score"]
    gain_lo = lo[1]["score"] / lo[0]["score"]
    assert gain_hi > gain_lo * 1.005, (gain_hi, gain_lo)
    # and the ranking did not move against energy
    assert rank_weighted_energy(new) >= rank_weighted_energy(old) - 1e-9
