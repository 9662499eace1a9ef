"""The `clipforge` command line.

`run` executes the Prefect flow (ephemeral mode unless PREFECT_API_URL is set); the
other commands use the library directly and never start Prefect.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipforge.config import load_settings
from clipforge.errors import ClipforgeError
from clipforge_cli import runner_client


def _fmt_time(s: float) -> str:
    m, sec = divmod(s, 60)
    return f"{int(m)}:{sec:06.3f}"


def request_from_args(args: argparse.Namespace) -> Any | None:
    """The ClipRequest of `run`/`enqueue` arguments; None (one line printed) if invalid."""
    from pydantic import ValidationError

    from flows.params import ClipRequest

    try:
        return ClipRequest(
            video=args.video, prompt=args.prompt, out_dir=args.out,
            target_seconds=args.target_seconds, render=not args.no_render, tonemap=args.tonemap,
            clips=args.clips, aspect=args.aspect, layout=args.layout, captions=args.captions,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"clipforge: invalid {first['loc'][0]}: {first['msg']}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    return 2 if request is None else _run_request(request)


def cmd_resume(args: argparse.Namespace) -> int:
    from flows.params import ClipRequest

    store = _store()
    try:
        job = store.get_job(args.job_id)
    finally:
        store.close()
    if job is None:
        print(f"clipforge: no job {args.job_id} (see `clipforge jobs`)", file=sys.stderr)
        return 2
    if job["status"] == "succeeded":
        print(f"clipforge: job {args.job_id} already succeeded", file=sys.stderr)
        return 0
    request = ClipRequest(**{**job["parameters"], "job_id": args.job_id})
    return _run_request(request)


def _run_request(request: Any) -> int:
    """Run one job through the flow: its row first, then the engine, then the summary."""
    from clipforge import interrupts, jobs
    from clipforge.progress import set_reporter
    from clipforge_cli.prefect_env import (
        prepare_prefect,
        quiet_expected_failures,
        without_heartbeats,
    )
    from clipforge_cli.progress import make_reporter

    settings = load_settings()
    t0 = time.monotonic()
    # The job row exists before anything that can fail, the flow engine included.
    recorder = jobs.JobRecorder(settings)
    try:
        opened = recorder.open(request.model_dump(mode="json"),
                               jobs.source_identity(request.video))
    except BaseException:
        recorder.close()
        raise
    request = request.model_copy(update={"job_id": opened.job_id})
    try:
        prepare_prefect(settings)
        quiet_expected_failures()
        rep = make_reporter(total_stages=7 if request.render else 6)
        set_reporter(rep)
        from flows.clip import clip_job

        try:
            with without_heartbeats():
                result = clip_job(request)
        finally:
            close = getattr(rep, "close", None)
            if close:
                close()
    except ClipforgeError as exc:
        if recorder.still_running():  # failed before the flow could record it
            recorder.fail(exc, processing_seconds=time.monotonic() - t0)
        if interrupts.interrupted():  # e.g. FFmpeg killed by the same Ctrl-C
            raise
        print(f"clipforge: failed: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except BaseException as exc:
        if recorder.still_running():
            recorder.fail(exc, processing_seconds=time.monotonic() - t0)
        raise
    finally:
        recorder.close()
    total = time.monotonic() - t0
    _print_summary(request, result, total)
    _keep_warm(settings)
    return 0


def _keep_warm(settings: Any) -> None:
    """After a run in its own process on the private services (started on first use):
    start the warm runner beside them for the next command, as `services start` would;
    it exits after CLIPFORGE_RUNNER_IDLE_S (default an hour) without a command."""
    from clipforge_cli import runner

    if not (os.environ.get(runner_client.CHILD_ENV) or settings.database_url or
            settings.redis_url):
        runner.keep_warm(runner_client.LAUNCH_ENV)


def _print_summary(request: Any, result: Any, total: float) -> None:
    print()
    print(f"Highlights for {request.prompt!r} in {Path(request.video).name}:")
    for h in result.highlights[:5]:
        text = h.text if len(h.text) <= 90 else h.text[:87] + "..."
        print(f"  #{h.rank}  {_fmt_time(h.start)}-{_fmt_time(h.end)}  score {h.score:.3f}  {text}")
    if len(result.highlights) > 5:
        print(f"  ... and {len(result.highlights) - 5} more")
    print(f"EDL:   {result.edl_path}")
    if result.video_path:
        print(f"Reel:  {result.video_path} ({result.reel_duration_s:.1f} s)")
    for path in result.clip_paths:
        print(f"Clip:  {path}")
    for path in result.files:
        print(f"File:  {path}")
    for note in result.notes:
        print(f"Note:  {note}")
    cached = f", cached: {', '.join(result.cached_stages)}" if result.cached_stages else ""
    resumed = f", resumed after {result.resumed_from}" if result.resumed_from else ""
    print(
        f"Job {result.job_id}: pipeline {result.wall_seconds:.1f} s for "
        f"{result.source_duration_s:.1f} s of source "
        f"(processing_time / source_duration = {result.realtime_ratio:.3f}{cached}{resumed}); "
        f"wall time incl. start-up {total:.1f} s"
        + (" (warm runner)" if os.environ.get(runner_client.CHILD_ENV) else "")
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from clipforge.evaluate import cut_table, summary_with_cuts, table
    from clipforge.progress import StderrReporter, set_reporter
    from clipforge_cli.prefect_env import (
        prepare_prefect,
        quiet_expected_failures,
        without_heartbeats,
    )

    settings = load_settings()
    prepare_prefect(settings)
    quiet_expected_failures()
    truth = Path(args.truth)
    if not truth.is_file():
        print(f"clipforge: {truth}: no such truth file", file=sys.stderr)
        return 2
    if args.verbose:
        set_reporter(StderrReporter(total_stages=6))
    from clipforge.evaluate import cut_quality_for
    from flows.evaluate import evaluate_truth

    out = Path(args.out) if args.out else settings.home / "eval" / truth.stem
    t0 = time.monotonic()
    with without_heartbeats():
        scores = evaluate_truth(str(truth), str(out), args.target_seconds)
    wall = time.monotonic() - t0
    quality, reference = cut_quality_for(str(truth), str(out), scores)
    totals = summary_with_cuts(scores, quality)
    totals["independent_pass"] = reference
    if args.json:
        print(json.dumps({"summary": totals, "cases": [asdict(s) for s in scores],
                          "cut_quality": [asdict(q) for q in quality],
                          "wall_seconds": round(wall, 2)}, indent=2))
    else:
        print(table(scores))
        print(cut_table(scores, quality))
        print(f"\nhit@1 {totals['hit@1']}/{totals['cases']}  hit@3 {totals['hit@3']}/"
              f"{totals['cases']}  mean overlap {totals['mean_overlap']:.2f}  "
              f"cuts inside words {totals['cuts_inside_words']}/{totals['cuts']}  "
              f"({wall:.1f} s)")
        print(f"precision {totals['mean_precision']:.2f}  quiet cuts {totals['cuts_quiet']}/"
              f"{totals['cuts_distinct']} (within 6 dB of the quietest 20 ms in +-250 ms, "
              f"worst {totals['cuts_worst_db']:.1f} dB)  cuts inside words (independent "
              f"pass) {totals['cuts_inside_words_independent']}")
        print(f"independent pass: {reference.get('method')} on {reference.get('audio')}; "
              f"{reference.get('unaligned_segments')}/{reference.get('segments')} segments "
              "kept the transcription's own times (not aligned), "
              f"{reference.get('loop_segments_left_out')} left out as a decoding loop")
    return 0


def _store() -> Any:
    from clipforge.store import JobStore
    from clipforge.supervise import ensure_services

    settings = load_settings()
    urls = ensure_services(settings)
    store = JobStore(urls.database_url, maxconn=2, acquire_timeout=settings.db_acquire_timeout_s)
    store.migrate()
    return store


def cmd_jobs(args: argparse.Namespace) -> int:
    store = _store()
    try:
        jobs = store.list_jobs(limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(jobs, indent=2, default=str))
        return 0
    if not jobs:
        print("no jobs yet")
        return 0
    print(f"{'id':>5}  {'status':<15} {'checkpoint':<20} {'secs':>7}  {'created':<19}  "
          "prompt / source")
    for j in jobs:
        secs = f"{j['processing_seconds']:.1f}" if j.get("processing_seconds") else "-"
        created = (j.get("created_at") or "")[:19].replace("T", " ")
        print(f"{j['id']:>5}  {j['status']:<15} {j.get('checkpoint') or '-':<20} {secs:>7}  "
              f"{created:<19}  {j['prompt'][:40]!r} {Path(j['source']).name}")
        if j.get("error"):
            print(f"{'':>7}error [{j.get('error_code')}]: {j['error'][:110]}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from clipforge.probe import probe

    info = probe(args.file, tonemap=args.tonemap)
    print(json.dumps(info.to_json(), indent=2))
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from clipforge import supervise
    from clipforge.supervise import paths, prefect_stack
    from clipforge_cli import runner

    settings = load_settings()
    home = paths.home(settings)
    home.mkdir(parents=True, exist_ok=True)

    def stop_all() -> list[str]:  # runs and the Prefect server first: they use the database
        return (["runner"] if runner.stop_runner(home) else []) + \
            prefect_stack.down(settings) + supervise.stop_services(settings)

    if args.action == "start":
        urls = supervise.ensure_services(settings)
        print(f"database: {urls.database_url}\nredis:    {urls.redis_url}")
        # the warm runner, from this command's own environment (before Prefect's
        # defaults); it imports the library while the Prefect server starts
        runner_pid = runner.spawn_runner(home, runner_client.LAUNCH_ENV)
        from clipforge_cli.prefect_env import prepare_prefect

        api_url = prepare_prefect(settings)  # the warm local Prefect server runs use
        print(f"prefect:  {api_url or 'ephemeral mode (the local server could not start)'}")
        print(f"runner:   {runner.wait_runner(home, runner_pid)}")
    elif args.action == "stop":
        stopped = stop_all()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.action == "purge":
        if not args.yes:
            print(f"clipforge: services purge deletes the private PostgreSQL database (every "
                  f"job of {home}) and the Redis data; nothing is deleted without --yes",
                  file=sys.stderr)
            return 2
        stopped = stop_all()
        if stopped:
            print("stopped: " + ", ".join(stopped))
        removed = supervise.purge_services(settings)
        print("removed: " + (", ".join(removed) if removed else "nothing (no private data)"))
    else:
        for name, state in supervise.services_status(settings).items():
            print(f"{name}: {state}")
        prefect = prefect_stack.status(settings)
        running = "running" if prefect.get("server_running") else "stopped"
        print(f"prefect-server: {running}"
              + (f" ({prefect['api_url']})" if running == "running" else ""))
        print(f"runner: {runner.runner_status(home)}")
    return 0


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--aspect, --layout and --captions (shared by run and enqueue)."""
    p.add_argument("--aspect", default="source", metavar="A",
                   help="9:16, 4:5, 1:1, 16:9 (a virtual camera follows the speaker) or "
                   "source (default: the source's own framing)")
    p.add_argument("--layout", default="auto",
                   help="reframing per shot: auto (default), track, static, split or fit")
    p.add_argument("--captions", choices=("burn", "sidecar", "off"), default=None,
                   help="default: SRT/VTT sidecars always, burned in when the output is "
                   "vertical")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipforge", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="cut highlights from VIDEO for a prompt")
    r.add_argument("video")
    r.add_argument("--prompt", required=True, help="what to find, in plain language")
    r.add_argument("--out", required=True, help="output folder (edl.json, highlights.mp4)")
    r.add_argument("--target-seconds", type=float, default=60.0, help="reel length (default 60)")
    r.add_argument("--clips", type=int, default=0, metavar="N",
                   help="N separate clips (shorts, each up to --target-seconds) instead of "
                   "one reel")
    r.add_argument("--no-render", action="store_true", help="write only the EDL")
    r.add_argument("--tonemap", action="store_true", help="tone-map HDR input to SDR BT.709")
    add_output_options(r)
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("eval", help="score the pipeline against a truth file's cases")
    e.add_argument("truth", help="TRUTH.json (see ../shared/eval/README.md)")
    e.add_argument("--out", help="folder for the per-case EDLs (default under CLIPFORGE_HOME)")
    e.add_argument("--target-seconds", type=float, default=60.0)
    e.add_argument("--json", action="store_true")
    e.add_argument("--verbose", action="store_true", help="show per-stage progress")
    e.set_defaults(func=cmd_eval)

    rs = sub.add_parser("resume", help="continue an unfinished job after its last checkpoint")
    rs.add_argument("job_id", type=int)
    rs.set_defaults(func=cmd_resume)

    j = sub.add_parser("jobs", help="list jobs, newest first")
    j.add_argument("--json", action="store_true")
    j.add_argument("--limit", type=int, default=50)
    j.set_defaults(func=cmd_jobs)

    pr = sub.add_parser("probe", help="print media facts; non-zero exit if run would refuse it")
    pr.add_argument("file")
    pr.add_argument("--tonemap", action="store_true", help="accept HDR (it will be tone-mapped)")
    pr.set_defaults(func=cmd_probe)

    s = sub.add_parser("services", help="private PostgreSQL, Redis and Prefect server under "
                       "CLIPFORGE_HOME")
    s.add_argument("action", choices=["start", "stop", "status", "purge"],
                   help="purge: stop them and delete the private database and Redis data")
    s.add_argument("--yes", action="store_true", help="confirm purge")
    s.set_defaults(func=cmd_services)

    from clipforge_cli import feedback, handoff
    from clipforge_cli import metrics as cli_metrics
    from clipforge_cli import ops as cli_ops

    cli_ops.register(sub)
    cli_metrics.register(sub)
    handoff.register(sub)
    feedback.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from clipforge import interrupts

    interrupts.install()
    args = build_parser().parse_args(argv)
    try:
        rc = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return rc
    except BrokenPipeError as exc:
        if not _stdout_closed():
            return _internal_error(exc)
        return _quiet_after_closed_stdout()
    except KeyboardInterrupt:
        print("clipforge: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if interrupts.interrupted():  # raised while Ctrl-C unwound: still the interrupt
            print("clipforge: interrupted", file=sys.stderr)
            return 130
        if isinstance(exc, ClipforgeError):
            print(f"clipforge: {exc.one_line()}", file=sys.stderr)
            return exc.exit_code
        return _internal_error(exc)


def _stdout_closed() -> bool:
    """True when the reader of stdout has gone (`clipforge jobs | head -1`).

    Asked of the pipe itself: a failed write may already have emptied the buffer.
    """
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError, AttributeError):
        return False
    return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in events)


def _quiet_after_closed_stdout() -> int:
    """The reader stopped reading: nothing is wrong, so say nothing.

    Python would otherwise complain at exit while flushing stdout into the closed
    pipe, so stdout is pointed at /dev/null first. 141 is what a shell reports for
    a program ended by SIGPIPE.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 141


def _internal_error(exc: Exception) -> int:
    """A bug or an environment problem: one line, the traceback on request."""
    if os.environ.get("CLIPFORGE_DEBUG"):
        raise exc
    print(f"clipforge: internal error: {type(exc).__name__}: {exc} "
          "(set CLIPFORGE_DEBUG=1 to see the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
