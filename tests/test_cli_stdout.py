"""The CLI when its reader goes away (`clipforge probe X | head -1`): quiet, exit 141.

A BrokenPipeError that does not come from stdout is still a reported internal error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import media

from clipforge_cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def test_closed_stdout_is_quiet_and_exits_141() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "clipforge_cli.main", "probe",
             str(media("speech_en_11s__whisper_jfk.flac"))],
            stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO,
            timeout=300, check=False)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "internal error" not in proc.stderr
    assert "Exception ignored" not in proc.stderr  # nothing complains at exit either


def test_open_stdout_still_prints_and_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clipforge_cli.main", "probe",
         str(media("speech_en_11s__whisper_jfk.flac"))],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_a_broken_pipe_elsewhere_is_still_an_internal_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(_args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")  # a socket, not stdout

    parser = cli_main.build_parser()
    real_parse = parser.parse_args

    def parse(argv: object = None) -> object:
        ns = real_parse(["jobs"])
        ns.func = broken
        return ns

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    assert cli_main.main(["jobs"]) == 1
    assert "internal error: BrokenPipeError" in capsys.readouterr().err
