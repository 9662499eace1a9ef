"""Read an analytics export (CSV or JSON), validate every field, then import it.

Canonical CSV header (JSON: a list of objects with these keys, or ``{"rows": [...]}``)::

    clip_id,views,avg_view_duration_s,likes,shares,published_at,channel

- ``clip_id`` may be replaced by a ``file`` (or ``file_name``/``output_name``) column: the
  published file name, resolved through ``clip.output_name`` (with or without its
  extension); a name that is a local MP4 (absolute, or relative to the export's folder)
  is resolved through its ``comment`` tag (``clipforge clip_id=<id>``), and a tag found
  in any key text is used directly.
- ``likes``, ``shares`` may be empty; ``channel`` may be empty or absent (then the
  ``channel`` argument applies); ``published_at`` is an ISO 8601 date or date-time (no
  zone: UTC) or a YouTube-style date (``Mar 5, 2024``).

YouTube Studio (Analytics > Advanced mode > Export current view > CSV, the ``Table
data.csv`` file) is recognised by its ``Video title`` column; the mapping is:

=========================  =========================================================
YouTube Studio column      clipforge field
=========================  =========================================================
``Video title``            the key: YouTube titles an upload with its file name
                           (without extension) unless renamed; a
                           ``clipforge clip_id=...`` tag in the title also works
``Content``                the YouTube video id; used only to skip the ``Total`` row
``Views``                  ``views``
``Average view duration``  ``avg_view_duration_s`` (``h:mm:ss``, ``m:ss`` or seconds)
``Likes``                  ``likes`` (optional column)
``Shares``                 ``shares`` (optional column)
``Video publish time``     ``published_at`` (``Mar 5, 2024`` or ISO)
(none)                     ``channel``: the ``channel`` argument (default ``youtube``)
=========================  =========================================================

Other columns (Impressions, Watch time, ...) are ignored. Validation happens before the
database is touched: numbers >= 0 (views/likes/shares integers), finite, dates valid,
text at most 255 characters (channel 100) with no control characters. Any bad row:
:class:`FeedbackImportError` listing every bad row number and reason, nothing imported.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clipforge.errors import FeedbackImportError, RenderError
from clipforge.ffmpeg import ffprobe_json

from .ids import parse_comment_tag
from .rows import ImportReport, OutcomeRow

MAX_BYTES = 50_000_000
MAX_ROWS = 200_000
MAX_KEY = 255
MAX_CHANNEL = 100
DEFAULT_CHANNEL = "youtube"
CANONICAL = ("clip_id", "views", "avg_view_duration_s", "likes", "shares", "published_at",
             "channel")
KEY_COLUMNS = ("clip_id", "file", "file_name", "output_name")
YOUTUBE = {  # YouTube Studio column (lower case) -> canonical field
    "video title": "key", "views": "views", "average view duration": "avg_view_duration_s",
    "likes": "likes", "shares": "shares", "video publish time": "published_at",
    "content": "content",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+$")
_CLOCK = re.compile(r"^(?:(\d+):)?([0-5]?\d):([0-5]\d(?:\.\d+)?)$")


class _Bad(ValueError):
    pass


def _text(value: Any, field: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Bad(f"{field} must be text, got {type(value).__name__}")
    v = value.strip()
    if len(v) > limit:
        raise _Bad(f"{field} is {len(v)} characters (at most {limit})")
    if _CONTROL.search(v):
        raise _Bad(f"{field} contains a control character")
    return v


def _number(value: Any, field: str, *, integer: bool, required: bool) -> float | int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Bad(f"{field} is missing")
        return None
    if isinstance(value, bool):
        raise _Bad(f"{field} must be a number, got {value!r}")
    if isinstance(value, str):
        s = value.strip()
        if _THOUSANDS.match(s):
            s = s.replace(",", "")
        if len(s) > 32 or _CONTROL.search(s):
            raise _Bad(f"{field} is not a number: {value[:40]!r}")
        try:
            num: float = float(s)
        except ValueError:
            raise _Bad(f"{field} is not a number: {value[:40]!r}") from None
    elif isinstance(value, int | float):
        num = float(value)
    else:
        raise _Bad(f"{field} must be a number, got {type(value).__name__}")
    if not math.isfinite(num) or num < 0:
        raise _Bad(f"{field} must be a finite number >= 0, got {value!r}")
    if integer:
        if num != int(num) or num > 2**62:
            raise _Bad(f"{field} must be a whole number, got {value!r}")
        return int(num)
    return num


def _duration_s(value: Any, field: str) -> float:
    if isinstance(value, str):
        m = _CLOCK.match(value.strip())
        if m:
            h, mi, s = m.groups()
            return int(h or 0) * 3600 + int(mi) * 60 + float(s)
    num = _number(value, field, integer=False, required=True)
    assert num is not None
    return float(num)


def _date(value: Any, field: str) -> datetime:
    s = _text(value, field, 64)
    if not s:
        raise _Bad(f"{field} is missing")
    for fmt in ("%b %d, %Y", "%B %d, %Y"):  # YouTube Studio: "Mar 5, 2024"
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise _Bad(f"{field} is not a date (ISO 8601 or 'Mar 5, 2024'): {s!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if not 2000 <= dt.year <= 2200:
        raise _Bad(f"{field} year {dt.year} is out of range")
    return dt


def _local_tag_ids(key: str, base: Path | None) -> tuple[str, ...]:
    """Ids from a local MP4's comment tag, when ``key`` names one."""
    if not key.lower().endswith((".mp4", ".m4v", ".mov")):
        return ()
    path = Path(key)
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        return ()
    try:
        tags = (ffprobe_json(path).get("format") or {}).get("tags") or {}
    except RenderError:
        return ()
    return tuple(parse_comment_tag(str(tags.get("comment", ""))))


def _columns(header: list[str]) -> tuple[dict[str, str], str]:
    """Map of source column -> field, and the format name ('canonical' or 'youtube')."""
    lower = {h.strip().lstrip("\ufeff").lower(): h for h in header}
    if "video title" in lower:
        return {lower[k]: v for k, v in YOUTUBE.items() if k in lower}, "youtube"
    out = {lower[k]: k for k in CANONICAL if k in lower}
    keys = [k for k in KEY_COLUMNS if k in lower]
    if not keys:
        raise FeedbackImportError("export", [(0, "no clip_id (or file) column; the header "
                                             f"must be {','.join(CANONICAL)}")])
    out[lower[keys[0]]] = "key"
    return out, "canonical"


def parse_records(records: list[tuple[int, Mapping[str, Any]]], header: list[str], *,
                  channel: str = DEFAULT_CHANNEL, source: str = "export",
                  base: Path | None = None) -> tuple[list[OutcomeRow], str]:
    """Validate raw records (``(row number, {column: value})``) into :class:`OutcomeRow`.
    Raises :class:`FeedbackImportError` listing every bad row; returns rows and format."""
    try:
        cols, fmt = _columns(header)
    except FeedbackImportError as exc:
        raise FeedbackImportError(source, exc.problems) from None
    required = {"key", "views", "avg_view_duration_s", "published_at"}
    missing = sorted(required - set(cols.values()))
    if missing:
        raise FeedbackImportError(source, [(0, f"missing column(s) {', '.join(missing)} "
                                            f"({fmt} format)")])
    default_channel = _text(channel, "channel", MAX_CHANNEL) or DEFAULT_CHANNEL
    problems: list[tuple[int, str]] = []
    rows: list[OutcomeRow] = []
    seen: dict[tuple[str, str], int] = {}
    for n, rec in records:
        f = {field: rec.get(col) for col, field in cols.items()}
        if fmt == "youtube" and str(f.get("content") or "").strip().lower() == "total":
            continue
        try:
            key = _text(f.get("key"), "clip key", MAX_KEY)
            if not key:
                raise _Bad("the clip_id / file name is empty")
            ch = _text(f.get("channel"), "channel", MAX_CHANNEL) or default_channel
            views = _number(f.get("views"), "views", integer=True, required=True)
            likes = _number(f.get("likes"), "likes", integer=True, required=False)
            shares = _number(f.get("shares"), "shares", integer=True, required=False)
            avd = _duration_s(f.get("avg_view_duration_s"), "avg_view_duration_s")
            published = _date(f.get("published_at"), "published_at")
        except _Bad as exc:
            problems.append((n, str(exc)))
            continue
        if (key, ch) in seen:
            problems.append((n, f"{key!r} on channel {ch!r} is also in row {seen[(key, ch)]}"))
            continue
        seen[(key, ch)] = n
        ids = tuple(parse_comment_tag(key)) or _local_tag_ids(key, base)
        assert views is not None
        rows.append(OutcomeRow(n, key, ids, int(views), avd,
                               None if likes is None else int(likes),
                               None if shares is None else int(shares), published, ch))
    if problems:
        raise FeedbackImportError(source, problems)
    return rows, fmt


def read_export(path: str | Path, *, channel: str = DEFAULT_CHANNEL
                ) -> tuple[list[OutcomeRow], str]:
    """Read and validate ``path`` (``.json`` is JSON, anything else CSV)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise FeedbackImportError(str(p), [(0, f"the file is {size} bytes (at most "
                                                f"{MAX_BYTES})")])
        raw = p.read_bytes()
    except OSError as exc:
        raise FeedbackImportError(str(p), [(0, f"cannot read it: {exc.strerror or exc}")]
                                  ) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedbackImportError(str(p), [(0, f"not UTF-8 text ({exc.reason} at byte "
                                            f"{exc.start})")]) from None
    records: list[tuple[int, Mapping[str, Any]]] = []
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeedbackImportError(str(p), [(0, f"invalid JSON: {exc}")]) from None
        items = doc.get("rows") if isinstance(doc, dict) else doc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise FeedbackImportError(str(p), [(0, "JSON must be a list of objects or "
                                                "{\"rows\": [...]}")])
        header = sorted({k for i in items for k in i})
        records = [(n, item) for n, item in enumerate(items, start=1)]
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        try:
            header = list(reader.fieldnames or [])
            for rec in reader:
                if None in rec:
                    raise FeedbackImportError(str(p), [(reader.line_num, "more fields than "
                                                        "the header has columns")])
                records.append((reader.line_num, rec))
        except csv.Error as exc:
            raise FeedbackImportError(str(p), [(reader.line_num, f"bad CSV: {exc}")]) from None
    if len(records) > MAX_ROWS:
        raise FeedbackImportError(str(p), [(0, f"{len(records)} rows (at most {MAX_ROWS})")])
    return parse_records(records, header, channel=channel, source=str(p), base=p.parent)


def import_file(store: Any, path: str | Path, *, channel: str = DEFAULT_CHANNEL
                ) -> ImportReport:
    """``clipforge feedback import FILE``: validate all rows, then import them in one
    transaction through ``store`` (a :class:`clipforge.clip_store.ClipStore`)."""
    rows, _fmt = read_export(path, channel=channel)
    report: ImportReport = store.import_outcomes(rows, source=str(path))
    return report
