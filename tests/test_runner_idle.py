"""The warm runner's idle limit, on its own (the end-to-end case is in test_runner.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


IDLE_SCRIPT = """
import socket, sys, tempfile, time
from pathlib import Path
from clipforge_cli.runner import Runner

home = Path(tempfile.mkdtemp())
r = Runner(home, idle_s=1.0)
r.last_active -= 100  # as after a long start on a loaded machine
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(str(home / "s.sock"))
listener.listen(1)
t = time.monotonic()
r._loop(listener)
print(round(time.monotonic() - t, 2))
"""


def test_a_runner_counts_its_idle_time_from_ready_not_from_its_start() -> None:
    """A runner whose imports took longer than its idle limit must still wait that long
    for the command that started it (tests/test_runner.py has the end-to-end case)."""
    p = subprocess.run([sys.executable, "-c", IDLE_SCRIPT], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert float(p.stdout.split()[-1]) >= 0.9, p.stdout
