"""Cut points in the quiet, topic boundaries, on-topic edges and the fill policy."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np

from clipforge import cutpoints, topics
from clipforge.audio import EnergyTrack
from clipforge.picks import Candidate, Context, Pick, SelectionParams
from clipforge.plan import segments_from_picks
from clipforge.select import (
    build_context,
    merge_with_reason,
    select,
)
from clipforge.signals import AudioSignals, fine_envelope
from clipforge.text import split_sentences
from clipforge.textanalysis import TextAnalysis, word_stems
from clipforge.transcribe import Transcript, Word

S = 1_000_000
SR = 16_000
FRAME = 40_000  # one 25 fps frame: how far word times may move between CPUs


def synth(words: list[tuple[int, int]], duration_us: int, *, breaths: list[tuple[int, int]]
          = (), seed: int = 3) -> np.ndarray:  # type: ignore[assignment]
    """Words as loud noise bursts, breaths as quieter noise, a -60 dB noise floor."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 0.001, duration_us * SR // S).astype(np.float32)
    for (a, b), level in [(w, 0.3) for w in words] + [(b, 0.03) for b in breaths]:
        i0, i1 = a * SR // S, b * SR // S
        y[i0:i1] += rng.normal(0, level, i1 - i0).astype(np.float32)
    return y


def signals_for(y: np.ndarray, duration_s: float) -> AudioSignals:
    n = int(duration_s * 4 + 8)
    return AudioSignals(EnergyTrack(250_000, tuple([0.5] * n), -40.0, -10.0),
                        bursts=tuple([0.0] * n), pitch_var=tuple([0.0] * n),
                        fine_db=fine_envelope(y))


def test_cut_goes_to_the_quiet_part_of_the_gap_never_into_a_word_or_past_the_middle() -> None:
    # word A ends at 1.0 s, word B starts at 1.6 s; a breath fills 1.4-1.6 s (before B),
    # so the in-point of B must leave the breath out and stay after the middle of the
    # pause the envelope hears (A's end to the breath: the breath is sound, not the gap).
    words = [(500_000, 1_000_000), (1_600_000, 2_100_000)]
    env = fine_envelope(synth(words, 3 * S, breaths=[(1_400_000, 1_600_000)]))
    a, b = cutpoints.acoustic_gap(env, 1_000_000, 1_600_000)
    assert 1_000_000 <= a <= 1_020_000 and 1_380_000 <= b <= 1_410_000
    t_in = cutpoints.cut_in(env, 1_000_000, 1_600_000, lead_pad_us=100_000)
    assert (a + b) // 2 <= t_in <= 1_400_000 + 10_000
    assert cutpoints.energy_at(env, t_in) < cutpoints.energy_at(env, 1_500_000) - 10
    # out-point of A: the breath is past the middle anyway, the cut stays in [1.0, 1.3]
    t_out = cutpoints.cut_out(env, 1_000_000, 1_600_000, tail_pad_us=100_000)
    assert 1_000_000 <= t_out <= 1_300_000
    # no gap: the cut is the word edge itself
    assert cutpoints.cut_in(env, 1_600_000, 1_600_000, lead_pad_us=100_000) == 1_600_000


def test_frame_aware_cuts_sit_on_frame_boundaries_inside_the_gap() -> None:
    words = [(500_000, 1_000_000), (1_600_000, 2_100_000)]
    env = fine_envelope(synth(words, 3 * S))
    fps = Fraction(30000, 1001)
    for t in (cutpoints.cut_in(env, 1_000_000, 1_600_000, lead_pad_us=100_000, fps=fps),
              cutpoints.cut_out(env, 1_000_000, 1_600_000, tail_pad_us=100_000, fps=fps)):
        k = Fraction(t, S) * fps
        assert abs(k - round(k)) * 1001 / 30000 * S < 1  # on a frame boundary (1 us)
        assert 1_000_000 <= t <= 1_600_000


def test_flat_silence_gives_the_padded_cut_and_no_envelope_the_old_rule() -> None:
    env = np.full(300, -120.0, np.float32)
    assert cutpoints.cut_in(env, 0, 1_000_000, lead_pad_us=100_000) == 900_000
    assert cutpoints.cut_in(np.zeros(0, np.float32), 850_000, 1_000_000,
                            lead_pad_us=100_000) == 925_000  # the gap's middle binds


def transcript_from(sentences: list[tuple[float, str]], gap: float = 0.3) -> Transcript:
    words: list[Word] = []
    for start, sentence in sentences:
        t = int(start * S)
        for token in sentence.split():
            words.append(Word(t, t + 400_000, token, 0.9))
            t += 400_000 + int(gap * S)
    return Transcript(tuple(words), "en", words[-1].end_us + 2 * S, "test")


def jitter(tr: Transcript, rng: random.Random) -> Transcript:
    out = []
    for w in tr.words:
        d0, d1 = rng.randint(-FRAME, FRAME), rng.randint(-FRAME, FRAME)
        out.append(Word(max(0, w.start_us + d0), max(0, w.start_us + d0) + max(
            1, w.end_us - w.start_us + d1 - d0), w.text, w.probability))
    return Transcript(tuple(out), tr.language, tr.duration_us, tr.model)


def test_picks_and_segments_survive_word_times_moving_by_a_frame() -> None:
    tr = transcript_from([
        (0, "Welcome to the show about cooking pasta at home."),
        (8, "Our pricing starts at ten dollars per month for the pricing tier."),
        (20, "Thanks for watching and see you next week."),
        (28, "The pricing of the family plan costs more per month."),
    ])
    y = synth([(w.start_us, w.end_us) for w in tr.words], tr.duration_us + S)
    sig = signals_for(y, tr.duration_us / S + 1)
    params = SelectionParams.for_target(20)

    def run(t: Transcript) -> list[Pick]:
        text = TextAnalysis(tuple(split_sentences(t.words)), np.zeros((0, 0), np.float32),
                            tuple(word_stems(t.words)))
        return select(build_context(t, text, sig, "the part about pricing", None), params,
                      prompt="the part about pricing")

    base = run(tr)
    base_segments = segments_from_picks(base)
    rng = random.Random(11)
    for _ in range(5):
        tj = jitter(tr, rng)
        got = run(tj)
        assert [(p.candidate.first_word, p.candidate.last_word) for p in got] == \
            [(p.candidate.first_word, p.candidate.last_word) for p in base]
        segs = segments_from_picks(got)
        assert len(segs) == len(base_segments)
        for (a, b), (c, d) in zip(segs, base_segments, strict=True):
            assert abs(a - c) <= FRAME + 10_000 and abs(b - d) <= FRAME + 10_000
        for p in got:  # still never inside one of the (jittered) words
            for cut in (p.cut_in_us, p.cut_out_us):
                assert not any(w.start_us < cut < w.end_us for w in tj.words)


def _unit(v: list[float]) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def test_texttiling_finds_the_topic_change_and_none_in_one_topic() -> None:
    rng = np.random.default_rng(0)
    a, b = _unit([1, 0, 0, 0]), _unit([0, 1, 0, 0])
    emb = np.stack([_unit(list((a if i < 6 else b) + rng.normal(0, 0.1, 4))) for i in range(12)])
    w = np.ones(12)
    assert topics.topic_boundaries(emb, w) == (6,)
    same = np.stack([_unit(list(a + rng.normal(0, 0.1, 4))) for _ in range(12)])
    assert topics.topic_boundaries(same, w) == ()
    assert topics.topic_ids(5, (2, 4)) == (0, 0, 1, 1, 2)


def _ctx_with_embeddings(tr: Transcript, vecs: list[np.ndarray], prompt_vec: np.ndarray,
                         prompt: str = "zzz") -> Context:
    sents = tuple(split_sentences(tr.words))
    assert len(sents) == len(vecs)
    text = TextAnalysis(sents, np.stack(vecs), tuple(word_stems(tr.words)))
    n = int(tr.duration_us / S * 4 + 8)
    sig = AudioSignals(EnergyTrack(250_000, tuple([0.5] * n), -40.0, -10.0),
                       bursts=tuple([0.0] * n), pitch_var=tuple([0.0] * n))
    return build_context(tr, text, sig, prompt, prompt_vec)


def test_windows_do_not_cross_a_topic_change_and_off_topic_edges_are_trimmed() -> None:
    on, off = _unit([1, 0, 0, 0]), _unit([0, 1, 0, 0])
    # six on-topic sentences (4 s each) then six off-topic ones
    tr = transcript_from([(i * 4.0, "alpha beta gamma delta epsilon.") for i in range(12)])
    ctx = _ctx_with_embeddings(tr, [on] * 6 + [off] * 6, on)
    assert ctx.topic[5] != ctx.topic[6]
    picks = select(ctx, SelectionParams.for_target(60), prompt="x")
    sent_of = {s.first_word: s.index for s in ctx.text.sentences}
    best = picks[0].candidate
    assert sent_of[best.first_word] < 6
    assert best.end_us <= ctx.text.sentences[5].end_us  # never runs into the next story
    # every later pick must reach the absolute floor: no off-topic padding
    for p in picks:
        assert dict(p.candidate.evidence)["text"] >= SelectionParams().fill_floor
    assert all(p.candidate.end_us <= ctx.text.sentences[5].end_us for p in picks)


def _cand(start: float, end: float, score: float, text: float) -> Candidate:
    return Candidate(int(start * S), int(end * S), 0, 0, score, 0.0, 0.0, (), "", chunk=0,
                     evidence=(("text", text),))


def test_fill_floor_is_absolute_and_the_short_reel_says_why() -> None:
    params = SelectionParams.for_target(60)
    cands = [_cand(0, 10, 0.9, 0.9), _cand(20, 30, 0.5, 0.2), _cand(40, 50, 0.45, 0.5)]
    picked, why = merge_with_reason(cands, params)
    assert [c.start_us for c in picked] == [0, 40 * S]  # 0.2 relevance never pads
    assert "20.0 s of 60 s" in why and "relevance" in why
    picked, why = merge_with_reason([_cand(0, 30, 0.9, 0.9), _cand(40, 70, 0.8, 0.9),
                                     _cand(80, 82, 0.7, 0.9)], SelectionParams.for_target(60))
    assert why == ""  # 30 + 30 = 60 s: filled


def _topic_cand(start: float, score: float, text: float, keyword: float,
                topics: tuple[int, ...]) -> Candidate:
    return Candidate(int(start * S), int((start + 8) * S), 0, 0, score, 0.0, 0.0, (), "",
                     chunk=0, evidence=(("keyword", keyword), ("text", text)), topics=topics)


def test_a_fill_with_none_of_the_prompts_words_from_another_topic_needs_more() -> None:
    """The best pick is in topic 1. A later passage that says none of the prompt's words
    and lies in topic 0 is taken only at 0.75 of the best's relevance; one in topic 1, or
    one that says a prompt word, needs only the absolute floor."""
    params = SelectionParams.for_target(60)
    best = _topic_cand(100, 0.6, 0.8, 0.3, (1,))
    stray = _topic_cand(0, 0.4, 0.5, 0.0, (0,))  # 0.5 < 0.75 x 0.8
    picked, why = merge_with_reason([best, stray], params)
    assert picked == [best] and "another topic" in why
    near = _topic_cand(80, 0.3, 0.45, 0.0, (1,))  # same topic: the floor is enough
    worded = _topic_cand(20, 0.35, 0.45, 0.1, (0,))  # says a prompt word
    strong = _topic_cand(40, 0.5, 0.65, 0.0, (0,))  # 0.65 >= 0.6
    picked, _ = merge_with_reason([best, near, worded, strong], params)
    assert [c.start_us // S for c in picked] == [100, 40, 20, 80]
    # once a topic-0 pick is in the reel, the stray's topic is no longer strange
    assert merge_with_reason([best, strong, stray], params)[0] == [best, strong, stray]


def test_picks_closer_than_half_a_second_become_one_segment() -> None:
    c = _cand(0, 1, 1.0, 1.0)
    picks = [Pick(c, 1 * S, 5 * S), Pick(c, 5 * S + 200_000, 9 * S), Pick(c, 9 * S + 600_000,
                                                                           12 * S)]
    assert segments_from_picks(picks) == [(1 * S, 9 * S), (9 * S + 600_000, 12 * S)]


def _words_cand(first: int, last: int) -> Candidate:
    return Candidate(0, 1, first, last, 1.0, 0.0, 0.0, (), "", chunk=0,
                     evidence=(("text", 1.0),))


def test_picks_with_no_word_between_them_become_one_segment() -> None:
    """Only a pause lies between the two picks (words 0-4, then 5-9): one segment, as
    long as that pause is under a second. With a word between them (11 after 9), or a
    pause of a second or more, the cut stays."""
    a, b, c = _words_cand(0, 4), _words_cand(5, 9), _words_cand(11, 14)
    picks = [Pick(b, 5 * S + 700_000, 9 * S), Pick(a, 1 * S, 5 * S),
             Pick(c, 9 * S + 700_000, 12 * S)]
    assert segments_from_picks(picks) == [(1 * S, 9 * S), (9 * S + 700_000, 12 * S)]
    far = [Pick(a, 1 * S, 5 * S), Pick(b, 6 * S, 9 * S)]
    assert segments_from_picks(far) == [(1 * S, 5 * S), (6 * S, 9 * S)]
