"""Text helpers: tokens, stop words, a light stemmer, and sentences from timed words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .transcribe import Word

# A compact English stop-word list (function words that carry no topic).
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out
    over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's will with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves also just like get got gets one two part parts thing things really
    um uh oh yeah okay ok well say says said tell about going gonna want wants
    """.split()
)

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; curly apostrophes folded to straight ones."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


_SUFFIXES = ("ational", "ization", "fulness", "iveness", "ations", "ation", "ingly", "ments",
             "ment", "ness", "ings", "ing", "edly", "ies", "ied", "ed", "es", "ly",
             "s")


# Irregular forms a suffix stripper cannot reach, folded to their base form first (past
# tenses and participles of common verbs, irregular plurals). Forms that are also other
# common words ("left", "rose", "saw") are left alone.
IRREGULAR = {
    "heard": "hear", "thought": "think", "went": "go", "gone": "go", "came": "come",
    "seen": "see", "made": "make", "took": "take", "taken": "take", "gave": "give",
    "given": "give", "found": "find", "knew": "know", "known": "know", "felt": "feel",
    "kept": "keep", "began": "begin", "begun": "begin", "ran": "run", "wrote": "write",
    "written": "write", "spoke": "speak", "spoken": "speak", "brought": "bring",
    "bought": "buy", "taught": "teach", "caught": "catch", "sold": "sell", "sent": "send",
    "spent": "spend", "built": "build", "paid": "pay", "meant": "mean", "met": "meet",
    "won": "win", "lost": "lose", "held": "hold", "stood": "stand",
    "understood": "understand", "sang": "sing", "sung": "sing", "drove": "drive",
    "driven": "drive", "chose": "choose", "chosen": "choose", "fell": "fall",
    "fallen": "fall", "grew": "grow", "grown": "grow", "drew": "draw", "drawn": "draw",
    "flew": "fly", "flown": "fly", "threw": "throw", "thrown": "throw", "wore": "wear",
    "worn": "wear", "broke": "break", "broken": "break", "forgot": "forget",
    "forgotten": "forget", "ate": "eat", "eaten": "eat", "hid": "hide", "hidden": "hide",
    "children": "child", "men": "man", "women": "woman", "feet": "foot", "teeth": "tooth",
    "mice": "mouse",
}


def stem(token: str) -> str:
    """A small, deterministic suffix stripper: enough to match country/countries, ask/asked.

    Only strips when at least three characters remain; folds a trailing 'y'/'i' so that
    'country' and 'countries' meet at 'countr'. A final '-er' stays: it is as often part
    of the word ('answer', 'number', 'order', whose '-ed' forms would otherwise get
    another stem) or an agent ('caller' is not 'call') as a comparative.
    """
    t = token.split("'")[0]
    t = IRREGULAR.get(t, t)
    for suffix in _SUFFIXES:
        if t.endswith(suffix) and len(t) - len(suffix) >= 3:
            t = t[: -len(suffix)]
            break
    if len(t) > 3 and t[-1] in "yie":
        t = t[:-1]
    if len(t) > 3 and t[-1] == t[-2] and t[-1] not in "aeiou":  # running -> runn -> run
        t = t[:-1]
    return t


def content_stems(text: str) -> list[str]:
    return [stem(t) for t in tokens(text) if t not in STOP_WORDS]


def prompt_keywords(prompt: str) -> tuple[str, ...]:
    """Distinct content stems of the prompt, in prompt order."""
    seen: dict[str, None] = {}
    for s in content_stems(prompt):
        seen.setdefault(s, None)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class Sentence:
    index: int
    first_word: int  # index into the transcript's words
    last_word: int  # inclusive
    start_us: int
    end_us: int
    text: str
    # the transcript sentence this one is part of (its own index, unless it is a clause
    # of a longer sentence: :func:`split_clauses`); -1 when not known
    whole: int = -1


def _sentence(words: tuple[Word, ...] | list[Word], index: int, first: int, last: int,
              whole: int) -> Sentence:
    seg = words[first : last + 1]
    return Sentence(index=index, first_word=first, last_word=last, start_us=seg[0].start_us,
                    end_us=max(x.end_us for x in seg), text=" ".join(x.text for x in seg),
                    whole=whole)


_TERMINAL = (".", "?", "!", "\u2026")


def split_sentences(
    words: tuple[Word, ...] | list[Word],
    *,
    max_gap_us: int = 2_000_000,
    max_len_us: int = 30_000_000,
) -> list[Sentence]:
    """Group words into sentences: end at terminal punctuation, a long pause, or a length cap."""
    out: list[Sentence] = []
    first = 0
    n = len(words)
    for i in range(n):
        w = words[i]
        last = i == n - 1
        ends = w.text.endswith(_TERMINAL)
        gap = (words[i + 1].start_us - w.end_us) if not last else 0
        too_long = (not last) and words[i + 1].end_us - words[first].start_us > max_len_us
        if last or ends or gap > max_gap_us or too_long:
            out.append(_sentence(words, len(out), first, i, len(out)))
            first = i + 1
    return out


_CLAUSE = (",", ";", ":", "\u2014")
CLAUSE_SPLIT_WORDS = 40  # a sentence of more words (~15 s of speech) is split at clauses
CLAUSE_MIN_WORDS = 4  # ... into clauses of at least this many words


def split_clauses(sentences: list[Sentence], words: tuple[Word, ...] | list[Word], *,
                  split_words: int = CLAUSE_SPLIT_WORDS, min_words: int = CLAUSE_MIN_WORDS
                  ) -> list[Sentence]:
    """Long sentences split at clause punctuation, so relevance and window edges can
    follow the clause that answers the prompt (a speech model often writes a whole
    paragraph as one sentence joined by commas). A sentence of up to ``split_words``
    words stays whole (a word count, not a duration, so word times that differ by a
    frame between machines never change the split); a longer one ends a clause after a
    word ending in ``, ; : —`` once the clause has ``min_words`` words and at least as
    many words remain. Re-indexed in order; each clause's ``whole`` is its sentence's."""
    out: list[Sentence] = []
    for s in sentences:
        if s.last_word - s.first_word + 1 <= split_words:
            out.append(_sentence(words, len(out), s.first_word, s.last_word, s.index))
            continue
        first = s.first_word
        for i in range(s.first_word, s.last_word):
            if (words[i].text.endswith(_CLAUSE) and i - first + 1 >= min_words
                    and s.last_word - i >= min_words):
                out.append(_sentence(words, len(out), first, i, s.index))
                first = i + 1
        out.append(_sentence(words, len(out), first, s.last_word, s.index))
    return out
