"""Caption style presets: ``clipforge/presets/captions.json`` (or a JSON file of the same
shape). Sizes and margins are fractions of the output frame, so one preset serves 9:16
and 16:9; ``size`` is the font size as a fraction of the frame height, ``outline`` a
fraction of the font size."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clipforge.errors import ConfigError

PRESETS_PATH = Path(__file__).resolve().parent.parent / "presets" / "captions.json"
_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True, slots=True)
class CaptionStyle:
    """A resolved style for one output size (pixels, ASS colours)."""

    name: str
    font: str
    bold: bool
    font_size: int
    primary: str  # ASS &HAABBGGRR
    highlight: str
    outline_colour: str
    outline: float
    shadow: float
    alignment: int  # ASS numpad: 2 bottom centre, 5 middle, 8 top
    margin_l: int
    margin_r: int
    margin_v: int
    max_chars: int
    max_words: int
    pause_s: float
    hold_s: float
    width: int
    height: int


def ass_colour(hex_rgb: str) -> str:
    """``#RRGGBB`` -> ASS ``&H00BBGGRR`` (opaque)."""
    r, g, b = hex_rgb[1:3], hex_rgb[3:5], hex_rgb[5:7]
    return f"&H00{b}{g}{r}".upper()


def is_vertical(width: int, height: int) -> bool:
    return height > width


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: caption presets unreadable ({exc}); fix or restore the "
                          "file (clipforge ships clipforge/presets/captions.json).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: caption presets must be a JSON object of named styles.")
    return data


def load_style(name: str, width: int, height: int, *, path: Path | None = None) -> CaptionStyle:
    """The preset ``name`` resolved for a ``width`` x ``height`` output."""
    presets_path = path or PRESETS_PATH
    presets = _load(presets_path)
    if name not in presets:
        raise ConfigError(f"{presets_path}: no caption style {name!r}; choose one of "
                          f"{', '.join(sorted(presets))}.")
    p = presets[name]
    orient: Literal["vertical", "horizontal"] = (
        "vertical" if is_vertical(width, height) else "horizontal"
    )
    try:
        for key in ("primary", "highlight", "outline_colour"):
            if not _HEX.match(p[key]):
                raise ValueError(f"{key} must be #RRGGBB, got {p[key]!r}")
        size = max(8, round(float(p["size"][orient]) * height))
        margins = p["margins"][orient]
        position = p.get("position", "bottom")
        alignment = {"bottom": 2, "middle": 5, "top": 8}[position]
        margin_v = margins["top"] if position == "top" else margins["bottom"]
        return CaptionStyle(
            name=name,
            font=str(p["font"]),
            bold=bool(p.get("bold", True)),
            font_size=size,
            primary=ass_colour(p["primary"]),
            highlight=ass_colour(p["highlight"]),
            outline_colour=ass_colour(p["outline_colour"]),
            outline=round(float(p["outline"]) * size, 1),
            shadow=round(float(p.get("shadow", 0.0)) * size, 1),
            alignment=alignment,
            margin_l=round(float(margins["side"]) * width),
            margin_r=round(float(margins["side"]) * width),
            margin_v=0 if position == "middle" else round(float(margin_v) * height),
            max_chars=int(p["max_chars"][orient]),
            max_words=max(1, min(3, int(p.get("max_words", 3)))),
            pause_s=float(p.get("pause_s", 0.35)),
            hold_s=float(p.get("hold_s", 0.3)),
            width=width,
            height=height,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{presets_path}: caption style {name!r} is invalid ({exc}); "
                          "compare it with the 'default' style.") from exc
