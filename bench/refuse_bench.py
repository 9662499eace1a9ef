"""How fast ``clipforge.probe.probe()`` refuses bad input (goal: each well under 10 s).

    .venv/bin/python bench/refuse_bench.py [--media ../shared/media] [--repeat 1]

Times ``probe()`` (default, i.e. without ``tonemap``) on every bad file in the shared
media folder (``corrupt_*``, ``hdr*``) and on synthetic bad inputs made in a temp dir:
zero bytes, a text file, random bytes named .mp4, truncated MP4s (moov first with the
media data cut at 64 KiB / 50 %; moov at the end cut at 50 % / 99 %, i.e. no index), a
missing path and a folder. Prints a table (outcome,
error class and code, seconds, first words of the message) and writes
bench/results/refuse.json. A file that is *accepted* is reported as ``accepted``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.probe import probe  # noqa: E402

MEDIA = REPO.parent / "shared" / "media"
RESULTS = REPO / "bench" / "results"
GOOD = "talk_en_42s__auto-editor_example.mp4"
GOAL_S = 10.0


def synthetic(work: Path, media: Path) -> list[tuple[str, Path]]:
    good = media / GOOD
    data = good.read_bytes()
    items: list[tuple[str, Path]] = []

    def put(name: str, content: bytes) -> None:
        p = work / name
        p.write_bytes(content)
        items.append((f"synthetic:{name}", p))

    put("zero_bytes.mp4", b"")
    put("text.mp4", ("This is not a video.\n" * 200).encode())
    put("random.mp4", os.urandom(256 * 1024))
    # the shared talk clip has moov at the end (check with ffprobe -v trace if needed):
    # cutting it loses the index
    # the shared talk clip has its moov atom first (ftyp, moov, uuid, free, mdat): cutting
    # it keeps the index but loses media data the index points to
    put("moovfirst_cut64k.mp4", data[: 64 * 1024])
    put("moovfirst_cut50pct.mp4", data[: len(data) // 2])
    # remuxed without +faststart, the moov atom is at the end: cutting it loses the index
    tail = work / "moov_at_end.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(good), "-c", "copy",
                    str(tail)], check=True)  # fmt: skip
    tdata = tail.read_bytes()
    tail.unlink()
    put("moovlast_cut50pct.mp4", tdata[: len(tdata) // 2])
    put("moovlast_cut99pct.mp4", tdata[: int(len(tdata) * 0.99)])
    items.append(("synthetic:missing.mp4", work / "missing.mp4"))
    folder = work / "folder.mp4"
    folder.mkdir()
    items.append(("synthetic:folder.mp4", folder))
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--media", type=Path, default=MEDIA)
    ap.add_argument("--repeat", type=int, default=1, help="probe each input N times, keep max")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    shared = sorted(
        p for p in args.media.iterdir() if p.name.startswith(("corrupt", "hdr")) and p.is_file()
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="clipforge-refuse-") as tmp:
        inputs = [(f"shared:{p.name}", p) for p in shared] + synthetic(Path(tmp), args.media)
        for label, path in inputs:
            times = []
            outcome, cls, code, msg = "accepted", "", "", ""
            for _ in range(max(1, args.repeat)):
                t0 = time.monotonic()
                try:
                    info = probe(path)
                    outcome, msg = "accepted", f"{info.format_name} {info.duration_s:.2f} s"
                except Exception as exc:
                    outcome = "refused"
                    cls = type(exc).__name__
                    code = str(getattr(exc, "code", ""))
                    msg = str(getattr(exc, "message", exc))
                times.append(time.monotonic() - t0)
            rows.append({
                "input": label, "outcome": outcome, "error": cls, "code": code,
                "seconds": round(max(times), 3), "under_goal": max(times) < GOAL_S,
                "message": msg.replace(str(path), "<path>")[:160],
            })  # fmt: skip
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "goal_s": GOAL_S,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "refuse.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{'input':58} {'outcome':8} {'error':20} {'sec':>6}  message")
    for r in rows:
        print(
            f"{r['input']:58} {r['outcome']:8} {r['error']:20} {r['seconds']:6.2f}  "
            f"{r['message'][:70]}"
        )
    slowest = max(rows, key=lambda r: r["seconds"])
    print(
        f"slowest {slowest['input']} {slowest['seconds']:.2f} s (goal < {GOAL_S} s); "
        f"load {report['load_before']} -> {report['load_after']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
