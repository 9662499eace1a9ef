"""The EDL contract: a pydantic model, its JSON Schema, and byte-stable serialisation.

`highlights` is ranked best first; `segments` is the timeline in playback order.
Times are seconds in the source. Nothing run-specific (wall-clock times, output
paths) belongs here: the same input, prompt and settings give the same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_PATH = Path(__file__).parent / "schemas" / "edl.schema.json"
EDL_VERSION = "1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EdlSource(_Strict):
    uri: str = Field(description="file:// URI of the source as given to clipforge.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    duration: float = Field(gt=0, description="Source duration, seconds.")


class EdlOutput(_Strict):
    width: int = Field(ge=16, le=8192)
    height: int = Field(ge=16, le=8192)
    fps: str = Field(
        pattern=r"^[1-9][0-9]*(/[1-9][0-9]*)?$", description="Rational, e.g. 30000/1001."
    )
    loudness_lufs: float = Field(le=0)
    true_peak_db: float = Field(default=-1.0, le=0)


class Evidence(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    keyword_density: float = Field(ge=0)
    audio_energy: float = Field(ge=0, le=1)
    visual: float | None = Field(default=None, ge=0, le=1)
    matched_keywords: list[str] = Field(
        default_factory=list, description="Prompt stems found in the highlight's words."
    )
    chunk: int | None = Field(default=None, ge=0, description="Transcript chunk it came from.")


class Highlight(_Strict):
    rank: int = Field(ge=1)
    start: float = Field(ge=0)
    end: float = Field(gt=0)
    score: float = Field(ge=0)
    text: str
    evidence: Evidence
    clip_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{32}$",
        description="Stable id of the clip (source sha256 + cut points + settings); also in "
        "the rendered MP4's comment tag, so an uploaded file can be traced back.")

    @model_validator(mode="after")
    def _ordered(self) -> Highlight:
        if self.end <= self.start:
            raise ValueError(f"highlight {self.rank}: end {self.end} <= start {self.start}")
        return self


class Transition(_Strict):
    type: Literal["cut", "fade", "crossfade"] = "cut"
    duration: float = Field(default=0.0, ge=0, le=5)

    @model_validator(mode="after")
    def _cut_has_no_duration(self) -> Transition:
        if self.type == "cut" and self.duration != 0:
            raise ValueError("a 'cut' transition has duration 0")
        if self.type != "cut" and self.duration <= 0:
            raise ValueError(f"a '{self.type}' transition needs a duration > 0")
        return self


class Effect(_Strict):
    """Reserved for crop (vertical reframing) and captions."""

    type: Literal["crop", "captions"]
    params: dict[str, Any] = Field(default_factory=dict)


class Keyframe(_Strict):
    """One point of a crop path; the crop is linear in time between keyframes (a hard
    cut is two keyframes 1 ms apart)."""

    t: float = Field(ge=0, description="Source time, seconds (rounded to 1e-6).")
    cx: float = Field(description="Crop centre x, source display pixels.")
    cy: float = Field(description="Crop centre y, source display pixels.")
    w: float = Field(gt=0, description="Crop width, source display pixels.")
    h: float = Field(gt=0, description="Crop height, source display pixels.")


class ReframeShot(_Strict):
    start: float = Field(ge=0, description="Shot start within the segment, source seconds.")
    end: float = Field(gt=0, description="Shot end, source seconds.")
    layout: Literal["track", "static", "split", "fit"] = Field(
        description="track: follow the subject; static: one crop; split: two stacked "
        "crops (split_keyframes); fit: the whole frame over a blurred copy of itself.")


class Reframe(_Strict):
    """Vertical (or other aspect) reframing of one segment: the virtual camera as data."""

    aspect: Literal["9:16", "4:5", "1:1", "16:9"] = Field(description="Output aspect.")
    layout: Literal["track", "static", "split", "fit"] = Field(
        description="The segment's main layout (the longest shot's); per shot in `shots`.")
    width: int = Field(ge=2, description="Output width, px (even).")
    height: int = Field(ge=2, description="Output height, px (even).")
    cropped: bool = Field(default=True, description="False: the source already has the "
                          "aspect and is only scaled.")
    shots: list[ReframeShot] = Field(default_factory=list)
    keyframes: list[Keyframe] = Field(
        default_factory=list, description="Single-crop path over the whole segment "
        "(used by track/static shots).")
    split_keyframes: list[list[Keyframe]] = Field(
        default_factory=list, description="Empty, or [top, bottom] crop paths (each "
        "half the output height) used by split shots.")


class Segment(_Strict):
    source_in: float = Field(ge=0)
    source_out: float = Field(gt=0)
    gain_db: float = Field(default=0.0, ge=-60, le=24)
    transition_in: Transition = Field(default_factory=Transition)
    effects: list[Effect] = Field(default_factory=list)
    reframe: Reframe | None = Field(
        default=None, description="Reframing to another aspect; None: the source aspect.")

    @model_validator(mode="after")
    def _ordered(self) -> Segment:
        if self.source_out <= self.source_in:
            raise ValueError(f"segment out {self.source_out} <= in {self.source_in}")
        return self


class ClipRef(_Strict):
    """With ``--clips N``: one separate clip (short), ranked; it plays ``segments[segment]``."""

    rank: int = Field(ge=1)
    segment: int = Field(ge=0)


class EdlWord(_Strict):
    """A transcript word inside the segments, in source seconds (rounded to 1e-6), so
    captions and sidecars can be exported from ``edl.json`` without re-analysis."""

    start: float = Field(ge=0)
    end: float = Field(gt=0)
    text: str


class EdlCaptions(_Strict):
    """How captions are delivered: ``burn`` (libass, plus sidecars), ``sidecar`` (SRT/VTT
    only) or ``off``; ``style`` names a preset in ``clipforge/presets/captions.json``."""

    mode: Literal["burn", "sidecar", "off"] = "sidecar"
    style: str = "default"


class Edl(_Strict):
    version: Literal["1"] = "1"
    source: EdlSource
    prompt: str
    output: EdlOutput
    selection: dict[str, Any] = Field(
        default_factory=dict, description="The selection settings that produced this EDL."
    )
    highlights: list[Highlight]
    segments: list[Segment]
    clips: list[ClipRef] = Field(
        default_factory=list,
        description="Empty: the segments form one reel. Otherwise each entry is a separate "
        "clip, best first.",
    )
    words: list[EdlWord] = Field(
        default_factory=list,
        description="Transcript words inside the segments (source time), for captions.",
    )
    captions: EdlCaptions | None = Field(
        default=None, description="Caption settings; absent in EDLs written before captions."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Edl:
        ranks = [h.rank for h in self.highlights]
        if ranks != list(range(1, len(ranks) + 1)):
            raise ValueError(f"highlight ranks must be 1..n in order, got {ranks}")
        for clip in self.clips:
            if clip.segment >= len(self.segments):
                raise ValueError(f"clip {clip.rank} refers to a missing segment {clip.segment}")
        for seg in self.segments:
            if seg.source_out > self.source.duration + 1e-3:
                raise ValueError(
                    f"segment out {seg.source_out} is past the source duration "
                    f"{self.source.duration}"
                )
        return self

    @property
    def duration(self) -> float:
        return sum(s.source_out - s.source_in for s in self.segments)


def edl_to_bytes(edl: Edl) -> bytes:
    """Canonical serialisation: fixed field order, 2-space indent, trailing newline."""
    data = edl.model_dump(mode="json")
    for seg in data["segments"]:  # no reframing: the bytes of EDLs written before it existed
        if seg.get("reframe") is None:
            seg.pop("reframe", None)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


def load_edl(path: Path) -> Edl:
    return Edl.model_validate_json(Path(path).read_bytes())


def json_schema() -> dict[str, Any]:
    schema = Edl.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "clipforge-edl-v1"
    return schema


def schema_bytes() -> bytes:
    return (json.dumps(json_schema(), indent=2, sort_keys=True) + "\n").encode()


if __name__ == "__main__":  # python -m clipforge.edl --write-schema
    if sys.argv[1:] == ["--write-schema"]:
        SCHEMA_PATH.write_bytes(schema_bytes())
        print(f"wrote {SCHEMA_PATH}")
    else:
        sys.stdout.buffer.write(schema_bytes())
