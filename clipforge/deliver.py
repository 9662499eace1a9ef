"""What a publishable clip needs beyond its cut list, as plain functions over the EDL.

- ``finish_edl``: the planned EDL plus the transcript words its segments play (for
  captions), the caption settings, the virtual-camera path of each segment when a new
  aspect is asked, the output size that goes with it, a stable ``clip_id`` per highlight
  and the scoring-weights version. A pure function of its inputs: the same analysis,
  prompt and settings give the same EDL bytes.
- ``write_handoff``: the editor hand-off next to ``edl.json`` (``highlights.otio``, an
  FCP7 ``highlights.xml``), captions as cues, crop paths as effect metadata.
- ``write_captions``: ``highlights.srt``/``.vtt`` (or ``clip_NN.*``) beside the videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from .captions import clip_sidecars, words_for_edl, write_sidecars
from .captions.sidecar import clip_segments
from .captions.sidecar import cues_for as caption_cues
from .edl import Edl, EdlCaptions
from .feedback.record import highlight_clip_id
from .feedback.weights import ScoreWeights
from .probe import MediaInfo
from .reframe import FaceTrack, parse_aspect, plan_reframe
from .timeutil import s_to_us
from .transcribe import Word

HANDOFF_FILES = ("highlights.otio", "highlights.xml")


def caption_mode(asked: str | None, width: int, height: int) -> str:
    """``asked``, or the default: burned in for vertical output, sidecar files otherwise."""
    if asked:
        return asked
    return "burn" if height > width else "sidecar"


def clip_settings(edl: Edl, *, aspect: str, layout: str, captions: str) -> dict[str, Any]:
    """What, besides the source and the cut points, makes a clip this clip (its id)."""
    return {"prompt": edl.prompt, "width": edl.output.width, "height": edl.output.height,
            "fps": edl.output.fps, "aspect": aspect, "layout": layout, "captions": captions}


def finish_edl(edl: Edl, *, info: MediaInfo, words: Sequence[Word], aspect: str, layout: str,
               captions: str | None, faces: FaceTrack | None, weights: ScoreWeights) -> Edl:
    """The planned EDL made publishable (see the module docstring)."""
    segments = list(edl.segments)
    output = edl.output
    canon = parse_aspect(aspect)
    if canon is not None:
        video = info.video
        src_w, src_h = (video.display_width, video.display_height) if video else (0, 0)
        fps = Fraction(edl.output.fps)
        track = faces if faces is not None else FaceTrack(  # no video: nobody to follow
            0, 0, 5, 40_000, info.duration_us, (), (), ())
        cuts = track.cuts_us
        segments = [
            seg.model_copy(update={"reframe": plan_reframe(
                (s_to_us(seg.source_in), s_to_us(seg.source_out)), track, cuts, words,
                canon, layout, src_w, src_h, fps)})
            for seg in segments
        ]
        first = segments[0].reframe if segments else None
        if first is not None:
            output = output.model_copy(update={"width": first.width, "height": first.height})
    mode = caption_mode(captions, output.width, output.height)
    selection = {**edl.selection, "weights_version": weights.version,
                 "weights": weights.name}
    finished = edl.model_copy(update={
        "segments": segments, "output": output, "selection": selection,
        "words": words_for_edl(words, segments) if mode != "off" else [],
        "captions": EdlCaptions(mode=mode),  # type: ignore[arg-type]
    })
    settings = clip_settings(finished, aspect=aspect, layout=layout, captions=mode)
    highlights = [h.model_copy(update={"clip_id": highlight_clip_id(edl.source.sha256, h,
                                                                     settings)})
                  for h in finished.highlights]
    # validate the whole document once (model_copy does not)
    return Edl.model_validate(finished.model_copy(update={"highlights": highlights})
                              .model_dump())


def _frames(cues: Sequence[Any], fps: Fraction) -> list[tuple[int, int, str]]:
    out = []
    for c in cues:
        start = round(Fraction(c.start_ms, 1000) * fps)
        out.append((start, max(1, round(Fraction(c.end_ms, 1000) * fps) - start), c.text))
    return out


def handoff_cues(edl: Edl) -> Any:
    """Caption cues in reel frames for the editor hand-off (per clip with ``--clips``)."""
    if not edl.words or edl.captions is None or edl.captions.mode == "off":
        return None
    fps = Fraction(edl.output.fps)
    if not edl.clips:
        return _frames(caption_cues(edl, edl.segments, fps), fps)
    out = {}
    for c in edl.clips:
        out[c.rank] = _frames(caption_cues(edl, clip_segments(edl, c), fps), fps)
    return out


def write_handoff(edl: Edl, out_dir: Path) -> list[Path]:
    """``highlights.otio`` and an FCP7 ``highlights.xml`` for an editor."""
    from .export import write_fcp7, write_otio

    cues = handoff_cues(edl)
    return [write_otio(edl, out_dir / HANDOFF_FILES[0], cues),
            write_fcp7(edl, out_dir / HANDOFF_FILES[1], cues)]


def write_captions(edl: Edl, out_dir: Path) -> list[Path]:
    """SRT and VTT sidecars (one pair per clip with ``--clips``); none when captions are off."""
    if edl.captions is None or edl.captions.mode == "off" or not edl.words:
        return []
    fps = Fraction(edl.output.fps)
    if edl.clips:
        return list(clip_sidecars(edl, fps, out_dir))
    return list(write_sidecars(edl, fps, out_dir))
