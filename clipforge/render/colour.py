"""Output format and input colour: the canvas an EDL renders to, and the range/matrix/
primaries/transfer of a source (tagged or assumed). See :mod:`clipforge.render`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from clipforge.probe import MediaInfo, VideoInfo


@dataclass(frozen=True, slots=True)
class OutputFormat:
    width: int
    height: int
    fps: Fraction


def _even_floor(x: float) -> int:
    return max(2, int(math.floor(x + 1e-9)) // 2 * 2)


def output_format_for(
    info: MediaInfo, max_width: int = 1280, max_height: int = 720
) -> OutputFormat:
    """Output canvas for ``info``: display aspect kept, fitted in the box, never upscaled,
    even dimensions; fps = source fps if within 1..60 else 30. Audio-only: the box at 30."""
    if info.video is None:
        return OutputFormat(_even_floor(max_width), _even_floor(max_height), _FALLBACK_FPS)
    v = info.video
    dw, dh = v.display_width, v.display_height
    scale = min(Fraction(1), Fraction(max_width, dw), Fraction(max_height, dh))
    fps = v.fps if Fraction(1) <= v.fps <= Fraction(60) else _FALLBACK_FPS
    return OutputFormat(_even_floor(float(dw * scale)), _even_floor(float(dh * scale)), fps)


def _fit(dw: int, dh: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Largest even size with aspect dw:dh inside box_w x box_h."""
    scale = min(Fraction(box_w, dw), Fraction(box_h, dh))
    return min(box_w, _even_floor(float(dw * scale))), min(box_h, _even_floor(float(dh * scale)))


@dataclass(frozen=True, slots=True)
class ColourIn:
    """The source colour description after defaults for untagged values."""

    range: str  # tv | pc
    matrix: str  # FFmpeg colorspace name
    primaries: str
    transfer: str
    assumed: bool  # True if any value was defaulted


_SDR_TRANSFERS = {
    "bt709",
    "smpte170m",
    "bt470m",
    "bt470bg",
    "smpte240m",
    "linear",
    "iec61966-2-1",
    "bt2020-10",
    "bt2020-12",
    "log100",
    "smpte2084",
    "arib-std-b67",
}
# values FFmpeg's setparams and zscale both accept (checked with FFmpeg 5.1); anything else
# is treated as untagged
_MATRICES = {"bt709", "smpte170m", "bt470bg", "bt2020nc", "bt2020c", "fcc", "smpte240m", "ycgco"}
_PRIMARIES = {
    "bt709", "smpte170m", "bt470bg", "bt470m", "bt2020", "smpte240m", "film",
    "smpte428", "smpte431", "smpte432", "jedec-p22",
}  # fmt: skip
_RGB_PREFIXES = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr", "pal8")


def _is_rgb(pix_fmt: str) -> bool:
    return pix_fmt.startswith(_RGB_PREFIXES)


def input_colour(video: VideoInfo) -> ColourIn:
    """Source colour with defaults: BT.709 for coded height >= 720, SMPTE 170M below;
    limited range unless tagged ``pc`` or the pixel format is ``yuvj*``."""
    hd = video.height >= 720
    default = "bt709" if hd else "smpte170m"
    if _is_rgb(video.pix_fmt):
        # RGB sources (PNG/GIF/ProRes 4444 RGB ...): no matrix, full range
        primaries = video.color_primaries if video.color_primaries in _PRIMARIES else None
        transfer = video.color_transfer if video.color_transfer in _SDR_TRANSFERS else None
        return ColourIn(
            range="pc",
            matrix="gbr",
            primaries=primaries or "bt709",
            transfer=transfer or "bt709",
            assumed=primaries is None or transfer is None,
        )
    assumed = False
    if video.color_range in ("tv", "pc"):
        rng = video.color_range
    else:
        rng = "pc" if video.pix_fmt.startswith("yuvj") else "tv"
        assumed = True
    matrix = video.color_space if video.color_space in _MATRICES else None
    primaries = video.color_primaries if video.color_primaries in _PRIMARIES else None
    transfer = video.color_transfer if video.color_transfer in _SDR_TRANSFERS else None
    if matrix is None or primaries is None or transfer is None:
        assumed = True
    return ColourIn(
        range=rng,
        matrix=matrix or default,
        primaries=primaries or default,
        transfer=transfer or "bt709",
        assumed=assumed,
    )


_FALLBACK_FPS = Fraction(30)
