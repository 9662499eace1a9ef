#!/usr/bin/env python3
"""Does running the visual pass beside speech recognition help on this machine (issue 14,
item 4)? The two analysis stages, serial against overlapped, on the same input.

    .venv/bin/python bench/overlap_bench.py VIDEO [--runs 2]

- **serial**: ``analysis.analyse_audio`` (the streaming decode, speech recognition and
  delivery signals), then ``visual.visual_track`` (faces, motion, scene cuts);
- **overlapped**: the visual pass started first in a thread and the audio analysis in
  the calling thread, as the clip flow does (its task runner is a thread pool).

The same library calls the flow's tasks make, without Prefect or caches. The models are
loaded and numba's kernels run once on the bundled sample before any timing. Runs
alternate so that machine load hits both alike; medians are printed and written to
``bench/results/overlap.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge import analysis, signals, visual  # noqa: E402
from clipforge.config import load_settings  # noqa: E402
from clipforge.probe import probe  # noqa: E402

SAMPLE = REPO / "clipforge" / "samples" / "talk_en_42s.mp4"
RESULTS = REPO / "bench" / "results"


def audio(path: Path, duration_us: int, settings: Any) -> tuple[float, int]:
    t = time.monotonic()
    transcript, _ = analysis.analyse_audio(str(path), settings, duration_us=duration_us)
    return time.monotonic() - t, len(transcript.words)


def pictures(path: Path, duration_us: int) -> tuple[float, int]:
    t = time.monotonic()
    track = visual.visual_track(str(path), duration_us=duration_us, hop_us=signals.GRID_HOP_US)
    return time.monotonic() - t, len(track.frame_times_us)


def serial(path: Path, duration_us: int, settings: Any) -> dict[str, float]:
    t = time.monotonic()
    a, words = audio(path, duration_us, settings)
    v, frames = pictures(path, duration_us)
    return {"wall": time.monotonic() - t, "audio": a, "visual": v, "words": words,
            "frames": frames}


def overlapped(path: Path, duration_us: int, settings: Any) -> dict[str, float]:
    t = time.monotonic()
    out: dict[str, Any] = {}

    def visual_side() -> None:
        out["visual"], out["frames"] = pictures(path, duration_us)

    thread = threading.Thread(target=visual_side)
    thread.start()
    a, words = audio(path, duration_us, settings)
    thread.join()
    return {"wall": time.monotonic() - t, "audio": a, "visual": out["visual"], "words": words,
            "frames": out["frames"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    settings = load_settings()
    duration_us = probe(str(args.video)).duration_us
    sample_us = probe(str(SAMPLE)).duration_us
    serial(SAMPLE, sample_us, settings)  # models and kernels loaded outside the timing
    rows: dict[str, list[dict[str, float]]] = {"serial": [], "overlapped": []}
    for i in range(args.runs):
        for name, fn in (("serial", serial), ("overlapped", overlapped)):
            r = fn(args.video, duration_us, settings)
            rows[name].append(r)
            print(f"run {i + 1} {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()),
                  flush=True)

    def med(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in rows[name]), 2)

    summary = {name: {k: med(name, k) for k in ("wall", "audio", "visual")} for name in rows}
    summary["overlapped_over_serial"] = round(
        med("overlapped", "wall") / med("serial", "wall"), 3)
    same = {r["words"] for rs in rows.values() for r in rs}
    report = {"video": args.video.name, "duration_s": duration_us / 1e6,
              "cores": os.cpu_count(), "runs": args.runs, "summary": summary,
              "same_words_every_run": len(same) == 1, "raw": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overlap.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
