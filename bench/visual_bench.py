"""Speed of clipforge.visual.visual_track on real media (wall and CPU, realtime factor).

    .venv/bin/python bench/visual_bench.py [FILE ...]

Without arguments it measures the shared 6-min black 1080p file and the 24 s 720p
scene-cut file. The machine may be shared: CPU seconds are the steadier number.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import av

from clipforge.visual import visual_track

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
DEFAULT = [
    MEDIA / "silent_black_6min__androidx-media_long_1080p_lowbitrate.mp4",
    MEDIA / "noaudio_real_720p2997__pyscenedetect_testvideo.mp4",
    MEDIA / "talk_en_42s__auto-editor_example.mp4",
]


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or DEFAULT
    for path in paths:
        with av.open(str(path)) as container:
            duration_us = int(container.duration or 0)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        track = visual_track(str(path), duration_us=duration_us)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        src_s = duration_us / 1e6
        print(f"{path.name}: {src_s:.1f} s source, method={track.method}, "
              f"{len(track.frame_times_us)} frames, {len(track.scene_cuts)} cuts | "
              f"wall {wall:.2f} s ({src_s / wall:.1f}x realtime), "
              f"CPU {cpu:.2f} s ({src_s / cpu:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
