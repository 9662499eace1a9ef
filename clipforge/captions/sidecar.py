"""Sidecar subtitles: ``highlights.srt`` / ``highlights.vtt`` with line-level cues (one
cue per caption group, not per word), written with pysubs2, times in reel time.

Cues are monotonic, never overlap and end inside the reel (they come from the same word
states as the burned captions, rounded to milliseconds from whole frames).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pysubs2

from clipforge.captions.reeltime import ReelWord, frame_to_ms, reel_length, reel_words
from clipforge.captions.style import CaptionStyle, load_style
from clipforge.edl import ClipRef, Edl, Segment

_ASS_WHITESPACE = re.compile(r"\\([nNh])")


@dataclass(frozen=True, slots=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str


def line_cues(words: Sequence[ReelWord], fps: Fraction, style: CaptionStyle,
              reel_end: int) -> list[Cue]:
    """One cue per caption group (the burned captions' groups), in reel milliseconds."""
    from clipforge.captions.ass import word_states

    cues: list[Cue] = []
    for st in word_states(words, style, fps, reel_end):
        if st.lit == 0:
            cues.append(Cue(frame_to_ms(st.start, fps), frame_to_ms(st.end, fps),
                            " ".join(" ".join(w.split()) for w in st.words)))
        else:  # later states of the same group extend its cue
            last = cues[-1]
            cues[-1] = Cue(last.start_ms, frame_to_ms(st.end, fps), last.text)
    return [c for c in cues if c.end_ms > c.start_ms]


def _plain(text: str, vtt: bool) -> str:
    # pysubs2 turns \N, \n and \h into whitespace even with keep_ssa_tags: break them
    text = _ASS_WHITESPACE.sub("\\\\\u2060\\1", text).replace("-->", "->")
    if vtt:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _write(cues: Sequence[Cue], path: Path, fmt: str) -> Path:
    subs = pysubs2.SSAFile()
    for c in cues:
        subs.append(pysubs2.SSAEvent(start=c.start_ms, end=c.end_ms,
                                     text=_plain(c.text, fmt == "vtt")))
    # keep_ssa_tags: the text is already plain; braces in speech must stay
    path.write_text(subs.to_string(fmt, keep_ssa_tags=True), encoding="utf-8")
    return path


def cues_for(edl: Edl, segments: Sequence[Segment], fps: Fraction,
             style_name: str | None = None) -> list[Cue]:
    name = style_name or (edl.captions.style if edl.captions else "default")
    style = load_style(name, edl.output.width, edl.output.height)
    words = reel_words(edl.words, segments, fps)
    return line_cues(words, fps, style, reel_length(segments, fps))


def write_sidecars(edl: Edl, fps: Fraction, out_dir: Path, stem: str = "highlights",
                   *, style_name: str | None = None,
                   segments: Sequence[Segment] | None = None) -> list[Path]:
    """``OUT_DIR/STEM.srt`` and ``OUT_DIR/STEM.vtt`` for the reel of ``segments``
    (default: all of ``edl.segments``), from ``edl.words``."""
    out_dir = Path(out_dir)
    cues = cues_for(edl, segments if segments is not None else edl.segments, fps, style_name)
    return [_write(cues, out_dir / f"{stem}.srt", "srt"),
            _write(cues, out_dir / f"{stem}.vtt", "vtt")]


def clip_segments(edl: Edl, clip: ClipRef) -> list[Segment]:
    """A ``--clips`` clip's timeline on its own: its segment, entering with a plain cut,
    so its reel time starts at 0."""
    seg = edl.segments[clip.segment]
    return [seg.model_copy(update={"transition_in": type(seg.transition_in)()})]


def clip_sidecars(edl: Edl, fps: Fraction, out_dir: Path, *,
                  style_name: str | None = None) -> list[Path]:
    """With ``--clips``: ``clip_01.srt``/``.vtt``... one pair per clip (rank order), each
    clip being ``edl.segments[clip.segment]`` alone, so times start at 0."""
    paths: list[Path] = []
    for clip in sorted(edl.clips, key=lambda c: c.rank):
        paths += write_sidecars(edl, fps, out_dir, f"clip_{clip.rank:02d}",
                                style_name=style_name, segments=clip_segments(edl, clip))
    return paths
