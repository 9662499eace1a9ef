"""The retrain guard's power and false-adoption rate: one held-out quarter against
4-fold cross-validation (the guard in use), on synthetic samples.

    PYTHONPATH=. .venv/bin/python bench/feedback_guard.py [SEEDS]

For each sample-set size and seed:
- **signal**: synthetic clips whose outcomes follow known weights
  (:mod:`clipforge.feedback.synthetic`), at its default noise and at more; a guard should
  adopt (the known weights differ from the defaults in the direction the fit finds);
- **no signal**: the same clips with their outcomes shuffled among them, so no feature
  says anything; a guard should not adopt.
Both guards see the same samples. The baseline is the guard this project had before:
adopt when, on the clips with ``int(clip_id[:8], 16) % 4 == 0`` (at least 8), the
unbounded fit's Spearman beats the weights in force by 0.01 and the bounded step's is
not below theirs, with the fit made on the other clips.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from clipforge.feedback import learn
from clipforge.feedback.rows import Sample
from clipforge.feedback.synthetic import synthetic_samples
from clipforge.feedback.weights import DEFAULT_WEIGHTS


def single_split(samples: list[Sample]) -> bool:
    """The earlier guard (baseline)."""
    held = [i for i, s in enumerate(samples) if int(s.clip_id[:8], 16) % 4 == 0]
    if len(held) < 8:
        rest = sorted((i for i in range(len(samples)) if i not in held),
                      key=lambda i: samples[i].clip_id, reverse=True)
        held += rest[: 8 - len(held)]
    held_set = set(held)
    train = [i for i in range(len(samples)) if i not in held_set]
    y = learn.normalise(samples)
    _, raw, bounded = learn._fitted([samples[i] for i in train], y[train], DEFAULT_WEIGHTS,
                                    learn.MAX_STEP)
    hs = [samples[i] for i in held]
    rho_c = learn.heldout_corr(hs, y[held], bounded)
    rho_0 = learn.heldout_corr(hs, y[held], DEFAULT_WEIGHTS)
    rho_u = learn.heldout_corr(hs, y[held], raw)
    return rho_u > rho_0 + learn.MIN_GAIN and rho_c >= rho_0


def shuffled(samples: list[Sample], seed: int) -> list[Sample]:
    rng = np.random.default_rng(10_000 + seed)
    perm = rng.permutation(len(samples))
    return [dataclasses.replace(s, views=samples[j].views,
                                avg_view_duration_s=samples[j].avg_view_duration_s
                                * float(s.features["duration_s"] or 1.0)
                                / float(samples[j].features["duration_s"] or 1.0))
            for s, j in zip(samples, perm, strict=True)]


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print("| clips | outcome noise | outcomes | single held-out quarter: adopted "
          "| 4-fold CV: adopted |")
    print("|---|---|---|---|---|")
    for n in (30, 60, 120):
        for noise in (0.3, 1.0):
            for kind in ("signal", "no signal"):
                a = b = 0
                for seed in range(seeds):
                    s = synthetic_samples(n, seed=seed, noise=noise)
                    if kind == "no signal":
                        s = shuffled(s, seed)
                    a += single_split(s)
                    b += learn.propose(s, DEFAULT_WEIGHTS).status == "adopted"
                print(f"| {n} | {noise:g} | {kind} | {a}/{seeds} | {b}/{seeds} |")


if __name__ == "__main__":
    main()
