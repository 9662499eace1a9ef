"""Speech the recogniser skipped is heard again (clipforge.transcribe.fill_gaps): whisper
can end a 30 s window's text early, and the rest of that window, a rap after a reading
here, would otherwise reach no transcript (issue 10: nothing said is lost)."""

from __future__ import annotations

import numpy as np
from conftest import media

from clipforge.audio import SAMPLE_RATE, decode_mono_16k
from clipforge.config import Settings
from clipforge.transcribe import (
    Word,
    _recognise,
    fill_gaps,
    load_model,
    transcribe_piece,
    uncovered_speech,
)

S = 1_000_000


def w(a: float, b: float) -> Word:
    return Word(int(a * S), int(b * S), "x", 0.9)


def test_uncovered_speech_is_detected_speech_no_word_covers() -> None:
    speech = [(0, 10 * S), (20 * S, 21 * S)]
    words = [w(1, 2), w(2.2, 3), w(8, 9)]
    # covered: 0.5-3.5 and 7.5-9.5; 0-0.5 and 9.5-10 are too short; 20-21 s is 1 s
    assert uncovered_speech(speech, words, min_us=2 * S, pad_us=S // 2) == [
        (3_500_000, 7_500_000)]
    assert uncovered_speech(speech, [], min_us=2 * S) == [(0, 10 * S)]
    assert uncovered_speech(speech, words, min_us=S // 2, pad_us=S // 2) == [
        (0, S // 2), (3_500_000, 7_500_000), (9_500_000, 10 * S), (20 * S, 21 * S)]
    assert uncovered_speech([], words) == []


def _reading_then_rap() -> np.ndarray:
    reading = decode_mono_16k(
        str(media("speech_multilingual_60s__faster-whisper_multilingual.mp3")))
    rap = decode_mono_16k(
        str(media("face_stage_cuts_10s__face_recognition_short_hamilton_clip.mp4")))
    return np.concatenate([reading[: int(29.5 * SAMPLE_RATE)], rap[: 10 * SAMPLE_RATE],
                           np.zeros(2 * SAMPLE_RATE, dtype=np.float32)])


def test_a_skipped_stretch_of_speech_is_transcribed_again() -> None:
    settings = Settings()
    model = load_model(settings)
    y = _reading_then_rap()
    first, _ = _recognise(model, y, settings, 5 * S, None)
    # what a first pass that ended its window early leaves: nothing after the reading
    kept = [x for x in first if x.end_us < 5 * S + 29 * S]
    filled = fill_gaps(model, y, settings, kept, 5 * S)
    added = [x for x in filled if x not in kept]
    text = " ".join(x.text.lower() for x in added)
    assert "smarter" in text or "starter" in text, text
    # Added words lie in the stretch no kept word covers (by their middle, the rule
    # fill_gaps applies: a recogniser's first word of a window often starts early, here
    # by 0.76 s on one CPU, 33.74 s for a rap that starts at 34.5 s)
    assert all(5 * S + 29 * S <= (x.start_us + x.end_us) // 2 <= 5 * S + 41 * S
               for x in added), [(x.start_us, x.end_us, x.text) for x in added]
    assert [x for x in filled if x in kept] == kept
    assert filled == sorted(filled, key=lambda x: (x.start_us, x.end_us))


def test_the_transcript_of_a_reading_then_a_rap_has_both() -> None:
    words, _ = transcribe_piece(_reading_then_rap(), Settings())
    rap = " ".join(x.text.lower() for x in words if x.start_us > 29 * S)
    reading = " ".join(x.text.lower() for x in words if x.end_us < 29 * S)
    assert "software" in reading
    assert "smarter" in rap or "starter" in rap, rap


def test_music_alone_adds_no_words() -> None:
    music = decode_mono_16k(str(media("music_nospeech_30s__moviepy_big_buck_bunny_0_30.webm")))
    settings = Settings()
    words = fill_gaps(load_model(settings), music, settings, [], 0)
    assert len(words) <= 2, [x.text for x in words]
