"""On-topic edges: each sentence's own relevance, off-topic edge sentences, topic ids.

- ``sentence_relevance``: the window formula applied to one sentence,
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

from . import topics
from .text import Sentence

KEYWORD_FULL_DENSITY = 0.2
SEMANTIC_FLOOR = 0.1
SEMANTIC_SPAN = 0.5
COVERAGE_BASE = 0.5
EDGE_ABS = 0.1
EDGE_REL = 0.4


def sentence_cosines(embeddings: np.ndarray, prompt_vec: np.ndarray | None,
                     part_embeddings: np.ndarray | None = None,
                     part_owner: Sequence[int] = ()) -> np.ndarray:
    """Each sentence's cosine with the prompt (embeddings are L2-normalised): the larger
    of the whole sentence's and its best clause's (``part_embeddings``, one row per
    clause, ``part_owner`` its sentence); empty without embeddings or a prompt vector.
    Computed once per prompt: a window's cosine is their word-weighted mean
    (:func:`clipforge.select.window_cosine`)."""
    if prompt_vec is None or embeddings.ndim != 2 or embeddings.shape[1] == 0:
        return np.zeros(0, dtype=np.float32)
    cos = (embeddings @ prompt_vec).astype(np.float64)
    if part_embeddings is not None and len(part_owner):
        owner = np.asarray(part_owner, dtype=np.int64)
        np.maximum.at(cos, owner, (part_embeddings @ prompt_vec).astype(np.float64))
    return cos


def keyword_weights(sentences: Sequence[Sentence], stems: Sequence[str],
                    keywords: frozenset[str]) -> dict[str, float]:
    """The weight of each prompt keyword the source says, summing to 1: its inverse
    sentence frequency in the source, ``ln(1 + N / (1 + df))``. Keywords the source never
    says are left out: no window can say them, so they would only scale every window's
    score down alike (and a misheard word would then cap what the rest can score)."""
    df = dict.fromkeys(keywords, 0)
    for s in sentences:
        for k in set(stems[s.first_word : s.last_word + 1]) & keywords:
            df[k] += 1
    n = len(sentences)
    idf = {k: math.log(1.0 + n / (1.0 + df[k])) for k in sorted(keywords) if df[k]}
    total = sum(idf.values())
    return {k: v / total for k, v in idf.items()}


def keyword_score(window: Sequence[str], weights: Mapping[str, float]) -> tuple[float, list[str]]:
    """(keyword relevance in [0, 1], the window's stems that are prompt keywords)."""
    hits = [x for x in window if x in weights]
    if not hits:
        return 0.0, hits
    density = min(1.0, len(hits) / len(window) / KEYWORD_FULL_DENSITY)
    coverage = min(1.0, sum(weights[k] for k in sorted(set(hits))))
    return density * (COVERAGE_BASE + (1.0 - COVERAGE_BASE) * coverage), hits


def sentence_relevance(sentences: Sequence[Sentence], stems: Sequence[str],
                       cosines: np.ndarray, weights: Mapping[str, float]) -> tuple[float, ...]:
    """Each sentence's own text relevance in [0, 1] (rounded to 1e-6); ``cosines`` from
    :func:`sentence_cosines` (empty: keywords only); ``weights`` from
    :func:`keyword_weights`."""
    out = []
    for s in sentences:
        kw, _ = keyword_score(stems[s.first_word : s.last_word + 1], weights)
        sem = 0.0
        if cosines.size:
            cos = float(cosines[s.index])
            sem = min(1.0, max(0.0, (cos - SEMANTIC_FLOOR) / SEMANTIC_SPAN))
        out.append(round(1.0 - (1.0 - kw) * (1.0 - sem), 6))
    return tuple(out)


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
