"""Score weights: the numbers in the selection's score formula, as versioned data.

With weights ``w`` and a window's terms (each in [0, 1])::

    delivery = w.energy*energy + w.bursts*bursts + w.pitch_var*pitch_var
               + w.speech_rate*speech_rate
    score    = text * ((w.delivery_base + w.delivery_gain*delivery)
                       * (1 if visual is None else w.visual_base + w.visual_gain*visual))

:data:`DEFAULT_WEIGHTS` (version 0, named ``"default"``) reproduces the shipped formula
``text*(0.6+0.4*delivery)*(0.85+0.15*visual)``, ``delivery = 0.45 energy + 0.2 bursts +
0.2 pitch_var + 0.15 speech_rate`` bit for bit (same operations in the same order).
Learned weights keep ``base + gain = 1`` and the four delivery weights summing to 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DELIVERY_TERMS = ("energy", "bursts", "pitch_var", "speech_rate")
WEIGHT_FIELDS = (*DELIVERY_TERMS, "delivery_base", "delivery_gain", "visual_base",
                 "visual_gain")
# The terms whose relative importance the learner estimates (see ScoreWeights.importance).
TERMS = (*DELIVERY_TERMS, "visual")


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    energy: float = 0.45
    bursts: float = 0.2
    pitch_var: float = 0.2
    speech_rate: float = 0.15
    delivery_base: float = 0.6
    delivery_gain: float = 0.4
    visual_base: float = 0.85
    visual_gain: float = 0.15
    version: int = 0  # 0: the shipped defaults; >= 1: a scoring_weights row

    def __post_init__(self) -> None:
        for name in WEIGHT_FIELDS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or not 0 <= v <= 1:
                raise ValueError(f"score weight {name} must be a number in [0, 1], got {v!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) \
                or self.version < 0:
            raise ValueError(f"score weights version must be an integer >= 0, got "
                             f"{self.version!r}")

    @property
    def name(self) -> str:
        """``"default"`` for version 0, else ``"v<version>"``."""
        return "default" if self.version == 0 else f"v{self.version}"

    def to_json(self) -> dict[str, float]:
        """The weights alone (no version), for the ``scoring_weights.weights`` column."""
        return {name: getattr(self, name) for name in WEIGHT_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], version: int) -> ScoreWeights:
        unknown = sorted(set(data) - set(WEIGHT_FIELDS))
        if unknown:
            raise ValueError(f"score weights: unknown fields {unknown}")
        return cls(**{k: float(v) for k, v in data.items()}, version=version)

    def with_version(self, version: int) -> ScoreWeights:
        return replace(self, version=version)

    def importance(self) -> dict[str, float]:
        """How strongly each term moves the score: d(log score)/d(term) at term 0, i.e.
        ``gain/base`` times the delivery weight (for the four delivery terms) and
        ``visual_gain/visual_base`` for visual. Ranking these compares weight sets."""
        kd = self.delivery_gain / max(self.delivery_base, 1e-9)
        kv = self.visual_gain / max(self.visual_base, 1e-9)
        out = {t: kd * getattr(self, t) for t in DELIVERY_TERMS}
        out["visual"] = kv
        return out


DEFAULT_WEIGHTS = ScoreWeights()
assert tuple(f.name for f in fields(ScoreWeights))[:-1] == WEIGHT_FIELDS


def delivery(terms: Mapping[str, float], w: ScoreWeights = DEFAULT_WEIGHTS) -> float:
    """``energy``, ``bursts``, ``pitch_var``, ``speech_rate`` -> how it was said, in [0, 1]."""
    return (w.energy * terms["energy"] + w.bursts * terms["bursts"]
            + w.pitch_var * terms["pitch_var"] + w.speech_rate * terms["speech_rate"])


def factor(delivery_value: float, visual: float | None,
           w: ScoreWeights = DEFAULT_WEIGHTS) -> float:
    """Delivery and visual evidence as a multiplier of text relevance (select.py's
    ``_factor`` with the weights as data)."""
    return (w.delivery_base + w.delivery_gain * delivery_value) * (
        1.0 if visual is None else w.visual_base + w.visual_gain * visual)


def score(terms: Mapping[str, float | None], w: ScoreWeights = DEFAULT_WEIGHTS) -> float:
    """The window's score from its terms: ``text`` plus either ``delivery`` or the four
    delivery components, and ``visual`` (absent or None: no visual term)."""
    text = terms["text"]
    if text is None:
        raise ValueError("score: the text term is required")
    d = terms.get("delivery")
    if d is None or any(terms.get(t) is not None for t in DELIVERY_TERMS):
        d = delivery({t: float(terms.get(t) or 0.0) for t in DELIVERY_TERMS}, w)
    return float(text) * factor(float(d), terms.get("visual"), w)
