"""What selection works with: its parameters, the per-prompt context it reads, a scored
candidate window and a chosen pick with its cut points. A leaf module: the scoring and
merge (:mod:`clipforge.select`), the edge refinement after the merge
(:mod:`clipforge.refine`), edge moves (:mod:`clipforge.pauses`), reel plans
(:mod:`clipforge.plan`) and LLM picks all read these types."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .feedback.weights import DEFAULT_WEIGHTS, ScoreWeights
from .signals import AudioSignals
from .textanalysis import TextAnalysis
from .timeutil import s_to_us
from .transcribe import Transcript, Word

FILL_FLOOR = 0.3  # absolute text relevance every pick after the first must reach


@dataclass(frozen=True, slots=True)
class SelectionParams:
    target_us: int = 60_000_000
    min_clip_us: int = 3_000_000
    max_clip_us: int = 30_000_000
    chunk_us: int = 300_000_000
    overlap_us: int = 30_000_000
    lead_pad_us: int = 100_000
    tail_pad_us: int = 100_000
    min_relative: float = 0.35
    clips: int = 0  # 0: one reel filling target_us; N: the N best separate clips
    fill_floor: float = FILL_FLOOR
    frame_rate: str = ""  # source video frame rate ("30000/1001"); "" = no frame grid

    def to_json(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            out[k.removesuffix("_us") + ("_s" if k.endswith("_us") else "")] = (
                round(v / 1e6, 3) if k.endswith("_us") else v
            )
        return out

    @classmethod
    def for_target(cls, target_seconds: float, clips: int = 0, *,
                   chunk_seconds: float = 300.0, overlap_seconds: float = 30.0
                   ) -> SelectionParams:
        target = s_to_us(target_seconds)
        max_clip = target if clips else min(cls().max_clip_us, target)
        # Every window up to max_clip lies wholly inside some chunk iff overlap >= max_clip
        # (chunk k covers [k(C-O), k(C-O)+C]); so the overlap is raised to max_clip if needed.
        overlap = max(s_to_us(overlap_seconds), max_clip)
        chunk = max(s_to_us(chunk_seconds), 2 * overlap)
        return cls(target_us=target, max_clip_us=max_clip, clips=clips, chunk_us=chunk,
                   overlap_us=overlap)


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class Candidate:
    start_us: int  # first word's start
    end_us: int  # last word's end
    first_word: int
    last_word: int
    score: float
    keyword_density: float
    audio_energy: float
    matched: tuple[str, ...]
    text: str
    chunk: int = field(compare=False)
    evidence: tuple[tuple[str, float], ...] = field(default=(), compare=False)
    topics: tuple[int, ...] = field(default=(), compare=False)  # its sentences' topic ids

    def spanning(self, words: Sequence[Word], first: int, last: int) -> Candidate:
        """The same candidate (score, evidence) over ``words[first..last]``: its times and
        text follow the new edges."""
        return dataclasses.replace(
            self, first_word=first, last_word=last, start_us=words[first].start_us,
            end_us=max(w.end_us for w in words[first : last + 1]),
            text=" ".join(w.text for w in words[first : last + 1]))


@dataclass(frozen=True, slots=True)
class Pick:
    """A chosen candidate with its cut points (snapped into the gaps between words)."""

    candidate: Candidate
    cut_in_us: int
    cut_out_us: int
    short_reason: str = field(default="", compare=False)  # why the reel is under target


@dataclass(frozen=True, slots=True)
class Context:
    """Everything selection reads, prompt included; built once per selection."""

    transcript: Transcript
    text: TextAnalysis
    audio: AudioSignals
    keywords: frozenset[str]
    prompt_vec: np.ndarray | None
    visual: Any | None  # clipforge.visual.VisualTrack or None
    rate_ref: float  # the source's 95th-percentile speech rate (words/s)
    image_text_vec: np.ndarray | None = None  # the prompt in the image-text model's space
    relevance: tuple[float, ...] = ()  # per sentence: 1-(1-keyword)(1-semantic) on its own
    topic: tuple[int, ...] = ()  # per sentence: topic number (TextTiling; all 0 without)
    weights: ScoreWeights = DEFAULT_WEIGHTS  # the scoring weights in force (feedback loop)
    cosines: np.ndarray | None = None  # per sentence: cosine with the prompt (None: none)
    # per prompt keyword: its share of the prompt by inverse sentence frequency
    keyword_weights: Mapping[str, float] = field(default_factory=dict)
    part_relevance: tuple[float, ...] = ()  # per clause of ``text.parts``: its own relevance
    # transcript stem -> the prompt keyword the source never says that it sounds like
    keyword_aliases: Mapping[str, str] = field(default_factory=dict)
