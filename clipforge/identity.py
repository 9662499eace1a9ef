"""File identity and code identity, the ingredients of cache keys and job keys."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InputError

_PKG = Path(__file__).resolve().parent


_sha_memo: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Content hash of a source file; typed errors for files that cannot be used at all.

    Remembered for the life of the process by (path, device, inode, size, mtime): the
    command line hashes the source to open the job row and the flow, in the same process,
    needs it again; a file that changed in between has another size or mtime."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file. Check the path (relative paths are taken from "
                         "the current directory).")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file. Pass a video or audio file.")
    try:
        st = p.stat()
        memo = (str(p.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if memo in _sha_memo:
            return _sha_memo[memo]
        h = hashlib.sha256()
        with p.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror}). Check its permissions.") from exc
    _sha_memo[memo] = h.hexdigest()
    return _sha_memo[memo]


@cache
def code_version(*modules: str) -> str:
    """Hash of the named library modules' or packages' source (e.g.
    ``code_version("audio", "transcribe")``, ``code_version("reframe")``).

    Part of every cache key, so changing the code of a stage invalidates only that stage.
    """
    h = hashlib.sha256(__version__.encode())
    for name in sorted(modules):
        h.update(name.encode())
        package = _PKG / name
        files = sorted(package.glob("*.py")) if package.is_dir() else [_PKG / f"{name}.py"]
        for path in files:  # a module, or every module of a package
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def params_hash(params: Any) -> str:
    """Stable hash of JSON-able parameters (sorted keys)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
