"""Names derived from a resolved ``CLIPFORGE_HOME``, standard library only: the
supervised servers use them (:mod:`clipforge.supervise.paths`), and so does the command
line's warm-runner client before any heavy import."""

from __future__ import annotations

import hashlib
from pathlib import Path

SOCKET_PATH_MAX = 100  # sun_path is 108 bytes including the NUL; keep a margin


def digest(home: Path) -> str:
    """A short hash of a resolved home: names per-home folders and picks port numbers."""
    return hashlib.sha256(str(home).encode()).hexdigest()[:12]


def short_dir(home_digest: str) -> Path:
    """The ``/tmp`` fallback for socket paths too long for ``sun_path``."""
    return Path(f"/tmp/clipforge-{home_digest}")
