"""Where the speech model was unsure of what it heard: long stretches of words with a low
probability.

An English-only model (the bundled ``tiny.en``) writes speech in another language as
English-sounding nonsense ("Yiddam, there is the software on Tidatubi-Rigin document"),
and heavy music or babble does much the same. The words look like a transcript, so the
selection would match prompts against them without a word of warning. Their
probabilities tell: measured on ``../shared/media``'s multilingual reading, the English
part's words average 0.9, the German part's about 0.5. On the development set
(``clipforge eval``) the public episode's lowest 15-word mean is 0.79; under the noisy
set's music a phone call dips to 0.46 for 5 s.

A word is unsure when the mean probability of the words that start within
``WINDOW_US / 2`` of it is under ``UNSURE_BELOW``, or when it is one of
``LOOP_REPEATS`` or more of the same word in a row (a decoding loop: "sufathan,
sufathan, ..." with high probabilities). Runs of unsure words that span at least
``MIN_SPAN_US`` are reported; shorter ones are a noisy sentence, not a stretch a person
should be told about. Pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

from .transcribe import WHISPER_BASE, Word

WINDOW_US = 10_000_000   # a word's probability is judged over the words within +-5 s
UNSURE_BELOW = 0.6
LOOP_REPEATS = 4         # the same word this many times in a row: a decoding loop
MIN_SPAN_US = 8_000_000


def _key(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _looped(words: Sequence[Word]) -> list[bool]:
    out = [False] * len(words)
    i = 0
    while i < len(words):
        j = i
        while j + 1 < len(words) and _key(words[j + 1].text) == _key(words[i].text):
            j += 1
        if j + 1 - i >= LOOP_REPEATS and _key(words[i].text):
            out[i:j + 1] = [True] * (j + 1 - i)
        i = j + 1
    return out


def unsure_spans(words: Sequence[Word]) -> list[tuple[int, int, float, bool]]:
    """(start us, end us, mean word probability, mostly a decoding loop) of each long
    unsure stretch, in order."""
    n = len(words)
    prefix = [0.0]
    for w in words:
        prefix.append(prefix[-1] + w.probability)
    starts = [w.start_us for w in words]
    looped = _looped(words)
    unsure = []
    lo = hi = 0
    for i, w in enumerate(words):
        while starts[lo] < w.start_us - WINDOW_US // 2:
            lo += 1
        while hi < n and starts[hi] <= w.start_us + WINDOW_US // 2:
            hi += 1
        unsure.append(looped[i] or (prefix[hi] - prefix[lo]) / (hi - lo) < UNSURE_BELOW)
    spans: list[tuple[int, int, float, bool]] = []
    i = 0
    while i < n:
        if not unsure[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and unsure[j + 1]:
            j += 1
        start, end = words[i].start_us, words[j].end_us
        if end - start >= MIN_SPAN_US:
            spans.append((start, end, (prefix[j + 1] - prefix[i]) / (j + 1 - i),
                          2 * sum(looped[i:j + 1]) > j + 1 - i))
        i = j + 1
    return spans


def _clock(us: int) -> str:
    s = us / 1_000_000
    return f"{int(s // 60)}:{s % 60:04.1f}"


def unsure_note(words: Sequence[Word], model: str) -> str:
    """What to tell a person about the unsure stretches, or ``""`` when there are none."""
    spans = unsure_spans(words)
    if not spans:
        return ""
    where = ", ".join(f"{_clock(a)}-{_clock(b)} ("
                      + ("one word over and over" if loop else f"mean word probability {p:.2f}")
                      + ")" for a, b, p, loop in spans)
    remedy = ("set CLIPFORGE_WHISPER_LANGUAGE=auto (detected per segment) or to the "
              "language's code") if model == WHISPER_BASE else (
        "set CLIPFORGE_WHISPER_MODEL=whisper-base (multilingual; `make whisper-base` "
        "installs it) and CLIPFORGE_WHISPER_LANGUAGE=auto")
    return (f"the speech model ({model}) was unsure of what was said at {where}: speech "
            "in another language than the model's, or under heavy noise or music. "
            f"Highlights from there may not say what their text says. For another "
            f"language, {remedy}")


def transcript_note(words: Sequence[Word], model: str) -> dict[str, str]:
    """``{"transcript_note": note}`` for an EDL's ``selection`` when there is one, else
    ``{}``."""
    note = unsure_note(words, model)
    return {"transcript_note": note} if note else {}
