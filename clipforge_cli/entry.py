"""The ``clipforge`` command's entry point: a warm runner first (see
:mod:`clipforge_cli.runner_client`, standard library only), else the command line here."""

from __future__ import annotations

import sys

from clipforge_cli import runner_client


def main() -> int:
    code = runner_client.run_in_runner(sys.argv[1:])
    if code is not None:
        return code
    from clipforge_cli.main import main as cli_main

    try:
        return cli_main()
    finally:
        if runner_client.STALE:  # the old runner stopped itself: a fresh one for next time
            from clipforge_cli import runner

            runner.keep_warm(runner_client.LAUNCH_ENV)
