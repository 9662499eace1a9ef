#!/usr/bin/env python3
"""Prompt-only reruns and cold starts of ``clipforge run``, each against its baseline in
the same run (issue 14). Medians of ``--runs`` runs (default 3).

    .venv/bin/python bench/speed_bench.py [--runs 3] [--skip-cold]

Every ``clipforge run`` is a real subprocess on the bundled 42 s sample, with its own
``CLIPFORGE_HOME``/``PREFECT_HOME`` under a temporary folder (private services started
on first use there, stopped at the end). Measured:

(a) a new prompt on the analysed video, to ``edl.json`` (``--no-render``) and to the reel:
    handed to the warm runner that ``clipforge services start`` started, against the
    same command in its own process (``CLIPFORGE_RUNNER=off``), interleaved; plus a
    fresh process embedding one prompt;
(b) ``clipforge --help`` and ``import clipforge_cli.main``, against ``python -c pass``;
(c) a fresh ``CLIPFORGE_HOME`` as ``make demo`` meets it: ``clipforge services start``
    (timed on its own), then the first run: wall time outside the pipeline (process wall
    minus the CLI's "pipeline" time) and inside; the pipeline time of a warm, uncached
    run (same home, the sample remuxed so its sha and so every cache key differ); and
    once, a first run on a fresh home that starts the services itself.

Prints a table and writes ``bench/results/speed.json``.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE = REPO / "clipforge" / "samples" / "talk_en_42s.mp4"
RESULTS = REPO / "bench" / "results"
# worded differently each run, all answerable from the sample (select is never cached)
PROMPTS = ["what the example video may be used for", "what this example video can be used for",
           "how the example video may be used", "what the video may be used for",
           "uses of the example video", "the example video may be used for what",
           "what can the example video be used for", "what is the example video used for"]
SUMMARY = re.compile(r"pipeline ([\d.]+) s .*wall time incl\. start-up ([\d.]+) s")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "CLIPFORGE_DATABASE_URL", "CLIPFORGE_REDIS_URL",
                        "CLIPFORGE_EMBEDDING_BACKEND")}
    env.update(CLIPFORGE_HOME=str(home), PREFECT_HOME=str(home / "prefect"), **extra)
    return env


def run(video: Path, prompt: str, home: Path, out: Path, *, render: bool,
        **extra: str) -> dict[str, float]:
    argv = [str(BIN / "clipforge"), "run", str(video), "--prompt", prompt, "--out", str(out)]
    if not render:
        argv.append("--no-render")
    t = time.monotonic()
    done = subprocess.run(argv, env=env_for(home, **extra), capture_output=True, text=True,
                          check=False)
    wall = time.monotonic() - t
    if done.returncode != 0:
        raise SystemExit(f"clipforge run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    m = SUMMARY.search(done.stdout)
    if not m or not (out / "edl.json").is_file():
        raise SystemExit(f"no summary line or no edl.json:\n{done.stdout[-2000:]}")
    pipeline, cli_wall = float(m.group(1)), float(m.group(2))
    return {"wall": wall, "pipeline": pipeline, "cli_wall": cli_wall,
            "outside": wall - pipeline}


def timed(argv: list[str], **extra: str) -> float:
    t = time.monotonic()
    subprocess.run(argv, env={**os.environ, **extra}, capture_output=True, check=True)
    return time.monotonic() - t


def stop_services(home: Path) -> None:
    subprocess.run([str(BIN / "clipforge"), "services", "stop"], env=env_for(home),
                   capture_output=True, check=False)


def med(rows: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 2)


def remux(src: Path, dst: Path, tag: str) -> Path:
    """Same streams, different bytes (a metadata tag), so nothing is cached for it."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-map", "0", "-c", "copy",
                    "-metadata", f"comment={tag}", str(dst)], check=True)
    return dst


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true", help="only (a) and (b)")
    args = ap.parse_args()
    n = args.runs
    report: dict[str, object] = {"runs": n, "load_before": load_avg(),
                                 "cores": os.cpu_count()}
    py = str(BIN / "python")
    embed_code = "from clipforge import semantic; semantic.embed(['a prompt'])"
    with tempfile.TemporaryDirectory(prefix="speed-bench-") as tmp_s:
        tmp = Path(tmp_s)
        homes: list[Path] = []
        try:
            # (c) cold first runs, each on a fresh home; (the last one's home is reused)
            cold: list[dict[str, float]] = []
            starts: list[float] = []
            for i in range(1 if args.skip_cold else n):
                home = tmp / f"home{i}"
                homes.append(home)
                # as `make demo` does: `clipforge services start`, then the first run
                starts.append(timed([str(BIN / "clipforge"), "services", "start"],
                                    **env_for(home)))
                cold.append(run(SAMPLE, PROMPTS[0], home, tmp / f"cold{i}", render=True))
                print(f"services start {starts[-1]:.1f} s; cold run {i + 1}: {cold[-1]}",
                      flush=True)
            straight: list[dict[str, float]] = []
            if not args.skip_cold:  # the first run on a fresh home starting the services itself
                home = tmp / "home-straight"
                homes.append(home)
                straight.append(run(SAMPLE, PROMPTS[0], home, tmp / "straight", render=True))
                print(f"first run starting the services itself: {straight[-1]}", flush=True)
                home = homes[-2]
            home = homes[0]
            if not args.skip_cold:
                warm = []
                for i in range(n):
                    video = remux(SAMPLE, tmp / f"warm{i}.mp4", f"speed-bench-{i}")
                    warm.append(run(video, PROMPTS[0], home, tmp / f"warm{i}", render=True))
                    print(f"warm uncached run {i + 1}: {warm[-1]}", flush=True)
                report["cold"] = {
                    "services_start_s": round(statistics.median(starts), 2),
                    "first_run_starting_services_itself_outside_pipeline_s":
                        med(straight, "outside"),
                    "first_run_wall_s": med(cold, "wall"),
                    "first_run_pipeline_s": med(cold, "pipeline"),
                    "first_run_outside_pipeline_s": med(cold, "outside"),
                    "warm_uncached_pipeline_s": med(warm, "pipeline"),
                    "warm_uncached_outside_pipeline_s": med(warm, "outside"),
                    "first_over_warm_pipeline": round(med(cold, "pipeline")
                                                      / med(warm, "pipeline"), 3),
                    "raw": {"cold": cold, "warm": warm, "straight": straight,
                            "services_start": starts}}
            # (a) new prompts on the analysed sample: runner and own process interleaved
            modes = {"warm runner": {}, "own process": {"CLIPFORGE_RUNNER": "off"}}
            rows: dict[str, list[dict[str, float]]] = {}
            k = 1
            for _ in range(n):
                for render in (False, True):
                    for name, extra in modes.items():
                        r = run(SAMPLE, PROMPTS[k % len(PROMPTS)], home,
                                tmp / f"p{k}", render=render, **extra)
                        k += 1
                        key = f"{name}/{'reel' if render else 'edl'}"
                        rows.setdefault(key, []).append(r)
                        print(f"prompt run {key}: {r}", flush=True)
            report["prompt_rerun"] = {
                key: {"wall_s": med(v, "wall"), "pipeline_s": med(v, "pipeline"),
                      "outside_pipeline_s": med(v, "outside")} for key, v in rows.items()}
            report["embed_one_prompt_fresh_process_s"] = round(statistics.median(
                timed([py, "-c", embed_code]) for _ in range(n)), 2)
        finally:
            for h in homes:
                stop_services(h)
    # (b) start-up
    report["startup"] = {
        "python_pass_s": round(statistics.median(timed([py, "-c", "pass"])
                                                 for _ in range(n)), 3),
        "import_cli_s": round(statistics.median(
            timed([py, "-c", "import clipforge_cli.main"]) for _ in range(n)), 3),
        "clipforge_help_s": round(statistics.median(
            timed([str(BIN / "clipforge"), "--help"]) for _ in range(n)), 3)}
    report["load_after"] = load_avg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "cold"}, indent=2))
    if "cold" in report:
        cold_report = dict(report["cold"])  # type: ignore[call-overload]
        cold_report.pop("raw")
        print(json.dumps({"cold": cold_report}, indent=2))


if __name__ == "__main__":
    main()
