"""Word times refined by the envelope (clipforge.wordtimes): overhangs into a pause come
off, a pause hidden between two "touching" words becomes their gap, and nothing moves
where the envelope cannot tell speech from quiet (issue 10, cut points in the quiet)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import media

from clipforge import wordtimes
from clipforge.audio import decode_mono_16k
from clipforge.evaluate import CUT_QUIET_DB, cut_excess_db
from clipforge.signals import fine_envelope
from clipforge.transcribe import Word

S = 1_000_000
SR = 16_000
FRAME = 40_000  # one 25 fps frame: how far word times may move between CPUs


def sound(duration_us: int, spans: list[tuple[int, int, float]], floor: float = 0.001,
          seed: int = 7) -> np.ndarray:
    """A noise floor (0: digital silence) plus noise bursts (start, end, sd)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, floor, duration_us * SR // S).astype(np.float32) if floor else \
        np.zeros(duration_us * SR // S, dtype=np.float32)
    for a, b, sd in spans:
        i0, i1 = a * SR // S, b * SR // S
        y[i0:i1] += rng.normal(0, sd, i1 - i0).astype(np.float32)
    return y


def w(a: int, b: int, text: str = "word") -> Word:
    return Word(a, b, text, 0.9)


def test_a_word_run_on_into_silence_ends_where_it_is_heard() -> None:
    # heard 0.5-0.9 s; the transcript says 0.5-1.6 s (the word before a pause overhangs)
    y = sound(3 * S, [(500_000, 900_000, 0.3), (2_000_000, 2_400_000, 0.3)])
    env = fine_envelope(y)
    for d in (-FRAME, 0, FRAME):
        out = wordtimes.refine_words([w(500_000, 1_600_000 + d), w(2_000_000, 2_400_000)],
                                     env, 3 * S)
        assert 890_000 <= out[0].end_us <= 920_000
        assert out[0].start_us == 500_000 and out[1] == w(2_000_000, 2_400_000)


def test_what_follows_a_pause_inside_a_word_is_not_that_word() -> None:
    # a word heard 1.0-1.2 s, digital silence, then the next recording's room noise from
    # 1.9 s: the transcript's word covers all of it (1.0-2.0 s); the next word is at 2.3 s
    y = sound(3 * S, [(1_000_000, 1_200_000, 0.3), (1_900_000, 3_000_000, 0.005),
                      (2_300_000, 2_700_000, 0.3)], floor=0.0)
    env = fine_envelope(y)
    out = wordtimes.refine_words([w(1_000_000, 2_000_000), w(2_300_000, 2_700_000)],
                                 env, 3 * S)
    assert 1_190_000 <= out[0].end_us <= 1_230_000


def test_a_start_that_comes_early_moves_to_where_the_word_begins() -> None:
    y = sound(3 * S, [(1_400_000, 1_900_000, 0.3)])
    env = fine_envelope(y)
    for d in (-FRAME, 0, FRAME):
        out = wordtimes.refine_words([w(700_000 + d, 1_900_000)], env, 3 * S)
        assert 1_370_000 <= out[0].start_us <= 1_410_000 and out[0].end_us == 1_900_000


def test_a_pause_between_touching_words_becomes_their_gap() -> None:
    # heard: A 0.5-1.15 s, pause, B 1.35-1.9 s; the transcript has them touch at 1.0 s
    # (A's end early, B's start early): the boundary goes to the pause the envelope hears
    y = sound(3 * S, [(500_000, 1_150_000, 0.3), (1_350_000, 1_900_000, 0.3)])
    env = fine_envelope(y)
    for d in (-FRAME, 0, FRAME):
        a, b = wordtimes.refine_words([w(500_000, 1_000_000 + d), w(1_000_000 + d, 1_900_000)],
                                      env, 3 * S)
        assert 1_140_000 <= a.end_us <= 1_180_000
        assert 1_320_000 <= b.start_us <= 1_360_000
        assert b.start_us - a.end_us >= wordtimes.MIN_PAUSE_US


def test_a_short_dip_inside_speech_is_not_a_pause() -> None:
    # a 60 ms stop closure between two touching words, and one inside a word: no change
    y = sound(3 * S, [(500_000, 970_000, 0.3), (1_030_000, 1_600_000, 0.3),
                      (1_600_000, 1_800_000, 0.05)])
    env = fine_envelope(y)
    words = [w(500_000, 1_000_000), w(1_000_000, 1_800_000)]
    assert wordtimes.refine_words(words, env, 3 * S) == tuple(words)


def test_without_contrast_nothing_moves() -> None:
    # babble as loud as the words: the envelope cannot tell where a word ends
    y = sound(3 * S, [(0, 3 * S, 0.2), (500_000, 900_000, 0.3)])
    env = fine_envelope(y)
    words = [w(500_000, 1_600_000), w(1_600_000, 2_400_000)]
    assert wordtimes.refine_words(words, env, 3 * S) == tuple(words)


def test_short_words_and_no_envelope_are_left_alone() -> None:
    y = sound(2 * S, [(500_000, 520_000, 0.3)])
    words = [w(500_000, 550_000), w(900_000, 900_000)]
    assert wordtimes.refine_words(words, fine_envelope(y), 2 * S) == tuple(words)
    assert wordtimes.refine_words(words, np.zeros(0, dtype=np.float32), 2 * S) == tuple(words)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_refined_words_keep_order_and_a_minimum_length(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spans = []
    t = 200_000
    while t < 9 * S:
        d = int(rng.integers(80_000, 600_000))
        spans.append((t, t + d, float(rng.choice([0.3, 0.1, 0.02]))))
        t += d + int(rng.integers(0, 400_000))
    env = fine_envelope(sound(10 * S, spans, seed=seed))
    # transcript edges off by up to +-150 ms, touching where the sound nearly does
    words = []
    for a, b, _sd in spans:
        a2 = max(0, a + int(rng.integers(-150_000, 150_000)) // 10_000 * 10_000)
        b2 = max(a2 + 100_000, b + int(rng.integers(-150_000, 150_000)) // 10_000 * 10_000)
        if words and a2 < words[-1].end_us:
            a2 = words[-1].end_us
            b2 = max(b2, a2 + 100_000)
        words.append(w(a2, b2))
    out = wordtimes.refine_words(words, env, 10 * S)
    assert len(out) == len(words)
    for before, after in zip(words, out, strict=True):
        assert after.end_us - after.start_us >= wordtimes.MIN_WORD_US
        assert after.text == before.text
    for x, y in zip(out, out[1:], strict=False):
        assert x.start_us <= y.start_us and x.end_us <= y.start_us + wordtimes.MIN_PAUSE_US
    assert out == wordtimes.refine_words(words, env, 10 * S)  # deterministic


def test_real_speech_then_silence_the_refined_end_is_in_the_quiet() -> None:
    # real speech (JFK, 11 s) with 1.5 s of digital silence after it, and a transcript
    # word that runs 1 s into that silence: the refined end lies where the quiet starts,
    # so a cut there is within CUT_QUIET_DB of the quietest point around it
    y = decode_mono_16k(str(media("speech_en_11s__whisper_jfk.flac")))
    y = np.concatenate([y, np.zeros(int(1.5 * SR), dtype=np.float32)])
    env = fine_envelope(y)
    speech_end = len(y) - int(1.5 * SR)
    heard_end = int(np.nonzero(np.abs(y[:speech_end]) > 1e-3)[0][-1]) * S // SR
    word = w(heard_end - 400_000, heard_end + 1_000_000, "country.")
    (out,) = wordtimes.refine_words([word], env, len(y) * S // SR)
    assert out.end_us < word.end_us - 500_000
    assert cut_excess_db(y, out.end_us / S + 0.05) <= CUT_QUIET_DB


def test_a_faint_click_in_an_overhang_does_not_keep_the_silence_in_the_word() -> None:
    # heard 0.5-0.9 s (about -10 dBFS), then a click at 0.96-0.98 s (about -40 dBFS: over
    # the trim threshold, under the speech split) in a -60 dBFS floor; the transcript's
    # word runs to 1.2 s. The end comes in to 0.9 s, not to just after the click.
    y = sound(3 * S, [(500_000, 900_000, 0.3), (960_000, 980_000, 0.01),
                      (2_000_000, 2_400_000, 0.3)])
    env = fine_envelope(y)
    for d in (-FRAME, 0, FRAME):
        out = wordtimes.refine_words([w(500_000, 1_200_000 + d), w(2_000_000, 2_400_000)],
                                     env, 3 * S)
        assert 890_000 <= out[0].end_us <= 920_000


def test_a_click_as_loud_as_speech_stays_in_the_word() -> None:
    # the same, but the sound after the short dip is at the word's own level: speech
    y = sound(3 * S, [(500_000, 900_000, 0.3), (960_000, 1_060_000, 0.3),
                      (2_000_000, 2_400_000, 0.3)])
    out = wordtimes.refine_words([w(500_000, 1_100_000), w(2_000_000, 2_400_000)],
                                 fine_envelope(y), 3 * S)
    assert out[0].end_us >= 1_050_000


@pytest.mark.parametrize(("first", "split"), [("there.", True), ("there?", True),
                                              ('"there."', True), ("there", False)])
def test_a_short_breath_after_a_sentence_is_the_gap_between_them(first: str, split: bool
                                                                 ) -> None:
    # heard: A 0.5-1.0 s, a 40 ms breath, B 1.04-1.5 s; the transcript runs A on to 1.2 s
    # and starts B there. After a full stop the breath becomes the gap; inside a sentence
    # a dip this short (a stop closure) is not a pause.
    y = sound(3 * S, [(500_000, 1_000_000, 0.3), (1_040_000, 1_500_000, 0.3)])
    env = fine_envelope(y)
    words = [w(500_000, 1_200_000, first), w(1_200_000, 1_500_000, "I")]
    a, b = wordtimes.refine_words(words, env, 3 * S)
    if split:
        assert 990_000 <= a.end_us <= 1_020_000 and 1_020_000 <= b.start_us <= 1_050_000
    else:
        assert (a.end_us, b.start_us) == (1_200_000, 1_200_000)


def test_overlapping_words_of_two_speakers_come_back_in_time_order() -> None:
    # a split-track merge interleaves two speakers' words, which overlap; trimming one
    # word's early start may carry it past the next word's start (seen on a CI machine)
    y = decode_mono_16k(media("multispeaker_stereo_5s__faster-whisper_stereo_diarization.wav"))
    env = fine_envelope(y)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        words = []
        for t in range(0, 4_800_000, 150_000):
            a = t + int(rng.integers(0, 8)) * 10_000
            words.append(w(a, a + int(rng.integers(6, 40)) * 10_000))
        words.sort(key=lambda x: (x.start_us, x.end_us))
        out = wordtimes.refine_words(words, env, 5 * S)
        times = [(x.start_us, x.end_us) for x in out]
        assert times == sorted(times) and len(out) == len(words)
