"""Flow parameters and results as pydantic models (the Prefect UI draws a form from these)."""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, Field, field_validator

CAPTION_MODES = ("burn", "sidecar", "off")


class ClipRequest(BaseModel):
    """One clipping job: a source, a prompt, and where the EDL and reel go."""

    video: str = Field(description="Path of the source video or audio file.")
    prompt: str = Field(
        min_length=1, max_length=500,
        description="What to find, in plain language, e.g. 'the part about pricing'.",
    )
    out_dir: str = Field(description="Folder for edl.json and highlights.mp4.")
    target_seconds: float = Field(default=60.0, ge=5, le=3600, description="Reel length.")
    clips: int = Field(
        default=0, ge=0, le=50,
        description="0: one reel of target_seconds. N: the N best moments as separate clips "
        "(shorts), each up to target_seconds long.",
    )
    render: bool = Field(default=True, description="Render the video (off: EDL only).")
    tonemap: bool = Field(default=False, description="Tone-map HDR input to SDR BT.709.")
    aspect: str = Field(
        default="source",
        description="Output aspect: 9:16, 4:5, 1:1, 16:9, or source (no reframing).")
    layout: str = Field(
        default="auto",
        description="Reframing layout per shot: auto, track, static, split or fit.")
    captions: str | None = Field(
        default=None,
        description="burn, sidecar or off. Empty or auto: sidecar files always, burned in "
        "when the output is vertical.")
    job_id: int | None = Field(
        default=None, ge=1,
        description="Run an existing job row (claimed from the backlog). Empty: a new job.",
    )

    @field_validator("prompt")
    @classmethod
    def _clean_prompt(cls, v: str) -> str:
        if any(unicodedata.category(ch) == "Cc" for ch in v if ch not in "\t"):
            raise ValueError("the prompt may not contain control characters")
        v = " ".join(v.split())
        if not v:
            raise ValueError("the prompt is empty")
        return v

    @field_validator("aspect")
    @classmethod
    def _aspect_ok(cls, v: str) -> str:
        from clipforge.errors import ClipforgeError
        from clipforge.reframe import parse_aspect

        try:
            return parse_aspect(v, what="aspect") or "source"
        except ClipforgeError as exc:  # the message names the allowed values
            raise ValueError(exc.message) from None

    @field_validator("layout")
    @classmethod
    def _layout_ok(cls, v: str) -> str:
        from clipforge.errors import ClipforgeError
        from clipforge.reframe import parse_layout

        try:
            return parse_layout(v)
        except ClipforgeError as exc:
            raise ValueError(exc.message) from None

    @field_validator("captions")
    @classmethod
    def _captions_ok(cls, v: str | None) -> str | None:
        if v is None or v in ("", "auto"):
            return None
        if v not in CAPTION_MODES:
            raise ValueError(f"captions {v!r}: use one of {', '.join(CAPTION_MODES)}")
        return v

    @field_validator("video", "out_dir")
    @classmethod
    def _path_ok(cls, v: str) -> str:
        if not v.strip() or "\x00" in v:
            raise ValueError("not a usable path")
        return v


class HighlightSummary(BaseModel):
    rank: int
    start: float
    end: float
    score: float
    text: str


class ClipResult(BaseModel):
    job_id: int
    edl_path: str
    video_path: str | None
    clip_paths: list[str] = []
    source_duration_s: float
    reel_duration_s: float
    wall_seconds: float
    cached_stages: list[str]
    resumed_from: str | None = None
    notes: list[str] = []
    files: list[str] = []  # editor hand-off and caption sidecars
    highlights: list[HighlightSummary]

    @property
    def realtime_ratio(self) -> float:
        """processing_time / source_duration (lower is faster)."""
        return self.wall_seconds / self.source_duration_s if self.source_duration_s else 0.0
