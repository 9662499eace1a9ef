"""The one audio decoder (PyAV) and the audio-energy signal.

The source's audio is decoded to 16 kHz mono float32, streamed in blocks
(:func:`stream_mono_16k`) so that long sources never sit in memory whole; see
:mod:`clipforge.analysis` for the single pass that feeds both speech recognition and
the delivery signals. The same decode (:class:`AudioStream`) can also give each channel
on its own, for split-track recordings (one speaker per channel, see
:func:`detect_split_track`).
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


def decode_channels_16k(path: str | Path) -> np.ndarray:
    """The whole first audio stream, each channel on its own: ``(n_channels, samples)``
    16 kHz float32 (one row for mono sources; ``(0, 0)`` without audio). For short
    inputs, tests and benchmarks."""
    stream = AudioStream(path)
    mono: list[np.ndarray] = []
    chans: list[np.ndarray] = []
    for block in stream:
        mono.append(block.mono)
        if block.channels is not None:
            chans.append(block.channels)
    if chans:
        return np.ascontiguousarray(np.concatenate(chans, axis=1), dtype=np.float32)
    joined = _join(mono)
    return joined.reshape(1, -1) if joined.size else np.zeros((0, 0), dtype=np.float32)


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
    for block in AudioStream(path, block_s, channels=False):
        if block.mono.size:
            yield block.mono


MAX_SPLIT_CHANNELS = 4  # more channels (5.1, ...) are a mix, not one speaker per channel


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """One decoded block: the mono downmix and, while asked for, each channel.

    ``channels`` (shape ``(n_channels, m)``, 16 kHz float32) covers about the same span
    as ``mono``; its length may differ by a few samples (each has its own resampler),
    and it is ``None`` for mono sources or once the consumer stopped asking.
    """

    mono: np.ndarray
    channels: np.ndarray | None


class AudioStream:
    """The one decode of the first audio stream, in ~``block_s`` blocks.

    ``mono`` blocks are exactly what :func:`stream_mono_16k` yields (same resampler,
    same block boundaries). For sources with 2..``MAX_SPLIT_CHANNELS`` channels each
    block also carries every channel resampled on its own, while ``want_channels`` is
    true; a consumer that has seen enough sets it to false and the per-channel
    resampling stops from the next frame on. ``channel_count`` is known once iteration
    has started.
    """

    def __init__(self, path: str | Path, block_s: float = 30.0, *, channels: bool = True):
        self.path = Path(path)
        self.block = int(block_s * SAMPLE_RATE)
        self.want_channels = channels
        self.channel_count = 0

    def __iter__(self) -> Iterator[AudioBlock]:
        pending: list[np.ndarray] = []
        chans: list[np.ndarray] = []
        size = 0
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.audio:
                    return
                stream = container.streams.audio[0]
                self.channel_count = int(stream.codec_context.channels or 0)
                resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                split: av.AudioResampler | None = None
                per_channel = 2 <= self.channel_count <= MAX_SPLIT_CHANNELS
                frames = container.decode(stream)
                for frame in itertools.chain(frames, [None]):
                    if per_channel and self.want_channels:
                        if split is None and frame is not None:
                            split = av.AudioResampler(format="fltp", layout=frame.layout.name,
                                                      rate=SAMPLE_RATE)
                        if split is not None:
                            chans.extend(o.to_ndarray().astype(np.float32, copy=False)
                                         for o in split.resample(frame))
                    elif chans:
                        chans = []
                    for out in resampler.resample(frame):
                        arr = out.to_ndarray().reshape(-1)
                        pending.append(arr)
                        size += arr.size
                        if size >= self.block:
                            yield AudioBlock(_join(pending), _join_channels(chans))
                            pending, chans, size = [], [], 0
        except av.error.FFmpegError as exc:
            raise CorruptInputError(
                f"{self.path}: the audio stream could not be decoded ({exc}). "
                "Re-export the file (e.g. `ffmpeg -i IN -c:v copy -c:a aac OUT.mp4`) and "
                "try again."
            ) from exc
        if pending or chans:
            yield AudioBlock(_join(pending), _join_channels(chans))


def _join(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _join_channels(parts: list[np.ndarray]) -> np.ndarray | None:
    if not parts:
        return None
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


SPLIT_CORRELATION = 0.5  # channels less alike than this carry different signals
SPLIT_LEVEL_DB = 6.0  # or one channel's speech this much quieter than another's
SILENT_DB = -70.0


@dataclass(frozen=True, slots=True)
class ChannelLayout:
    """The split-track decision for a source, made on its first block.

    ``correlation`` is the lowest pairwise Pearson correlation of the channels'
    waveforms; ``level_spread_db`` the loudest minus the quietest channel's speech level
    (95th percentile of 10 ms RMS dBFS). Split-track (one speaker per channel, as
    podcasts record) when the correlation is below ``SPLIT_CORRELATION`` or the levels
    are more than ``SPLIT_LEVEL_DB`` apart, unless every channel is silent.
    """

    channels: int
    split: bool
    correlation: float
    level_spread_db: float

    @property
    def note(self) -> str:
        """Progress/result detail, e.g. ``split-track: 2 channels (...)``; empty if not split."""
        if not self.split:
            return ""
        return (f"split-track: {self.channels} channels (correlation "
                f"{self.correlation:.2f}, levels {self.level_spread_db:.1f} dB apart)")


MONO_LAYOUT = ChannelLayout(channels=1, split=False, correlation=1.0, level_spread_db=0.0)


def speech_level_db(samples: np.ndarray) -> float:
    """95th percentile of the 10 ms RMS level in dBFS (-120 for an empty signal)."""
    hop = SAMPLE_RATE // 100
    whole = (samples.size // hop) * hop
    if whole == 0:
        return -120.0
    y = samples[:whole].astype(np.float64).reshape(-1, hop)
    db = 10.0 * np.log10(np.maximum((y**2).mean(axis=1), 1e-12))
    return float(np.percentile(db, 95))


def detect_split_track(channels: np.ndarray | None) -> ChannelLayout:
    """Decide from one block of channels (``(n, m)``) whether each is its own track."""
    if channels is None or channels.ndim != 2 or channels.shape[0] < 2:
        return MONO_LAYOUT
    x = channels.astype(np.float64)
    levels = [speech_level_db(ch) for ch in x]
    n = x.shape[0]
    if max(levels) <= SILENT_DB:
        return ChannelLayout(channels=n, split=False, correlation=1.0, level_spread_db=0.0)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt((x**2).sum(axis=1))
    corr = 1.0
    for i in range(n):
        for j in range(i + 1, n):
            denom = norms[i] * norms[j]
            r = float((x[i] * x[j]).sum() / denom) if denom > 0 else 0.0
            corr = min(corr, r)
    spread = max(levels) - max(min(levels), -120.0)
    corr, spread = round(corr, 4), round(spread, 2)
    split = corr < SPLIT_CORRELATION or spread > SPLIT_LEVEL_DB
    return ChannelLayout(channels=n, split=split, correlation=corr, level_spread_db=spread)


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
