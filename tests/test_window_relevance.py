"""A window's relevance: the mean of its sentences' cosines, and long sentences split
into clauses, so a highlight does not carry off-topic speech along with the answer."""

from __future__ import annotations

import dataclasses

import numpy as np
from test_select import S, flat_audio, transcript_from

from clipforge.edges import keyword_score, sentence_cosines
from clipforge.picks import SelectionParams
from clipforge.select import build_context, candidates, select, window_cosine
from clipforge.text import split_clauses, split_sentences, stem
from clipforge.textanalysis import TextAnalysis, analyse_text, sentence_parts, word_stems


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_window_cosine_is_the_weighted_mean_of_sentence_cosines() -> None:
    prompt = _unit(1, 0, 0)
    emb = np.stack([_unit(0.3, 0.954, 0), _unit(0.2, 0, 0.98)])
    w = np.array([10, 10], dtype=np.float32)
    got = window_cosine(emb @ prompt, w)
    assert abs(got - float((emb @ prompt).mean())) < 1e-6
    # never above its best sentence (the renormalised mean would be 0.34 here)
    assert got <= float((emb @ prompt).max()) + 1e-9
    w2 = np.array([30, 10], dtype=np.float32)
    assert abs(window_cosine(emb @ prompt, w2) - (30 * 0.3 + 10 * 0.2) / 40) < 2e-3


def test_an_off_topic_neighbour_is_not_carried_into_the_highlight() -> None:
    """Two 4 s sentences; the first answers the prompt weakly (cos 0.3), the second not
    at all for its own part (cos 0.2). The highlight is the first sentence alone."""
    tr = transcript_from([(0, "one two three four five six seven eight."),
                          (7, "nine ten eleven twelve thirteen fourteen fifteen sixteen.")])
    sents = tuple(split_sentences(tr.words))
    emb = np.stack([_unit(0.3, 0.954, 0), _unit(0.2, 0, 0.98)])
    text = TextAnalysis(sents, emb, tuple(word_stems(tr.words)))
    prompt_vec = _unit(1, 0, 0)
    ctx = build_context(tr, text, flat_audio(20), "a thing nobody said", prompt_vec)
    picks = select(ctx, SelectionParams.for_target(60, clips=1), prompt="a thing nobody said")
    top = picks[0].candidate
    assert (top.first_word, top.last_word) == (sents[0].first_word, sents[0].last_word)


def test_long_sentences_split_at_clauses_short_ones_stay_whole() -> None:
    long = ("permission is granted, free of charge, to any person who asks for a copy of "
            "the book and the notes that come with it, to read them, to copy them, to "
            "share them with friends, subject to these conditions, the notice shall be kept "
            "in all the copies that are made.")
    tr = transcript_from([(0, "A short one, with a comma."), (5, long)], gap=0.1)
    sents = split_sentences(tr.words)
    assert len(sents) == 2 and sents[1].last_word - sents[1].first_word + 1 > 40
    units = split_clauses(sents, tr.words)
    assert units[0].text == "A short one, with a comma."
    assert [u.text for u in units[1:]] == [
        "permission is granted, free of charge,",  # 'granted,' alone would be 3 words
        "to any person who asks for a copy of the book and the notes that come with it,",
        "to read them, to copy them,",  # 'to read them,' alone: 3
        "to share them with friends,",
        "subject to these conditions,",
        "the notice shall be kept in all the copies that are made.",
    ]
    assert [u.index for u in units] == list(range(len(units)))
    assert [u.whole for u in units] == [0] + [1] * (len(units) - 1)
    for a, b in zip(units, units[1:], strict=False):
        assert b.first_word == a.last_word + 1
    assert units[-1].last_word == len(tr.words) - 1
    # a word count, not a duration (word times differ by a frame between machines): a
    # slow 31-word sentence of 29 s with commas stays whole
    slow_text = ("well, you know, I think, after all this time, and all of the talk, "
                 "that we should, in the end, just wait and see, and then decide, "
                 "together, what to do.")
    slow = transcript_from([(0, slow_text)], gap=0.5)
    sents = split_sentences(slow.words)
    assert len(sents) == 1 and sents[0].end_us - sents[0].start_us > 25 * S
    assert len(slow.words) == 31 and split_clauses(sents, slow.words) == sents


def test_a_clause_split_never_leaves_a_fragment_under_min_words() -> None:
    words = ("alpha, beta gamma delta epsilon zeta, eta theta iota kappa lambda, mu nu, "
             + "one two three four five six seven eight nine ten, " * 3 + "xi, omicron pi.")
    tr = transcript_from([(0, words)], gap=0.6)
    assert len(tr.words) > 40
    units = split_clauses(split_sentences(tr.words), tr.words)
    assert all(u.last_word - u.first_word + 1 >= 4 for u in units)
    assert " ".join(u.text for u in units) == words


def test_the_answer_at_the_end_of_a_run_on_sentence_is_cut_to_its_clauses() -> None:
    """Keyword-only selection (no model): the prompt's words are in the last clauses of a
    45-word sentence. The highlight starts at a clause inside it, not at its first word."""
    run_on = ("we met in the spring, and we talked about the weather for a while, "
              "then about the trains and the roads and the buses in the town, "
              "and the cost of bread and of milk at the market on the square, "
              "and then the new plan came up, its tiers, with a yearly "
              "discount for the yearly tier.")
    tr = transcript_from([(0, run_on)], gap=0.1)
    ctx = build_context(tr, analyse_text(tr, None), flat_audio(40), "the yearly discount", None)
    picks = select(ctx, SelectionParams.for_target(60, clips=1), prompt="the yearly discount")
    top = picks[0].candidate
    assert top.first_word > 0 and tr.words[top.first_word - 1].text.endswith(",")
    assert "discount" in top.text and top.end_us == tr.words[-1].end_us
    assert top.end_us - top.start_us < 0.6 * (tr.words[-1].end_us - tr.words[0].start_us)


def test_a_reel_never_jumps_inside_a_sentence() -> None:
    """Two clauses of one run-on sentence answer the prompt, the clause between does
    not: the reel plays the whole stretch as one segment instead of skipping the middle
    clause (a jump inside continuous speech). With --clips they stay separate clips."""
    run_on = ("first we looked at the yearly discount offer, "
              "then we walked down to the river and the old mill and the bridge, "
              "and sat there for a long while watching the boats go by, "
              "and later we came back to the yearly discount question again.")
    tr = transcript_from([(0, run_on)], gap=0.1)
    assert len(split_sentences(tr.words)) == 1 and len(tr.words) > 40
    ctx = build_context(tr, analyse_text(tr, None), flat_audio(40), "yearly discount", None)
    reel = select(ctx, SelectionParams.for_target(60), prompt="yearly discount")
    assert len(reel) == 2
    first, second = sorted(reel, key=lambda p: p.candidate.first_word)
    assert first.candidate.last_word + 1 == second.candidate.first_word
    assert "river" in first.candidate.text
    clips = select(ctx, SelectionParams.for_target(60, clips=2), prompt="yearly discount")
    assert len(clips) == 2
    assert all("river" not in p.candidate.text for p in clips)


def test_the_picks_hold_when_word_times_move_by_a_frame() -> None:
    """Speech-model word times differ by milliseconds between CPUs: moving every word by
    up to a 25 fps frame either way picks the same words (clauses by word count, the
    window cosine and the no-jump rule have no time threshold near these values)."""
    import random

    from clipforge.transcribe import Transcript, Word

    run_on = ("first we looked at the yearly discount offer, "
              "then we walked down to the river and the old mill, "
              "and sat there for a long while watching the boats go by, "
              "and later we came back to the yearly discount question.")
    # 41 words 250 ms apart: every gap stays a pause (over 120 ms) and the sentence
    # under the 30 s cap when each word moves by up to 40 ms
    base = transcript_from([(0, "Good morning to all of you."), (5, run_on)], gap=0.25)
    assert len(base.words) == 47 and base.words[-1].end_us - base.words[6].start_us < 28 * S

    def picks(tr: Transcript) -> list[tuple[int, int]]:
        ctx = build_context(tr, analyse_text(tr, None), flat_audio(40), "yearly discount",
                            None)
        return sorted((p.candidate.first_word, p.candidate.last_word)
                      for p in select(ctx, SelectionParams.for_target(60),
                                      prompt="yearly discount"))

    want = picks(base)
    rng = random.Random(7)
    for _ in range(20):
        moved = []
        for w in base.words:
            d = rng.randint(-40_000, 40_000)
            moved.append(Word(w.start_us + d, w.end_us + d, w.text, w.probability))
        tr = Transcript(tuple(moved), base.language, base.duration_us, base.model)
        assert picks(tr) == want


def test_the_line_that_says_most_of_the_prompt_beats_two_common_words() -> None:
    """Two of the prompt's words, common in this source, in a short line used to score as
    a full keyword match (density over 0.2), tying the line that says the whole prompt;
    the tie went to the earlier line. Coverage weighted by rarity now decides."""
    tr = transcript_from([(0, "We include copies of everything we make."),
                          (8, "Nobody wanted the copies anyway, honestly."),
                          (16, "They sold copies at the market every week."),
                          (24, "The copyright notice must be included in all copies.")])
    prompt = "the copyright notice must be included in all copies"
    ctx = build_context(tr, analyse_text(tr, None), flat_audio(40), prompt, None)
    w = ctx.keyword_weights
    assert abs(sum(w.values()) - 1.0) < 1e-9
    assert w["copyright"] > w["includ"] > w["cop"]  # said once, twice, four times
    picks = select(ctx, SelectionParams.for_target(60, clips=1), prompt=prompt)
    top = picks[0].candidate
    assert top.text == "The copyright notice must be included in all copies."
    others = [c for c in candidates(ctx, SelectionParams.for_target(60, clips=1))
              if c.text.startswith("We include copies")]
    assert others and max(c.score for c in others) < top.score


def test_keyword_weights_leave_out_words_the_source_never_says() -> None:
    """A misheard or absent prompt word gets no weight: the words that are there can still
    make a full match, and the scores do not all shrink alike."""
    tr = transcript_from([(0, "the harder you work the smarter you get")])
    text = analyse_text(tr, None)
    ctx = build_context(tr, text, flat_audio(10), "rap about working harder banana", None)
    work, harder = stem("working"), stem("harder")
    assert set(ctx.keyword_weights) == {work, harder}
    assert set(ctx.keywords) == {"rap", work, harder, "banana"}
    kw, hits = keyword_score(text.stems, ctx.keyword_weights)
    assert sorted(hits) == sorted([harder, work]) and kw == 1.0
    assert build_context(tr, text, flat_audio(10), "bananas", None).keyword_weights == {}


def test_a_sentence_answers_as_well_as_its_best_clause() -> None:
    """The clauses of a sentence with two or more are embedded too, and the sentence's
    cosine is the larger of its own and its best clause's: one relevant clause among
    misheard words is not drowned by the sentence's mean."""
    tr = transcript_from([(0, "Then he starts to rise, said the man on the radio, "
                              "and the wizard would vanish behind the curtain."),
                          (9, "Short words here, only.")])
    seen: list[str] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return np.stack([_unit(1, 0, 0) if "vanish" in t and "rise" not in t
                         else _unit(0.1, 0.995, 0) for t in texts])

    text = analyse_text(tr, embed)
    assert len(text.sentences) == 2  # units are still whole sentences
    assert seen[2:] == ["Then he starts to rise,", "said the man on the radio,",
                        "and the wizard would vanish behind the curtain."]
    assert text.part_owner == (0, 0, 0)  # "Short words here, only." has one 4-word clause
    ctx = build_context(tr, text, flat_audio(20), "people disappearing", _unit(1, 0, 0))
    assert ctx.cosines is not None
    assert abs(ctx.cosines[0] - 1.0) < 1e-6 and abs(ctx.cosines[1] - 0.1) < 1e-3
    no_parts = sentence_cosines(text.embeddings, _unit(1, 0, 0))
    assert abs(no_parts[0] - 0.1) < 1e-3  # the whole sentence alone


def test_parts_are_clauses_of_at_least_four_words() -> None:
    tr = transcript_from([(0, "Yes, well, I think that we could go, if you want to.")])
    sents = tuple(split_sentences(tr.words))
    parts = sentence_parts(sents, tr.words)
    assert [p.text for p in parts] == ["Yes, well, I think that we could go,",
                                       "if you want to."]
    assert all(p.whole == 0 for p in parts)
    short = transcript_from([(0, "One two three, four five six seven.")])
    assert sentence_parts(tuple(split_sentences(short.words)), short.words) == []


SENTENCE = ("You may use this voice for any purpose, including all the commercial uses, "
            "and on the bottom right you see the time.")


def _pick_with_clauses(third: np.ndarray, target: float = 60, clips: int = 1) -> list:
    """One sentence of three clauses: the first answers the prompt (vector e1), the
    second continues it, the third is ``third``."""
    tr = transcript_from([(0, SENTENCE)])
    vecs = {"You may use this voice for any purpose,": _unit(1, 0, 0),
            "including all the commercial uses,": _unit(0.8, 0.6, 0),
            "and on the bottom right you see the time.": third}

    def embed(texts: list[str]) -> np.ndarray:
        return np.stack([vecs.get(t, _unit(0.7, 0.3, 0.3)) for t in texts])

    text = analyse_text(tr, embed)
    assert [p.text for p in text.parts] == list(vecs)
    ctx = build_context(tr, text, flat_audio(30), "something unsaid", _unit(1, 0, 0))
    return select(ctx, SelectionParams.for_target(target, clips=clips),
                  prompt="something unsaid")


def test_a_trailing_clause_on_another_subject_is_cut_off() -> None:
    """ASR joins two sentences with a comma; the clip ends after the clause that answers."""
    picks = _pick_with_clauses(_unit(0, 0, 1))  # unrelated to the prompt and to clause 2
    assert picks[0].candidate.text == ("You may use this voice for any purpose, "
                                       "including all the commercial uses,")
    words = transcript_from([(0, SENTENCE)]).words
    assert picks[0].cut_out_us < words[13].start_us  # "and" is not in the clip
    # a reel under target says how long it is as cut, after the trim
    reel = _pick_with_clauses(_unit(0, 0, 1), target=60, clips=0)
    got = reel[0].cut_out_us - reel[0].cut_in_us
    assert reel[0].short_reason.startswith(f"{got / 1e6:.1f} s of 60 s:")


def test_a_trailing_clause_that_continues_the_thought_stays() -> None:
    """Irrelevant on its own, but it continues the clause before it (cosine 0.38): kept,
    as "ask what you can do for your country." stays with the line before it."""
    picks = _pick_with_clauses(_unit(0.1, 0.5, 0.86))
    assert picks[0].candidate.text == SENTENCE


def test_the_trim_keeps_min_clip() -> None:
    """With a minimum clip longer than the first two clauses, nothing comes off."""
    tr = transcript_from([(0, SENTENCE)])
    text = analyse_text(tr, lambda ts: np.stack(
        [_unit(0, 0, 1) if t.startswith("and on") else _unit(1, 0, 0) for t in ts]))
    ctx = build_context(tr, text, flat_audio(30), "something unsaid", _unit(1, 0, 0))
    params = dataclasses.replace(SelectionParams.for_target(60, clips=1),
                                 min_clip_us=10 * S)
    assert select(ctx, params, prompt="something unsaid")[0].candidate.text == SENTENCE


def test_a_sound_alike_of_a_word_the_source_never_says_counts_half() -> None:
    """"beep" heard as "deep": one stop swapped for another, vowels kept. The line with
    the sound-alike outranks a line with the other prompt words alone, and the match is
    worth half of the word itself."""
    from clipforge import soundalike

    pron = soundalike.pronunciations(["beep", "deep", "nine", "mine", "bead", "bip", "bee",
                                      "seep", "dee", "xqzzv"])
    assert pron["beep"] == (("B", "IY", "P"),) and "xqzzv" not in pron
    assert soundalike.words_alike("beep", "deep", pron)  # B IY P / D IY P
    assert soundalike.words_alike("nine", "mine", pron)  # nasal for nasal
    assert soundalike.words_alike("beep", "bead", pron)  # the last stop swapped
    assert not soundalike.words_alike("beep", "bip", pron)  # a vowel changed
    assert not soundalike.words_alike("beep", "bee", pron)  # a phone dropped
    assert not soundalike.words_alike("beep", "seep", pron)  # stop -> fricative
    assert not soundalike.words_alike("bee", "dee", pron)  # under three phones
    assert not soundalike.words_alike("beep", "beep", pron)
    assert not soundalike.words_alike("xqzzv", "deep", pron)  # not in the dictionary

    tr = transcript_from([(0, "Okay I thought I heard a deep sound on the line."),
                          (8, "I did not hear anything on the line, honestly."),
                          (16, "The weather was fine all week long out there.")])
    text = analyse_text(tr, None)
    prompt = "she mentions hearing a beep"
    ctx = build_context(tr, text, flat_audio(30), prompt, None)
    assert ctx.keyword_aliases == {"deep": "beep"}
    assert set(ctx.keyword_weights) == {"hear", "beep"}
    top = select(ctx, SelectionParams.for_target(60, clips=1), prompt=prompt)[0].candidate
    assert top.text.startswith("Okay I thought I heard a deep")
    assert "deep" in top.matched
    # half credit: the same line with "beep" itself scores higher
    said = transcript_from([(0, "Okay I thought I heard a beep sound on the line.")])
    said_text = analyse_text(said, None)
    said_ctx = build_context(said, said_text, flat_audio(10), prompt, None)
    heard_kw, _ = keyword_score(text.stems[:11], ctx.keyword_weights, ctx.keyword_aliases)
    said_kw, _ = keyword_score(said_text.stems, said_ctx.keyword_weights)
    assert 0 < heard_kw < said_kw
    # a word the source does say is matched as itself, never through a sound-alike
    assert build_context(tr, text, flat_audio(30), "a deep sound", None).keyword_aliases == {}


def test_the_pronouncing_dictionary_is_sorted_for_its_binary_search() -> None:
    """``soundalike.pronunciations`` binary-searches the file: a pocketsphinx release
    that shipped it unsorted would make words silently unknown."""
    from clipforge import soundalike

    data, starts = soundalike._index()
    assert len(starts) > 100_000
    heads = [soundalike._entry(data, starts, k)[0] for k in range(len(starts))]
    assert heads == sorted(heads)
    assert soundalike.pronunciations(["zebra", "aardvark", "read"])["read"] == (
        ("R", "EH", "D"), ("R", "IY", "D"))


def test_an_edge_sentence_kept_only_for_length_goes_when_the_picks_play_as_one() -> None:
    """A 1.8 s line that answers the prompt could only be a window by taking the next,
    off-topic sentence along (min_clip 3 s). Right after another pick it plays in one
    segment with it, which is long enough: the off-topic sentence goes. Not when the
    line stands alone, and not when no pause separates it from the sentence after."""
    from clipforge.plan import segments_from_picks
    from clipforge.refine import snap_cuts, trim_run_edges

    a = "And so my fellow Americans ask not what your great country can do for you."
    b = "Ask your country."
    c = "Lots harder by being a lot smarter by being a self starter."
    prompt = "ask your country"
    params = SelectionParams.for_target(60)

    def run(b_at: float, c_at: float) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        tr = transcript_from([(0, a), (b_at, b), (c_at, c), (c_at + 12, "The weather was fine.")])
        ctx = build_context(tr, analyse_text(tr, None), flat_audio(c_at + 20), prompt, None)
        by_words = {(x.first_word, x.last_word): x for x in candidates(ctx, params)}
        picked = [by_words[(0, 14)], by_words[(15, 29)]]  # a; b with c (b alone: too short)
        duration = tr.duration_us
        picks = snap_cuts(picked, tr.words, duration, params, ctx.audio.fine_db)
        out = trim_run_edges(ctx, picks, params, duration)
        return ([(p.candidate.first_word, p.candidate.last_word) for p in out],
                segments_from_picks(out))

    spans, segments = run(10.7, 13.1)  # b follows a (0.5 s), c after a 0.6 s pause
    assert spans == [(0, 14), (15, 17)]
    assert len(segments) == 1 and segments[0][1] < 13.1 * S
    assert run(30.0, 32.4)[0] == [(0, 14), (15, 29)]  # b alone: its window must keep c
    assert run(10.7, 12.55)[0] == [(0, 14), (15, 29)]  # no pause between b and c: stays
