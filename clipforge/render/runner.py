"""Running a render: the supervisor of the joiner and its writers, progress, the frame
count check, and ``render()``."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING

from clipforge import ffmpeg
from clipforge.config import Settings
from clipforge.edl import Edl
from clipforge.errors import ClipforgeError, FfprobeError, RenderError
from clipforge.feedback.ids import comment_tag
from clipforge.probe import MediaInfo
from clipforge.render.argv import concat_list, join_argv, part_argv
from clipforge.render.colour import OutputFormat, _even_floor
from clipforge.render.loudness import (
    Loudness,
    loudness_spans,
    measure_spans_loudness,
    reel_gain,
)
from clipforge.render.timeline import _check_supported, plan_parts

if TYPE_CHECKING:
    from clipforge.captions import CaptionStyle


@dataclass(frozen=True, slots=True)
class RenderResult:
    path: Path
    duration_s: float
    frames: int
    gain_db: float
    used_fifo: bool


class _Supervisor:
    """Runs the joiner plus one writer at a time; any failure stops everything."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.lock = threading.Lock()
        self.stop = False
        self.current: subprocess.Popen[bytes] | None = None
        self.joiner: subprocess.Popen[bytes] | None = None
        self.failures: list[RenderError] = []
        self.feeder: threading.Thread | None = None

    def fail(self, err: RenderError | None = None) -> None:
        """Record ``err`` (if any), stop feeding and kill every running process."""
        with self.lock:
            if err is not None:
                self.failures.append(err)
            self.stop = True
            procs = [p for p in (self.current, self.joiner) if p is not None]
        for p in procs:
            if p.poll() is None:
                p.kill()

    def reap(self, timeout: float = 5.0) -> None:
        """After ``fail()``: wait for the killed processes and the feeder thread."""
        with self.lock:
            procs = [p for p in (self.current, self.joiner) if p is not None]
        for p in procs:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.feeder is not None and self.feeder is not threading.current_thread():
            self.feeder.join(timeout=timeout)

    def error(self) -> RenderError | None:
        """The most telling failure, with the other processes' stderr appended.

        A writer's own error wins over the joiner's, except a writer that only saw a
        broken pipe (the joiner died first)."""
        if not self.failures:
            return None
        own = [
            f
            for f in self.failures
            if f.message.startswith("segment writer") and "Broken pipe" not in f.stderr_tail
        ]
        joiner = [f for f in self.failures if not f.message.startswith("segment writer")]
        primary = own[0] if own else (joiner or self.failures)[0]
        others = [f for f in self.failures if f is not primary]
        tail = primary.stderr_tail
        for other in others:
            tail += f"\n-- also: {other.message}\n{other.stderr_tail}"
        return RenderError(primary.message, argv=primary.argv, stderr_tail=tail.strip())

    def feed(self, writers: list[list[str]]) -> None:
        for i, argv in enumerate(writers):
            log_path = self.tmp / f"part{i:04d}.log"
            with open(log_path, "wb") as log:
                with self.lock:
                    if self.stop:
                        return
                    try:
                        proc = ffmpeg.popen(argv, stdout=subprocess.DEVNULL, stderr=log)
                    except Exception as exc:
                        proc = None
                        start_error = exc
                    else:
                        self.current = proc
                if proc is None:
                    self.fail(
                        start_error
                        if isinstance(start_error, RenderError)
                        else RenderError(
                            f"could not start segment writer {i}: {start_error}", argv=argv
                        )
                    )
                    return
                rc = proc.wait()
            with self.lock:
                self.current = None
                stopped = self.stop
            if rc != 0:
                tail = ffmpeg.stderr_tail(log_path.read_bytes())
                last = tail.splitlines()[-1] if tail else f"exit status {rc}"
                if not stopped or tail:
                    self.fail(
                        RenderError(
                            f"segment writer {i} failed: {last}", argv=argv, stderr_tail=tail
                        )
                    )
                return
            if stopped:
                return


def _read_progress(
    stream: IO[bytes], total_us: int, progress: Callable[[float], None] | None
) -> None:
    for raw in stream:
        line = raw.decode("ascii", "replace").strip()
        if progress is None or not line.startswith("out_time_us="):
            continue
        try:
            us = int(line.split("=", 1)[1])
        except ValueError:
            continue
        if total_us > 0 and us >= 0:
            progress(min(1.0, us / total_us))


def _verify_frames(path: Path, expected: int) -> None:
    """Count the output's video packets (no decode) and insist on the planned number."""
    argv = [
        "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
        "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path),
    ]  # fmt: skip
    try:
        text = ffmpeg.run(argv, timeout=60).stdout.decode("ascii", "replace").strip()
    except FfprobeError as exc:
        raise RenderError(f"the rendered reel {path} cannot be read back: {exc.message}",
                          argv=exc.argv, stderr_tail=exc.stderr_tail) from exc
    try:
        got = int(text.split(",")[0])
    except ValueError:
        got = -1
    if got != expected:
        raise RenderError(
            f"the rendered reel has {got} video frames, the plan has {expected}; the output "
            "was discarded. A segment may lie past the end of the source's video stream "
            "(check the EDL against `clipforge probe`); otherwise report it with the EDL.",
            argv=argv,
        )


def _check_reframe(edl: Edl, canvas: OutputFormat) -> None:
    """A reframed EDL renders to its output size, which must be every reframe's size."""
    for i, seg in enumerate(edl.segments):
        r = seg.reframe
        if r is not None and (r.width, r.height) != (canvas.width, canvas.height):
            raise RenderError(
                f"segment {i}: reframed to {r.width}x{r.height} ({r.aspect}) but the EDL's "
                f"output is {canvas.width}x{canvas.height}; all segments of one EDL share "
                "the output size: set `output.width/height` to the reframe size (re-plan).")


def _burn_style(edl: Edl, canvas: OutputFormat) -> CaptionStyle | None:
    """The caption style when the EDL burns captions (and has words), its font checked:
    libass would substitute a missing font silently (``FontMissingError``)."""
    from clipforge.captions import check_font, load_style  # captions import render

    if not (edl.captions and edl.captions.mode == "burn" and edl.words):
        return None
    style = load_style(edl.captions.style, canvas.width, canvas.height)
    check_font(style.font, style.bold)
    return style


def _caption_step(edl: Edl, style: CaptionStyle, fps: Fraction, total_frames: int,
                  tmp: Path) -> str:
    """Write the reel-time ASS into ``tmp``; the joiner's ``ass`` filter step for it."""
    from clipforge.captions import caption_filter, reel_words, write_ass

    ass = write_ass(tmp / "captions.ass", reel_words(edl.words, edl.segments, fps), fps,
                    style, total_frames)
    return caption_filter(ass)


def clip_ids(edl: Edl) -> list[str]:
    """The ``clip_id`` of every highlight the EDL's segments play (rank order, each once):
    a highlight counts when at least half of it lies inside the segments, so a
    neighbour that a cut point's few hundred ms reach does not."""
    ids: list[str] = []
    for h in edl.highlights:
        if h.clip_id is None or h.clip_id in ids:
            continue
        inside = sum(max(0.0, min(h.end, s.source_out) - max(h.start, s.source_in))
                     for s in edl.segments)
        if inside > 0 and inside >= 0.5 * (h.end - h.start):
            ids.append(h.clip_id)
    return ids


def _comment(edl: Edl) -> str | None:
    ids = clip_ids(edl)
    return comment_tag(ids) if ids else None


NO_SPACE = "No space left on device"


def _no_space_folder(exc: BaseException, out_dir: Path, tmp: Path) -> Path | None:
    """The folder that ran out of space if ``exc`` (or an FFmpeg log in ``tmp``) says
    ENOSPC, else None. The joiner writes into ``out_dir``; writers' parts live in ``tmp``."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Path(exc.filename).parent if exc.filename else out_dir
    texts = [str(getattr(exc, "stderr_tail", "")), str(exc)]
    if NO_SPACE in " ".join(texts):
        return out_dir
    for log in sorted(tmp.glob("*.log")):
        with_errors = log.read_text(errors="replace")
        if NO_SPACE in with_errors:
            return out_dir if log.name == "join.log" else tmp.parent
    return None


def render(
    edl: Edl,
    info: MediaInfo,
    out_path: Path,
    *,
    settings: Settings | None = None,
    loudness: Loudness | None = None,
    progress: Callable[[float], None] | None = None,
    use_fifo: bool = True,
) -> RenderResult:
    """Render ``edl`` over the source described by ``info`` to ``out_path`` (MP4).

    ``loudness`` is pass 1 (``measure_spans_loudness`` of the segments, or
    ``measure_loudness`` of the whole source); when ``None`` and the source has audio the
    segments are measured here. The output canvas, fps and loudness target come from
    ``edl.output``; encoder settings and threads from ``settings``.

    ``use_fifo=False`` (benchmarks/diagnosis only): the writers first write their NUT
    parts as regular files in the temp dir, one after another, then the same joiner
    reads them. Same filters, same join, same output bytes; costs disk space for the
    uncompressed parts (about 1.4 MB per 720p frame).
    """
    settings = settings or Settings()
    out_path = Path(out_path).expanduser().resolve()
    if not out_path.parent.is_dir():
        raise RenderError(f"{out_path}: the output folder does not exist; create it first.")
    fps = Fraction(edl.output.fps)
    canvas = OutputFormat(_even_floor(edl.output.width), _even_floor(edl.output.height), fps)
    _check_supported(edl.segments)
    _check_reframe(edl, canvas)
    style = _burn_style(edl, canvas)  # before any FFmpeg work: a missing font fails fast
    comment = _comment(edl)
    if loudness is None and info.audio is not None:
        loudness = measure_spans_loudness(info.path, info, loudness_spans(edl))
    gain, limit = reel_gain(loudness, edl.segments, edl.output.loudness_lufs,
                            edl.output.true_peak_db)
    parts = plan_parts(edl.segments, fps, gain, limit)
    total_frames = sum(p.frames for p in parts)
    total_us = round(Fraction(total_frames) / fps * 1_000_000)

    tmp = Path(tempfile.mkdtemp(prefix="clipforge-render-"))
    # FFmpeg creates it (normal permissions); renamed over out_path only on success
    partial = out_path.with_name(f".{out_path.stem}.{secrets.token_hex(6)}.partial.mp4")
    sup = _Supervisor(tmp)
    ok = False
    try:
        entries: list[tuple[Path, Fraction]] = []
        writers: list[list[str]] = []
        for part in parts:
            fifo = tmp / f"part{part.index:04d}.nut"
            if use_fifo:
                os.mkfifo(fifo, 0o600)
            entries.append((fifo, Fraction(part.frames) / fps))
            writers.append(part_argv(info.path, info, canvas, part, fifo, settings))
        list_path = tmp / "segments.ffconcat"
        list_path.write_text(concat_list(entries), encoding="utf-8")
        vf = _caption_step(edl, style, fps, total_frames, tmp) if style else None
        join = join_argv(list_path, partial, canvas, settings, video_filter=vf, comment=comment)
        if not use_fifo:
            # temp-file path: write every part to disk first (same supervisor, so a
            # failing writer is reported the same way), then join the files
            sup.feed(writers)
            err = sup.error()
            if err is not None:
                raise err
        join_log = tmp / "join.log"
        with open(join_log, "wb") as jlog:
            joiner = ffmpeg.popen(join, stdout=subprocess.PIPE, stderr=jlog)
            with sup.lock:
                sup.joiner = joiner
            feeder = threading.Thread(
                target=sup.feed, args=(writers if use_fifo else [],), daemon=True
            )
            sup.feeder = feeder
            feeder.start()
            assert joiner.stdout is not None
            _read_progress(joiner.stdout, total_us, progress)
            rc = joiner.wait()
            if rc != 0:
                # let a failed writer report first: its error is usually the cause
                feeder.join(timeout=2)
                tail = ffmpeg.stderr_tail(join_log.read_bytes())
                last = tail.splitlines()[-1] if tail else f"exit status {rc}"
                sup.fail(RenderError(f"joining FFmpeg failed: {last}", argv=join, stderr_tail=tail))
            else:
                # the joiner is done: every writer must have finished too
                feeder.join(timeout=10)
                if feeder.is_alive():
                    sup.fail(
                        RenderError("a segment writer did not finish after the join", argv=join)
                    )
            feeder.join(timeout=30)
        err = sup.error()
        if err is not None:
            raise err
        _verify_frames(partial, total_frames)
        os.replace(partial, out_path)
        ok = True
    except (ClipforgeError, OSError) as exc:
        folder = _no_space_folder(exc, out_path.parent, tmp)
        if folder is None:
            raise
        raise RenderError(
            f"no space left on device in {folder}: the reel {out_path.name} was not written; "
            "free some space there (or render to another folder with --out) and try again.",
            argv=list(getattr(exc, "argv", [])), stderr_tail=str(getattr(exc, "stderr_tail", "")),
        ) from exc
    finally:
        if not ok:
            sup.fail()
            sup.reap()
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            partial.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)
    return RenderResult(
        path=out_path,
        duration_s=float(Fraction(total_frames) / fps),
        frames=total_frames,
        gain_db=gain,
        used_fifo=use_fifo,
    )
