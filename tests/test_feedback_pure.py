"""Clip ids, the score weights (defaults reproduce select.py exactly) and learner guards."""

from __future__ import annotations

import random

import pytest

from clipforge.feedback.ids import clip_id, comment_tag, parse_comment_tag
from clipforge.feedback.learn import MAX_STEP, bound, max_change, propose, rank_corr
from clipforge.feedback.synthetic import KNOWN, synthetic_samples
from clipforge.feedback.weights import DEFAULT_WEIGHTS, TERMS, ScoreWeights, score

SHA = "0123456789abcdef" * 4


def test_clip_id_is_stable_and_changes_with_cuts_and_settings() -> None:
    a = clip_id(SHA, 1_000_000, 9_500_000, {"prompt": "pricing", "width": 1080})
    assert a == clip_id(SHA, 1_000_000, 9_500_000, {"width": 1080, "prompt": "pricing"})
    assert len(a) == 32 and int(a, 16) >= 0
    assert a != clip_id(SHA, 1_000_001, 9_500_000, {"prompt": "pricing", "width": 1080})
    assert a != clip_id(SHA, 1_000_000, 9_400_000, {"prompt": "pricing", "width": 1080})
    assert a != clip_id(SHA, 1_000_000, 9_500_000, {"prompt": "pricing", "width": 720})
    assert a != clip_id("f" * 64, 1_000_000, 9_500_000, {"prompt": "pricing", "width": 1080})
    with pytest.raises(ValueError):
        clip_id(SHA, 5, 5, {})
    with pytest.raises(ValueError):
        clip_id(SHA, 0, 5, {"x": float("nan")})


def test_comment_tag_round_trip() -> None:
    ids = [clip_id(SHA, 0, 10, {}), clip_id(SHA, 10, 20, {})]
    assert parse_comment_tag("title " + comment_tag(ids) + " tail") == ids
    assert parse_comment_tag(comment_tag(ids[:1])) == ids[:1]
    assert parse_comment_tag("my video") == []


def test_default_weights_reproduce_select_formula_bit_for_bit() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        text, e, b, p, r = (rng.random() for _ in range(5))
        vis = None if rng.random() < 0.3 else rng.random()
        d = 0.45 * e + 0.2 * b + 0.2 * p + 0.15 * r
        # the formula documented in select.py (and the README) before weights were data
        expected = text * ((0.6 + 0.4 * d) * (1.0 if vis is None else 0.85 + 0.15 * vis))
        got = score({"text": text, "energy": e, "bursts": b, "pitch_var": p,
                     "speech_rate": r, "visual": vis}, DEFAULT_WEIGHTS)
        assert got == expected
    assert DEFAULT_WEIGHTS.version == 0 and DEFAULT_WEIGHTS.name == "default"


def test_weights_validate() -> None:
    with pytest.raises(ValueError):
        ScoreWeights(energy=1.5)
    assert ScoreWeights.from_json(DEFAULT_WEIGHTS.to_json(), 3).name == "v3"


def test_recovery_of_known_weights_after_200_clips() -> None:
    known = KNOWN.importance()
    res = propose(synthetic_samples(200, seed=1), DEFAULT_WEIGHTS)
    assert res.unbounded is not None
    learned = res.unbounded.importance()
    rho = rank_corr([known[t] for t in TERMS], [learned[t] for t in TERMS])
    assert rho >= 0.8, (rho, learned)


def test_per_update_change_is_bounded() -> None:
    far = ScoreWeights(energy=0.9, bursts=0.05, pitch_var=0.05, speech_rate=0.0,
                       delivery_base=0.1, delivery_gain=0.9, visual_base=0.2, visual_gain=0.8)
    b = bound(far, DEFAULT_WEIGHTS)
    assert max_change(b, DEFAULT_WEIGHTS) <= MAX_STEP + 1e-6
    assert abs(b.energy + b.bursts + b.pitch_var + b.speech_rate - 1) < 1e-5
    assert b.energy > DEFAULT_WEIGHTS.energy  # moved towards the candidate
    res = propose(synthetic_samples(200, seed=2), DEFAULT_WEIGHTS)
    assert res.candidate is not None
    assert max_change(res.candidate, DEFAULT_WEIGHTS) <= MAX_STEP + 1e-6


def test_feedback_gauges() -> None:
    from clipforge import metrics

    metrics.set_feedback(3, 250, 0.41, 0.37)
    assert metrics.REGISTRY.get_sample_value("clipforge_scoring_weights_version") == 3
    assert metrics.REGISTRY.get_sample_value("clipforge_scoring_samples") == 250
    assert metrics.REGISTRY.get_sample_value(
        "clipforge_scoring_heldout_spearman", {"weights": "candidate"}) == 0.41


def test_the_bounded_step_keeps_the_fits_direction() -> None:
    """The step goes along the line to the candidate: every weight moves by the same
    share of its own difference (clipping each weight alone would let the small moves
    go all the way while the big ones are cut)."""
    far = ScoreWeights(energy=0.75, bursts=0.19, pitch_var=0.0, speech_rate=0.06,
                       delivery_base=0.2, delivery_gain=0.8, visual_base=0.8, visual_gain=0.2)
    b = bound(far, DEFAULT_WEIGHTS)
    assert max_change(b, DEFAULT_WEIGHTS) == pytest.approx(MAX_STEP, abs=1e-6)
    share = MAX_STEP / 0.4  # delivery_gain moves most: 0.4 -> 0.8
    for f in ("energy", "bursts", "pitch_var", "speech_rate", "delivery_gain", "visual_gain"):
        want = getattr(DEFAULT_WEIGHTS, f) + share * (getattr(far, f) - getattr(DEFAULT_WEIGHTS, f))
        assert getattr(b, f) == pytest.approx(want, abs=2e-6), f
    assert abs(b.energy + b.bursts + b.pitch_var + b.speech_rate - 1) < 1e-5
    assert b.delivery_base + b.delivery_gain == pytest.approx(1.0, abs=1e-6)
    near = ScoreWeights(energy=0.47, bursts=0.2, pitch_var=0.18, speech_rate=0.15,
                        delivery_base=0.6, delivery_gain=0.4, visual_base=0.85,
                        visual_gain=0.15)
    assert bound(near, DEFAULT_WEIGHTS) == near.with_version(DEFAULT_WEIGHTS.version)
