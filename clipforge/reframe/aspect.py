"""Output aspect: parse ``9:16|4:5|1:1|16:9|source`` and size the reframed output.

The output is the source crop scaled to a standard size for the aspect (1080x1920 for
9:16), never larger than the crop the source allows (a 640x360 source at 9:16 gives a
202x360 crop, rendered at 202x360, not upscaled). Sizes are even (4:2:0 chroma).
"""

from __future__ import annotations

from fractions import Fraction

from ..errors import AspectError

ALLOWED = ("9:16", "4:5", "1:1", "16:9", "source")
STANDARD_SIZE: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920), "4:5": (1080, 1350), "1:1": (1080, 1080), "16:9": (1920, 1080),
}
SAME_ASPECT_TOLERANCE = Fraction(1, 100)  # relative: within 1 % the source is not cropped


def parse_aspect(value: str, *, what: str = "--aspect") -> str | None:
    """The canonical aspect string, or None for ``source`` (today's behaviour).

    Raises ``AspectError`` naming the allowed values for anything else."""
    v = str(value).strip().lower().replace("x", ":").replace("/", ":")
    if v == "source":
        return None
    if v in STANDARD_SIZE:
        return v
    raise AspectError(
        f"{what} {value!r} is not a supported aspect ratio; use one of {', '.join(ALLOWED)} "
        "(width:height, e.g. 9:16 for vertical shorts)."
    )


def ratio(aspect: str) -> Fraction:
    w, h = aspect.split(":")
    return Fraction(int(w), int(h))


def _even(x: float | Fraction) -> int:
    return max(2, int(x) // 2 * 2)


def same_aspect(src_w: int, src_h: int, aspect: str) -> bool:
    """The source (display geometry) already has the asked aspect: no crop needed."""
    target = ratio(aspect)
    return abs(Fraction(src_w, src_h) - target) <= target * SAME_ASPECT_TOLERANCE


def crop_size(src_w: int, src_h: int, aspect: str) -> tuple[int, int]:
    """The largest even crop of ``aspect`` inside a ``src_w x src_h`` display frame."""
    r = ratio(aspect)
    if Fraction(src_w, src_h) >= r:  # source wider: full height
        return _even(src_h * r), _even(src_h)
    return _even(src_w), _even(src_w / r)


def output_size(aspect: str, src_w: int | None = None, src_h: int | None = None,
                ) -> tuple[int, int]:
    """Output size for ``aspect``: the standard size, shrunk (never enlarged) to the crop
    of a ``src_w x src_h`` source; the standard size for an audio-only source (None)."""
    std_w, std_h = STANDARD_SIZE[aspect]
    if src_w is None or src_h is None:
        return std_w, std_h
    if same_aspect(src_w, src_h, aspect):
        cw, ch = _even(src_w), _even(src_h)
    else:
        cw, ch = crop_size(src_w, src_h, aspect)
    if cw <= std_w and ch <= std_h:
        return cw, ch
    if cw >= std_w and ch >= std_h:  # the even-rounded crop differs from the aspect by < 0.2 %
        return std_w, std_h
    scale = min(Fraction(std_w, cw), Fraction(std_h, ch))
    return _even(cw * scale), _even(ch * scale)
