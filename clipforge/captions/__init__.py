"""Word-synced captions: reel-time word mapping, ASS for libass burn-in, SRT/VTT sidecars.

- :mod:`.reeltime`: source-time words -> whole frames on the rendered reel's timeline.
- :mod:`.style`: the caption style presets (``clipforge/presets/captions.json``).
- :mod:`.ass`: 1-3 word groups, one ASS event per word state, the FFmpeg filter step.
- :mod:`.fonts`: detect libass's silent font substitution.
- :mod:`.sidecar`: line-level SRT/VTT with pysubs2.
"""

from clipforge.captions.ass import ass_document, caption_filter, group_words, write_ass
from clipforge.captions.fonts import FontMissingError, check_font
from clipforge.captions.reeltime import ReelWord, reel_frames, reel_words, words_for_edl
from clipforge.captions.sidecar import clip_sidecars, line_cues, write_sidecars
from clipforge.captions.style import CaptionStyle, load_style

__all__ = [
    "CaptionStyle",
    "FontMissingError",
    "ReelWord",
    "ass_document",
    "caption_filter",
    "check_font",
    "clip_sidecars",
    "group_words",
    "line_cues",
    "load_style",
    "reel_frames",
    "reel_words",
    "words_for_edl",
    "write_ass",
    "write_sidecars",
]
