"""Learn score weights from published outcomes, behind guards.

1. **Normalise** each outcome within its channel (``source:<sha256>`` if no channel):
   ``views_rel = log1p(views) - median(log1p(views) of the channel's last`` :data:`ROLLING`
   ``clips up to this one, by publish time)``; ``retention = avg_view_duration_s /
   duration_s`` (capped at 2) minus the median retention of the channel's clips of
   similar length (within a factor :data:`SIMILAR_LENGTH`). The target is
   ``y = z(views_rel) + z(retention_rel)`` (z: divided by the standard deviation).
2. **Fit** ``y`` on the features ``log(text), energy, bursts, pitch_var, speech_rate,
   visual, duration_s, position`` (standardised; no visual: 1, which makes the visual
   factor 1 as in the formula) with ``Ridge(alpha=`` :data:`RIDGE_ALPHA` ``)`` — closed
   form, deterministic. Duration and position are controls only.
3. **Candidate**: delivery weights = the four delivery coefficients (negative -> 0)
   normalised to sum 1; the gains follow the log-linearised formula
   (``d log score / d term = gain/base * weight``): ``k_d = K * sum(delivery coefs)``,
   ``k_v = K * visual coef``, ``gain = k/(1+k)``, ``base = 1 - gain``, with the scale
   ``K`` picked from a fixed grid by training-set Spearman.
4. **Guards**: fewer than :data:`MIN_SAMPLES` samples -> nothing is fitted or written;
   each weight moves at most :data:`MAX_STEP` from the weights in force (along the
   straight line to the fit, see :func:`bound`). The candidate is fitted on every sample;
   whether it is adopted is decided by :data:`FOLDS`-fold cross-validation of that
   procedure: the clips, in clip-id order, are dealt into :data:`FOLDS` folds, and each
   fold's clips are ranked by weights fitted (steps 2-3 and the bound) on the other
   folds. Adopted only if, averaged over the folds (weighted by their size), the
   unbounded fit's Spearman rank correlation with ``y`` beats the weights in force by
   more than :data:`MIN_GAIN` (the direction is confirmed) and the bounded step's is not
   below theirs (the step does no harm). Every clip is held out once, so the guard reads
   the whole sample set (a single held-out quarter, 15 clips, was decided by one or two
   reordered pairs). Every fitted candidate is recorded as a new ``scoring_weights``
   version, adopted or not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge

from .rows import Sample
from .weights import DELIVERY_TERMS, TERMS, WEIGHT_FIELDS, ScoreWeights, score

MIN_SAMPLES = 30
MAX_STEP = 0.05
MIN_GAIN = 0.01
FOLDS = 4
ROLLING = 15
SIMILAR_LENGTH = 1.5
RIDGE_ALPHA = 1.0
SCALE_GRID = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
FEATURES = ("log_text", *DELIVERY_TERMS, "visual", "duration_s", "position")


@dataclass(frozen=True, slots=True)
class RetrainResult:
    status: str  # "too_few_samples" | "adopted" | "not_adopted"
    sample_count: int
    in_force: ScoreWeights  # after this retrain
    candidate: ScoreWeights | None = None  # bounded, as recorded
    unbounded: ScoreWeights | None = None  # before the per-update bound
    heldout_spearman: float | None = None  # the candidate's
    baseline_spearman: float | None = None  # the previous weights'
    heldout_count: int = 0
    coefficients: dict[str, float] = field(default_factory=dict)
    unbounded_spearman: float | None = None  # the unbounded fit's, which sets the direction

    def to_json(self) -> dict[str, Any]:
        def w(x: ScoreWeights | None) -> dict[str, Any] | None:
            return None if x is None else {"version": x.version, **x.to_json()}
        return {"status": self.status, "sample_count": self.sample_count,
                "min_samples": MIN_SAMPLES, "in_force": w(self.in_force),
                "candidate": w(self.candidate), "unbounded": w(self.unbounded),
                "heldout_spearman": self.heldout_spearman,
                "baseline_spearman": self.baseline_spearman,
                "unbounded_spearman": self.unbounded_spearman,
                "heldout_count": self.heldout_count, "coefficients": self.coefficients}


# --------------------------------------------------------------------------- pure parts


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def normalise(samples: Sequence[Sample]) -> np.ndarray:
    """The learning target per sample (see the module docstring), in input order."""
    n = len(samples)
    views_rel = np.zeros(n)
    ret_rel = np.zeros(n)
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.channel or f"source:{s.source_sha256}", []).append(i)
    for idx in groups.values():
        idx = sorted(idx, key=lambda i: (samples[i].published_at, samples[i].clip_id))
        logs = [math.log1p(samples[i].views) for i in idx]
        dur = [max(float(samples[i].features.get("duration_s") or 0.0), 0.1) for i in idx]
        ret = [min(samples[i].avg_view_duration_s / d, 2.0) for i, d in zip(idx, dur,
                                                                              strict=True)]
        for j, i in enumerate(idx):
            views_rel[i] = logs[j] - _median(logs[max(0, j - ROLLING + 1): j + 1])
            similar = [r for r, d in zip(ret, dur, strict=True)
                       if dur[j] / SIMILAR_LENGTH <= d <= dur[j] * SIMILAR_LENGTH]
            ret_rel[i] = ret[j] - _median(similar)

    def z(x: np.ndarray) -> np.ndarray:
        sd = float(x.std())
        return x / sd if sd > 1e-12 else np.zeros_like(x)

    return z(views_rel) + z(ret_rel)


def terms_of(features: dict[str, float | None]) -> dict[str, float | None]:
    """The score's terms from a stored feature vector."""
    return {"text": float(features.get("text") or 0.0),
            **{t: float(features.get(t) or 0.0) for t in DELIVERY_TERMS},
            "visual": None if features.get("visual") is None else float(features["visual"] or 0)}


def design(samples: Sequence[Sample]) -> np.ndarray:
    rows = []
    for s in samples:
        f = s.features
        vis = f.get("visual")
        rows.append([math.log(max(float(f.get("text") or 0.0), 1e-3)),
                     *(float(f.get(t) or 0.0) for t in DELIVERY_TERMS),
                     1.0 if vis is None else float(vis),
                     float(f.get("duration_s") or 0.0), float(f.get("position") or 0.0)])
    return np.asarray(rows, dtype=np.float64)


def fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Ridge coefficients per feature, in the features' own units."""
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    model = Ridge(alpha=RIDGE_ALPHA, solver="cholesky").fit((x - mu) / sd, y)
    return {name: float(c / s) for name, c, s in zip(FEATURES, model.coef_, sd, strict=True)}


def rank_corr(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho (0 when either side is constant)."""
    if len(a) < 2 or np.ptp(np.asarray(a)) == 0 or np.ptp(np.asarray(b)) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def heldout_corr(samples: Sequence[Sample], y: np.ndarray, w: ScoreWeights) -> float:
    return rank_corr([score(terms_of(s.features), w) for s in samples], list(y))


def _from_k(mix: np.ndarray, kd: float, kv: float, version: int) -> ScoreWeights:
    gd, gv = kd / (1 + kd), kv / (1 + kv)
    return _weights(mix, round(1 - gd, 6), round(gd, 6), round(1 - gv, 6), round(gv, 6),
                    version)


def _weights(mix: np.ndarray, base_d: float, gain_d: float, base_v: float, gain_v: float,
             version: int) -> ScoreWeights:
    e, b, p, r = (round(float(v), 6) for v in mix)
    return ScoreWeights(energy=e, bursts=b, pitch_var=p, speech_rate=r, delivery_base=base_d,
                        delivery_gain=gain_d, visual_base=base_v, visual_gain=gain_v,
                        version=version)


def candidate(coefs: dict[str, float], current: ScoreWeights, train: Sequence[Sample],
              y_train: np.ndarray) -> ScoreWeights:
    """Unbounded candidate weights from the coefficients (see step 3)."""
    beta = np.array([max(coefs[t], 0.0) for t in DELIVERY_TERMS])
    bv = max(coefs["visual"], 0.0)
    total = float(beta.sum())
    mix = beta / total if total > 1e-12 else np.array([getattr(current, t)
                                                       for t in DELIVERY_TERMS])
    scale = max(total, bv)
    if scale <= 1e-12:
        return current
    best: tuple[float, ScoreWeights] | None = None
    for k in SCALE_GRID:
        w = _from_k(mix, k * total / scale, k * bv / scale, current.version)
        rho = heldout_corr(train, y_train, w)
        if best is None or rho > best[0] + 1e-12:
            best = (rho, w)
    assert best is not None
    return best[1]


def bound(cand: ScoreWeights, current: ScoreWeights, max_step: float = MAX_STEP
          ) -> ScoreWeights:
    """``cand`` approached from ``current`` along the straight line between them, as far
    as no weight moves more than ``max_step``: ``current + t (cand - current)`` with the
    largest ``t <= 1`` that allows. The step keeps the fit's direction (clipping each
    weight on its own would let the small, noisy moves go their whole way while the
    large ones are cut, turning the step away from what the fit found). A mix of weights
    summing to 1, or a base and gain summing to 1, still does."""
    cur = np.array([getattr(current, f) for f in WEIGHT_FIELDS], dtype=np.float64)
    far = np.array([getattr(cand, f) for f in WEIGHT_FIELDS], dtype=np.float64)
    largest = float(np.abs(far - cur).max())
    t = 1.0 if largest <= max_step else max_step / largest
    step = dict(zip(WEIGHT_FIELDS, (round(float(v), 6) for v in cur + t * (far - cur)),
                    strict=True))
    return ScoreWeights(**step, version=current.version)


def max_change(a: ScoreWeights, b: ScoreWeights) -> float:
    return max(abs(getattr(a, f) - getattr(b, f)) for f in WEIGHT_FIELDS)


def folds(samples: Sequence[Sample], k: int = FOLDS) -> list[int]:
    """Each sample's fold (0..k-1): the samples in clip-id order, dealt round-robin, so
    the folds are the same whatever order the samples come in and differ in size by at
    most one."""
    order = sorted(range(len(samples)), key=lambda i: samples[i].clip_id)
    out = [0] * len(samples)
    for rank, i in enumerate(order):
        out[i] = rank % k
    return out


def _fitted(samples: Sequence[Sample], y: np.ndarray, current: ScoreWeights,
            max_step: float) -> tuple[dict[str, float], ScoreWeights, ScoreWeights]:
    """Steps 2-3 and the bound on ``samples``: (coefficients, unbounded, bounded)."""
    coefs = fit(design(samples), y)
    raw = candidate(coefs, current, samples, y)
    return coefs, raw, bound(raw, current, max_step)


def cross_validated(samples: Sequence[Sample], y: np.ndarray, current: ScoreWeights,
                    max_step: float = MAX_STEP, k: int = FOLDS
                    ) -> tuple[float, float, float]:
    """(bounded, in force, unbounded): each fold's Spearman with ``y`` under weights
    fitted on the other folds, averaged over the folds weighted by their size."""
    fold = folds(samples, k)
    sums = np.zeros(3)
    held = 0
    for f in range(k):
        test = [i for i in range(len(samples)) if fold[i] == f]
        train = [i for i in range(len(samples)) if fold[i] != f]
        if len(test) < 2:
            continue
        _, raw, bounded = _fitted([samples[i] for i in train], y[train], current, max_step)
        hs, yt = [samples[i] for i in test], y[test]
        sums += len(test) * np.array([heldout_corr(hs, yt, bounded),
                                      heldout_corr(hs, yt, current),
                                      heldout_corr(hs, yt, raw)])
        held += len(test)
    rho_c, rho_0, rho_u = (float(v) for v in sums / max(held, 1))
    return rho_c, rho_0, rho_u


def propose(samples: Sequence[Sample], current: ScoreWeights, *, max_step: float = MAX_STEP
            ) -> RetrainResult:
    """Fit and evaluate a candidate (pure; at least ``MIN_SAMPLES`` samples expected)."""
    y = normalise(samples)
    coefs, raw, bounded = _fitted(samples, y, current, max_step)
    rho_c, rho_0, rho_u = cross_validated(samples, y, current, max_step)
    # The held-out clips must confirm the direction (the unbounded fit beats the weights
    # in force by MIN_GAIN), and the bounded step towards it must not rank them worse.
    # A 0.05 step rarely reorders a score that text relevance dominates, so the step
    # alone often ties the weights in force.
    adopt = rho_u > rho_0 + MIN_GAIN and rho_c >= rho_0
    return RetrainResult("adopted" if adopt else "not_adopted", len(samples), current,
                         bounded, raw, round(rho_c, 6), round(rho_0, 6), len(samples),
                         {k: round(v, 6) for k, v in coefs.items()}, round(rho_u, 6))


# --------------------------------------------------------------------------- with the store


def retrain(store: Any, *, min_samples: int = MIN_SAMPLES, max_step: float = MAX_STEP
            ) -> RetrainResult:
    """Retrain from every imported outcome (``store``: a ClipStore). Below
    ``min_samples`` nothing is written; otherwise the candidate becomes the next
    ``scoring_weights`` version, adopted only if it beats the weights in force."""
    current: ScoreWeights = store.weights_in_force()
    samples = store.samples()
    if len(samples) < min_samples:
        return RetrainResult("too_few_samples", len(samples), current)
    res = propose(samples, current, max_step=max_step)
    assert res.candidate is not None and res.unbounded is not None
    adopted = res.status == "adopted"
    version = store.add_weights(
        res.candidate, sample_count=len(samples), heldout_spearman=res.heldout_spearman,
        baseline_spearman=res.baseline_spearman, adopted=adopted,
        detail={"previous_version": current.version, "heldout_count": res.heldout_count,
                "coefficients": res.coefficients, "unbounded": res.unbounded.to_json(),
                "max_step": max_step, "min_gain": MIN_GAIN, "ridge_alpha": RIDGE_ALPHA})
    cand = res.candidate.with_version(version)
    return RetrainResult(res.status, res.sample_count, cand if adopted else current, cand,
                         res.unbounded.with_version(version), res.heldout_spearman,
                         res.baseline_spearman, res.heldout_count, res.coefficients,
                         res.unbounded_spearman)


def status(store: Any) -> dict[str, Any]:
    """``clipforge feedback status --json``: samples, weights in force, the newest
    candidate and its held-out figure."""
    w: ScoreWeights = store.weights_in_force()
    rows = store.weights_rows(limit=1)
    latest = rows[0] if rows else None
    return {
        "sample_count": store.sample_count(), "min_samples": MIN_SAMPLES,
        "max_step": MAX_STEP,
        "in_force": {"version": w.version, "name": w.name, "weights": w.to_json()},
        "candidate": None if latest is None else {
            "version": latest["version"], "adopted": latest["adopted"],
            "weights": latest["weights"], "sample_count": latest["sample_count"],
            "heldout_spearman": latest["heldout_spearman"],
            "baseline_spearman": latest["baseline_spearman"],
            "created_at": latest["created_at"]},
        "heldout_spearman": None if latest is None else latest["heldout_spearman"],
        "terms": list(TERMS),
    }
