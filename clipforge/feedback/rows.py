"""Plain rows passed between the importer, the learner and :mod:`clipforge.clip_store`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One validated analytics row. ``key`` is a clip id, a published file name (or
    title) or a ``clipforge clip_id=...`` tag; ``ids`` are the ids a tag (in the text or
    in a local MP4's comment) named, else empty."""

    row: int  # the CSV line number (header = line 1) or the JSON item number (from 1)
    key: str
    ids: tuple[str, ...]
    views: int
    avg_view_duration_s: float
    likes: int | None
    shares: int | None
    published_at: datetime  # timezone-aware
    channel: str


@dataclass(frozen=True, slots=True)
class Sample:
    """A clip with an outcome: what learning reads."""

    clip_id: str
    source_sha256: str
    channel: str
    features: dict[str, float | None]
    views: int
    avg_view_duration_s: float
    published_at: datetime


@dataclass(frozen=True, slots=True)
class ImportReport:
    inserted: int
    updated: int
    unchanged: int
    unknown: tuple[tuple[int, str, str], ...]  # (row, key, why)

    def to_json(self) -> dict[str, object]:
        return {"inserted": self.inserted, "updated": self.updated,
                "unchanged": self.unchanged,
                "unknown": [{"row": r, "key": k, "reason": why} for r, k, why in self.unknown]}
