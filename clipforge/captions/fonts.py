"""libass substitutes a missing font silently: detect it before burning captions.

A tiny lavfi render with ``-loglevel verbose`` makes libass log its font choice,
``fontselect: (Inter, 700, 0) -> /usr/share/fonts/.../Inter-Bold.otf, 0, Inter-Bold``;
when the chosen face is not the requested family, the font is missing. Checked once per
process per (font, weight, fontsdir).
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
from pathlib import Path

from clipforge import ffmpeg
from clipforge.captions.ass import caption_filter
from clipforge.errors import ConfigError

DEBIAN_PACKAGES = {"inter": "fonts-inter", "roboto": "fonts-roboto",
                   "dejavusans": "fonts-dejavu-core", "notosans": "fonts-noto-core"}
_FONTSELECT = re.compile(r"fontselect: \((?P<req>.*), (?P<w>\d+), (?P<i>\d+)\) -> "
                         r"(?P<path>.*), (?P<idx>\d+), (?P<ps>\S*)\s*$")


class FontMissingError(ConfigError):
    """The caption font is not installed: libass would draw another one."""

    code = "font_missing"

    def __init__(self, message: str, font: str, substitute: str | None) -> None:
        super().__init__(message)
        self.font = font
        self.substitute = substitute


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def parse_fontselect(stderr: str, font: str) -> list[tuple[str, str]]:
    """``(path, postscript name)`` libass chose for requests of ``font``, in log order."""
    found = []
    for line in stderr.splitlines():
        m = _FONTSELECT.search(line)
        if m and _norm(m.group("req")) == _norm(font):
            found.append((m.group("path"), m.group("ps")))
    return found


def _is_family(font: str, path: str, ps: str) -> bool:
    want = _norm(font)
    return _norm(ps).startswith(want) or _norm(Path(path).stem).startswith(want)


def _probe_ass(font: str, bold: bool) -> str:
    return (
        "[Script Info]\nScriptType: v4.00+\nPlayResX: 64\nPlayResY: 64\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        f"Style: P,{font},20,&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,"
        f"{-1 if bold else 0},0,0,0,100,100,0,0,1,1,0,2,0,0,0,1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, "
        "Text\nDialogue: 0,0:00:00.00,0:00:01.00,P,,0,0,0,,Ag\n"
    )


@functools.lru_cache(maxsize=32)
def check_font(font: str, bold: bool = True, fontsdir: str | None = None) -> str:
    """Return the font file libass uses for ``font``; raise :class:`FontMissingError`
    when it would substitute another family (or finds none)."""
    tmp = Path(tempfile.mkdtemp(prefix="clipforge-font-"))
    try:
        ass = tmp / "probe.ass"
        ass.write_text(_probe_ass(font, bold), encoding="utf-8")
        vf = caption_filter(ass, fontsdir)
        proc = ffmpeg.run([
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "verbose",
            "-f", "lavfi", "-i", "color=c=black:s=64x64:r=25:d=0.04",
            "-vf", vf, "-frames:v", "1", "-f", "null", "-",
        ], timeout=60)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stderr = proc.stderr.decode("utf-8", errors="replace")
    chosen = parse_fontselect(stderr, font)
    if chosen and _is_family(font, *chosen[0]):
        return chosen[0][0]
    substitute = chosen[0][0] if chosen else None
    package = DEBIAN_PACKAGES.get(_norm(font))
    remedy = (f"install it (`make system-deps`, or `apt-get install {package}`)" if package
              else "install it system-wide (fontconfig) or put its file in the fontsdir")
    where = f" (fontsdir {fontsdir})" if fontsdir else ""
    got = f"libass would silently substitute {substitute}" if substitute else \
        "libass found no font at all"
    raise FontMissingError(
        f"caption font {font!r}{where} is not installed: {got}. Remedy: {remedy}, "
        "or choose another font in the caption style preset.", font, substitute)
