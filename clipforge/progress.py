"""Progress reporting for long work: a callback interface and a stderr reporter for the CLI.

Library code takes an optional ``progress(fraction)`` callback; the reporter here turns
stage starts, fractions and ends into short human-readable lines.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[float], None]


class Reporter:
    """Silent by default; :class:`StderrReporter` prints."""

    def start(self, stage: str, detail: str = "") -> None: ...

    def fraction(self, stage: str) -> ProgressFn:
        return lambda _f: None

    def done(self, stage: str, seconds: float, detail: str = "") -> None: ...


class StderrReporter(Reporter):
    def __init__(self, stream: TextIO | None = None, total_stages: int = 6) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = total_stages
        self.count = 0
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, float]] = {}
        self._number: dict[str, int] = {}  # stages can overlap: each keeps its own number

    def _n(self, stage: str) -> int:
        return self._number.get(stage, self.count)

    def _write(self, text: str, end: str = "\n") -> None:
        with self._lock:
            self.stream.write(text + end)
            self.stream.flush()

    def start(self, stage: str, detail: str = "") -> None:
        with self._lock:
            self.count += 1
            self._number[stage] = self.count
        suffix = f" ({detail})" if detail else ""
        end = "\r" if self.tty else "\n"
        self._write(f"[{self._n(stage)}/{self.total}] {stage}{suffix} ...", end=end)

    def fraction(self, stage: str) -> ProgressFn:
        def report(f: float) -> None:
            now = time.monotonic()
            last_t, last_f = self._last.get(stage, (0.0, -1.0))
            # Throttle: a line per 10 % (pipes) or per 0.5 s (terminals).
            if self.tty and now - last_t < 0.5 and f < 1.0:
                return
            if not self.tty and f - last_f < 0.1 and f < 1.0:
                return
            self._last[stage] = (now, f)
            end = "\r" if self.tty else "\n"
            self._write(f"[{self._n(stage)}/{self.total}] {stage} {f:4.0%}", end=end)

        return report

    def done(self, stage: str, seconds: float, detail: str = "") -> None:
        suffix = f" — {detail}" if detail else ""
        clear = "\x1b[K" if self.tty else ""
        self._write(f"[{self._n(stage)}/{self.total}] {stage} done in {seconds:.1f} s"
                    f"{suffix}{clear}")


_current: Reporter = Reporter()


def reporter() -> Reporter:
    return _current


def set_reporter(r: Reporter) -> None:
    global _current
    _current = r
