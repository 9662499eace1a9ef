#!/usr/bin/env python3
"""Chunk size and overlap for selection: windows lost at chunk boundaries, candidate
count and selection time on a one-hour transcript, and accuracy on the public episode.

    .venv/bin/python bench/chunk_bench.py

The public episode is analysed once (the pipeline's own functions); the one-hour
transcript is that analysis repeated 24 times end to end (as compose_episode --repeat
does with the media). The baseline in the same run is a single chunk covering the whole
source: a window it proposes that a chunked run does not is "lost".
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge import semantic  # noqa: E402
from clipforge.analysis import analyse_audio  # noqa: E402
from clipforge.audio import EnergyTrack  # noqa: E402
from clipforge.config import Settings  # noqa: E402
from clipforge.evaluate import inside_share  # noqa: E402
from clipforge.probe import probe  # noqa: E402
from clipforge.select import SelectionParams, build_context, candidates, merge  # noqa: E402
from clipforge.signals import AudioSignals  # noqa: E402
from clipforge.textanalysis import analyse_text  # noqa: E402
from clipforge.transcribe import Transcript  # noqa: E402

SHARED = REPO.parent / "shared" / "eval"
CONFIGS = [(60, 5), (60, 30), (120, 15), (120, 30), (300, 15), (300, 30), (600, 30)]


def tile(tr: Transcript, sig: AudioSignals, times: int) -> tuple[Transcript, AudioSignals]:
    words = []
    for k in range(times):
        off = k * tr.duration_us
        words += [replace(w, start_us=w.start_us + off, end_us=w.end_us + off) for w in tr.words]
    e = sig.energy
    energy = EnergyTrack(e.hop_us, e.values * times, e.db_floor, e.db_ceiling)
    return (Transcript(tuple(words), tr.language, tr.duration_us * times, tr.model),
            AudioSignals(energy, sig.bursts * times, sig.pitch_var * times))


def main() -> int:
    video = SHARED / "public_episode.mp4"
    truth = json.loads((SHARED / "public_episode.truth.json").read_text())
    info = probe(video)
    tr, sig = analyse_audio(video, Settings(), duration_us=info.duration_us)
    text = analyse_text(tr, semantic.embed)
    long_tr, long_sig = tile(tr, sig, 24)
    long_text = analyse_text(long_tr, semantic.embed)
    prompt = "the software license permission notice"
    vec = semantic.embed([prompt])[0]
    ctx = build_context(long_tr, long_text, long_sig, prompt, vec)
    whole = SelectionParams(chunk_us=long_tr.duration_us + 1, overlap_us=0)
    reference = {(c.start_us, c.end_us) for c in candidates(ctx, whole)}
    rows = []
    for chunk_s, overlap_s in CONFIGS:
        params = SelectionParams(chunk_us=chunk_s * 1_000_000, overlap_us=overlap_s * 1_000_000)
        t0 = time.monotonic()
        cands = candidates(ctx, params)
        merge(cands, params)
        secs = time.monotonic() - t0
        got = {(c.start_us, c.end_us) for c in cands}
        hits = 0
        for case in truth["cases"]:
            pvec = semantic.embed([case["prompt"]])[0]
            c = build_context(tr, text, sig, case["prompt"], pvec)
            picks = merge(candidates(c, params), params)
            top = (picks[0].start_us / 1e6, picks[0].end_us / 1e6) if picks else (0.0, 0.0)
            hits += inside_share(top, tuple(case["expected"])) >= 0.5
        rows.append({"chunk_s": chunk_s, "overlap_s": overlap_s,
                     "lost_windows": len(reference - got), "candidates": len(cands),
                     "select_s": round(secs, 2), "hit@1": f"{hits}/{len(truth['cases'])}"})
    print(f"one-hour transcript: {len(long_tr.words)} words, "
          f"{len(long_text.sentences)} sentences, {len(reference)} distinct windows "
          "(max clip 30 s)\n")
    print(f"{'chunk s':>7} {'overlap s':>9} {'lost':>6} {'candidates':>10} {'select s':>8} "
          f"{'hit@1':>6}")
    for r in rows:
        print(f"{r['chunk_s']:>7} {r['overlap_s']:>9} {r['lost_windows']:>6} "
              f"{r['candidates']:>10} {r['select_s']:>8} {r['hit@1']:>6}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "chunks.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
