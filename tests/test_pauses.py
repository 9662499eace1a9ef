"""Window edges move to word boundaries with a real pause (issue 10: no cut inside a word)."""

from __future__ import annotations

import random

import numpy as np

from clipforge import cutpoints, pauses
from clipforge.audio import EnergyTrack
from clipforge.picks import Candidate, SelectionParams
from clipforge.plan import segments_from_picks
from clipforge.select import build_context, select
from clipforge.signals import AudioSignals, fine_envelope
from clipforge.text import split_sentences, stem
from clipforge.textanalysis import TextAnalysis, word_stems
from clipforge.transcribe import Transcript, Word

S = 1_000_000
SR = 16_000
FRAME = 40_000  # one 25 fps frame: how far word times may move between CPUs
W = 300_000  # word length


def words_from(spec: list[tuple[str, int]], start_us: int = 1_000_000, length: int = W
               ) -> list[Word]:
    """Words of ``length``; each followed by the given gap (µs) before the next word."""
    out, t = [], start_us
    for text, gap in spec:
        out.append(Word(t, t + length, text, 0.9))
        t += length + gap
    return out


def envelope(words: list[Word], duration_us: int, *,
             sound: tuple[tuple[int, int], ...] = (), seed: int = 7) -> np.ndarray:
    """Words (and ``sound`` spans) as loud noise over a -60 dB floor -> fine envelope."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 0.001, duration_us * SR // S).astype(np.float32)
    for a, b in [(w.start_us, w.end_us) for w in words] + list(sound):
        i0, i1 = a * SR // S, b * SR // S
        y[i0:i1] += rng.normal(0, 0.3, i1 - i0).astype(np.float32)
    return fine_envelope(y)


def ctx_for(words: list[Word], env: np.ndarray, *, keywords: frozenset[str] = frozenset(),
            topic: tuple[int, ...] = (), relevance: tuple[float, ...] = ()
            ) -> pauses.EdgeContext:
    sents = split_sentences(tuple(words))
    stems = word_stems(tuple(words))
    return pauses.edge_context(words, sents, stems, keywords, env, words[-1].end_us + 2 * S,
                               relevance, topic)


WIDE = pauses.Bounds(0, 10_000, 0, 60 * S)


def test_pause_is_what_the_envelope_hears_between_the_words() -> None:
    words = words_from([("one", 0), ("two", 400_000), ("three", 300_000), ("four.", 0)])
    # the 300 ms transcript gap after "three" is filled by sound but for 60 ms
    mid = (words[2].end_us + words[3].start_us) // 2
    env = envelope(words, 5 * S, sound=((words[2].end_us, mid - 30_000),
                                        (mid + 30_000, words[3].start_us)))
    b = pauses.Boundaries(words, env, 5 * S)
    assert b.pause_us(1) == 0  # touching words
    assert 380_000 <= b.pause_us(2) <= 400_000  # a real pause
    assert b.pause_us(3) < pauses.MIN_PAUSE_US  # a gap in the transcript, sound in the audio
    assert b.pause_us(0) == b.pause_us(4) == pauses.SOURCE_EDGE  # nothing to clip there


def test_a_start_without_pause_moves_to_the_previous_sentence_start_with_one() -> None:
    # "Alpha beta gamma." | "delta epsilon zeta eta." : the sentences touch; a pause before
    # "alpha" (sentence start) and one inside the second sentence (after "epsilon").
    words = words_from([("Start.", 500_000), ("Alpha", 0), ("beta", 0), ("gamma.", 0),
                        ("delta", 0), ("epsilon", 400_000), ("zeta", 0), ("eta.", 500_000),
                        ("End.", 0)])
    env = envelope(words, 6 * S)
    ec = ctx_for(words, env)
    # window = second sentence (words 4..7): its start touches "gamma."
    assert move_start(ec, 4, 7) == 1  # the sentence start with a pause wins over word 6
    # with the previous sentence off-topic, the only allowed move is inwards
    ec2 = ctx_for(words, env, topic=(0, 1, 2, 3))
    assert move_start(ec2, 4, 7) == 6
    # ... unless the dropped words answer the prompt: then the edge stays
    ec3 = ctx_for(words, env, topic=(0, 1, 2, 3), keywords=frozenset({stem("delta")}))
    assert move_start(ec3, 4, 7) == 4
    # an off-topic (irrelevant) previous sentence is not added either
    ec4 = ctx_for(words, env, relevance=(0.0, 0.0, 0.9, 0.0))
    assert move_start(ec4, 4, 7) == 6


def move_start(ec: pauses.EdgeContext, first: int, last: int) -> int:
    return pauses.move_edges(ec, first, last, WIDE)[0]


def test_an_end_without_pause_moves_and_lengths_stay_within_bounds() -> None:
    words = words_from([("Start.", 500_000), ("one", 0), ("two", 400_000), ("three", 0),
                        ("four.", 0), ("Five", 0), ("six.", 500_000), ("End.", 0)])
    env = envelope(words, 6 * S)
    ec = ctx_for(words, env)
    # window "one two three four." (1..4) ends touching "Five": the next sentence end has
    # a pause (after "six.") and is a sentence boundary -> outwards
    assert pauses.move_edges(ec, 1, 4, WIDE) == (1, 6)
    # no room to grow (max = its own length): inwards to the pause after "two"
    span = words[4].end_us - words[1].start_us
    tight = pauses.Bounds(0, 10_000, 0, span)
    assert pauses.move_edges(ec, 1, 4, tight) == (1, 2)
    # neither: it must not shrink under min either -> unchanged
    fixed = pauses.Bounds(0, 10_000, span, span)
    assert pauses.move_edges(ec, 1, 4, fixed) == (1, 4)
    # another pick starting at "Five" bounds the growth
    assert pauses.move_edges(ec, 1, 4, pauses.Bounds(0, 4, 0, 60 * S)) == (1, 2)
    # an edge that already has a pause never moves
    assert pauses.move_edges(ec, 1, 6, WIDE) == (1, 6)


def test_far_boundaries_are_not_used() -> None:
    spec = [("Start.", 500_000)] + [(f"w{i}", 0) for i in range(12)] + [("end.", 500_000),
                                                                          ("More.", 0)]
    words = words_from(spec)
    env = envelope(words, 8 * S)
    ec = ctx_for(words, env)
    # window starts at w8 (index 9); the only pause is before w0, 8 words / 2.4 s away
    assert move_start(ec, 9, 13) == 9
    # four words away, but 2.8 s (long words): too far as well; 3 words / 2.1 s is near
    long_words = words_from(spec, length=700_000)
    ec_long = ctx_for(long_words, envelope(long_words, 16 * S))
    assert move_start(ec_long, 5, 13) == 5
    assert move_start(ec_long, 4, 13) == 1


def test_moves_survive_word_times_moving_by_a_frame() -> None:
    words = words_from([("Start.", 500_000), ("Alpha", 0), ("beta", 0), ("gamma.", 0),
                        ("delta", 0), ("epsilon", 400_000), ("zeta", 0), ("eta.", 0),
                        ("theta", 0), ("iota.", 500_000), ("End.", 0)])
    env = envelope(words, 7 * S)
    base = pauses.move_edges(ctx_for(words, env), 4, 7, WIDE)
    assert base == (1, 9)
    rng = random.Random(5)
    for _ in range(8):
        moved = []
        for w in words:
            d0, d1 = rng.randint(-FRAME, FRAME), rng.randint(-FRAME, FRAME)
            moved.append(Word(w.start_us + d0, w.start_us + d0 + W + d1 - d0, w.text, 0.9))
        assert pauses.move_edges(ctx_for(moved, env), 4, 7, WIDE) == base


def _cand(words: list[Word], first: int, last: int, score: float) -> Candidate:
    return Candidate(words[first].start_us, max(w.end_us for w in words[first:last + 1]),
                     first, last, score, 0.0, 0.0, (), "", 0)


def test_picks_do_not_grow_into_each_other_or_past_the_target() -> None:
    words = words_from([("Start.", 500_000), ("a", 0), ("b.", 0), ("c", 0), ("d.", 500_000),
                        ("e", 0), ("f.", 0), ("g", 0), ("h.", 500_000), ("End.", 0)])
    env = envelope(words, 7 * S)
    ec = ctx_for(words, env)
    picks = [_cand(words, 3, 4, 0.9), _cand(words, 5, 6, 0.8)]
    out = pauses.prefer_pauses(picks, ec, min_clip_us=0, max_clip_us=60 * S)
    # the first pick's start goes back to the pause before "a"; the second's end to "h."
    assert [(c.first_word, c.last_word) for c in out] == [(1, 4), (5, 8)]
    assert out[0].text == "a b. c d." and out[0].start_us == words[1].start_us
    assert out[1].end_us == words[8].end_us and out[0].score == 0.9
    # a reel target equal to the picks' total: no growth, so the edges move inwards or stay
    total = sum(c.end_us - c.start_us for c in picks)
    out2 = pauses.prefer_pauses(picks, ec, min_clip_us=0, max_clip_us=60 * S, target_us=total)
    assert sum(c.end_us - c.start_us for c in out2) <= total
    assert [(c.first_word, c.last_word) for c in out2] == [(3, 4), (5, 6)]
    assert pauses.prefer_pauses(picks, ec, min_clip_us=0, max_clip_us=60 * S) == out


def test_a_pick_next_to_another_bridges_to_it_and_the_cut_disappears() -> None:
    words = words_from([("Start.", 500_000), ("a", 0), ("b.", 0), ("c", 0), ("d.", 0),
                        ("e", 0), ("f.", 500_000), ("End.", 0)])
    env = envelope(words, 6 * S)
    # "e" and "f." touch "d.": no pause between the picks (1..2) and (5..6); bridging
    # beats every other option, and the edges that then touch stay where they are
    picks = [_cand(words, 1, 2, 0.9), _cand(words, 5, 6, 0.8)]
    out = pauses.prefer_pauses(picks, ctx_for(words, env), min_clip_us=0, max_clip_us=60 * S)
    assert [(c.first_word, c.last_word) for c in out] == [(1, 4), (5, 6)]
    # separate clips (no reel): no bridge; the first pick's end has no other option
    alone = pauses.prefer_pauses(picks, ctx_for(words, env), min_clip_us=0,
                                 max_clip_us=60 * S, bridge=False)
    assert [(c.first_word, c.last_word) for c in alone] == [(1, 2), (5, 6)]


def test_select_cuts_at_a_pause_when_the_sentence_edges_touch() -> None:
    # Four sentences that touch each other; each has a pause in its middle. Only the two
    # middle ones mention pricing, so the reel is made of them and of nothing else.
    spec = []
    for sentence in ("Hello and welcome to the show today.",
                     "We talk about money and pricing plans.",
                     "Our pricing starts low at ten dollars.",
                     "Thanks for listening and see you soon."):
        toks = sentence.split()
        spec += [(t, 400_000 if k == 3 else 0) for k, t in enumerate(toks)]
    words = words_from(spec)
    duration = words[-1].end_us + 2 * S
    env = envelope(words, duration)
    tr = Transcript(tuple(words), "en", duration, "test")
    text = TextAnalysis(tuple(split_sentences(tr.words)), np.zeros((0, 0), np.float32),
                        tuple(word_stems(tr.words)))
    n = int(duration / S * 4 + 8)
    sig = AudioSignals(EnergyTrack(250_000, tuple([0.5] * n), -40.0, -10.0),
                       bursts=tuple([0.0] * n), pitch_var=tuple([0.0] * n), fine_db=env)
    params = SelectionParams(target_us=20 * S, min_clip_us=S // 2, max_clip_us=10 * S)
    picks = select(build_context(tr, text, sig, "the pricing", None), params,
                   prompt="the pricing")
    assert all("pricing" in p.candidate.text for p in picks)
    segments = segments_from_picks(picks)
    for a, b in segments:
        for cut in (a, b):
            assert not any(w.start_us < cut < w.end_us for w in words)
            assert cutpoints.level(env, cut) < -40  # in a pause, not at touching words
    # the words that answer the prompt are all kept
    kept = {k for p in picks for k in range(p.candidate.first_word, p.candidate.last_word + 1)}
    assert {k for k, w in enumerate(words) if "pricing" in w.text} <= kept
