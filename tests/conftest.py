"""Shared test fixtures. Real media comes from ../shared (never copied into git)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLIPFORGE_SHARED", REPO.parent / "shared")).resolve()
MEDIA = SHARED / "media"
EVAL = SHARED / "eval"


def media(name: str) -> Path:
    """Path of a file in ../shared/media; fails (never skips) when it is missing."""
    path = MEDIA / name
    if not path.exists():
        pytest.fail(f"test media missing: {path} (CI needs ../shared beside the clone)")
    return path


@pytest.fixture(scope="session")
def public_episode() -> Path:
    path = EVAL / "public_episode.mp4"
    if not path.exists():
        pytest.fail(f"eval episode missing: {path}")
    return path
