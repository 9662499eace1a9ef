"""The output timeline: segments quantised to frames and samples on the cumulative
timeline, grouped into parts (one writer each; crossfaded runs share one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from clipforge.edl import Reframe, Segment
from clipforge.errors import RenderError
from clipforge.render.loudness import AUDIO_RATE

NO_SEEK_BELOW_S = Fraction(1)  # closer to the start, decode from 0 and trim instead of -ss


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """One EDL segment: its frames/samples on the cumulative timeline, fades and gain.

    ``xfade_frames``/``xfade_samples``: overlap with the previous segment when this one
    enters with a crossfade (0 otherwise)."""

    index: int
    source_in: float
    frames: int
    samples: int
    fade_in_frames: int
    fade_out_frames: int
    fade_in_samples: int
    fade_out_samples: int
    gain_db: float
    xfade_frames: int = 0
    xfade_samples: int = 0
    limit_db: float | None = None  # the reel's limiter ceiling, the same for every segment
    reframe: Reframe | None = None  # the segment's virtual camera (``Segment.reframe``)


@dataclass(frozen=True, slots=True)
class PartPlan:
    """One writer process (one FIFO): a segment, or a run of segments joined by
    crossfades (``xfade`` + ``acrossfade`` need both sides in one filter graph)."""

    index: int
    segments: tuple[SegmentPlan, ...]
    frames: int  # output frames of the part (crossfade overlaps removed)
    samples: int

    @property
    def whole(self) -> SegmentPlan:
        """The part as one span: its exact length and the dips at its two ends."""
        first, last = self.segments[0], self.segments[-1]
        return SegmentPlan(
            index=self.index,
            source_in=first.source_in,
            frames=self.frames,
            samples=self.samples,
            fade_in_frames=first.fade_in_frames,
            fade_out_frames=last.fade_out_frames,
            fade_in_samples=first.fade_in_samples,
            fade_out_samples=last.fade_out_samples,
            gain_db=0.0,
        )


def _check_supported(segments: Sequence[Segment]) -> None:
    for i, seg in enumerate(segments):
        if seg.effects:
            kinds = ", ".join(e.type for e in seg.effects)
            raise RenderError(
                f"segment {i}: effects ({kinds}) are reserved and not supported yet; "
                "remove them from the EDL to render (reframing is `Segment.reframe`, burned "
                "captions are `captions.mode: burn`)."
            )


def plan_segments(
    segments: Sequence[Segment], fps: Fraction, global_gain: float = 0.0,
    limit_db: float | None = None,
) -> list[SegmentPlan]:
    """Frame and sample counts on the cumulative timeline, plus fades, crossfade overlaps
    and gains. A crossfade (or fade) on the first segment fades in from black."""
    if not segments:
        raise RenderError("the EDL has no segments: nothing to render.")
    _check_supported(segments)
    cum = Fraction(0)
    frame_marks = [0]
    for seg in segments:
        cum += Fraction(seg.source_out) - Fraction(seg.source_in)
        frame_marks.append(round(cum * fps))
    sample_marks = [round(Fraction(f) / fps * AUDIO_RATE) for f in frame_marks]
    frames = [b - a for a, b in zip(frame_marks, frame_marks[1:], strict=False)]
    samples = [b - a for a, b in zip(sample_marks, sample_marks[1:], strict=False)]
    for i, seg in enumerate(segments):
        if frames[i] <= 0:
            raise RenderError(
                f"segment {i} ({seg.source_in}-{seg.source_out} s) is shorter than one frame "
                f"at {fps} fps; lengthen or remove it."
            )

    def dip(j: int) -> tuple[int, int]:
        if j >= len(segments):
            return 0, 0
        tr = segments[j].transition_in
        if tr.type == "fade" or (tr.type == "crossfade" and j == 0):
            return round(Fraction(tr.duration) * fps), round(Fraction(tr.duration) * AUDIO_RATE)
        return 0, 0

    plans: list[SegmentPlan] = []
    for i, seg in enumerate(segments):
        fin_f, fin_s = dip(i)
        fout_f, fout_s = dip(i + 1)
        xf = xs = 0
        if seg.transition_in.type == "crossfade" and i > 0:
            limit = min(frames[i - 1], frames[i]) - 1
            if limit < 1:
                raise RenderError(
                    f"segment {i}: too short for a crossfade (needs at least 2 frames on "
                    "both sides); use a cut or lengthen the segments."
                )
            xf = max(1, min(limit, round(Fraction(seg.transition_in.duration) * fps)))
            xs = round(Fraction(xf) / fps * AUDIO_RATE)
        plans.append(
            SegmentPlan(
                index=i,
                source_in=seg.source_in,
                frames=frames[i],
                samples=samples[i],
                fade_in_frames=min(fin_f, frames[i]),
                fade_out_frames=min(fout_f, frames[i]),
                fade_in_samples=min(fin_s, samples[i]),
                fade_out_samples=min(fout_s, samples[i]),
                gain_db=round(global_gain + seg.gain_db, 2),
                xfade_frames=xf,
                xfade_samples=xs,
                limit_db=limit_db,
                reframe=seg.reframe,
            )
        )
    return plans


def plan_parts(
    segments: Sequence[Segment], fps: Fraction, global_gain: float = 0.0,
    limit_db: float | None = None,
) -> list[PartPlan]:
    """Group segments into writer parts (a new part at every cut or fade) and give each
    part its exact frame and sample count on the cumulative output timeline."""
    seg_plans = plan_segments(segments, fps, global_gain, limit_db)
    groups: list[list[SegmentPlan]] = []
    for plan in seg_plans:
        if plan.xfade_frames and groups:
            groups[-1].append(plan)
        else:
            groups.append([plan])
    part_frames = [sum(p.frames for p in g) - sum(p.xfade_frames for p in g) for g in groups]
    marks = [0]
    for f in part_frames:
        marks.append(marks[-1] + f)
    sample_marks = [round(Fraction(m) / fps * AUDIO_RATE) for m in marks]
    return [
        PartPlan(
            index=k,
            segments=tuple(g),
            frames=part_frames[k],
            samples=sample_marks[k + 1] - sample_marks[k],
        )
        for k, g in enumerate(groups)
    ]
