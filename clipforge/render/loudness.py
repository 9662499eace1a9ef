"""Loudness: pass 1 (``ebur128`` over the whole source), its parsing, and one gain for
the whole reel from the kept segments (BS.1770 gating). See :mod:`clipforge.render`."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipforge import ffmpeg
from clipforge.edl import Edl, Segment
from clipforge.errors import RenderError
from clipforge.probe import MediaInfo

AUDIO_RATE = 48_000
LIMITER_MARGIN_DB = 0.5  # headroom under the true-peak target for AAC's intersample peaks
_SILENCE_LUFS = -70.0  # ebur128 reports -70 LUFS when everything is gated (silence)


@dataclass(frozen=True, slots=True)
class Loudness:
    integrated_lufs: float
    true_peak_db: float
    lra: float
    threshold: float
    # Per 100 ms of the source: (end time s, momentary loudness LUFS, true peak dBFS).
    # Lets any subset of the source (a reel's segments) be measured without a new pass.
    frames: tuple[tuple[float, float, float], ...] = ()


def _audio_prep() -> str:
    return f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"


def loudness_argv(path: str | Path, info: MediaInfo) -> list[str]:
    """Pass 1: ebur128 over the whole source audio (after the render's stereo conversion)."""
    if info.audio is None:
        raise ValueError("no audio stream")
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-v",
        "verbose",  # ebur128's per-100 ms frame log is printed at the verbose level
        "-i",
        str(path),
        "-map",
        f"0:{info.audio.index}",
        "-vn",
        "-sn",
        "-dn",
        "-af",
        f"{_audio_prep()},ebur128=peak=true:framelog=verbose",
        "-f",
        "null",
        "-",
    ]


_SUMMARY_RE = {
    "I": re.compile(
        r"Integrated loudness:\s*I:\s*(-?[\d.]+|-?inf|nan)\s*LUFS\s*Threshold:\s*(-?[\d.]+|-?inf)",
        re.S,
    ),
    "LRA": re.compile(r"Loudness range:\s*LRA:\s*(-?[\d.]+|-?inf|nan)\s*LU", re.S),
    "TP": re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-?inf|nan)\s*dBFS", re.S),
}
_FRAME_RE = re.compile(
    r"\bt:\s*(-?[\d.]+)\s+TARGET:.*?\bM:\s*(-?[\d.]+|-?inf|nan)\b.*?FTPK:\s*((?:-?[\d.]+|-?inf)"
    r"(?:\s+(?:-?[\d.]+|-?inf))*)\s*dBFS"
)


def parse_ebur128_frames(stderr: str) -> tuple[tuple[float, float, float], ...]:
    """The per-100 ms frame log: (t, momentary LUFS, max true peak of the channels)."""
    out = []
    for m in _FRAME_RE.finditer(stderr):
        peaks = [float(x) for x in m.group(3).split()]
        out.append((float(m.group(1)), float(m.group(2)), max(peaks)))
    return tuple(out)


def parse_ebur128(stderr: str) -> Loudness | None:
    """Parse the ebur128 summary; ``None`` for digital silence (-inf peak / gated out)."""
    pos = stderr.rfind("Summary:")
    text = stderr[pos:] if pos >= 0 else stderr
    m_i = _SUMMARY_RE["I"].search(text)
    m_lra = _SUMMARY_RE["LRA"].search(text)
    m_tp = _SUMMARY_RE["TP"].search(text)
    if not (m_i and m_tp):
        raise ValueError("no ebur128 summary in FFmpeg output")
    integrated, threshold = float(m_i.group(1)), float(m_i.group(2))
    peak = float(m_tp.group(1))
    lra = float(m_lra.group(1)) if m_lra else 0.0
    if not (math.isfinite(integrated) and math.isfinite(peak)) or integrated <= _SILENCE_LUFS:
        return None
    return Loudness(integrated, peak, lra, threshold, parse_ebur128_frames(stderr))


def measure_loudness(path: str | Path, info: MediaInfo) -> Loudness | None:
    """Pass 1 over the WHOLE source once. ``None`` if there is no audio or only silence."""
    if info.audio is None:
        return None
    return _run_ebur128(path, loudness_argv(path, info))


def _run_ebur128(path: str | Path, argv: list[str]) -> Loudness | None:
    """Run a pass-1 FFmpeg and parse its ebur128 summary (typed error if unreadable)."""
    proc = ffmpeg.run(argv)
    try:
        return parse_ebur128(proc.stderr.decode("utf-8", "replace"))
    except ValueError as exc:
        raise RenderError(
            f"{path}: could not read the loudness measurement ({exc}).",
            argv=argv,
            stderr_tail=ffmpeg.stderr_tail(proc.stderr),
        ) from exc


def loudness_spans(edl: Edl) -> list[tuple[float, float]]:
    """The source spans a render of ``edl`` plays, in order (its segments)."""
    return [(seg.source_in, seg.source_out) for seg in edl.segments]


def spans_loudness_argv(path: str | Path, info: MediaInfo,
                        spans: Sequence[tuple[float, float]]) -> list[str]:
    """Pass 1 over just ``spans`` of the source (seconds), joined in order: each span an
    input-seeked input (``-ss``/``-t``: only that stretch is decoded), the same 48 kHz
    stereo conversion as the render, concatenated, then ``ebur128=peak=true``."""
    if info.audio is None:
        raise ValueError("no audio stream")
    if not spans:
        raise ValueError("no spans to measure")
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-v", "info"]
    for start, end in spans:
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise ValueError(f"bad span {start!r}-{end!r}")
        argv += ["-ss", f"{start:.6f}", "-t", f"{end - start:.6f}", "-i", str(path)]
    inputs = "".join(f"[{i}:{info.audio.index}]" for i in range(len(spans)))
    graph = (f"{inputs}concat=n={len(spans)}:v=0:a=1,{_audio_prep()},"
             "ebur128=peak=true[out]")
    return argv + ["-filter_complex", graph, "-map", "[out]", "-f", "null", "-"]


def measure_spans_loudness(path: str | Path, info: MediaInfo,
                           spans: Sequence[tuple[float, float]]) -> Loudness | None:
    """Pass 1 over what a render keeps: the integrated loudness and true peak of the
    spans as one programme (BS.1770 gating over the joined audio, which is what the
    reel plays), without a frame log. Decoding only the spans makes it cost seconds
    whatever the source's length (the whole-source pass of a one-hour source took a sixth
    of the pipeline's CPU). ``None`` if they are silent."""
    if info.audio is None:
        return None
    measured = _run_ebur128(path, spans_loudness_argv(path, info, spans))
    return None if measured is None else Loudness(
        measured.integrated_lufs, measured.true_peak_db, measured.lra, measured.threshold)


def reel_loudness(loudness: Loudness, segments: Sequence[Segment]
                  ) -> tuple[float, float] | None:
    """Integrated loudness and true peak of just the reel's segments (BS.1770 gating over
    the 400 ms momentary blocks that lie inside a segment), from the one whole-source
    measurement. Falls back to the whole-source figures without a frame log; ``None`` if
    the kept parts are silent."""
    if not loudness.frames:
        return loudness.integrated_lufs, loudness.true_peak_db
    spans = [(seg.source_in, seg.source_out) for seg in segments]
    eps = 1e-6
    blocks = [m for t, m, _ in loudness.frames
              if any(a - eps <= t - 0.4 and t <= b + eps for a, b in spans)]
    peaks = [tp for t, _, tp in loudness.frames
             if any(a < t <= b + 0.1 for a, b in spans)]
    gated = [m for m in blocks if math.isfinite(m) and m > _SILENCE_LUFS]
    if not gated or not peaks:
        return None
    ungated = 10 * math.log10(sum(10 ** (m / 10) for m in gated) / len(gated))
    kept = [m for m in gated if m > ungated - 10]
    integrated = 10 * math.log10(sum(10 ** (m / 10) for m in kept) / len(kept))
    return integrated, max(peaks)


def reel_gain(loudness: Loudness | None, segments: Sequence[Segment], target_lufs: float,
              target_tp_db: float) -> tuple[float, float | None]:
    """One linear gain for every segment, and the limiter ceiling (dBFS) to apply after it
    when the gain would push the reel's true peak past the target (None: no limiter)."""
    if loudness is None:
        return 0.0, None
    measured = reel_loudness(loudness, segments)
    if measured is None:
        return 0.0, None
    integrated, peak = measured
    gain = round(target_lufs - integrated, 2)
    limit = round(target_tp_db - LIMITER_MARGIN_DB, 2) if peak + gain > target_tp_db else None
    return gain, limit
