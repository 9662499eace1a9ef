"""Prompt-independent text analysis, cached with the transcript: sentences (long ones
split at clauses), their embeddings, the clauses of sentences that have several (embedded
in the same batch) and how each continues the one before, and one stem per word.
Selection (:mod:`clipforge.select`) reads it for every prompt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import edges
from .text import STOP_WORDS, Sentence, split_clauses, split_sentences, stem, tokens
from .transcribe import Transcript, Word


@dataclass(frozen=True, slots=True)
class TextAnalysis:
    """Prompt-independent text analysis, cached with the transcript."""

    sentences: tuple[Sentence, ...]
    embeddings: np.ndarray  # (n_sentences, d) float32, L2-normalised; d=0 when disabled
    stems: tuple[str, ...]  # one per word, '' for stop words
    # the clauses of sentences that have two or more (:func:`sentence_parts`; each one's
    # ``whole`` is its sentence's index), embedded like the sentences, row for row
    part_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    parts: tuple[Sentence, ...] = ()
    part_link: tuple[float, ...] = ()  # per clause: cosine with the clause before it

    @property
    def part_owner(self) -> tuple[int, ...]:
        return tuple(p.whole for p in self.parts)


def sentence_parts(sentences: tuple[Sentence, ...], words: tuple[Word, ...]
                   ) -> list[Sentence]:
    """The clauses (at ``, ; : —``, each of at least CLAUSE_MIN_WORDS words) of every
    sentence that has two or more; ``whole`` is the owning sentence's index. A sentence
    answers the prompt as well as its best clause: a speech model often joins a relevant
    clause to unrelated words, or mishears the words around it, and the mean embedding
    of the whole drowns it (see :func:`clipforge.edges.sentence_cosines`)."""
    out: list[Sentence] = []
    for s in sentences:
        clauses = split_clauses([s], words, split_words=0)  # each clause's whole: s.index
        if len(clauses) > 1:
            out.extend(clauses)
    return out


def analyse_text(transcript: Transcript, embed: Callable[[list[str]], np.ndarray] | None
                 ) -> TextAnalysis:
    sentences = tuple(split_clauses(split_sentences(transcript.words), transcript.words))
    stems = tuple(word_stems(transcript.words))
    if embed is None or not sentences:
        return TextAnalysis(sentences, np.zeros((len(sentences), 0), dtype=np.float32), stems)
    parts = sentence_parts(sentences, transcript.words)
    vectors = embed([s.text for s in sentences] + [p.text for p in parts])  # one batch
    part_vectors = vectors[len(sentences):]
    return TextAnalysis(sentences, vectors[: len(sentences)], stems, part_vectors,
                        tuple(parts), edges.clause_links(parts, part_vectors))


def word_stems(words: tuple[Word, ...]) -> list[str]:
    """One stem per word ('' for stop words and empty tokens), aligned with ``words``."""
    out = []
    for w in words:
        toks = [t for t in tokens(w.text) if t not in STOP_WORDS]
        out.append(stem(toks[0]) if toks else "")
    return out
