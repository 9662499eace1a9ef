#!/usr/bin/env python3
"""Analysis speed and memory on a one-hour input, against transcription alone (same run).

    .venv/bin/python bench/analysis_bench.py [--repeat 20] [--skip-e2e]

Composes ``../shared/eval`` into a one-hour episode (``compose_episode.py --repeat 20``,
cached under ``bench/results/``), then measures, each step in its own process so peak
RSS is that step's own:

- baseline: decode + faster-whisper alone (default settings, and beam 1);
- the whole analysis as the pipeline runs it: streaming decode feeding ASR and the audio
  signals, text embeddings, visual signals;
- end to end: ``clipforge run`` (fresh cache) to a 60 s reel;
- quality cost of the speed choices: ``clipforge eval`` on the public episode per variant.

Prints a table and writes ``bench/results/analysis.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLIPFORGE_SHARED", REPO.parent / "shared"))
RESULTS = REPO / "bench" / "results"


def episode(repeat: int) -> Path:
    out = RESULTS / f"episode_x{repeat}"
    found = sorted(out.glob("*.mp4"))
    if not found:
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(SHARED / "eval" / "compose_episode.py"),
                        str(SHARED / "eval" / "public.json"), str(out),
                        "--media", str(SHARED / "media"), "--repeat", str(repeat)], check=True)
        found = sorted(out.glob("*.mp4"))
    return found[0]


def step(name: str, video: str, beam: int) -> dict:
    """Runs inside a child process; returns timings and this process's peak RSS.

    ``asr``: the baseline — decode the whole audio, then faster-whisper alone.
    ``analysis``: what the pipeline runs — the streaming audio analysis (one decode feeding
    speech recognition and the delivery signals), text embeddings, visual signals.
    """
    from clipforge import analysis, audio, semantic
    from clipforge.config import Settings
    from clipforge.probe import probe
    from clipforge.textanalysis import analyse_text
    from clipforge.transcribe import transcribe

    settings = Settings(whisper_beam_size=beam)
    t: dict[str, float] = {}
    t0 = time.monotonic()
    info = probe(video)
    if name == "asr":
        samples = audio.decode_mono_16k(video)
        t["decode"] = time.monotonic() - t0
        t1 = time.monotonic()
        tr = transcribe(samples, settings)
        t["asr"] = time.monotonic() - t1
    else:
        tr, _ = analysis.analyse_audio(video, settings, duration_us=info.duration_us)
        t["audio_analysis"] = time.monotonic() - t0
        t3 = time.monotonic()
        analyse_text(tr, semantic.embed)
        t["text_embeddings"] = time.monotonic() - t3
        from clipforge import visual

        t4 = time.monotonic()
        visual.visual_track(video, duration_us=info.duration_us)
        t["visual"] = time.monotonic() - t4
    t["total"] = time.monotonic() - t0
    return {"step": name, "beam": beam, "seconds": {k: round(v, 2) for k, v in t.items()},
            "words": len(tr.words), "audio_s": round(info.duration_us / 1e6, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def child(name: str, video: Path, beam: int) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child", name, str(video), str(beam)],
                       capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.monotonic()
    p = subprocess.run([str(REPO / ".venv" / "bin" / "clipforge"), *args], env=env,
                       capture_output=True, text=True, cwd=REPO)
    if p.returncode != 0:
        raise SystemExit(f"clipforge {' '.join(args)} failed: {p.stderr[-2000:]}")
    return time.monotonic() - t0, p.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-beam1", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("STEP", "VIDEO", "BEAM"))
    a = ap.parse_args()
    if a.child:
        print(json.dumps(step(a.child[0], a.child[1], int(a.child[2]))))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    video = episode(a.repeat)
    report: dict = {"video": str(video), "load_before": os.getloadavg()}
    asr5 = child("asr", video, 5)
    asr1 = asr5 if a.skip_beam1 else child("asr", video, 1)
    full = child("analysis", video, 5)
    dur = asr5["audio_s"]
    report.update(asr_beam5=asr5, asr_beam1=asr1, analysis=full)
    rows = [
        ("ASR alone, beam 5 (baseline)", asr5["seconds"]["total"], asr5["peak_rss_mb"]),
        ("ASR alone, beam 1", asr1["seconds"]["total"], asr1["peak_rss_mb"]),
        ("whole analysis, beam 5", full["seconds"]["total"], full["peak_rss_mb"]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PREFECT_HOME": str(Path(tmp) / "prefect")}
        if not a.skip_e2e:
            wall, _ = run_cli(["run", str(video), "--prompt", "the software license permission "
                               "notice", "--out", str(Path(tmp) / "e2e")], env)
            rows.append(("end to end: run -> 60 s reel", wall, float("nan")))
            report["e2e_wall_s"] = round(wall, 2)
        quality = {}
        for label, extra in (("beam 5 + VAD (default)", {}),
                             ("beam 1 + VAD", {"CLIPFORGE_WHISPER_BEAM_SIZE": "1"}),
                             ("beam 5, no VAD", {"CLIPFORGE_WHISPER_VAD": "false"})):
            e = {**env, **extra, "PREFECT_HOME": str(Path(tmp) / f"p-{len(quality)}")}
            _, out = run_cli(["eval", str(SHARED / "eval" / "public_episode.truth.json"),
                              "--json", "--out", str(Path(tmp) / f"eval-{len(quality)}")], e)
            quality[label] = json.loads(out)["summary"]
        report["quality"] = quality
    print(f"source: {dur:.0f} s ({video.name}, x{a.repeat})\n")
    print(f"{'step':<34} {'wall s':>8} {'x realtime':>10} {'vs ASR':>7} {'peak RSS MB':>12}")
    for label, secs, rss in rows:
        print(f"{label:<34} {secs:>8.1f} {dur / secs:>10.1f} "
              f"{secs / asr5['seconds']['total']:>7.2f} {rss:>12.0f}")
    print("\nstage seconds (whole analysis):", full["seconds"])
    print("\nquality on the public episode (clipforge eval):")
    for label, q in report["quality"].items():
        print(f"  {label:<24} hit@1 {q['hit@1']}/{q['cases']}  hit@3 {q['hit@3']}/{q['cases']}"
              f"  overlap {q['mean_overlap']:.2f}  cuts in words {q['cuts_inside_words']}")
    report["load_after"] = os.getloadavg()
    print(f"\nload average before {report['load_before']}, after {report['load_after']}")
    (RESULTS / "analysis.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
