"""Burned captions: word groups, an ASS document for libass, and the FFmpeg filter step.

Each group of 1-3 words is shown as a run of contiguous Dialogue events, one per word
state, the spoken word in the highlight colour (not ``\\k`` karaoke, which leaves spoken
words lit). Times are whole reel frames converted to ASS centiseconds rounded *down*:
FFmpeg hands libass each frame's time in (truncated) milliseconds, and flooring keeps
every event starting on its own frame, never the one before (fps up to 60).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from clipforge.captions.reeltime import ReelWord
from clipforge.captions.style import CaptionStyle

_BREAK_AFTER = (".", ",", "!", "?", ";", ":", "…", "—")
_WORD_JOINER = "\u2060"


@dataclass(frozen=True, slots=True)
class WordState:
    """One event: frames ``[start, end)``, the group's words, the one highlighted."""

    start: int
    end: int
    words: tuple[str, ...]
    lit: int


def group_words(words: Sequence[ReelWord], style: CaptionStyle, fps: Fraction
                ) -> list[list[ReelWord]]:
    """Split reel words into caption groups of at most ``style.max_words`` words and
    ``style.max_chars`` characters (one long word stays alone), breaking after
    punctuation, at pauses longer than ``style.pause_s`` and at segment changes."""
    pause = round(Fraction(style.pause_s) * fps)
    groups: list[list[ReelWord]] = []
    cur: list[ReelWord] = []
    for w in words:
        if cur:
            prev = cur[-1]
            chars = len(" ".join(x.text for x in cur)) + 1 + len(w.text)
            if (len(cur) >= style.max_words or chars > style.max_chars
                    or prev.text.endswith(_BREAK_AFTER) or w.start - prev.end > pause
                    or w.segment != prev.segment):
                groups.append(cur)
                cur = []
        cur.append(w)
    if cur:
        groups.append(cur)
    return groups


def word_states(words: Sequence[ReelWord], style: CaptionStyle, fps: Fraction,
                reel_end: int) -> list[WordState]:
    """Contiguous word states per group, no overlaps, all inside ``[0, reel_end)``."""
    groups = group_words(words, style, fps)
    hold = round(Fraction(style.hold_s) * fps)
    states: list[WordState] = []
    for g, group in enumerate(groups):
        texts = tuple(w.text for w in group)
        nxt = groups[g + 1][0].start if g + 1 < len(groups) else reel_end
        group_end = min(group[-1].end + hold, nxt, reel_end)
        for k, w in enumerate(group):
            end = group[k + 1].start if k + 1 < len(group) else group_end
            end = min(end, reel_end)
            if end > w.start:
                states.append(WordState(w.start, end, texts, k))
    return states


def escape_ass_text(text: str) -> str:
    """Transcript text as literal ASS event text: newlines/tabs become spaces, a
    backslash is followed by a word joiner (so ``\\N``, ``\\h``... stay literal) and
    braces are escaped (``\\{``, ``\\}``: libass shows them, no override block opens)."""
    flat = " ".join(text.replace("\r", " ").replace("\n", " ").replace("\t", " ").split())
    flat = flat.replace("\\", "\\" + _WORD_JOINER)
    return flat.replace("{", "\\{").replace("}", "\\}")


def _ass_time(frame: int, fps: Fraction) -> str:
    cs = math.floor(Fraction(frame) / fps * 100)
    h, rem = divmod(cs, 360_000)
    m, rem = divmod(rem, 6000)
    s, c = divmod(rem, 100)
    return f"{h}:{m:02d}:{s:02d}.{c:02d}"


def _override_colour(ass_colour: str) -> str:
    return "&H" + ass_colour[4:] + "&"  # &H00BBGGRR -> &HBBGGRR&


def _event_text(state: WordState, style: CaptionStyle) -> str:
    parts = []
    for k, word in enumerate(state.words):
        text = escape_ass_text(word)
        if k == state.lit:
            text = (f"{{\\1c{_override_colour(style.highlight)}}}{text}"
                    f"{{\\1c{_override_colour(style.primary)}}}")
        parts.append(text)
    return " ".join(parts)


def ass_document(words: Sequence[ReelWord], fps: Fraction, style: CaptionStyle,
                 reel_end: int) -> str:
    """The whole ASS script (PlayRes = output size), deterministic text."""
    bold = -1 if style.bold else 0
    lines = [
        "[Script Info]",
        "; written by clipforge: one event per word state, times in reel frames",
        "ScriptType: v4.00+",
        f"PlayResX: {style.width}",
        f"PlayResY: {style.height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: TV.709",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        f"Style: Caption,{style.font},{style.font_size},{style.primary},{style.highlight},"
        f"{style.outline_colour},&H80000000,{bold},0,0,0,100,100,0,0,1,{style.outline:g},"
        f"{style.shadow:g},{style.alignment},{style.margin_l},{style.margin_r},"
        f"{style.margin_v},1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    for st in word_states(words, style, fps, reel_end):
        lines.append(f"Dialogue: 0,{_ass_time(st.start, fps)},{_ass_time(st.end, fps)},"
                     f"Caption,,0,0,0,,{_event_text(st, style)}")
    return "\n".join(lines) + "\n"


def write_ass(path: Path, words: Sequence[ReelWord], fps: Fraction, style: CaptionStyle,
              reel_end: int) -> Path:
    path = Path(path)
    path.write_text(ass_document(words, fps, style, reel_end), encoding="utf-8")
    return path


def _escape_option(value: str) -> str:
    """First level (an option value inside a filter's arguments)."""
    for ch in ("\\", "'", ":"):
        value = value.replace(ch, "\\" + ch)
    return value


def escape_filtergraph(text: str) -> str:
    """Second level (a filter's argument string inside a filter graph)."""
    out = []
    for ch in text:
        out.append("\\" + ch if ch in "\\'[],;" else ch)
    return "".join(out)


def caption_filter(ass_path: str | Path, fontsdir: str | Path | None = None) -> str:
    """The ``ass`` filter step for a ``-vf``/``-filter_complex`` chain, the script's path
    (and ``fontsdir``) escaped for both filter-graph levels whatever characters they
    hold. Paths are made absolute."""
    args = "filename=" + _escape_option(str(Path(ass_path).resolve()))
    if fontsdir is not None:
        args += ":fontsdir=" + _escape_option(str(Path(fontsdir).resolve()))
    return "ass=" + escape_filtergraph(args)
