"""`clipforge feedback import FILE | status | retrain`: how published clips did, and the
scoring weights it tunes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clipforge.config import load_settings


@contextmanager
def _clip_store() -> Iterator[Any]:
    from clipforge.clip_store import ClipStore
    from clipforge.store import JobStore
    from clipforge.supervise import ensure_services

    settings = load_settings()
    store = JobStore.from_settings(settings, ensure_services(settings).database_url)
    try:
        store.migrate()
        yield ClipStore(store)
    finally:
        store.close()


def cmd_import(args: argparse.Namespace) -> int:
    from clipforge.feedback.importer import import_file

    with _clip_store() as cs:
        report = import_file(cs, args.file, channel=args.channel)
    print(json.dumps(report.to_json(), indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from clipforge.feedback.learn import status

    with _clip_store() as cs:
        doc = status(cs)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    force = doc.get("in_force") or {}
    print(f"samples: {doc.get('sample_count')} (minimum {doc.get('min_samples')} to retrain)")
    print(f"weights in force: version {force.get('version')} ({force.get('name')})")
    for k, v in (force.get("weights") or {}).items():
        print(f"  {k:<14} {v}")
    cand = doc.get("candidate")
    if cand:
        print(f"candidate: version {cand.get('version')}, adopted {cand.get('adopted')}, "
              f"held-out Spearman {cand.get('heldout_spearman')} vs "
              f"{cand.get('baseline_spearman')}")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from clipforge.feedback.learn import retrain

    with _clip_store() as cs:
        result = retrain(cs)
    print(json.dumps(result.to_json(), indent=2, default=str))
    return 0


def register(subparsers: Any) -> None:
    f = subparsers.add_parser("feedback", help="import how published clips did; show or "
                              "retrain the scoring weights")
    sub = f.add_subparsers(dest="feedback_command", required=True)
    i = sub.add_parser("import", help="import an analytics export (CSV or JSON)")
    i.add_argument("file")
    i.add_argument("--channel", default="youtube",
                   help="channel for rows without one (default youtube)")
    i.set_defaults(func=cmd_import)
    s = sub.add_parser("status", help="samples, weights in force, candidate, held-out figure")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    r = sub.add_parser("retrain", help="fit candidate weights now (guards apply)")
    r.set_defaults(func=cmd_retrain)
