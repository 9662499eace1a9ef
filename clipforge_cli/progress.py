"""Live progress on a terminal: one rich progress bar per stage.

When stderr is not a terminal (logs, CI, a Prefect worker), the library's plain
``StderrReporter`` lines are used instead; rich is only asked to draw on a terminal.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from clipforge.progress import ProgressFn, Reporter, StderrReporter


class RichReporter(Reporter):
    """A bar per stage: it fills as the stage reports fractions and stays, with its time
    and detail, once the stage is done."""

    def __init__(self, total_stages: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.total = total_stages
        self.count = 0
        self._lock = threading.Lock()
        self._tasks: dict[str, Any] = {}
        self.progress = Progress(
            TextColumn("[{task.fields[n]}/{task.fields[of]}]", markup=False),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self.progress.start()

    def start(self, stage: str, detail: str = "") -> None:
        with self._lock:
            self.count += 1
            self._tasks[stage] = self._add(stage, detail)

    def _add(self, stage: str, detail: str) -> Any:
        return self.progress.add_task(stage, total=1.0, n=self.count, of=self.total,
                                      detail=detail)

    def fraction(self, stage: str) -> ProgressFn:
        def report(f: float) -> None:
            task = self._tasks.get(stage)
            if task is not None:
                self.progress.update(task, completed=max(0.0, min(1.0, f)))

        return report

    def done(self, stage: str, seconds: float, detail: str = "") -> None:
        with self._lock:
            task = self._tasks.get(stage)
            if task is None:  # a stage that ends without a start (resumed work)
                self.count += 1
                task = self._add(stage, "")
            self.progress.update(task, completed=1.0, detail=detail)
            self.progress.stop_task(task)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(total_stages: int) -> Reporter:
    """Bars on a terminal, plain lines otherwise."""
    if sys.stderr.isatty():
        return RichReporter(total_stages)
    return StderrReporter(total_stages=total_stages)
