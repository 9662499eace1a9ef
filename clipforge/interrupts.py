"""Whether this process was interrupted (Ctrl-C, SIGINT).

An exception raised while an interrupt unwinds is still the interrupt: Prefect's engine,
for one, can raise its own error from its clean-up when Ctrl-C lands while a task run is
being set up ("Task run is not set"), and FFmpeg children die of the same SIGINT before
Python sees it. The command line installs :func:`install`; the job row and the exit code
then say "interrupted" whatever exception carried it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_interrupted = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt  # what Python's own handler does


def install() -> None:
    """Note SIGINT before raising KeyboardInterrupt as usual. Only from the main thread,
    and only over Python's default handler (an ignored SIGINT stays ignored)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def interrupted() -> bool:
    """True once SIGINT reached this process (after :func:`install`)."""
    return _interrupted
