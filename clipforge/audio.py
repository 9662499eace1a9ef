"""The one audio decoder (PyAV) and the audio-energy signal.

The source's audio is decoded to 16 kHz mono float32, streamed in blocks
(:func:`stream_mono_16k`) so that long sources never sit in memory whole; see
:mod:`clipforge.analysis` for the single pass that feeds both speech recognition and
the delivery signals.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .errors import CorruptInputError
from .timeutil import US_PER_S

SAMPLE_RATE = 16_000

def decode_mono_16k(path: str | Path) -> np.ndarray:
    """The whole first audio stream as 16 kHz mono float32 in [-1, 1] (empty without
    audio). The pipeline streams instead (:func:`stream_mono_16k`); this is for short
    inputs, tests and benchmarks."""
    return _decode(Path(path))


def _decode(path: Path) -> np.ndarray:
    chunks = list(stream_mono_16k(path))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def stream_mono_16k(path: str | Path, block_s: float = 30.0) -> Iterator[np.ndarray]:
    """Decode the first audio stream to 16 kHz mono float32, yielding ~``block_s`` blocks.

    Memory stays bounded by one block whatever the source's length. A source without
    audio yields nothing.
    """
    block = int(block_s * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    size = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            frames = container.decode(stream)
            for frame in itertools.chain(frames, [None]):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    pending.append(arr)
                    size += arr.size
                    if size >= block:
                        yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)
                        pending, size = [], 0
    except av.error.FFmpegError as exc:
        raise CorruptInputError(
            f"{path}: the audio stream could not be decoded ({exc}). "
            "Re-export the file (e.g. `ffmpeg -i IN -c:v copy -c:a aac OUT.mp4`) and try again."
        ) from exc
    if pending:
        yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)


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


def cell_db(samples: np.ndarray, hop: int) -> np.ndarray:
    """RMS level in dBFS of each ``hop``-sample cell (librosa RMS, one frame per cell; a
    partial tail cell is measured over its real samples)."""
    import librosa  # heavy import (numba): only when measuring

    n = samples.size
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    whole = (n // hop) * hop
    rms: list[np.ndarray] = []
    if whole:
        rms.append(librosa.feature.rms(y=samples[:whole], frame_length=hop, hop_length=hop,
                                       center=False)[0].astype(np.float64))
    if n > whole:
        tail = samples[whole:].astype(np.float64)
        rms.append(np.array([np.sqrt(np.mean(tail**2))]))
    return 20.0 * np.log10(np.maximum(np.concatenate(rms), 1e-6))


def energy_from_db(db: np.ndarray, hop_us: int) -> EnergyTrack:
    """Per-cell dB mapped to [0, 1] between the source's 10th and 95th percentile.

    Per-source normalisation makes the signal comparable across quiet and loud
    recordings. Digital silence (below -70 dBFS) always maps to 0.
    """
    if db.size == 0:
        return EnergyTrack(hop_us=hop_us, values=(), db_floor=-120.0, db_ceiling=-120.0)
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


def energy_track(samples: np.ndarray, *, hop_s: float = ENERGY_HOP_S) -> EnergyTrack:
    """RMS loudness per ``hop_s`` cell of a whole signal, normalised per source."""
    hop = int(round(hop_s * SAMPLE_RATE))
    return energy_from_db(cell_db(samples, hop), int(round(hop_s * US_PER_S)))
