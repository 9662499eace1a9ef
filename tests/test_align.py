"""The evaluation's forced aligner (PocketSphinx, model from the installed wheel) on real
speech."""

from __future__ import annotations

import numpy as np
from conftest import media

from clipforge.align import Aligner, TextSegment, align_segments, looped_runs, normalise
from clipforge.audio import decode_mono_16k

JFK = ("And so my fellow Americans, ask not what your country can do for you, "
       "ask what you can do for your country.")
RATE = 16_000


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def test_normalise_spells_numbers_and_keeps_apostrophes() -> None:
    assert normalise("By 14, I'm here; 'quoted' 2025!") == [
        "by", "fourteen", "i'm", "here", "quoted", "two", "zero", "two", "five"]
    assert normalise("a 105 b 40") == ["a", "one", "hundred", "five", "b", "forty"]


def test_a_line_said_again_and_again_is_a_loop_three_times_is_not() -> None:
    texts = ["Hello?", "Hello.", "hello", "I didn't know.", "I'm sorry.", " I'm sorry.",
             "I'm sorry!", "i'm sorry", "Bye."]
    assert looped_runs(texts, 4) == {4, 5, 6, 7}
    assert looped_runs(texts, 3) == {0, 1, 2, 4, 5, 6, 7}
    assert looped_runs([], 4) == set()


def test_aligned_words_are_in_order_and_leave_the_pauses_empty() -> None:
    samples = decode_mono_16k(media("speech_en_11s__whisper_jfk.flac"))
    words = Aligner().align(samples, 0.0, len(samples) / RATE, JFK)
    assert words is not None
    assert [w for _, _, w in words] == normalise(JFK)
    assert all(a < b for a, b, _ in words)
    assert all(p[1] <= q[0] for p, q in zip(words, words[1:], strict=False))
    speech = _db(np.concatenate([samples[int(a * RATE):int(b * RATE)] for a, b, _ in words]))
    # The two longest gaps between aligned words are the speaker's pauses: quiet audio.
    gaps = sorted(((q[0] - p[1], p[1], q[0]) for p, q in zip(words, words[1:], strict=False)),
                  reverse=True)[:2]
    for length, a, b in gaps:
        assert length > 0.4
        assert _db(samples[int(a * RATE):int(b * RATE)]) < speech - 20


def test_a_spliced_in_silence_falls_between_words() -> None:
    speech = decode_mono_16k(media("speech_en_11s__whisper_jfk.flac"))
    # 0.6 s of digital silence spliced in at the quietest 10 ms between 6.0 and 6.9 s
    # (inside "country can do", where the speaker does not pause). At most a consonant's
    # closure of it may go to a word.
    frames = speech[6 * RATE:int(6.9 * RATE)].reshape(-1, 160)
    cut = 6 * RATE + int(np.argmin(np.square(frames).mean(axis=1))) * 160
    samples = np.concatenate([speech[:cut], np.zeros(int(0.6 * RATE), np.float32),
                              speech[cut:]])
    words = Aligner().align(samples, 0.0, len(samples) / RATE, JFK)
    assert words is not None
    lo, hi = cut / RATE, cut / RATE + 0.6
    overlap = [max(0.0, min(b, hi) - max(a, lo)) for a, b, _ in words]
    assert sum(overlap) <= 0.1, [(a, b, w) for a, b, w in words if b > lo and a < hi]


def test_a_segment_that_cannot_align_keeps_its_own_times_and_is_counted() -> None:
    samples = decode_mono_16k(media("speech_en_11s__whisper_jfk.flac"))
    own = ((0.1, 0.2), (0.2, 0.3))
    segments = [
        TextSegment(0.0, 10.9, JFK),
        # 40 words cannot fit into 0.4 s of audio: no alignment exists.
        TextSegment(11.5, 11.9, JFK + " " + JFK, own),
    ]
    silence = np.zeros(2 * RATE, np.float32)
    result = align_segments(np.concatenate([samples, silence]), segments)
    assert result.segments == 2 and result.unaligned == 1
    assert [(a, b) for a, b, _ in result.words[-2:]] == list(own)
    assert len(result.words) == len(normalise(JFK)) + 2
    again = align_segments(np.concatenate([samples, silence]), segments)
    assert again == result
