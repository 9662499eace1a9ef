"""Sound-alike keywords: a prompt word the transcript never says, matched to a transcript
word that a speech model could have heard in its place.

A speech model's errors are mostly near-homophones: "I heard a beep" comes out as "I
heard a deep". Keyword matching on the transcript then misses the one rare word that
pinned the passage down. Two words sound alike here when their pronunciations (the CMU
US-English pronouncing dictionary that ships inside the ``pocketsphinx`` wheel; nothing
is downloaded) have the same number of phones, at least ``MIN_PHONES``, and differ in
exactly one consonant, swapped for another of the same manner of articulation (a stop
for a stop, a nasal for a nasal: b/d/g, m/n, f/th, s/sh). Every vowel must match. A swap
of place within one manner is the commonest confusion in noisy or band-limited speech; a
changed vowel, a dropped or added phone, or a change of manner are not counted.

Selection gives such a match ``CREDIT`` (half) of an exact match's weight, and only for
prompt words the source never says (:func:`clipforge.edges.keyword_weights`).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache

from .text import STOP_WORDS, stem, tokens
from .transcribe import Word

MIN_PHONES = 3
CREDIT = 0.5

# ARPAbet consonants by manner of articulation (the dictionary has no stress marks)
MANNER = {
    **dict.fromkeys(("P", "B", "T", "D", "K", "G"), "stop"),
    **dict.fromkeys(("F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH"), "fricative"),
    **dict.fromkeys(("CH", "JH"), "affricate"),
    **dict.fromkeys(("M", "N", "NG"), "nasal"),
    **dict.fromkeys(("L", "R"), "liquid"),
    **dict.fromkeys(("W", "Y"), "glide"),
}


def dictionary_path() -> str:
    """The pocketsphinx wheel's US-English pronouncing dictionary ('' without the
    package: then nothing sounds alike)."""
    try:
        import pocketsphinx
    except ImportError:  # pragma: no cover - a pinned dependency
        return ""
    return str(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"))


@lru_cache(maxsize=1)
def _index() -> tuple[bytes, array]:
    """The dictionary file's bytes and the offset of each line (the file is sorted by
    word, alternatives ``word(2)`` right after ``word``): 3.7 MB held, not the ~70 MB
    of a parsed dictionary."""
    path = dictionary_path()
    if not path:
        return b"", array("I")
    with open(path, "rb") as fh:
        data = fh.read()
    starts = array("I", [0])
    starts.extend(m.end() for m in re.finditer(b"\n", data) if m.end() < len(data))
    return data, starts


def _entry(data: bytes, starts: array, k: int) -> tuple[str, str]:
    """(word, phones) of line ``k``."""
    end = data.find(b"\n", starts[k])
    head, _, phones = data[starts[k] : end if end >= 0 else len(data)].decode().partition(" ")
    return head.split("(", 1)[0], phones


def pronunciations(words: Iterable[str]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """word -> its pronunciations (alternatives included), for the ``words`` the
    dictionary has; a binary search of the sorted file per word."""
    data, starts = _index()
    out: dict[str, tuple[tuple[str, ...], ...]] = {}
    for word in sorted(set(words)):
        k = bisect_left(range(len(starts)), word, key=lambda i: _entry(data, starts, i)[0])
        found = []
        while k < len(starts):
            head, phones = _entry(data, starts, k)
            if head != word:
                break
            found.append(tuple(phones.split()))
            k += 1
        if found:
            out[word] = tuple(found)
    return out


def phones_alike(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Same length (at least MIN_PHONES), one differing phone, both consonants of one
    manner."""
    if len(a) != len(b) or len(a) < MIN_PHONES:
        return False
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    if len(diff) != 1:
        return False
    x, y = diff[0]
    return x in MANNER and MANNER.get(y) == MANNER[x]


def words_alike(a: str, b: str, pron: Mapping[str, tuple[tuple[str, ...], ...]]) -> bool:
    """Any pronunciation of ``a`` alike any of ``b``; False for a word not in ``pron``."""
    return a != b and any(phones_alike(p, q) for p in pron.get(a, ()) for q in pron.get(b, ()))


def aliases(missing: Mapping[str, Collection[str]], source: Mapping[str, Collection[str]]
            ) -> dict[str, str]:
    """Transcript stem -> the prompt keyword it sounds like.

    ``missing``: each prompt keyword (a stem) the source never says -> the prompt's words
    with that stem; ``source``: each transcript stem -> the transcript's words with it. A
    transcript stem that sounds like two missing keywords goes to the first in sorted
    order (deterministic)."""
    if not missing:
        return {}
    pron = pronunciations({w for ws in missing.values() for w in ws}
                          | {w for ws in source.values() for w in ws})
    out: dict[str, str] = {}
    for keyword in sorted(missing):
        said = sorted(set(missing[keyword]))
        for stem_, heard in sorted(source.items()):
            if stem_ in out or stem_ in missing:
                continue
            if any(words_alike(p, h, pron) for p in said for h in sorted(set(heard))):
                out[stem_] = keyword
    return out


def keyword_aliases(prompt: str, words: Sequence[Word], stems: Sequence[str]) -> dict[str, str]:
    """:func:`aliases` for a prompt and a transcript (``stems`` one per word, '' for stop
    words, :func:`clipforge.textanalysis.word_stems`)."""
    said = set(stems)
    missing: dict[str, set[str]] = {}
    for t in tokens(prompt):
        if t not in STOP_WORDS and stem(t) not in said:
            missing.setdefault(stem(t), set()).add(t)
    if not missing:  # the common case: no transcript pass at all
        return {}
    source: dict[str, set[str]] = {}
    for w, s in zip(words, stems, strict=True):
        if s:
            source.setdefault(s, set()).update(
                t for t in tokens(w.text) if t not in STOP_WORDS and stem(t) == s)
    return aliases(missing, source)
