"""Loudness of a real reel: integrated level and jumps at segment boundaries.

    .venv/bin/python bench/loudness_bench.py [--source ../shared/eval/public_episode.mp4]
        [--edl EDL.json] [--target -14]

Renders a reel with clipforge's real ``render()`` (one global gain from pass 1 over the
whole source, never per-segment normalisation) and, in the same run, a baseline that
normalises every segment on its own (``loudnorm=I=TARGET:TP=-1:LRA=11``, single pass, the
usual "normalise each clip" approach) and concatenates the segments. A third variant
renders with clipforge again, with per-segment ``gain_db`` in the EDL that levels each
segment to the target (linear, capped by its own true peak); a fourth uses ONE gain
measured over the reel's own audio (a gain-0 render measured, then rendered again)
instead of over the whole source. All are measured
with ``ebur128=peak=true:framelog=verbose`` (100 ms steps):

- integrated loudness and true peak of the whole reel (goal: TARGET +- 1 LU)
- at every boundary b: short-term loudness S (3 s window) ending at b (the last 3 s of
  the previous segment) vs S ending at b + 3 s (the first 3 s of the next one); the
  jump is |after - before| (goal: <= 3 LU). Momentary (400 ms) figures are reported too.

Without ``--edl`` the EDL has 4 segments of 8 s from different parts of the public
episode (talk, jfk, phone, license; see public_episode.truth.json), all cuts. With
``--edl`` (e.g. the ``edl.json`` written by ``clipforge run``) that EDL is used as is.
JSON goes to bench/results/loudness.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.config import Settings  # noqa: E402
from clipforge.edl import Edl, load_edl  # noqa: E402
from clipforge.probe import probe  # noqa: E402
from clipforge.render import (  # noqa: E402
    Loudness,
    _audio_prep,
    measure_loudness,
    parse_ebur128,
    render,
)


def global_gain_db(loudness: Loudness | None, target_lufs: float, target_tp_db: float) -> float:
    """The old whole-source rule, for comparison: target_I - I, lowered so that
    TP + gain <= target TP (no limiter)."""
    if loudness is None:
        return 0.0
    return round(min(target_lufs - loudness.integrated_lufs,
                     target_tp_db - loudness.true_peak_db), 2)


EPISODE = REPO.parent / "shared" / "eval" / "public_episode.mp4"
RESULTS = REPO / "bench" / "results"
# episode seconds (public_episode.truth.json parts)
DEFAULT_SPANS = [
    ("talk", 3.0, 11.0),
    ("jfk", 76.0, 84.0),
    ("phone", 99.0, 107.0),
    ("license", 118.0, 126.0),
]
_FRAME_RE = re.compile(
    r"t:\s*(?P<t>[\d.]+)\s+TARGET:.*?M:\s*(?P<M>-?[\d.]+|-?inf|nan)\s+S:\s*(?P<S>-?[\d.]+|-?inf|nan)"
)


def ebur128(path: Path) -> dict[str, Any]:
    """Run ebur128 over the file's audio: per-100 ms M/S and the summary I/TP/LRA."""
    argv = [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "verbose", "-i", str(path),
        "-vn", "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-",
    ]  # fmt: skip
    err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    frames = [(float(m["t"]), float(m["M"]), float(m["S"])) for m in _FRAME_RE.finditer(err)]
    summary = err[err.rfind("Summary:") :]
    i = float(re.search(r"I:\s*(-?[\d.]+)\s*LUFS", summary).group(1))
    lra = float(re.search(r"LRA:\s*(-?[\d.]+)\s*LU", summary).group(1))
    tp = float(re.search(r"Peak:\s*(-?[\d.]+|-?inf)\s*dBFS", summary).group(1))
    return {"frames": frames, "I": i, "LRA": lra, "TP": tp}


def _at(frames: list[tuple[float, float, float]], t: float) -> tuple[float, float]:
    """(M, S) of the log line whose window ends closest to ``t``."""
    best = min(frames, key=lambda f: abs(f[0] - t))
    return best[1], best[2]


def boundaries_report(meas: dict[str, Any], bounds: list[float]) -> list[dict[str, Any]]:
    rows = []
    for b in bounds:
        m_before, s_before = _at(meas["frames"], b)
        _, s_after = _at(meas["frames"], b + 3.0)
        m_after, _ = _at(meas["frames"], b + 0.4)
        rows.append({
            "t": round(b, 3),
            "S_before": s_before, "S_after": s_after, "S_jump": round(abs(s_after - s_before), 1),
            "M_before": m_before, "M_after": m_after, "M_jump": round(abs(m_after - m_before), 1),
        })  # fmt: skip
    return rows


def default_edl(info, target: float) -> Edl:
    return Edl(
        source={"uri": Path(info.path).as_uri(), "sha256": "0" * 64, "duration": info.duration_s},
        prompt="loudness bench",
        output={"width": 640, "height": 360, "fps": "25", "loudness_lufs": target},
        highlights=[],
        segments=[{"source_in": a, "source_out": b} for _, a, b in DEFAULT_SPANS],
    )


def per_segment_baseline(src: str, edl: Edl, target: float, work: Path) -> Path:
    """Every segment normalised on its own (loudnorm, single pass), then concatenated."""
    parts = []
    for i, seg in enumerate(edl.segments):
        part = work / f"seg{i:03d}.wav"
        subprocess.run([
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{seg.source_in}",
            "-t", f"{seg.source_out - seg.source_in}", "-i", src, "-vn",
            "-af", f"aresample=48000,loudnorm=I={target}:TP=-1:LRA=11,aresample=48000",
            "-ac", "2", "-c:a", "pcm_f32le", str(part),
        ], check=True)  # fmt: skip
        parts.append(part)
    lst = work / "baseline.txt"
    lst.write_text("".join(f"file '{p}'\n" for p in parts), encoding="utf-8")
    out = work / "baseline.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(lst), "-c", "copy", str(out)], check=True)  # fmt: skip
    return out


def levelled_edl(src: str, edl: Edl, global_gain: float) -> tuple[Edl, list[dict[str, Any]]]:
    """The same EDL with per-segment ``gain_db`` (the EDL field the renderer adds on top of
    the global gain) chosen so that every segment lands on the target integrated loudness,
    lowered so that its own true peak stays <= the EDL's true-peak target. Linear gains
    only (no dynamics): what a planner could write into the EDL without renderer changes."""
    target, tp_max = edl.output.loudness_lufs, edl.output.true_peak_db
    segs, info_rows = [], []
    for seg in edl.segments:
        argv = [
            "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "info",
            "-ss", f"{seg.source_in}", "-t", f"{seg.source_out - seg.source_in}", "-i", src,
            "-vn", "-af", f"{_audio_prep()},ebur128=peak=true", "-f", "null", "-",
        ]  # fmt: skip
        err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
        loud = parse_ebur128(err)
        if loud is None:
            total = 0.0
        else:
            total = min(target - loud.integrated_lufs, tp_max - loud.true_peak_db)
        extra = round(total - global_gain, 2)
        segs.append(seg.model_copy(update={"gain_db": extra}))
        info_rows.append({
            "span": [seg.source_in, seg.source_out],
            "I": None if loud is None else loud.integrated_lufs,
            "TP": None if loud is None else loud.true_peak_db,
            "segment_gain_db": extra,
        })  # fmt: skip
    return edl.model_copy(update={"segments": segs}), info_rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", default=str(EPISODE))
    ap.add_argument("--edl", type=Path, default=None)
    ap.add_argument("--target", type=float, default=-14.0)
    args = ap.parse_args(argv)

    load_before = os.getloadavg()
    info = probe(args.source)
    edl = load_edl(args.edl) if args.edl else default_edl(info, args.target)
    target = edl.output.loudness_lufs
    t0 = time.monotonic()
    loud = measure_loudness(info.path, info)
    t_pass1 = time.monotonic() - t0
    gain = global_gain_db(loud, target, edl.output.true_peak_db)

    bounds, cum = [], 0.0
    for seg in edl.segments[:-1]:
        cum += seg.source_out - seg.source_in
        bounds.append(cum)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="clipforge-loud-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        res = render(edl, info, work / "reel.mp4", settings=Settings(), loudness=loud)
        t_render = time.monotonic() - t0
        t0 = time.monotonic()
        base = per_segment_baseline(info.path, edl, target, work)
        t_base = time.monotonic() - t0
        lev_edl, lev_rows = levelled_edl(info.path, edl, gain)
        lev = render(lev_edl, info, work / "levelled.mp4", settings=Settings(), loudness=loud)
        # proposal check: ONE gain, but measured over the reel's own audio (the kept
        # segments) instead of the whole source. Pass 1 = a render with gain 0 (a fake
        # Loudness whose gain is exactly 0), measured; pass 2 = render with that measure.
        flat = render(edl, info, work / "flat.mp4", settings=Settings(),
                      loudness=Loudness(target, -200.0, 0.0, 0.0))  # fmt: skip
        reel_meas = ebur128(flat.path)
        reel_loud = Loudness(reel_meas["I"], reel_meas["TP"], reel_meas["LRA"], 0.0)
        reel = render(edl, info, work / "reelgain.mp4", settings=Settings(), loudness=reel_loud)
        variants = (
            ("clipforge_render", res.path),
            ("per_segment_loudnorm", base),
            ("clipforge_edl_gain_db_levelled", lev.path),
            ("clipforge_reel_measured_gain", reel.path),
        )
        for name, path in variants:
            meas = ebur128(path)
            rows = boundaries_report(meas, bounds)
            results[name] = {
                "integrated_lufs": meas["I"],
                "true_peak_dbfs": meas["TP"],
                "lra": meas["LRA"],
                "within_1lu_of_target": abs(meas["I"] - target) <= 1.0,
                "max_S_jump": max((r["S_jump"] for r in rows), default=0.0),
                "max_M_jump": max((r["M_jump"] for r in rows), default=0.0),
                "boundaries": rows,
            }
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": info.path,
        "segments": [[s.source_in, s.source_out] for s in edl.segments],
        "target_lufs": target,
        "source_pass1": None if loud is None else {
            "I": loud.integrated_lufs, "TP": loud.true_peak_db, "LRA": loud.lra},
        "global_gain_db": gain,
        "times_s": {"pass1": round(t_pass1, 2), "render": round(t_render, 2),
                    "baseline": round(t_base, 2)},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "levelled_segments": lev_rows,
        "reel_measured": {"I": reel_meas["I"], "TP": reel_meas["TP"],
                          "gain_db": global_gain_db(reel_loud, target, edl.output.true_peak_db)},
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "loudness.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"source pass 1: {report['source_pass1']}; global gain {gain:+.2f} dB; "
          f"target {target} LUFS")  # fmt: skip
    for name, r in results.items():
        print(
            f"\n{name}: I {r['integrated_lufs']:.1f} LUFS (target {target}, within 1 LU: "
            f"{r['within_1lu_of_target']}), TP {r['true_peak_dbfs']:.1f} dBFS, LRA {r['lra']}; "
            f"max short-term jump {r['max_S_jump']} LU, max momentary jump {r['max_M_jump']}"
        )
        print(
            f"  {'boundary s':>10} {'S before':>9} {'S after':>8} {'S jump':>7} "
            f"{'M before':>9} {'M after':>8} {'M jump':>7}"
        )
        for b in r["boundaries"]:
            print(
                f"  {b['t']:10.2f} {b['S_before']:9.1f} {b['S_after']:8.1f} {b['S_jump']:7.1f} "
                f"{b['M_before']:9.1f} {b['M_after']:8.1f} {b['M_jump']:7.1f}"
            )
    print(f"\ntimes {report['times_s']}; load {report['load_before']} -> {report['load_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
