"""Selection: tokens, sentences, chunks, the deterministic merge and word-gap cuts."""

from __future__ import annotations

import random

import pytest

from clipforge.audio import EnergyTrack
from clipforge.errors import NoHighlightsError
from clipforge.picks import Candidate, Pick, SelectionParams
from clipforge.select import (
    build_context,
    make_chunks,
    merge,
    select,
)
from clipforge.signals import AudioSignals
from clipforge.text import prompt_keywords, split_sentences, stem
from clipforge.textanalysis import analyse_text
from clipforge.transcribe import Transcript, Word

S = 1_000_000


def transcript_from(text_by_sentence: list[tuple[float, str]], gap: float = 0.3) -> Transcript:
    """Words 0.4 s long, `gap` apart, each sentence starting at the given time."""
    words: list[Word] = []
    for start, sentence in text_by_sentence:
        t = int(start * S)
        for token in sentence.split():
            words.append(Word(t, t + 400_000, token, 0.9))
            t += 400_000 + int(gap * S)
    return Transcript(tuple(words), "en", words[-1].end_us + 2 * S, "test")


def flat_audio(duration_s: float, level: float = 0.5) -> AudioSignals:
    n = int(duration_s * 4 + 8)
    return AudioSignals(EnergyTrack(250_000, tuple([level] * n), -40.0, -10.0),
                        bursts=tuple([0.0] * n), pitch_var=tuple([0.0] * n))


def pick(tr: Transcript, prompt: str, params: SelectionParams, duration_s: float = 30,
         level: float = 0.5) -> list[Pick]:
    """Selection with keywords and audio only (no embeddings): fast and model-free."""
    ctx = build_context(tr, analyse_text(tr, None), flat_audio(duration_s, level), prompt, None)
    return select(ctx, params, prompt=prompt)


def test_prompt_keywords_drop_stop_words_and_stem() -> None:
    assert prompt_keywords("ask not what your country can do for you") == ("ask", "countr")
    assert stem("countries") == stem("country")
    assert stem("asked") == stem("ask")
    # words that end in -er keep it, whatever follows: answer/answered/answers meet, and
    # an agent noun is not its verb (caller is not call, mother is not moth)
    assert stem("answer") == stem("answered") == stem("answers") == stem("answering")
    assert stem("order") == stem("ordered") and stem("remember") == stem("remembered")
    assert stem("caller") == stem("callers") != stem("call")
    assert stem("mother") != stem("moth")
    assert prompt_keywords("the of and") == ()


def test_sentences_end_at_punctuation_and_long_pauses() -> None:
    tr = transcript_from([(0, "Hello there. How are you?"), (10, "Fine thanks")])
    sents = split_sentences(tr.words)
    assert [s.text for s in sents] == ["Hello there.", "How are you?", "Fine thanks"]
    assert sents[2].start_us == 10 * S


def test_chunks_cover_the_source_with_overlap() -> None:
    chunks = make_chunks(700 * S, 300 * S, 15 * S)
    assert chunks[0].start_us == 0 and chunks[-1].end_us == 700 * S
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start_us == a.end_us - 15 * S
    with pytest.raises(ValueError):
        make_chunks(10 * S, 5 * S, 5 * S)


def _cand(start: float, end: float, score: float) -> Candidate:
    return Candidate(int(start * S), int(end * S), 0, 0, score, score, 1.0, (), "", chunk=0)


def test_merge_is_deterministic_drops_overlaps_and_fills_target() -> None:
    cands = [_cand(0, 10, 0.5), _cand(5, 15, 0.9), _cand(20, 30, 0.5), _cand(40, 45, 0.35),
             _cand(50, 80, 0.4), _cand(20, 30, 0.5), _cand(90, 95, 0.1)]
    params = SelectionParams(target_us=30 * S, max_clip_us=30 * S)
    expected = merge(cands, params)
    for seed in range(20):
        shuffled = cands[:]
        random.Random(seed).shuffle(shuffled)
        assert merge(shuffled, params) == expected
    # best first; the 0-10 window overlaps the better 5-15 one; 50-80 would pass the
    # target; 90-95 scores under min_relative x best
    assert [(c.start_us // S, c.end_us // S) for c in expected] == [(5, 15), (20, 30), (40, 45)]
    # ties broken by start time
    tie = merge([_cand(30, 35, 0.5), _cand(10, 15, 0.5)], params)
    assert [c.start_us // S for c in tie] == [10, 30]


def test_zero_scores_are_never_picked() -> None:
    assert merge([_cand(0, 5, 0.0)], SelectionParams()) == []


def test_select_finds_the_matching_sentence_and_cuts_between_words() -> None:
    tr = transcript_from([
        (0, "Welcome to the show about cooking pasta at home."),
        (8, "Our pricing starts at ten dollars per month for the pricing tier."),
        (20, "Thanks for watching and see you next week."),
    ])
    picks = pick(tr, "the part about pricing", SelectionParams.for_target(20))
    assert picks, "a sentence mentions pricing"
    best = picks[0]
    assert "pricing" in best.candidate.text
    assert best.candidate.matched == ("pric",)
    # cut points never fall inside a word
    for p in picks:
        for cut in (p.cut_in_us, p.cut_out_us):
            assert not any(w.start_us < cut < w.end_us for w in tr.words)
    assert best.cut_in_us <= tr.words[best.candidate.first_word].start_us
    assert best.cut_out_us >= tr.words[best.candidate.last_word].end_us


def test_random_transcripts_never_get_cuts_inside_words() -> None:
    rng = random.Random(7)
    vocab = ["pricing", "plan", "cost", "music", "hello", "world", "team", "launch", "demo"]
    for _ in range(30):
        sentences = []
        t = 0.0
        for _ in range(rng.randint(3, 25)):
            n = rng.randint(3, 14)
            words = " ".join(rng.choice(vocab) for _ in range(n)) + "."
            sentences.append((t, words))
            t += n * (0.4 + 0.05) + rng.uniform(0.05, 2.0)
        tr = transcript_from(sentences, gap=0.05)
        try:
            picks = pick(tr, "pricing and cost", SelectionParams.for_target(30), t + 5)
        except NoHighlightsError:
            continue
        total = sum(p.candidate.end_us - p.candidate.start_us for p in picks)
        assert total <= 30 * S or len(picks) == 1
        for p in picks:
            for cut in (p.cut_in_us, p.cut_out_us):
                assert not any(w.start_us < cut < w.end_us for w in tr.words)


def test_no_speech_and_no_match_are_typed_errors() -> None:
    empty = Transcript((), "en", 10 * S, "test")
    with pytest.raises(NoHighlightsError, match="no speech"):
        pick(empty, "pricing", SelectionParams())
    tr = transcript_from([(0, "Hello world and welcome.")])
    with pytest.raises(NoHighlightsError, match="pricing"):
        pick(tr, "pricing", SelectionParams())
    with pytest.raises(NoHighlightsError, match="no content words"):
        pick(tr, "the of and", SelectionParams())


def test_delivery_breaks_ties_between_equally_relevant_sentences() -> None:
    tr = transcript_from([(0, "Our pricing is simple and fair for everyone."),
                          (20, "Our pricing is simple and fair for everyone.")])
    quiet_then_loud = AudioSignals(
        EnergyTrack(250_000, tuple([0.1] * 80 + [0.9] * 80), -40.0, -10.0),
        bursts=tuple([0.0] * 160), pitch_var=tuple([0.0] * 160))
    ctx = build_context(tr, analyse_text(tr, None), quiet_then_loud, "pricing", None)
    picks = select(ctx, SelectionParams.for_target(10), prompt="pricing")
    assert picks[0].candidate.start_us == 20 * S


def test_clips_mode_returns_n_separate_clips() -> None:
    tr = transcript_from([(i * 10.0, "Our pricing plan costs less than before.")
                          for i in range(6)])
    picks = pick(tr, "pricing", SelectionParams.for_target(20, clips=3), 70)
    assert len(picks) == 3
    assert len({p.candidate.start_us for p in picks}) == 3


def test_only_transient_failures_are_retried() -> None:
    from clipforge.errors import (
        BudgetExceeded,
        CorruptInputError,
        NoHighlightsError,
        RenderError,
        ServiceError,
    )
    from tasks.policy import is_transient

    assert is_transient(ServiceError("db restarting"))
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    for permanent in (CorruptInputError("bad"), NoHighlightsError("none"),
                      BudgetExceeded("stop"), RenderError("filter"), ValueError("bug")):
        assert not is_transient(permanent)


def test_irregular_forms_meet_their_base_form() -> None:
    assert stem("heard") == stem("hear") and stem("thought") == stem("think")
    assert stem("children") == stem("child") and stem("wrote") == stem("writes")
    assert prompt_keywords("she mentions hearing a beep") == ("mention", "hear", "beep")
    tr = transcript_from([(0, "Okay I thought I heard a beep somewhere.")])
    assert "hear" in {stem(t) for t in tr.words[4].text.lower().split()}
    assert stem("left") == "left"  # also a direction: not folded to "leave"
