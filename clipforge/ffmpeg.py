"""The one FFmpeg/ffprobe runner: argv lists in, ``CompletedProcess`` or a typed error out.

Everything else in clipforge builds FFmpeg command lines as pure functions that return
``list[str]`` whose first element is the logical tool name (``"ffmpeg"`` or
``"ffprobe"``). This module is the only place that turns such a list into a process:

- the tool name is resolved to a binary with :func:`shutil.which`, overridable by the
  ``CLIPFORGE_FFMPEG`` / ``CLIPFORGE_FFPROBE`` environment variables; a missing binary
  raises :class:`~clipforge.errors.ConfigError` telling the user to install ffmpeg;
- ``-nostdin`` (ffmpeg only, ffprobe has no such option) and ``-hide_banner`` are
  inserted when the builder did not put them there, and stdin is ``/dev/null``;
- never ``shell=True``;
- a non-zero exit raises :class:`~clipforge.errors.RenderError` (ffmpeg) or
  :class:`~clipforge.errors.FfprobeError` (ffprobe) carrying the argv and
  the tail of stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from clipforge.errors import ConfigError, FfprobeError, RenderError

__all__ = [
    "binary",
    "ffprobe_json",
    "popen",
    "resolve_argv",
    "run",
    "stderr_tail",
]

_ENV = {"ffmpeg": "CLIPFORGE_FFMPEG", "ffprobe": "CLIPFORGE_FFPROBE"}
_TAIL_LINES = 25


def binary(tool: str) -> str:
    """Absolute path of ``ffmpeg`` or ``ffprobe`` (env override first, then ``PATH``)."""
    if tool not in _ENV:
        raise ValueError(f"unknown tool {tool!r}; expected 'ffmpeg' or 'ffprobe'")
    override = os.environ.get(_ENV[tool], "").strip()
    if override:
        found = shutil.which(override)
        if found is None:
            raise ConfigError(
                f"{_ENV[tool]}={override!r} does not name an executable {tool}. "
                f"Point it at a working {tool} binary or unset it to use the one on PATH."
            )
        return found
    found = shutil.which(tool)
    if found is None:
        raise ConfigError(
            f"{tool} was not found on PATH. clipforge needs FFmpeg 5.1 or newer with "
            f"ffprobe: install it (`apt-get install ffmpeg`) or set {_ENV[tool]} to the binary."
        )
    return found


def resolve_argv(argv: list[str]) -> list[str]:
    """Resolve the tool name and add ``-nostdin``/``-hide_banner`` when missing."""
    if not argv:
        raise ValueError("empty argv")
    tool = Path(argv[0]).name
    if tool not in _ENV:
        raise ValueError(f"argv must start with 'ffmpeg' or 'ffprobe', got {argv[0]!r}")
    rest = list(argv[1:])
    head: list[str] = []
    if tool == "ffmpeg" and "-nostdin" not in rest:
        head.append("-nostdin")
    if "-hide_banner" not in rest:
        head.append("-hide_banner")
    return [binary(tool), *head, *rest]


def stderr_tail(stderr: bytes | str | None, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a process's stderr, decoded leniently."""
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def run(argv: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run one ffmpeg/ffprobe command; stdout and stderr are captured as bytes.

    Raises ``RenderError`` for ffmpeg, ``FfprobeError`` for ffprobe (both with ``argv``
    and ``stderr_tail``; ``FfprobeError.timed_out`` tells a timeout) on a non-zero exit or
    a timeout, ``ConfigError`` when the binary is missing.
    """
    full = resolve_argv(argv)
    probing = argv[0] == "ffprobe"
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, never a shell
            full, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        message = f"{Path(full[0]).name} did not finish within {timeout} s and was stopped."
        tail = stderr_tail(exc.stderr)
        if probing:
            raise FfprobeError(message, argv=full, stderr_tail=tail, timed_out=True) from exc
        raise RenderError(message, argv=full, stderr_tail=tail) from exc
    if proc.returncode != 0:
        tail = stderr_tail(proc.stderr)
        last = tail.splitlines()[-1] if tail else "(no stderr)"
        message = f"{Path(full[0]).name} exited with status {proc.returncode}: {last}"
        if probing:
            raise FfprobeError(message, argv=full, stderr_tail=tail)
        raise RenderError(message, argv=full, stderr_tail=tail)
    return proc


def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start one ffmpeg/ffprobe process (stdin is ``/dev/null`` unless given).

    For supervised pipelines (the renderer); the caller owns waiting and killing.
    """
    full = resolve_argv(argv)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(full, **kwargs)  # noqa: S603 - argv list, never a shell


def ffprobe_json(path: str | Path, *, timeout: float | None = 30.0) -> dict[str, Any]:
    """``ffprobe -show_format -show_streams`` of ``path`` as a dict.

    Raises ``FfprobeError`` when ffprobe fails (callers such as ``probe`` translate it
    into an input error that names the file).
    """
    argv = [
        "ffprobe",
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        str(path),
    ]
    proc = run(argv, timeout=timeout)
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError as exc:
        raise FfprobeError(
            f"ffprobe printed invalid JSON for {path}: {exc}",
            argv=argv,
            stderr_tail=stderr_tail(proc.stderr),
        ) from exc
    if not isinstance(data, dict):
        raise FfprobeError(f"ffprobe printed unexpected JSON for {path}", argv=argv)
    return data
