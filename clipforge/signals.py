"""How things were said: per-source normalised audio signals on one time grid.

Every signal lives on the same grid as :class:`clipforge.audio.EnergyTrack`
(``hop_us``, 0.25 s) and is mapped to [0, 1] per source, so a quiet interview and a loud
stream are judged against themselves:

- ``energy``: RMS loudness per cell (see :func:`clipforge.audio.energy_from_db`);
- ``bursts``: onset strength (spectral flux, 25 ms hop) peaks per cell — laughter, applause,
  raised voices — divided by the source's 95th percentile;
- ``pitch_var``: spread (standard deviation, semitones) of the voice's pitch (YIN) over
  voiced frames in each second, divided by the source's 95th percentile.

:class:`AudioAccumulator` takes the audio block by block (as it is decoded), keeps only
the small per-cell raw values, and normalises at the end: memory stays bounded on long
sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import ENERGY_HOP_S, SAMPLE_RATE, EnergyTrack, cell_db, energy_from_db
from .timeutil import US_PER_S

GRID_HOP_US = int(round(ENERGY_HOP_S * US_PER_S))  # the one time grid of every signal
FINE_HOP = SAMPLE_RATE // 100  # 10 ms: the short-window envelope for cut points
FINE_HOP_US = 10_000


def fine_envelope(y: np.ndarray) -> np.ndarray:
    """RMS dBFS per 10 ms frame (a partial tail frame over its real samples), float32."""
    n = y.size
    if n == 0:
        return np.zeros(0, np.float32)
    whole = (n // FINE_HOP) * FINE_HOP
    y64 = y.astype(np.float64)
    power = (y64[:whole] ** 2).reshape(-1, FINE_HOP).mean(axis=1) if whole else np.zeros(0)
    if n > whole:
        power = np.concatenate([power, [float(np.mean(y64[whole:] ** 2))]])
    return (10.0 * np.log10(np.maximum(power, 1e-12))).astype(np.float32)


@dataclass(frozen=True, slots=True)
class AudioSignals:
    energy: EnergyTrack
    bursts: tuple[float, ...]
    pitch_var: tuple[float, ...]
    # 10 ms RMS level in dBFS (float32, one value per FINE_HOP samples) from the same
    # decode: where a cut can go quiet (see clipforge.cutpoints). Empty when not measured.
    fine_db: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32),
                                compare=False)

    @property
    def hop_us(self) -> int:
        return self.energy.hop_us

    def _mean(self, values: tuple[float, ...], start_us: int, end_us: int) -> float:
        if not values or end_us <= start_us:
            return 0.0
        i0 = max(0, start_us // self.hop_us)
        i1 = min(len(values), max(i0 + 1, -(-end_us // self.hop_us)))
        if i0 >= len(values):
            return 0.0
        window = values[i0:i1]
        return float(sum(window) / len(window))

    def delivery(self, start_us: int, end_us: int) -> dict[str, float]:
        """Mean of each signal over a time range."""
        return {
            "audio_energy": self.energy.mean_between(start_us, end_us),
            "bursts": self._mean(self.bursts, start_us, end_us),
            "pitch_var": self._mean(self.pitch_var, start_us, end_us),
        }


def _robust_unit(x: np.ndarray) -> np.ndarray:
    """Divide by the 95th percentile of the non-zero values, clip to [0, 1]."""
    nz = x[x > 0]
    if nz.size == 0:
        return np.zeros_like(x)
    ref = float(np.percentile(nz, 95))
    return np.clip(x / ref, 0.0, 1.0) if ref > 0 else np.zeros_like(x)


class AudioAccumulator:
    """Raw per-cell signals from 16 kHz mono blocks fed in order; ``finish()`` normalises.

    Blocks may have any length: work is done in whole seconds and the rest is carried
    over to the next block.
    """

    ONSET_HOP = 400  # 25 ms (10 per cell); n_fft 1024: a tenth of librosa's default cost
    ONSET_FFT = 1024
    YIN_HOP = 400  # 25 ms

    def __init__(self, hop_s: float = ENERGY_HOP_S) -> None:
        self.hop = int(round(hop_s * SAMPLE_RATE))
        self.hop_us = int(round(hop_s * US_PER_S))
        self.cells_per_s = SAMPLE_RATE // self.hop
        self._carry = np.zeros(0, dtype=np.float32)
        self._db: list[np.ndarray] = []
        self._bursts: list[np.ndarray] = []
        self._pitch: list[np.ndarray] = []
        self._fine: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        data = np.concatenate([self._carry, block]) if self._carry.size else block
        whole = (data.size // SAMPLE_RATE) * SAMPLE_RATE
        if whole:
            self._process(data[:whole])
        self._carry = np.array(data[whole:], dtype=np.float32)

    def finish(self) -> AudioSignals:
        if self._carry.size:
            self._process(self._carry)
            self._carry = np.zeros(0, dtype=np.float32)
        db = np.concatenate(self._db) if self._db else np.zeros(0)
        bursts = np.concatenate(self._bursts) if self._bursts else np.zeros(0)
        pitch = np.concatenate(self._pitch) if self._pitch else np.zeros(0)
        silent = db <= -70.0
        bursts[silent] = 0.0
        pitch[silent] = 0.0
        return AudioSignals(
            energy=energy_from_db(db, self.hop_us),
            bursts=tuple(round(float(v), 4) for v in _robust_unit(bursts)),
            pitch_var=tuple(round(float(v), 4) for v in _robust_unit(pitch)),
            fine_db=np.concatenate(self._fine) if self._fine else np.zeros(0, np.float32),
        )

    def _process(self, y: np.ndarray) -> None:
        import librosa  # heavy import (numba): only when measuring

        db = cell_db(y, self.hop)
        n = db.size
        bursts = np.zeros(n)
        pitch = np.zeros(n)
        if y.size >= 2048:
            onset = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=self.ONSET_HOP,
                                                 n_fft=self.ONSET_FFT)
            per = self.hop // self.ONSET_HOP
            padded = np.zeros(n * per)
            m = min(onset.size, n * per)
            padded[:m] = onset[:m]
            bursts = padded.reshape(n, per).max(axis=1)
            f0 = librosa.yin(y, fmin=70, fmax=400, sr=SAMPLE_RATE, frame_length=1024,
                             hop_length=self.YIN_HOP, center=True)
            rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=self.YIN_HOP,
                                      center=True)[0]
            voiced = rms > max(1e-4, float(np.percentile(rms, 40)))
            semis = 12.0 * np.log2(np.maximum(f0, 1.0) / 100.0)
            per_s = SAMPLE_RATE // self.YIN_HOP
            for c0 in range(0, n, self.cells_per_s):
                f = (c0 // self.cells_per_s) * per_s
                v = semis[f : f + per_s][voiced[f : f + per_s]]
                pitch[c0 : c0 + self.cells_per_s] = float(np.std(v)) if v.size >= 4 else 0.0
        self._db.append(db)
        self._bursts.append(bursts)
        self._pitch.append(pitch)
        self._fine.append(fine_envelope(y))  # y is whole seconds except the last: aligned


def audio_signals(samples: np.ndarray, *, hop_s: float = ENERGY_HOP_S,
                  block_s: int = 120) -> AudioSignals:
    """All signals of a whole 16 kHz mono signal (fed in ``block_s`` blocks)."""
    acc = AudioAccumulator(hop_s)
    step = block_s * SAMPLE_RATE
    for b0 in range(0, samples.size, step):
        acc.feed(samples[b0 : b0 + step])
    return acc.finish()
