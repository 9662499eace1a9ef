"""The one audio decoder (PyAV) and the audio-energy signal (librosa).

The source's audio is decoded once to 16 kHz mono float32; transcription and the
energy measurement share that decode through a one-entry memo, so a run that needs
both decodes the file once and a run served from cache decodes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .errors import CorruptInputError
from .timeutil import US_PER_S

SAMPLE_RATE = 16_000

_memo_lock = threading.Lock()
_memo: tuple[tuple[str, int, int], np.ndarray] | None = None


def _identity(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def decode_mono_16k(path: str | Path) -> np.ndarray:
    """Decode the first audio stream to 16 kHz mono float32 in [-1, 1].

    A source without audio gives an empty array. Memoised on file identity (one entry).
    """
    global _memo
    p = Path(path)
    key = _identity(p)
    with _memo_lock:
        if _memo is not None and _memo[0] == key:
            return _memo[1]
        samples = _decode(p)
        _memo = (key, samples)
        return samples


def forget_decoded() -> None:
    """Drop the memoised decode (call when a job ends)."""
    global _memo
    with _memo_lock:
        _memo = None


def _decode(path: Path) -> np.ndarray:
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return np.zeros(0, dtype=np.float32)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise CorruptInputError(
            f"{path}: the audio stream could not be decoded ({exc}). "
            "Re-export the file (e.g. `ffmpeg -i IN -c:v copy -c:a aac OUT.mp4`) and try again."
        ) from exc
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class EnergyTrack:
    """RMS loudness on a fixed grid, normalised per source to [0, 1].

    ``values[i]`` covers ``[i * hop_us, (i + 1) * hop_us)``.
    """

    hop_us: int
    values: tuple[float, ...]
    db_floor: float
    db_ceiling: float

    def mean_between(self, start_us: int, end_us: int) -> float:
        if not self.values or end_us <= start_us:
            return 0.0
        i0 = max(0, start_us // self.hop_us)
        i1 = min(len(self.values), max(i0 + 1, -(-end_us // self.hop_us)))
        if i0 >= len(self.values):
            return 0.0
        window = self.values[i0:i1]
        return float(sum(window) / len(window))


ENERGY_HOP_S = 0.25


def energy_track(samples: np.ndarray, *, hop_s: float = ENERGY_HOP_S) -> EnergyTrack:
    """RMS per window in dB, mapped to [0, 1] between the source's 10th and 95th percentile.

    Per-source normalisation makes the signal comparable across quiet and loud
    recordings. Digital silence (below -70 dBFS) always maps to 0.
    """
    import librosa  # heavy import (numba): only when measuring

    hop = int(round(hop_s * SAMPLE_RATE))
    hop_us = int(round(hop_s * US_PER_S))
    if samples.size == 0:
        return EnergyTrack(hop_us=hop_us, values=(), db_floor=-120.0, db_ceiling=-120.0)
    rms = librosa.feature.rms(y=samples, frame_length=2 * hop, hop_length=hop, center=True)[0]
    db = 20.0 * np.log10(np.maximum(rms, 1e-6))
    audible = db[db > -70.0]
    if audible.size == 0:
        return EnergyTrack(
            hop_us=hop_us, values=tuple(0.0 for _ in db), db_floor=-120.0, db_ceiling=-120.0
        )
    lo = float(np.percentile(audible, 10))
    hi = float(np.percentile(audible, 95))
    span = max(hi - lo, 1.0)
    norm = np.clip((db - lo) / span, 0.0, 1.0)
    norm[db <= -70.0] = 0.0
    return EnergyTrack(
        hop_us=hop_us,
        values=tuple(round(float(v), 4) for v in norm),
        db_floor=round(lo, 2),
        db_ceiling=round(hi, 2),
    )
