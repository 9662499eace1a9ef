"""Ctrl-C is reported as an interrupt whatever exception carries it out (Prefect's engine
can raise its own error from its clean-up when SIGINT lands as a task run starts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import os, signal, sys, time
from clipforge_cli import main as cli

def cleanup_error(args):
    if {interrupt}:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:  # swallowed by an engine's clean-up ...
            pass
    raise ValueError("Task run is not set")  # ... which raises its own error

cli.cmd_probe = cleanup_error
sys.exit(cli.main(["probe", "any.mp4"]))
"""


def run(interrupt: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(interrupt=interrupt)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_an_error_raised_while_ctrl_c_unwinds_is_reported_as_the_interrupt() -> None:
    p = run(interrupt=True)
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip() == "clipforge: interrupted", p.stderr


def test_the_same_error_without_ctrl_c_is_an_internal_error() -> None:
    p = run(interrupt=False)
    assert p.returncode == 1, p.stderr
    assert "internal error: ValueError: Task run is not set" in p.stderr, p.stderr

