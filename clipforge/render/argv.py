"""FFmpeg argv builders: one segment writer per part, the concat list of FIFOs (with
its path escaping), the joiner, and the input seek point."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from clipforge.config import Settings
from clipforge.probe import MediaInfo, VideoInfo
from clipforge.render.colour import OutputFormat
from clipforge.render.filters import (
    _acrossfade_chain,
    _fps_str,
    _num,
    _xfade_chain,
    audio_filter,
    video_filter,
)
from clipforge.render.loudness import AUDIO_RATE
from clipforge.render.timeline import NO_SEEK_BELOW_S, PartPlan


def _threads(settings: Settings) -> list[str]:
    return ["-threads", str(settings.cpu_threads)]


def _filter_threads(settings: Settings) -> list[str]:
    """Pin the writer's filter graph threads too when threads are pinned (0: FFmpeg's
    default, one per core)."""
    if settings.cpu_threads <= 0:
        return []
    return ["-filter_complex_threads", str(settings.cpu_threads)]


def seek_point(source_in: float, video: VideoInfo | None) -> Fraction:
    """Where a segment's input seek lands: half a source frame before ``source_in``.

    FFmpeg's accurate seek keeps frames with ``pts >= seek``; seeking half a frame early
    makes the segment start on the source frame *nearest* to ``source_in`` (robust to
    float rounding of EDL times). The audio skips that half frame again, so it starts
    exactly at ``source_in``."""
    start = Fraction(source_in)
    if video is None or video.fps <= 0:
        return start
    return max(Fraction(0), start - Fraction(1, 2) / video.fps)


def part_argv(
    src: str | Path,
    info: MediaInfo,
    canvas: OutputFormat,
    part: PartPlan,
    target: str | Path,
    settings: Settings,
) -> list[str]:
    """One writer: input-seek each segment of the part (``-ss IN -i SRC``), filter,
    crossfade them if the part has several, and write rawvideo + PCM in NUT to ``target``."""
    fps = canvas.fps
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-nostats",
            *_filter_threads(settings)]  # fmt: skip
    graph: list[str] = []
    n = len(part.segments)
    skips: list[int] = []
    lead_trims: list[Fraction] = []
    for seg in part.segments:
        seek = seek_point(seg.source_in, info.video)
        read_for = Fraction(seg.frames) / fps + 1
        if seek >= NO_SEEK_BELOW_S:
            argv += [*_threads(settings), "-ss", _num(seek), "-t", _num(read_for),
                     "-i", str(src)]  # fmt: skip
            lead_trims.append(Fraction(0))
            skips.append(round((Fraction(seg.source_in) - seek) * AUDIO_RATE))
        else:
            # FFmpeg 5.1 fails seeks near the start of FLV files (with or without an
            # index): decode from the start and trim the (< 1 s) lead in the filters
            argv += [*_threads(settings), "-t", _num(seek + read_for), "-i", str(src)]
            lead_trims.append(seek)
            skips.append(round(Fraction(seg.source_in) * AUDIO_RATE))
    whole = part.whole
    # video
    if info.video is not None:
        for m, seg in enumerate(part.segments):
            fades = seg if n == 1 else dataclasses.replace(seg, fade_in_frames=0, fade_out_frames=0)
            graph.append(
                video_filter(info.video, canvas, fades, src_label=f"{m}:{info.video.index}",
                             out_label=f"v{m}", lead_trim=lead_trims[m])
            )  # fmt: skip
        graph.append(_xfade_chain(part, fps, whole))
    else:
        argv += [
            "-f", "lavfi", "-i",
            f"color=c=black:s={canvas.width}x{canvas.height}:r={_fps_str(fps)}",
        ]  # fmt: skip
        graph.append(video_filter(None, canvas, whole, src_label=f"{n}:v"))
        n += 1
    # audio
    if info.audio is not None:
        for m, seg in enumerate(part.segments):
            fades = (
                seg
                if len(part.segments) == 1
                else dataclasses.replace(seg, fade_in_samples=0, fade_out_samples=0)
            )
            graph.append(
                audio_filter(fades, src_label=f"{m}:{info.audio.index}", silent=False,
                             skip_samples=skips[m], declick=len(part.segments) == 1,
                             out_label=f"a{m}")
            )  # fmt: skip
        graph.append(_acrossfade_chain(part, whole))
    else:
        argv += ["-f", "lavfi", "-i", f"anullsrc=r={AUDIO_RATE}:cl=stereo"]
        graph.append(audio_filter(whole, src_label=f"{n}:a", silent=True))
    argv += [
        "-filter_complex", ";".join(graph),
        "-map", "[v]", "-map", "[a]",
        "-c:v", "rawvideo", "-pix_fmt", "yuv420p",
        "-c:a", "pcm_f32le", "-ar", str(AUDIO_RATE), "-ac", "2",
        "-map_metadata", "-1", "-fflags", "+bitexact",
        "-f", "nut", "-y", str(target),
    ]  # fmt: skip
    return argv


def escape_concat_path(path: str | Path) -> str:
    """Quote a path for the concat demuxer: ``'`` becomes ``'\\''`` inside single quotes."""
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_list(entries: Sequence[tuple[Path, Fraction]]) -> str:
    """An ffconcat list of absolute paths, each with its exact duration."""
    lines = ["ffconcat version 1.0"]
    for path, duration in entries:
        if not Path(path).is_absolute():
            raise ValueError(f"concat entries must be absolute paths: {path}")
        lines.append(f"file {escape_concat_path(path)}")
        lines.append(f"duration {float(duration):.9f}")
    return "\n".join(lines) + "\n"


def join_argv(
    list_path: Path, out_path: Path, canvas: OutputFormat, settings: Settings, *,
    video_filter: str | None = None, comment: str | None = None,
) -> list[str]:
    """The joiner: concat demuxer over the FIFOs, one H.264 + AAC encode.

    ``video_filter``: a ``-vf`` over the joined reel, in reel time (the burned captions'
    ``ass`` step). ``comment``: the MP4 ``comment`` tag (the clip ids), written after
    ``-map_metadata -1`` so it is the only tag."""
    vf = ["-vf", video_filter] if video_filter else []
    tag = ["-metadata", f"comment={comment}"] if comment else []
    pin = ["-filter_threads", str(settings.cpu_threads)] if vf and settings.cpu_threads > 0 else []
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-nostats",
        *pin,
        "-progress", "pipe:1",
        "-f", "concat", "-safe", "0", "-i", str(list_path),
        "-map", "0:v:0", "-map", "0:a:0",
        *vf,
        *_threads(settings),
        "-c:v", "libx264", "-preset", settings.video_preset, "-crf", str(settings.video_crf),
        "-pix_fmt", "yuv420p", "-fps_mode", "passthrough",
        "-color_primaries", "bt709", "-color_trc", "bt709",
        "-colorspace", "bt709", "-color_range", "tv",
        "-c:a", "aac", "-b:a", settings.audio_bitrate, "-ar", str(AUDIO_RATE), "-ac", "2",
        "-map_metadata", "-1", "-map_chapters", "-1", *tag,
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart", "-f", "mp4", "-y", str(out_path),
    ]  # fmt: skip
