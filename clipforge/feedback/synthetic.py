"""Synthetic clips and outcomes from known weights, for tests and the recovery benchmark.

Each clip has uniform random terms; its outcome is driven by ``score(terms, known)``:
``views = exp(channel offset + trend*t + VIEW_SLOPE*log(score) + noise)`` and
``retention = clip(0.7 + RETENTION_SLOPE*log(score) + noise*RETENTION_SLOPE/VIEW_SLOPE,
0.02, 1)``. Channel offsets and the time
trend are what the learner's normalisation must remove.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from .ids import clip_id
from .rows import Sample
from .weights import ScoreWeights, score

VIEW_SLOPE = 3.0
RETENTION_SLOPE = 0.15  # same signal-to-noise ratio as the views
KNOWN = ScoreWeights(energy=0.1, bursts=0.4, pitch_var=0.3, speech_rate=0.2,
                     delivery_base=0.5, delivery_gain=0.5, visual_base=0.6, visual_gain=0.4,
                     version=0)


def synthetic_samples(n: int, known: ScoreWeights = KNOWN, *, seed: int = 0,
                      noise: float = 0.3, channels: int = 3) -> list[Sample]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    sha = "ab" * 32
    out = []
    for i in range(n):
        kw, sem = rng.uniform(0, 1), rng.uniform(0, 1)
        text = 1 - (1 - kw) * (1 - sem)
        comps = {t: float(rng.uniform(0, 1)) for t in ("energy", "bursts", "pitch_var",
                                                        "speech_rate")}
        visual = float(rng.uniform(0, 1))
        dur = float(rng.uniform(10, 60))
        s = score({"text": text, **comps, "visual": visual}, known)
        ch = i % channels
        views = math.exp(10 + 1.5 * ch + 0.01 * i + VIEW_SLOPE * math.log(max(s, 1e-3))
                         + rng.normal(0, noise))
        ret = min(1.0, max(0.02, 0.7 + RETENTION_SLOPE * math.log(max(s, 1e-3))
                           + rng.normal(0, noise * RETENTION_SLOPE / VIEW_SLOPE)))
        cut_in = i * 100_000_000
        feats: dict[str, float | None] = {
            "keyword": round(kw, 6), "semantic": round(sem, 6), "text": round(text, 6),
            **{k: round(v, 6) for k, v in comps.items()}, "visual": round(visual, 6),
            "duration_s": round(dur, 3), "position": round(float(rng.uniform(0, 1)), 6)}
        out.append(Sample(clip_id(sha, cut_in, cut_in + int(dur * 1e6), {"seed": seed}),
                          sha, f"ch{ch}", feats, int(views), round(ret * dur, 3),
                          t0 + timedelta(hours=i)))
    return out
