#!/usr/bin/env python3
"""Speech-recognition options, speed against words (issue 14, item 3).

    .venv/bin/python bench/asr_options_bench.py EPISODE.mp4 [EPISODE.mp4 ...] [--runs 1]

Every option transcribes the same 16 kHz mono audio of each file with the bundled
tiny.en int8 model (loaded once per thread setting, and every option run once on 20 s
before the timing, so first-call costs are outside it), and
is compared with the current default (beam 5, Silero VAD at faster-whisper's defaults,
one thread per core, sequential decode): wall and CPU seconds per audio second, and the
words against the default's (word error rate after lower-casing and stripping
punctuation; the share of the default's words whose start moved by more than 40 ms).
The quality that counts, hit@1/precision/cuts per evaluation set, is ``clipforge eval``
with the chosen option (see the README's evaluation table); this bench is the screen
that picks which options are worth that run.

Prints a table and writes ``bench/results/asr_options.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.audio import SAMPLE_RATE, decode_mono_16k  # noqa: E402
from clipforge.transcribe import default_model_path  # noqa: E402

# (name, options); "threads" and "batched" are ours, the rest go to transcribe()
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("default: beam 5", {}),
    ("beam 1", {"beam_size": 1}),
    ("beam 2", {"beam_size": 2}),
    ("beam 5, 1 thread", {"threads": 1}),
    ("beam 5, VAD tighter", {"vad_parameters": {"min_silence_duration_ms": 500,
                                                "speech_pad_ms": 200}}),
    ("beam 1, VAD tighter", {"beam_size": 1,
                             "vad_parameters": {"min_silence_duration_ms": 500,
                                                "speech_pad_ms": 200}}),
    ("beam 5, without_timestamps", {"without_timestamps": True}),
    ("beam 1, without_timestamps", {"beam_size": 1, "without_timestamps": True}),
    ("batched 8, beam 5", {"batched": 8}),
    ("batched 8, beam 1", {"batched": 8, "beam_size": 1}),
]


def norm(text: str) -> str:
    return re.sub(r"[^\w']", "", text.lower())


def wer(ref: list[str], hyp: list[str]) -> float:
    """Levenshtein distance over words / len(ref)."""
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


def moved_share(ref: list[tuple[str, float]], hyp: list[tuple[str, float]]) -> float:
    """Share of the reference's words with no same-text word starting within 40 ms."""
    if not ref:
        return 0.0
    starts: dict[str, list[float]] = {}
    for text, start in hyp:
        starts.setdefault(text, []).append(start)
    moved = sum(1 for text, start in ref
                if not any(abs(start - s) <= 0.040 for s in starts.get(text, ())))
    return moved / len(ref)


_models: dict[int, Any] = {}


def model_for(threads: int) -> Any:
    from faster_whisper import WhisperModel

    if threads not in _models:
        _models[threads] = WhisperModel(default_model_path(), device="cpu",
                                        compute_type="int8", cpu_threads=threads)
    return _models[threads]


def transcribe(samples: Any, opts: dict[str, Any]) -> tuple[list[tuple[str, float]], float,
                                                            float]:
    from faster_whisper import BatchedInferencePipeline

    opts = dict(opts)
    threads = int(opts.pop("threads", os.cpu_count() or 1))
    batched = int(opts.pop("batched", 0))
    model = model_for(threads)
    kwargs: dict[str, Any] = {"language": "en", "beam_size": 5, "vad_filter": True,
                              "word_timestamps": True, "condition_on_previous_text": False,
                              "temperature": 0.0, **opts}
    t, c = time.monotonic(), time.process_time()
    if batched:
        segments, _ = BatchedInferencePipeline(model).transcribe(samples, batch_size=batched,
                                                                 **kwargs)
    else:
        segments, _ = model.transcribe(samples, **kwargs)
    words = [(norm(w.word), float(w.start)) for s in segments for w in (s.words or ())
             if norm(w.word)]
    return words, time.monotonic() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=1, help="timed runs per option (median)")
    ap.add_argument("--only", default="", help="comma-separated option names (plus default)")
    args = ap.parse_args()
    chosen = [o for o in OPTIONS if not args.only or o[0] == OPTIONS[0][0]
              or o[0] in args.only.split(",")]
    audio = {f.name: decode_mono_16k(f) for f in args.files}
    total_s = sum(a.size for a in audio.values()) / SAMPLE_RATE
    warm = next(iter(audio.values()))[: 20 * SAMPLE_RATE]
    for _name, opts in chosen:  # first-call costs (VAD model, kernels) outside the timing
        transcribe(warm, opts)
    rows: list[dict[str, Any]] = []
    base_words: dict[str, list[tuple[str, float]]] = {}
    for name, opts in chosen:
        walls, cpus, errs, moves, nwords = [], [], [], [], 0
        for _ in range(args.runs):
            wall = cpu = 0.0
            errs, moves, nwords = [], [], 0
            for fname, samples in audio.items():
                words, w, c = transcribe(samples, opts)
                wall, cpu, nwords = wall + w, cpu + c, nwords + len(words)
                if name == OPTIONS[0][0]:
                    base_words[fname] = words
                ref = base_words[fname]
                errs.append(wer([t for t, _ in ref], [t for t, _ in words]))
                moves.append(moved_share(ref, words))
            walls.append(wall)
            cpus.append(cpu)
        row = {"option": name, "wall_per_audio_s": round(statistics.median(walls) / total_s, 4),
               "cpu_per_audio_s": round(statistics.median(cpus) / total_s, 4),
               "realtime_x": round(total_s / statistics.median(walls), 1),
               "words": nwords, "wer_vs_default": round(statistics.mean(errs), 4),
               "moved_40ms_vs_default": round(statistics.mean(moves), 4)}
        rows.append(row)
        print(f"{name:30s} {row['realtime_x']:6.1f}x  wall/s {row['wall_per_audio_s']:.4f}  "
              f"cpu/s {row['cpu_per_audio_s']:.4f}  words {nwords:5d}  "
              f"WER {row['wer_vs_default']:.3f}  moved {row['moved_40ms_vs_default']:.3f}",
              flush=True)
    out = REPO / "bench" / "results" / "asr_options.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"files": [f.name for f in args.files], "audio_s": total_s,
                               "cores": os.cpu_count(), "runs": args.runs,
                               "load_before": Path("/proc/loadavg").read_text().split()[:3],
                               "rows": rows}, indent=2) + "\n")
    print(f"audio {total_s:.0f} s in {len(args.files)} files; wrote {out}")


if __name__ == "__main__":
    main()
