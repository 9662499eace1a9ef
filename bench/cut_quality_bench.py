"""Cut quality and on-topic edges, before and after, in one run.

    PYTHONPATH=. python bench/cut_quality_bench.py [TRUTH.json ...] [--base COMMIT]

For each evaluation episode (default: ../shared/eval/public_episode.truth.json) and each
code version ("before" = COMMIT's clipforge exported to a temporary folder, default the
branch's merge base with the first commit of this work; "after" = this worktree) a
worker process runs the library pipeline (one streaming decode -> faster-whisper +
signals -> sentence embeddings -> selection -> segments; no visual signals, so scores
can differ slightly from `clipforge eval`) for every case, and this script scores:

- hit@1, hit@3, mean top-highlight precision (share of the top highlight inside the
  expected span), reel seconds;
- cut quality: the share of distinct cut points (segment in/out) whose 20 ms energy
  (centred on the cut) is within 6 dB of the quietest 20 ms window centred within
  +-250 ms (1 ms steps), and the worst excess in dB; also the share that is within 6 dB
  or itself below -60 dBFS (inaudible: the strict figure counts a -80 dBFS cut next to
  digital silence as a miss);
- cuts inside words: per the pipeline's own words, and per the independent word pass of
  `clipforge eval` (``clipforge.evaluate.independent_words``: a differently configured
  transcription whose text PocketSphinx force-aligns, on the truth file's speech track
  when it names one; the same reference for both versions, computed once with this
  worktree).

Both workers set ``frame_rate`` from the source's video stream when their version's
``SelectionParams`` has that field (a base from before frame-aware cuts has not, and its
cuts stay on the 10 ms grid); until 2026-12 only the "after" worker did, so a before /
after pair from then compared frame-aware cuts with unaware ones. Figures are printed
as a table and written as JSON with ``--json OUT``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent.parent
DEFAULT_TRUTH = HERE.parent / "shared" / "eval" / "public_episode.truth.json"
SR = 16_000


def worker(truth_path: str) -> dict[str, Any]:
    from clipforge import analysis, probe, select, semantic
    from clipforge.config import Settings
    from clipforge.plan import segments_from_picks

    try:
        from clipforge.textanalysis import analyse_text
    except ImportError:  # a --base revision from before the module was split off
        from clipforge.select import analyse_text  # type: ignore[attr-defined,no-redef]

    truth = json.loads(Path(truth_path).read_text())
    video = str(Path(truth_path).parent / truth["video"])
    settings = Settings()
    info = probe.probe(video)
    transcript, signals = analysis.analyse_audio(video, settings, duration_us=info.duration_us)
    text = analyse_text(transcript, lambda t: semantic.embed(t))
    rate = ""
    if info.video is not None:
        fps = info.video.fps
        rate = f"{fps.numerator}/{fps.denominator}"
    out: dict[str, Any] = {"words": [[w.start_us / 1e6, w.end_us / 1e6]
                                     for w in transcript.words], "cases": []}
    for case in truth["cases"]:
        params = select.SelectionParams.for_target(60.0)
        if rate and "frame_rate" in select.SelectionParams.__dataclass_fields__:
            params = select.SelectionParams(**{**{k: getattr(params, k) for k in
                                                  params.__dataclass_fields__},
                                               "frame_rate": rate})
        vec = semantic.embed([case["prompt"]])[0]
        ctx = select.build_context(transcript, text, signals, case["prompt"], vec)
        try:
            picks = select.select(ctx, params, prompt=case["prompt"])
        except Exception as exc:  # a typed NoHighlightsError: scored as a miss
            out["cases"].append({"id": case["id"], "error": str(exc)})
            continue
        out["cases"].append({
            "id": case["id"],
            "highlights": [[p.cut_in_us / 1e6, p.cut_out_us / 1e6] for p in picks],
            "segments": [[a / 1e6, b / 1e6] for a, b in segments_from_picks(picks)],
            "short_reason": getattr(picks[0], "short_reason", ""),
            "top_text": picks[0].candidate.text,
        })
    return out


def energy_20ms(y: np.ndarray) -> np.ndarray:
    """dB of the 20 ms window centred on each sample index (1 ms resolution suffices)."""
    half = SR // 100
    c = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    idx = np.arange(y.size)
    lo = np.clip(idx - half, 0, y.size)
    hi = np.clip(idx + half, 0, y.size)
    p = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    return 10 * np.log10(np.maximum(p, 1e-12))


def cut_excess_db(env: np.ndarray, t: float) -> float:
    i = min(max(int(round(t * SR)), 0), env.size - 1)
    lo, hi = max(0, i - SR // 4), min(env.size, i + SR // 4 + 1)
    return float(env[i] - env[lo:hi:16].min())


def independent_words(truth_path: str, truth: dict[str, Any]) -> list[tuple[float, float]]:
    from clipforge.audio import decode_mono_16k
    from clipforge.evaluate import independent_words as reference
    from clipforge.evaluate import reference_audio

    words, _info = reference(decode_mono_16k(str(reference_audio(Path(truth_path), truth))))
    return words


def inside(t: float, words: list[tuple[float, float]] | list[list[float]]) -> bool:
    return any(w0 < t < w1 for w0, w1 in words)


def share_inside(span: list[float], exp: list[float]) -> float:
    a, b = span
    return max(0.0, min(b, exp[1]) - max(a, exp[0])) / (b - a) if b > a else 0.0


def score(truth: dict[str, Any], res: dict[str, Any], env: np.ndarray,
          indep: list[tuple[float, float]]) -> dict[str, Any]:
    exp = {c["id"]: c["expected"] for c in truth["cases"]}
    h1 = h3 = 0
    prec: list[float] = []
    cuts: set[float] = set()
    reel = []
    shorts = []
    for c in res["cases"]:
        if "error" in c:
            prec.append(0.0)
            continue
        hs = c["highlights"]
        hits = [share_inside(h, exp[c["id"]]) >= 0.5 for h in hs]
        h1 += bool(hits[:1] and hits[0])
        h3 += any(hits[:3])
        prec.append(share_inside(hs[0], exp[c["id"]]))
        reel.append(sum(b - a for a, b in c["segments"]))
        shorts.append(c.get("short_reason", ""))
        cuts.update(round(t, 3) for seg in c["segments"] for t in seg)
    excess = [cut_excess_db(env, t) for t in sorted(cuts)]
    n = len(truth["cases"])
    return {
        "cases": n, "hit@1": h1, "hit@3": h3, "mean_precision": round(sum(prec) / n, 3),
        "mean_reel_s": round(sum(reel) / max(1, len(reel)), 1),
        "short_reels": sum(bool(s) for s in shorts),
        "cuts": len(cuts),
        "cuts_within_6db": round(sum(e <= 6.0 for e in excess) / max(1, len(cuts)), 3),
        "cuts_within_6db_or_below_-60dbfs": round(sum(
            e <= 6.0 or env[min(int(round(t * SR)), env.size - 1)] <= -60.0
            for e, t in zip(excess, sorted(cuts), strict=True)) / max(1, len(cuts)), 3),
        "cuts_over_10db": sum(e > 10.0 for e in excess),
        "worst_excess_db": round(max(excess, default=0.0), 1),
        "cuts_inside_words_own": sum(inside(t, res["words"]) for t in cuts),
        "cuts_inside_words_independent": sum(inside(t, indep) for t in cuts),
        "precision_by_case": {c["id"]: round(p, 3)
                              for c, p in zip(res["cases"], prec, strict=True)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("truth", nargs="*", default=[str(DEFAULT_TRUTH)])
    ap.add_argument("--base", default="e54e47c")
    ap.add_argument("--json", default="")
    ap.add_argument("--worker", choices=["before", "after"], default=None)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.truth[0])))
        return
    from clipforge.audio import decode_mono_16k

    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(HERE), "archive", args.base, "clipforge"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        for truth_path in args.truth:
            truth = json.loads(Path(truth_path).read_text())
            video = str(Path(truth_path).parent / truth["video"])
            env = energy_20ms(decode_mono_16k(video))
            indep = independent_words(truth_path, truth)
            row: dict[str, Any] = {}
            for label, root in (("before", tmp), ("after", str(HERE))):
                envr = {**os.environ, "PYTHONPATH": root}
                got = subprocess.run([sys.executable, __file__, truth_path, "--worker", label],
                                     env=envr, check=True, capture_output=True, text=True)
                res = json.loads(got.stdout.strip().splitlines()[-1])
                row[label] = score(truth, res, env, indep)
                row[label]["detail"] = res["cases"]
            report[Path(truth_path).name] = row
    keys = ["hit@1", "hit@3", "mean_precision", "mean_reel_s", "short_reels", "cuts",
            "cuts_within_6db", "cuts_within_6db_or_below_-60dbfs", "cuts_over_10db",
            "worst_excess_db", "cuts_inside_words_own", "cuts_inside_words_independent"]
    for name, row in report.items():
        print(f"\n{name} ({row['before']['cases']} cases)")
        print(f"{'metric':<32}{'before':>10}{'after':>10}")
        for k in keys:
            print(f"{k:<32}{row['before'][k]!s:>10}{row['after'][k]!s:>10}")
        print("precision by case: before", row["before"]["precision_by_case"])
        print("                   after ", row["after"]["precision_by_case"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
