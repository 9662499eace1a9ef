"""What to record in the ``clip`` table after a render (pure: no database here).

:func:`clip_rows` turns an EDL's highlights into :class:`ClipRow` s; the flow passes them
to :meth:`clipforge.clip_store.ClipStore.record_clips`. The feature vector is what the
score used, read from each highlight's evidence:

``keyword``, ``semantic``, ``text``, ``energy`` (the evidence's ``audio_energy``),
``bursts``, ``pitch_var``, ``speech_rate``, ``delivery``, ``visual`` (None without video),
``llm`` (only when an LLM scored it), ``duration_s`` and ``position`` (the highlight's
middle as a fraction of the source duration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clipforge.edl import Edl, Highlight
from clipforge.timeutil import s_to_us

from .ids import clip_id

FEATURE_KEYS = ("keyword", "semantic", "text", "energy", "bursts", "pitch_var",
                "speech_rate", "delivery", "visual", "duration_s", "position")


@dataclass(frozen=True, slots=True)
class ClipRow:
    clip_id: str
    job_id: int | None
    source_sha256: str
    rank: int
    start_us: int
    end_us: int
    output_name: str | None
    features: dict[str, float | None]
    weights_version: int
    settings: dict[str, Any] = field(default_factory=dict)


def highlight_clip_id(sha256: str, highlight: Highlight, settings: Mapping[str, Any]) -> str:
    """The clip id of one EDL highlight (from its millisecond EDL times)."""
    return clip_id(sha256, s_to_us(highlight.start), s_to_us(highlight.end), settings)


def features(highlight: Highlight, source_duration_s: float) -> dict[str, float | None]:
    """The feature vector of one highlight (see the module docstring)."""
    ev = highlight.evidence.model_dump()

    def num(key: str, default: float | None = 0.0) -> float | None:
        v = ev.get(key)
        return default if v is None else round(float(v), 6)

    out: dict[str, float | None] = {
        "keyword": num("keyword"), "semantic": num("semantic"), "text": num("text"),
        "energy": num("audio_energy"), "bursts": num("bursts"),
        "pitch_var": num("pitch_var"), "speech_rate": num("speech_rate"),
        "delivery": num("delivery"), "visual": num("visual", None),
    }
    if ev.get("llm") is not None:
        out["llm"] = num("llm")
    out["duration_s"] = round(highlight.end - highlight.start, 3)
    mid = (highlight.start + highlight.end) / 2
    out["position"] = round(min(1.0, mid / source_duration_s), 6) if source_duration_s else 0.0
    return out


def clip_rows(edl: Edl, *, job_id: int | None, settings: Mapping[str, Any],
              output_names: Mapping[int, str] | str | None, weights_version: int
              ) -> list[ClipRow]:
    """One row per highlight, in rank order.

    ``settings``: what, besides the source and the cut points, makes this clip this clip
    (e.g. prompt, output size/fps, reframing and caption settings) — the same mapping
    used for the EDL's ``highlights[].clip_id``. ``output_names``: the published file
    name per highlight rank (``--clips N``), one name for all (a reel), or None.
    """
    rows = []
    for h in edl.highlights:
        if isinstance(output_names, str) or output_names is None:
            name = output_names
        else:
            name = output_names.get(h.rank)
        rows.append(ClipRow(
            clip_id=highlight_clip_id(edl.source.sha256, h, settings),
            job_id=job_id, source_sha256=edl.source.sha256, rank=h.rank,
            start_us=s_to_us(h.start), end_us=s_to_us(h.end), output_name=name,
            features=features(h, edl.source.duration), weights_version=weights_version,
            settings=dict(settings),
        ))
    return rows
