"""Split-track speech: does one quiet channel reach the transcript? Coverage per downmix.

    PYTHONPATH=. python bench/downmix_bench.py

Files are made from real recordings in ../shared/media: speaker A panned hard left at
full level, speaker B hard right at -12/-24/-36 dB relative to A, B starting halfway
through A (half of B overlaps A, half is alone). The reference words of each speaker
come from transcribing its recording alone. Strategies (same tiny.en model, VAD on, as
the pipeline):

- ``mono``: today's PyAV/swresample downmix to mono (what ``stream_mono_16k`` does);
- ``loudness``: loudness-aware downmix: per 30 s block, each channel is brought to the
  same speech level (95th percentile of its 10 ms RMS, gain capped at +40 dB) before
  the channels are averaged;
- ``per_channel``: each channel transcribed on its own (coverage is per speaker, so
  the order in which the channels' words are joined does not matter);
- ``pipeline_downmix``: the same analysis on a mono copy of the file (``ffmpeg -ac 1``):
  what the pipeline did before split-track detection, for the before/after time;
- ``pipeline``: what the pipeline does now: ``clipforge.analysis.analyse_audio`` on the
  file (one streaming decode, split-track detection on the first block, per-channel
  pieces, words merged and deduplicated).

Each row also gives the wall time of the strategy's speech recognition (``asr_s``; for
``pipeline`` the whole analysis: decode, delivery signals and recognition), to set the
per-channel cost against today's downmix.

Coverage = share of a speaker's reference words recovered in order (LCS of lower-case
tokens). Printed per file and strategy.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipforge.analysis import analyse_audio
from clipforge.audio import SAMPLE_RATE, decode_mono_16k
from clipforge.config import Settings
from clipforge.signals import fine_envelope
from clipforge.text import tokens
from clipforge.transcribe import transcribe_piece

MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
PAIRS = [
    ("speech_en_11s__whisper_jfk.flac", "talk_en_42s__auto-editor_example.mp4"),
    ("talk_en_42s__auto-editor_example.mp4", "multispeaker_30s__pyannote_sample.wav"),
]
LEVELS_DB = (-12.0, -24.0, -36.0)
BLOCK = 30 * SAMPLE_RATE


SETTINGS = Settings(whisper_language="en")


def words_of(y: np.ndarray) -> list[str]:
    got, _ = transcribe_piece(y.astype(np.float32), SETTINGS)
    return [t for w in got for t in tokens(w.text)]


def timed(fn: Callable[..., list[str]], *args: object) -> tuple[list[str], float]:
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0


def per_channel(st: np.ndarray) -> list[str]:
    return words_of(st[0]) + words_of(st[1])


def mono_words(wav: Path) -> list[str]:
    return words_of(decode_mono_16k(wav))


def loudness_words(st: np.ndarray) -> list[str]:
    return words_of(loudness_aware(st))


def pipeline_words(wav: Path, duration_s: float, channels: int = 2) -> list[str]:
    tr, _ = analyse_audio(wav, SETTINGS, duration_us=int(duration_s * 1e6))
    assert tr.channels == channels, f"{wav}: {tr.channels} tracks ({tr.channel_note!r})"
    return [t for w in tr.words for t in tokens(w.text)]


def mono_copy(wav: Path) -> Path:
    out = wav.with_name(wav.stem + "_mono.wav")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-ac", "1",
                    str(out)], check=True)
    return out


def lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def speech_level_db(y: np.ndarray) -> float:
    env = fine_envelope(y)
    return float(np.percentile(env, 95)) if env.size else -120.0


def loudness_aware(stereo: np.ndarray) -> np.ndarray:
    out = np.zeros(stereo.shape[1], np.float32)
    for b0 in range(0, stereo.shape[1], BLOCK):
        blk = stereo[:, b0:b0 + BLOCK]
        levels = [speech_level_db(ch) for ch in blk]
        ref = max(levels)
        mix = np.zeros(blk.shape[1], np.float64)
        for ch, lv in zip(blk, levels, strict=True):
            if lv <= -70.0:
                continue  # a silent channel adds nothing (and is not amplified)
            mix += ch * 10 ** (min(40.0, ref - lv) / 20)
        out[b0:b0 + BLOCK] = (mix / blk.shape[0]).astype(np.float32)
    return out


def main() -> None:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for a_name, b_name in PAIRS:
            a = decode_mono_16k(MEDIA / a_name)[: 30 * SAMPLE_RATE]
            b = decode_mono_16k(MEDIA / b_name)[: 30 * SAMPLE_RATE]
            a = a / max(1e-6, float(np.abs(a).max())) * 0.7
            b = b / max(1e-6, float(np.abs(b).max())) * 0.7
            ref_a, ref_b = words_of(a), words_of(b)
            off = a.size // 2
            n = off + b.size
            for lv in LEVELS_DB:
                left = np.zeros(max(n, a.size), np.float32)
                right = np.zeros_like(left)
                left[: a.size] = a
                right[off: off + b.size] = b * 10 ** (lv / 20)
                wav = Path(tmp) / f"split_{lv:g}.wav"
                st = np.stack([left, right])
                pcm = (np.clip(st.T, -1, 1) * 32767).astype("<i2").tobytes()
                subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "s16le",
                                "-ar", str(SAMPLE_RATE), "-ac", "2", "-i", "pipe:0", str(wav)],
                               input=pcm, check=True)
                hyps = {
                    "mono": timed(mono_words, wav),
                    "loudness": timed(loudness_words, st),
                    "per_channel": timed(per_channel, st),
                    "pipeline_downmix": timed(pipeline_words, mono_copy(wav),
                                              st.shape[1] / SAMPLE_RATE, 1),
                    "pipeline": timed(pipeline_words, wav, st.shape[1] / SAMPLE_RATE),
                }
                for name, (hyp, secs) in hyps.items():
                    got_a, got_b = lcs(ref_a, hyp), lcs(ref_b, hyp)
                    n_ref = len(ref_a) + len(ref_b)
                    row = {"file": f"{a_name.split('__')[0]} L + {b_name.split('__')[0]} R "
                                   f"at {lv:g} dB", "strategy": name,
                           "coverage_A": round(got_a / max(1, len(ref_a)), 3),
                           "coverage_B": round(got_b / max(1, len(ref_b)), 3),
                           "ref_words": n_ref, "asr_s": round(secs, 2),
                           "coverage": round((got_a + got_b) / max(1, n_ref), 3)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print()
    for name in ("mono", "loudness", "per_channel", "pipeline_downmix", "pipeline"):
        sel = [r for r in rows if r["strategy"] == name]
        print(f"{name:<16} mean coverage {np.mean([float(str(r['coverage'])) for r in sel]):.3f}  "
              f"quiet speaker {np.mean([float(str(r['coverage_B'])) for r in sel]):.3f}  "
              f"time {sum(float(str(r['asr_s'])) for r in sel):.1f} s")


if __name__ == "__main__":
    main()
