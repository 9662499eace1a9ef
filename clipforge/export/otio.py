"""The EDL as an OpenTimelineIO timeline: the editor hand-off's one model.

Every writer (``.otio``, FCP7 XML) starts from the timeline built here, and the cut
points come from the renderer's own plan (``clipforge.render.plan_segments``), so the
timeline lasts exactly as many frames as the rendered MP4.

Frame model (rate = ``edl.output.fps``; every time is a whole frame at that rate):

- the source is one ``ExternalReference`` (``target_url`` = ``edl.source.uri``,
  available range = the source duration in frames);
- segment ``i`` uses the source frames ``[s_i, s_i + n_i)`` where
  ``s_i = round(source_in * fps)`` and ``n_i`` is the renderer's frame count;
- a **crossfade** of ``x`` frames (the renderer overlaps the last ``x`` frames of the
  outgoing segment with the first ``x`` of the incoming one) is an OTIO ``Transition``
  (``SMPTE_Dissolve``) centred on the cut: ``in_offset = x // 2``,
  ``out_offset = x - x // 2``; both clips are trimmed by their side of it so the media
  under the dissolve is the media the renderer blended;
- a **fade** (dip to black: the outgoing segment fades out over its own last frames,
  the incoming one fades in over its own first frames, no overlap) is a dissolve into
  black and one out of black: ``Clip, Transition(in=out_frames, out=0), Gap(0),
  Transition(in=0, out=in_frames), Clip`` -- a transition against a ``Gap`` is OTIO's
  (and CMX/FCP's) fade to/from black. A fade or crossfade on the first segment is
  ``Gap(0), Transition(in=0, out=n), Clip``. The FCP7 writer turns these into
  ``end-black`` / ``start-black`` Cross Dissolves;
- every highlight becomes a ``Marker`` on the clip it overlaps most (source frames,
  clamped to the clip), metadata ``clipforge`` = rank, score, prompt, text, clip_id;
  highlights that no segment plays are listed in the timeline's metadata;
- captions (optional cues in reel frames) are markers on a track named ``Captions``
  that holds one ``Gap`` as long as the reel: OTIO has no subtitle schema, markers keep
  each cue's text and frame range, and the gap keeps the track well formed without
  changing the timeline's duration;
- a segment's reframe path (``segment.model_dump()["reframe"]``) and its EDL
  ``effects`` become ``Effect`` objects on the clip with the data in metadata.

With ``--clips`` EDLs each clip is its own timeline (matching ``clip_NN.mp4``), and the
document is a ``SerializableCollection`` of them, best first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import opentimelineio as otio

from clipforge.edl import Edl, Highlight, Segment
from clipforge.errors import ExportError, RenderError
from clipforge.render import plan_segments

NAMESPACE = "clipforge"
CAPTIONS_TRACK = "Captions"


@dataclass(frozen=True, slots=True)
class CaptionCue:
    """One caption on the reel: ``frames`` frames from ``start_frame`` (output fps)."""

    start_frame: int
    frames: int
    text: str


class _CueLike(Protocol):
    start_frame: int
    text: str


CueInput = CaptionCue | tuple[int, int, str] | _CueLike
Captions = Sequence[CueInput] | Mapping[int, Sequence[CueInput]]


def _cue(c: CueInput) -> CaptionCue:
    if isinstance(c, CaptionCue):
        return c
    if isinstance(c, tuple):
        start, frames, text = c
        return CaptionCue(int(start), int(frames), str(text))
    n = getattr(c, "frames", None)
    if n is None:
        n = getattr(c, "duration_frames", None)
    if n is None:
        raise ExportError(f"caption cue {c!r} has no frames/duration_frames.")
    return CaptionCue(int(c.start_frame), int(n), str(c.text))


@dataclass(frozen=True, slots=True)
class _Cut:
    """One segment on the timeline: its source frames and the dissolves at its ends."""

    index: int
    segment: Segment
    src_start: int  # first source frame the renderer shows
    frames: int  # frames the renderer shows (before crossfade overlaps are shared)
    head: int  # frames of the segment under the previous crossfade, before the cut
    tail: int  # frames of the segment under the next crossfade, after the cut
    xfade_in: int  # crossfade overlap with the previous segment (0: none)
    fade_in: int  # dip from black at the start (0: none)
    fade_out: int  # dip to black at the end (0: none)

    @property
    def clip_start(self) -> int:
        return self.src_start + self.head

    @property
    def clip_frames(self) -> int:
        return self.frames - self.head - self.tail


def _cuts(segments: Sequence[Segment], fps: Fraction) -> list[_Cut]:
    # the renderer refuses effects today; the frame plan does not depend on them
    plain = [s.model_copy(update={"effects": []}) for s in segments]
    try:
        plans = plan_segments(plain, fps)
    except RenderError as exc:
        raise ExportError(f"the EDL cannot be laid out in frames: {exc.message}") from exc
    heads = [p.xfade_frames // 2 for p in plans]
    tails = [0] * len(plans)
    for i in range(1, len(plans)):
        tails[i - 1] = plans[i].xfade_frames - heads[i]
    return [
        _Cut(
            index=i,
            segment=seg,
            src_start=round(Fraction(seg.source_in) * fps),
            frames=p.frames,
            head=heads[i],
            tail=tails[i],
            xfade_in=p.xfade_frames,
            fade_in=p.fade_in_frames,
            fade_out=p.fade_out_frames,
        )
        for i, (seg, p) in enumerate(zip(segments, plans, strict=True))
    ]


def _rt(frames: int, rate: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, rate)


def _range(start: int, frames: int, rate: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_rt(start, rate), _rt(frames, rate))


def _transition(name: str, kind: str, before: int, after: int, rate: float,
                seconds: float) -> otio.schema.Transition:
    return otio.schema.Transition(
        name=name,
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=_rt(before, rate),
        out_offset=_rt(after, rate),
        metadata={NAMESPACE: {"type": kind, "edl_duration": seconds,
                              "frames": before + after}},
    )


def _effects(seg: Segment) -> list[otio.schema.Effect]:
    out = []
    reframe = seg.model_dump(mode="json").get("reframe")
    if reframe is not None:
        out.append(otio.schema.Effect(
            name="reframe", effect_name="clipforge.reframe",
            metadata={NAMESPACE: {"reframe": reframe}},
        ))
    for k, eff in enumerate(seg.model_dump(mode="json")["effects"]):
        out.append(otio.schema.Effect(
            name=f"{eff['type']}_{k}", effect_name=f"clipforge.{eff['type']}",
            metadata={NAMESPACE: {"effect": eff}},
        ))
    return out


def _highlight_meta(h: Highlight, prompt: str) -> dict[str, Any]:
    dumped = h.model_dump(mode="json")
    return {"rank": h.rank, "score": h.score, "prompt": prompt, "text": h.text,
            "clip_id": dumped.get("clip_id"), "start": h.start, "end": h.end}


def _marker_for(h: Highlight, cuts: Sequence[_Cut], fps: Fraction, rate: float,
                prompt: str) -> tuple[int, otio.schema.Marker] | None:
    a, b = round(Fraction(h.start) * fps), round(Fraction(h.end) * fps)
    best: tuple[int, int] | None = None  # (overlap, cut index)
    for c in cuts:
        lo, hi = max(a, c.clip_start), min(b, c.clip_start + c.clip_frames)
        if hi > lo and (best is None or hi - lo > best[0]):
            best = (hi - lo, c.index)
    if best is None:
        return None
    c = cuts[best[1]]
    lo = max(a, c.clip_start)
    marker = otio.schema.Marker(
        name=f"#{h.rank} score {h.score:.3f}",
        marked_range=_range(lo, best[0], rate),
        color=otio.schema.MarkerColor.GREEN,
        metadata={NAMESPACE: _highlight_meta(h, prompt), "fcp_xml": {"comment": h.text}},
    )
    return c.index, marker


def _media(edl: Edl, fps: Fraction, rate: float) -> otio.schema.ExternalReference:
    return otio.schema.ExternalReference(
        target_url=edl.source.uri,
        available_range=_range(0, round(Fraction(edl.source.duration) * fps), rate),
    )


def _track(kind: str, name: str, cuts: Sequence[_Cut], edl: Edl, fps: Fraction,
           rate: float, markers: Mapping[int, list[otio.schema.Marker]]) -> otio.schema.Track:
    track = otio.schema.Track(name=name, kind=kind)
    for c in cuts:
        tr = c.segment.transition_in
        if c.xfade_in:
            track.append(_transition("crossfade", "crossfade", c.xfade_in // 2,
                                     c.xfade_in - c.xfade_in // 2, rate, tr.duration))
        elif c.fade_in:
            if c.index > 0:
                prev = cuts[c.index - 1]
                track.append(_transition("fade to black", "fade", prev.fade_out, 0, rate,
                                         tr.duration))
            track.append(otio.schema.Gap(source_range=_range(0, 0, rate)))
            track.append(_transition("fade from black", "fade", 0, c.fade_in, rate,
                                     tr.duration))
        clip = otio.schema.Clip(
            name=f"segment {c.index + 1}",
            media_reference=_media(edl, fps, rate),
            source_range=_range(c.clip_start, c.clip_frames, rate),
            metadata={NAMESPACE: {"segment": c.index, "source_in": c.segment.source_in,
                                  "source_out": c.segment.source_out,
                                  "gain_db": c.segment.gain_db}},
        )
        if kind == otio.schema.TrackKind.Video:
            clip.effects.extend(_effects(c.segment))
            clip.markers.extend(m.clone() for m in markers.get(c.index, []))
        track.append(clip)
    return track


def _captions_track(cues: Sequence[CueInput], total: int, rate: float,
                    name: str) -> otio.schema.Track:
    track = otio.schema.Track(name=CAPTIONS_TRACK, kind=otio.schema.TrackKind.Video)
    track.append(otio.schema.Gap(source_range=_range(0, total, rate)))
    for k, raw in enumerate(cues):
        cue = _cue(raw)
        if cue.start_frame < 0 or cue.frames < 0 or cue.start_frame + cue.frames > total:
            raise ExportError(
                f"{name}: caption {k + 1} ({cue.start_frame}+{cue.frames} frames) lies "
                f"outside the reel's {total} frames; build cues from the same EDL."
            )
        track.markers.append(otio.schema.Marker(
            name=f"caption {k + 1}",
            marked_range=_range(cue.start_frame, cue.frames, rate),
            color=otio.schema.MarkerColor.CYAN,
            metadata={NAMESPACE: {"caption": cue.text}, "fcp_xml": {"comment": cue.text}},
        ))
    return track


def _timeline(edl: Edl, segments: Sequence[Segment], name: str,
              cues: Sequence[CueInput] | None) -> otio.schema.Timeline:
    fps = Fraction(edl.output.fps)
    rate = float(fps)
    cuts = _cuts(segments, fps)
    markers: dict[int, list[otio.schema.Marker]] = {}
    unplaced = []
    for h in edl.highlights:
        found = _marker_for(h, cuts, fps, rate, edl.prompt)
        if found is None:
            unplaced.append(h.rank)
        else:
            markers.setdefault(found[0], []).append(found[1])
    total = sum(c.clip_frames for c in cuts)
    tl = otio.schema.Timeline(name=name, metadata={NAMESPACE: {
        "edl_version": edl.version, "prompt": edl.prompt, "source_uri": edl.source.uri,
        "source_sha256": edl.source.sha256, "fps": edl.output.fps,
        "width": edl.output.width, "height": edl.output.height, "frames": total,
        "highlights_not_in_timeline": unplaced,
    }})
    tl.tracks.append(_track(otio.schema.TrackKind.Video, "V1", cuts, edl, fps, rate, markers))
    tl.tracks.append(_track(otio.schema.TrackKind.Audio, "A1", cuts, edl, fps, rate, markers))
    if cues is not None:
        tl.tracks.append(_captions_track(cues, total, rate, name))
    return tl


def _clip_cues(captions: Captions | None, rank: int) -> Sequence[CueInput] | None:
    if captions is None:
        return None
    if not isinstance(captions, Mapping):
        raise ExportError("a --clips EDL takes captions as a mapping {clip rank: cues}.")
    return captions.get(rank)


def to_otio(edl: Edl, captions: Captions | None = None, *,
            clip_rank: int | None = None) -> otio.schema.Timeline:
    """The reel (or, with ``clip_rank``, one clip of a ``--clips`` EDL) as a timeline."""
    if clip_rank is None:
        if edl.clips:
            ranks = ", ".join(str(c.rank) for c in edl.clips)
            raise ExportError(f"this EDL holds separate clips (ranks {ranks}): pass "
                              "clip_rank, or use to_otio_document for all of them.")
        if isinstance(captions, Mapping):
            raise ExportError("a reel EDL takes captions as one list of cues.")
        return _timeline(edl, edl.segments, "highlights", captions)
    for ref in edl.clips:
        if ref.rank == clip_rank:
            return _timeline(edl, [edl.segments[ref.segment]], f"clip_{ref.rank:02d}",
                             _clip_cues(captions, ref.rank))
    raise ExportError(f"the EDL has no clip of rank {clip_rank}.")


def to_otio_document(edl: Edl, captions: Captions | None = None
                     ) -> otio.schema.Timeline | otio.schema.SerializableCollection:
    """What an export file holds: the reel's timeline, or one timeline per clip."""
    if not edl.clips:
        return to_otio(edl, captions)
    return otio.schema.SerializableCollection(
        name="highlights",
        children=[to_otio(edl, captions, clip_rank=c.rank) for c in edl.clips],
    )


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder."""
    path = Path(path).expanduser().resolve()
    if not path.parent.is_dir():
        raise ExportError(f"{path}: the output folder does not exist; create it first.")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def otio_bytes(edl: Edl, captions: Captions | None = None) -> bytes:
    text = otio.adapters.write_to_string(to_otio_document(edl, captions), "otio_json")
    return (text.rstrip("\n") + "\n").encode()


def write_otio(edl: Edl, path: Path, captions: Captions | None = None) -> Path:
    """Write the ``.otio`` (OTIO JSON) for ``edl``; same EDL, same bytes."""
    return write_atomic(Path(path), otio_bytes(edl, captions))
