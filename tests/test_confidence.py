"""Where the speech model was unsure (clipforge.confidence): long stretches of words with
a low probability, or one word over and over, are named; a noisy sentence is not."""

from __future__ import annotations

from clipforge.confidence import MIN_SPAN_US, transcript_note, unsure_note, unsure_spans
from clipforge.transcribe import Word

S = 1_000_000


def words(spec: list[tuple[float, float, float, str]]) -> list[Word]:
    """(from s, to s, probability, text): one word every 0.4 s over each stretch; the text
    "word" is numbered (different words), any other is said as it is (the same word)."""
    out = []
    for a, b, p, text in spec:
        t = int(a * S)
        while t + 300_000 <= int(b * S):
            out.append(Word(t, t + 300_000, f"word{len(out)}" if text == "word" else text, p))
            t += 400_000
    return out


def test_sure_speech_has_no_note() -> None:
    ws = words([(0, 60, 0.92, "word")])
    assert unsure_spans(ws) == [] and unsure_note(ws, "tiny.en") == ""
    assert transcript_note(ws, "tiny.en") == {}


def test_a_long_stretch_of_unsure_words_is_named() -> None:
    ws = words([(0, 30, 0.92, "word"), (30, 50, 0.45, "word"), (50, 80, 0.92, "word")])
    (a, b, p, loop), = unsure_spans(ws)
    # inside the stretch, less the part of it whose +-5 s window is mostly sure speech
    assert 30 * S <= a <= 33 * S and 47 * S <= b <= 50 * S and p < 0.6 and not loop
    note = transcript_note(ws, "tiny.en")["transcript_note"]
    assert "tiny.en" in note and "0:" in note and "CLIPFORGE_WHISPER_MODEL" in note
    # already the multilingual model: the remedy left is the language setting
    note = unsure_note(ws, "whisper-base")
    assert "CLIPFORGE_WHISPER_LANGUAGE=auto" in note and "CLIPFORGE_WHISPER_MODEL" not in note


def test_a_short_unsure_sentence_is_not_named() -> None:
    ws = words([(0, 30, 0.92, "word"), (30, 33, 0.2, "word"), (33, 60, 0.92, "word")])
    assert unsure_spans(ws) == []


def test_a_decoding_loop_is_named_even_when_its_words_are_probable() -> None:
    ws = words([(0, 20, 0.92, "word"), (20, 20 + MIN_SPAN_US / S + 2, 0.95, "sufathan,"),
                (31, 50, 0.92, "word")])
    (a, b, _p, loop), = unsure_spans(ws)
    assert loop and 20 * S <= a and b <= 31 * S
    assert "one word over and over" in unsure_note(ws, "tiny.en")
    # three in a row is speech ("no, no, no"), not a loop
    assert unsure_spans(words([(0, 20, 0.92, "word"), (20, 21.2, 0.95, "no,"),
                               (21.2, 40, 0.92, "word")])) == []
