"""On-topic edges: each sentence's own relevance, off-topic edge sentences, topic ids.

- ``sentence_relevance``: the window formula applied to one sentence (or clause),
  ``1 - (1 - keyword)(1 - semantic)`` (same constants as :mod:`clipforge.select`);
- ``keyword_weights`` / ``keyword_score``: the keyword part of that formula. The density
  of prompt stems in the span (full at 0.2) is scaled by how much of the prompt it covers,
  ``COVERAGE_BASE + (1 - COVERAGE_BASE) x coverage``, where coverage is the share of the
  prompt's keywords present, each weighted by its inverse sentence frequency in this
  source (``ln(1 + N / (1 + df))``; keywords the source never says are left out). Two
  common prompt words in a short line no longer score as high as the line that says most
  of the prompt, its rare words included;
- ``trimmable``: a window whose first or last sentence does not answer the prompt —
  relevance under ``max(EDGE_ABS, EDGE_REL x the window's best sentence)`` — is dropped
  when the window without that sentence still lasts ``min_clip``: that shorter window
  is a candidate too, so the longer one only pads with off-topic speech;
- ``sentence_topics``: topic number per sentence from TextTiling over the sentence
  embeddings (:mod:`clipforge.topics`), so windows can stop at a topic change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from . import soundalike, topics
from .text import Sentence

KEYWORD_FULL_DENSITY = 0.2
SEMANTIC_FLOOR = 0.1
SEMANTIC_SPAN = 0.5
COVERAGE_BASE = 0.5
EDGE_ABS = 0.1
EDGE_REL = 0.4
CLAUSE_LINK = 0.1  # a clause whose cosine with the one before is under this starts anew


def sentence_cosines(embeddings: np.ndarray, prompt_vec: np.ndarray | None,
                     part_cosines: np.ndarray | None = None,
                     part_owner: Sequence[int] = ()) -> np.ndarray:
    """Each row's cosine with the prompt (embeddings are L2-normalised); with
    ``part_cosines`` (the clauses' own cosines, from this function) and ``part_owner``
    (each clause's sentence), a sentence's is the larger of its own and its best
    clause's. Empty without embeddings or a prompt vector. Computed once per prompt: a
    window's cosine is their word-weighted mean (:func:`clipforge.select.window_cosine`)."""
    if prompt_vec is None or embeddings.ndim != 2 or embeddings.shape[1] == 0:
        return np.zeros(0, dtype=np.float32)
    cos = (embeddings @ prompt_vec).astype(np.float64)
    if part_cosines is not None and len(part_owner):
        np.maximum.at(cos, np.asarray(part_owner, dtype=np.int64), part_cosines)
    return cos


def semantic_score(cos: float) -> float:
    """A cosine with the prompt mapped to [0, 1]: ``clip((cos - 0.1) / 0.5, 0, 1)``."""
    return min(1.0, max(0.0, (cos - SEMANTIC_FLOOR) / SEMANTIC_SPAN))


def keyword_weights(sentences: Sequence[Sentence], stems: Sequence[str],
                    keywords: frozenset[str], aliases: Mapping[str, str] | None = None
                    ) -> dict[str, float]:
    """The weight of each prompt keyword the source says, summing to 1: its inverse
    sentence frequency in the source, ``ln(1 + N / (1 + df))``. Keywords the source never
    says are left out: no window can say them, so they would only scale every window's
    score down alike (and a misheard word would then cap what the rest can score).

    ``aliases`` (transcript stem -> the missing prompt keyword it sounds like,
    :func:`clipforge.soundalike.aliases`) bring such a keyword back, weighted by the
    sentences that say one of its sound-alikes; a window earns only
    :data:`clipforge.soundalike.CREDIT` of it (:func:`keyword_score`)."""
    aliases = aliases or {}
    owner = {a: k for a, k in aliases.items() if k in keywords} | {k: k for k in keywords}
    df = dict.fromkeys(keywords, 0)
    for s in sentences:
        for k in {owner[x] for x in stems[s.first_word : s.last_word + 1] if x in owner}:
            df[k] += 1
    n = len(sentences)
    idf = {k: math.log(1.0 + n / (1.0 + df[k])) for k in sorted(keywords) if df[k]}
    total = sum(idf.values())
    return {k: v / total for k, v in idf.items()}


def keyword_score(window: Sequence[str], weights: Mapping[str, float],
                  aliases: Mapping[str, str] | None = None) -> tuple[float, list[str]]:
    """(keyword relevance in [0, 1], the window's stems that are prompt keywords or their
    sound-alikes). A sound-alike counts :data:`clipforge.soundalike.CREDIT` of a word in
    the density and of its keyword's weight in the coverage."""
    aliases = aliases or {}
    credit: dict[str, float] = {}
    hits = []
    said = 0.0
    for x in window:
        if x in weights:
            k, c = x, 1.0
        elif aliases.get(x, "") in weights:
            k, c = aliases[x], soundalike.CREDIT
        else:
            continue
        hits.append(x)
        said += c
        credit[k] = max(credit.get(k, 0.0), c)
    if not hits:
        return 0.0, hits
    density = min(1.0, said / len(window) / KEYWORD_FULL_DENSITY)
    coverage = min(1.0, sum(weights[k] * credit[k] for k in sorted(credit)))
    return density * (COVERAGE_BASE + (1.0 - COVERAGE_BASE) * coverage), hits


def sentence_relevance(spans: Sequence[Sentence], stems: Sequence[str],
                       cosines: np.ndarray | None, weights: Mapping[str, float],
                       aliases: Mapping[str, str] | None = None) -> tuple[float, ...]:
    """Each span's own text relevance in [0, 1] (rounded to 1e-6), the window formula on
    that span alone; ``cosines`` from :func:`sentence_cosines`, row for row with
    ``spans`` (sentences, whose ``index`` is their row, or clauses; None or empty:
    keywords only); ``weights`` from :func:`keyword_weights`."""
    have = cosines is not None and cosines.size > 0
    out = []
    for k, s in enumerate(spans):
        kw, _ = keyword_score(stems[s.first_word : s.last_word + 1], weights, aliases)
        sem = semantic_score(float(cosines[k])) if have and cosines is not None else 0.0
        out.append(round(1.0 - (1.0 - kw) * (1.0 - sem), 6))
    return tuple(out)


def clause_links(parts: Sequence[Sentence], part_embeddings: np.ndarray) -> tuple[float, ...]:
    """Per clause: its cosine with the clause before it in the same sentence (1.0 for a
    sentence's first clause, or without embeddings): how much it continues that thought."""
    out = []
    for k, p in enumerate(parts):
        same = k > 0 and parts[k - 1].whole == p.whole and part_embeddings.shape[1] > 0
        out.append(round(float(part_embeddings[k] @ part_embeddings[k - 1]), 6) if same
                   else 1.0)
    return tuple(out)


def trim_span(first_word: int, last_word: int, sentences: Sequence[Sentence],
              parts: Sequence[Sentence], relevance: Sequence[float],
              part_relevance: Sequence[float], part_link: Sequence[float],
              min_clip_us: int) -> tuple[int, int]:
    """The word span ``first_word..last_word`` without the trailing clauses of its last
    sentence that start another thought (``part_link``, from :func:`clause_links`, under
    ``CLAUSE_LINK``) and do not answer the prompt (own relevance under ``max(EDGE_ABS,
    EDGE_REL x the span's best sentence)``, the rule :func:`trimmable` applies to whole
    sentences); the span keeps ``min_clip_us`` and the sentence's first clause. Both
    tests, because a clause alone can miss what the sentence means: "ask what you can do
    for your country." scores 0.02 for "the famous presidential line about patriotism",
    but continues the clause before it (cosine 0.65); "on the bottom right you can see
    the time." after "... including commercial uses," does not (-0.02). Only the end: a
    clip that ends after a whole clause sounds finished, one that starts mid-sentence
    ("including commercial uses, ...", "you know, they all call me ...") has lost its
    subject. A span that does not start and end on sentence edges is returned as it is."""
    inside = [s for s in sentences if s.first_word >= first_word and s.last_word <= last_word]
    if not inside or inside[0].first_word != first_word or inside[-1].last_word != last_word:
        return first_word, last_word
    floor = max(EDGE_ABS, EDGE_REL * max(relevance[s.index] for s in inside))
    before = max((s.end_us for s in inside[:-1]), default=0)  # the earlier sentences' end
    w1 = last_word
    tail = [k for k, p in enumerate(parts) if p.whole == inside[-1].index]
    while (len(tail) > 1 and part_relevance[tail[-1]] < floor
           and part_link[tail[-1]] < CLAUSE_LINK
           and max([before] + [parts[k].end_us for k in tail[:-1]]) - inside[0].start_us
           >= min_clip_us):
        w1 = parts[tail.pop()].first_word - 1
    return first_word, w1


def trimmable(relevance: Sequence[float], sents: Sequence[Sentence], min_clip_us: int) -> bool:
    """True when the window ``sents`` has an off-topic edge sentence that can go."""
    if not relevance or len(sents) < 2:
        return False
    rel = [relevance[s.index] for s in sents]
    floor = max(EDGE_ABS, EDGE_REL * max(rel))
    if rel[0] < floor and sents[-1].end_us - sents[1].start_us >= min_clip_us:
        return True
    return rel[-1] < floor and sents[-2].end_us - sents[0].start_us >= min_clip_us


def sentence_topics(sentences: Sequence[Sentence], embeddings: np.ndarray) -> tuple[int, ...]:
    """Topic number per sentence (TextTiling); () without embeddings."""
    if not sentences or embeddings.ndim != 2 or embeddings.shape[1] == 0:
        return ()
    weights = np.array([s.last_word - s.first_word + 1 for s in sentences], np.float64)
    return topics.topic_ids(len(sentences), topics.topic_boundaries(embeddings, weights))
