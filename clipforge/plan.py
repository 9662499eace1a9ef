"""Turn ranked picks into the EDL: highlights ranked best first, segments in playback order."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from .edl import ClipRef, Edl, EdlOutput, EdlSource, Evidence, Highlight, Segment
from .picks import Pick
from .refine import MERGE_GAP_US, MERGE_PAUSE_US, follows_on
from .timeutil import us_to_s


def fps_str(fps: Fraction) -> str:
    return f"{fps.numerator}" if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def segments_from_picks(picks: list[Pick], merge_gap_us: int = MERGE_GAP_US,
                        merge_pause_us: int = MERGE_PAUSE_US) -> list[tuple[int, int]]:
    """Chronological cut ranges. Picks that overlap, touch or lie closer than
    ``merge_gap_us`` become one segment (the short stretch between them is kept), and so
    do picks whose words follow on with no word between them, closer than
    ``merge_pause_us``: all the cut would take out is the pause between two words, and it
    would cut twice where the speech model's word times are least sure (a word it
    collapsed to no length gives the cut no room, so the cut can land in the word)."""
    ranges = sorted((p.cut_in_us, p.cut_out_us, p.candidate.first_word,
                     p.candidate.last_word) for p in picks)
    merged: list[list[int]] = []
    for start, end, first, last in ranges:
        if merged and follows_on(merged[-1][1], merged[-1][2], start, first,
                                 merge_gap_us=merge_gap_us, merge_pause_us=merge_pause_us):
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = max(merged[-1][2], last)
        else:
            merged.append([start, end, last])
    return [(a, b) for a, b, _ in merged]


def build_edl(
    *,
    source_path: str,
    sha256: str,
    duration_us: int,
    prompt: str,
    picks: list[Pick],
    width: int,
    height: int,
    fps: Fraction,
    loudness_lufs: float,
    true_peak_db: float,
    selection: dict[str, Any],
    clips: bool = False,
) -> Edl:
    highlights = [
        Highlight(
            rank=i,
            start=us_to_s(p.cut_in_us),
            end=us_to_s(p.cut_out_us),
            score=round(p.candidate.score, 6),
            text=p.candidate.text,
            evidence=Evidence(
                keyword_density=round(p.candidate.keyword_density, 6),
                audio_energy=round(p.candidate.audio_energy, 6),
                matched_keywords=list(p.candidate.matched),
                chunk=p.candidate.chunk,
                **dict(p.candidate.evidence),
            ),
        )
        for i, p in enumerate(picks, start=1)
    ]
    clip_refs: list[ClipRef] = []
    if clips:  # each pick is its own clip; segments in playback order
        order = sorted(range(len(picks)), key=lambda i: picks[i].cut_in_us)
        ranges = [(picks[i].cut_in_us, picks[i].cut_out_us) for i in order]
        clip_refs = [ClipRef(rank=r + 1, segment=order.index(r)) for r in range(len(picks))]
    else:
        ranges = segments_from_picks(picks)
    segments = [Segment(source_in=us_to_s(a), source_out=us_to_s(b)) for a, b in ranges]
    short = next((p.short_reason for p in picks if p.short_reason), "")
    if short:  # the reel is under its target: say why, next to the settings
        selection = {**selection, "short_reason": short}
    return Edl(
        source=EdlSource(
            uri=Path(source_path).resolve().as_uri(),
            sha256=sha256,
            duration=us_to_s(duration_us),
        ),
        prompt=prompt,
        output=EdlOutput(
            width=width,
            height=height,
            fps=fps_str(fps),
            loudness_lufs=loudness_lufs,
            true_peak_db=true_peak_db,
        ),
        selection=selection,
        highlights=highlights,
        segments=segments,
        clips=clip_refs,
    )
