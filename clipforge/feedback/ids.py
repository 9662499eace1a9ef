"""Clip identity: a stable id from the source, the cut points and the settings.

``clip_id`` is the first 32 hex digits of SHA-256 over a canonical JSON of
``{"cut_in_us", "cut_out_us", "settings", "source_sha256"}`` (sorted keys, no spaces).
Compute it from the EDL's highlight times (``s_to_us(highlight.start)``, millisecond
precision) so that anyone holding the EDL can derive the same id.

The id travels inside the rendered MP4 as its ``comment`` tag: :func:`comment_tag` gives
the value (``clipforge clip_id=<id>[,<id>...]``) and :func:`parse_comment_tag` reads it
back out of any text (a tag, a video title, a description).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

CLIP_ID_RE = re.compile(r"^[0-9a-f]{32}$")
TAG_PREFIX = "clipforge clip_id="
_TAG_RE = re.compile(r"clipforge clip_id=([0-9a-f]{32}(?:,[0-9a-f]{32})*)")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def _check_json(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"clip settings: {where} is {value!r}; settings must be finite")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"clip settings: key {k!r} in {where} is not a string")
            _check_json(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")


def clip_id(sha256: str, cut_in_us: int, cut_out_us: int, settings: Mapping[str, Any]) -> str:
    """The stable id of one clip (32 lowercase hex digits)."""
    if not _SHA_RE.match(sha256):
        raise ValueError(f"clip id: source sha256 must be 64 lowercase hex digits, got {sha256!r}")
    if isinstance(cut_in_us, bool) or isinstance(cut_out_us, bool) or not (
            isinstance(cut_in_us, int) and isinstance(cut_out_us, int)):
        raise TypeError("clip id: cut points are integer microseconds")
    if not 0 <= cut_in_us < cut_out_us:
        raise ValueError(f"clip id: need 0 <= cut_in < cut_out, got {cut_in_us}, {cut_out_us}")
    _check_json(settings, "settings")
    doc = {"cut_in_us": cut_in_us, "cut_out_us": cut_out_us, "settings": settings,
           "source_sha256": sha256}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def comment_tag(clip_ids: Sequence[str]) -> str:
    """The MP4 ``comment`` tag value for one output file (one id for a short, several for
    a reel): pass it as ``-metadata comment=<value>`` to the joining FFmpeg."""
    ids = list(clip_ids)
    if not ids or any(not CLIP_ID_RE.match(i) for i in ids):
        raise ValueError(f"comment tag: need one or more 32-hex clip ids, got {ids!r}")
    return TAG_PREFIX + ",".join(ids)


def parse_comment_tag(text: str) -> list[str]:
    """The clip ids in a ``clipforge clip_id=...`` tag found anywhere in ``text``."""
    m = _TAG_RE.search(text)
    return m.group(1).split(",") if m else []
