"""`clipforge export EDL.json --format otio|xml|fcpxml|srt|vtt [--out FILE]`: the editor
hand-off and caption files from an existing EDL, without re-analysis."""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

FORMATS = ("otio", "xml", "fcpxml", "srt", "vtt")


def cmd_export(args: argparse.Namespace) -> int:
    from clipforge.export import export_edl, read_edl

    edl_path = Path(args.edl)
    out = Path(args.out) if args.out else None
    if args.format in ("otio", "xml", "fcpxml"):
        from clipforge.deliver import handoff_cues

        print(export_edl(edl_path, args.format, out, captions=handoff_cues(read_edl(edl_path))))
        return 0
    from clipforge.captions import write_sidecars
    from clipforge.errors import ExportError

    edl = read_edl(edl_path)
    if not edl.words:
        raise ExportError(f"{edl_path}: the EDL carries no transcript words (captions were "
                          "off, or it was written before captions existed); re-run "
                          "`clipforge run` with --captions sidecar or burn")
    target = out or edl_path.with_name(f"highlights.{args.format}")
    if not target.parent.is_dir():
        raise ExportError(f"{target.parent}: no such folder; create it or choose another --out")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        written = {p.suffix[1:]: p for p in write_sidecars(edl, Fraction(edl.output.fps),
                                                           Path(tmp))}
        written[args.format].replace(target)
    print(target)
    return 0


def register(subparsers: Any) -> None:
    e = subparsers.add_parser("export", help="write an EDL as OTIO, FCP7 XML, SRT or VTT")
    e.add_argument("edl", help="an edl.json written by `clipforge run`")
    e.add_argument("--format", required=True, choices=FORMATS)
    e.add_argument("--out", help="output file (default: highlights.<ext> beside the EDL)")
    e.set_defaults(func=cmd_export)
