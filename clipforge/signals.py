"""How things were said: per-source normalised audio signals on one time grid.

Every signal lives on the same grid as :class:`clipforge.audio.EnergyTrack`
(``hop_us``, 0.25 s by default) and is mapped to [0, 1] per source, so a quiet
interview and a loud stream are judged against themselves:

- ``energy``: RMS loudness (see :func:`clipforge.audio.energy_track`);
- ``bursts``: onset strength (spectral flux) peaks per cell — laughter, applause,
  raised voices — divided by the source's 95th percentile;
- ``pitch_var``: spread (standard deviation, semitones) of the voice's pitch (YIN) over
  voiced frames in the surrounding second, divided by the source's 95th percentile.

The audio is processed in blocks so memory stays bounded on long sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import ENERGY_HOP_S, SAMPLE_RATE, EnergyTrack, energy_track
from .timeutil import US_PER_S

BLOCK_S = 120  # analysis block; a multiple of the hop


@dataclass(frozen=True, slots=True)
class AudioSignals:
    energy: EnergyTrack
    bursts: tuple[float, ...]
    pitch_var: tuple[float, ...]

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
        """Mean of each signal over a time range, and their blend (``delivery``).

        ``delivery = 0.5 energy + 0.25 bursts + 0.25 pitch_var``.
        """
        e = self.energy.mean_between(start_us, end_us)
        b = self._mean(self.bursts, start_us, end_us)
        p = self._mean(self.pitch_var, start_us, end_us)
        return {"audio_energy": e, "bursts": b, "pitch_var": p,
                "delivery": 0.5 * e + 0.25 * b + 0.25 * p}


def _robust_unit(x: np.ndarray) -> np.ndarray:
    """Divide by the 95th percentile of the non-zero values, clip to [0, 1]."""
    nz = x[x > 0]
    if nz.size == 0:
        return np.zeros_like(x)
    ref = float(np.percentile(nz, 95))
    return np.clip(x / ref, 0.0, 1.0) if ref > 0 else np.zeros_like(x)


def audio_signals(samples: np.ndarray, *, hop_s: float = ENERGY_HOP_S) -> AudioSignals:
    import librosa  # heavy import (numba): only when measuring

    energy = energy_track(samples, hop_s=hop_s)
    n_cells = len(energy.values)
    hop = int(round(hop_s * SAMPLE_RATE))
    bursts = np.zeros(n_cells, dtype=np.float64)
    pitch_spread = np.zeros(n_cells, dtype=np.float64)
    block = BLOCK_S * SAMPLE_RATE
    onset_hop = 160  # 10 ms
    yin_hop = 400  # 25 ms
    per_cell_onset = hop // onset_hop
    per_cell_yin = hop // yin_hop
    cells_per_s = int(round(1 / hop_s))
    for b0 in range(0, samples.size, block):
        y = samples[b0 : b0 + block]
        c0 = b0 // hop
        if y.size < 2048:
            continue
        onset = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=onset_hop)
        m = onset.size // per_cell_onset
        if m:
            cells = onset[: m * per_cell_onset].reshape(m, per_cell_onset).max(axis=1)
            n = min(m, n_cells - c0)
            bursts[c0 : c0 + n] = cells[:n]
        f0 = librosa.yin(y, fmin=70, fmax=400, sr=SAMPLE_RATE, frame_length=1024,
                         hop_length=yin_hop, center=True)
        rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=yin_hop, center=True)[0]
        voiced = rms > max(1e-4, float(np.percentile(rms, 40)))
        semis = 12.0 * np.log2(np.maximum(f0, 1.0) / 100.0)
        frames_per_s = per_cell_yin * cells_per_s
        for s0 in range(0, f0.size, frames_per_s):
            sl = slice(s0, s0 + frames_per_s)
            v = semis[sl][voiced[sl]]
            spread = float(np.std(v)) if v.size >= 4 else 0.0
            cell = c0 + s0 // per_cell_yin
            pitch_spread[cell : min(n_cells, cell + cells_per_s)] = spread
    silent = np.asarray(energy.values) <= 0.0
    bursts[silent] = 0.0
    pitch_spread[silent] = 0.0
    return AudioSignals(
        energy=energy,
        bursts=tuple(round(float(v), 4) for v in _robust_unit(bursts)),
        pitch_var=tuple(round(float(v), 4) for v in _robust_unit(pitch_spread)),
    )


def hop_us_for(hop_s: float = ENERGY_HOP_S) -> int:
    return int(round(hop_s * US_PER_S))
