"""Probe a source: ffprobe JSON -> a frozen :class:`MediaInfo`, refusing what cannot be cut.

Refusals happen here, up front, in well under 10 s per bad file, each as a typed error
whose message names the file, the problem and the remedy:

- missing file, a directory, zero bytes, or a container ffprobe cannot read (no moov
  atom, garbage, a text file) -> :class:`CorruptInputError`;
- streams that do not decode: a short moment at the start, the middle and the end is
  decoded with ``ffmpeg -xerror -err_detect explode`` (about 0.1-1 s in all); a decoder
  error, or nothing decoding at a moment the container claims to have (a truncated
  file) -> :class:`CorruptInputError`;
- neither a video nor an audio stream -> :class:`ProbeError`;
- a duration neither the container nor a packet scan (WebM written without a duration
  header) can establish, or a zero duration -> :class:`ProbeError`. The duration is
  that of the chosen video/audio streams: subtitle or data streams that run longer do
  not stretch it;
- HDR: PQ (``smpte2084``) or HLG (``arib-std-b67``) transfer, BT.2020 primaries, or Dolby
  Vision side data -> :class:`HdrInputError` unless ``tonemap=True`` (then accepted
  with ``VideoInfo.hdr = True`` and the renderer tone-maps it).

Accepted as they are: BT.601 tags, full range (``yuvj*``), untagged colour, rotation
side data, non-square pixels, VFR, MPEG-PS, Matroska with subtitle streams, FLV, WebM and
audio-only files. Cover art (``attached_pic``) is not a video stream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from clipforge import ffmpeg
from clipforge.errors import (
    CorruptInputError,
    FfprobeError,
    HdrInputError,
    ProbeError,
    RenderError,
)
from clipforge.timeutil import s_to_us, us_to_s

__all__ = ["AudioInfo", "MediaInfo", "VideoInfo", "check_decodes", "probe"]

HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
HDR_PRIMARIES = frozenset({"bt2020"})
_DOVI_TAGS = frozenset({"dvh1", "dvhe", "dva1", "dvav", "dav1", "dvc1"})
_MAX_SANE_FPS = Fraction(240)
_PROBE_TIMEOUT_S = 8.0
_DECODE_WINDOW_S = 0.3
_NO_SEEK_BELOW_S = 1.0
_DECODE_TIMEOUT_S = 20.0
_TEXT_FORMATS = frozenset({"tty", "srt", "ass", "webvtt", "subviewer", "microdvd"})


@dataclass(frozen=True, slots=True)
class VideoInfo:
    index: int
    codec: str
    width: int  # coded size
    height: int
    display_width: int  # after SAR and rotation
    display_height: int
    sar: Fraction
    fps: Fraction  # r_frame_rate, or avg_frame_rate when r is absurd
    avg_fps: Fraction
    vfr: bool
    rotation: int  # degrees clockwise to display, normalised to 0/90/180/270
    pix_fmt: str
    color_range: str | None
    color_space: str | None
    color_primaries: str | None
    color_transfer: str | None
    hdr: bool


@dataclass(frozen=True, slots=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class MediaInfo:
    path: str  # absolute
    size: int
    format_name: str
    duration_us: int  # integer microseconds, rounded (never truncated)
    video: VideoInfo | None
    audio: AudioInfo | None

    @property
    def has_video(self) -> bool:
        return self.video is not None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def duration_s(self) -> float:
        return self.duration_us / 1_000_000

    def to_json(self) -> dict[str, Any]:
        """JSON-able facts (Fractions as ``"num/den"`` strings) for ``clipforge probe FILE``."""

        def conv(d: dict[str, Any]) -> dict[str, Any]:
            return {k: (_frac_str(v) if isinstance(v, Fraction) else v) for k, v in d.items()}

        return {
            "path": self.path,
            "size": self.size,
            "format_name": self.format_name,
            "duration": us_to_s(self.duration_us, 6),
            "duration_us": self.duration_us,
            "video": conv(asdict(self.video)) if self.video else None,
            "audio": conv(asdict(self.audio)) if self.audio else None,
        }


def _frac_str(f: Fraction) -> str:
    return f"{f.numerator}/{f.denominator}"


def _parse_ratio(text: Any, sep: str = "/") -> Fraction | None:
    """``"30000/1001"`` / ``"8:9"`` -> Fraction; ``None`` for missing, zero or invalid."""
    if not isinstance(text, str) or sep not in text:
        return None
    num, _, den = text.partition(sep)
    try:
        n, d = int(num), int(den)
    except ValueError:
        return None
    if n <= 0 or d <= 0:
        return None
    return Fraction(n, d)


def _parse_seconds(text: Any) -> Fraction | None:
    if text is None or text == "N/A":
        return None
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _tag(value: Any) -> str | None:
    if not isinstance(value, str) or value in ("", "unknown", "unspecified", "reserved"):
        return None
    return value


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation in degrees, 0/90/180/270.

    FFmpeg prints the display matrix as a counter-clockwise angle (-90 for a phone held
    upright); the legacy ``rotate`` tag is clockwise (90).
    """
    angle: float | None = None
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            try:
                angle = -float(side["rotation"])
            except (TypeError, ValueError):
                continue
            break
    if angle is None:
        tag = (stream.get("tags") or {}).get("rotate")
        try:
            angle = float(tag) if tag is not None else 0.0
        except ValueError:
            angle = 0.0
    return (int(round(angle / 90.0)) * 90) % 360


def _is_dolby_vision(stream: dict[str, Any]) -> bool:
    if str(stream.get("codec_tag_string", "")).lower() in _DOVI_TAGS:
        return True
    for side in stream.get("side_data_list") or []:
        kind = str(side.get("side_data_type", "")).lower()
        if "dovi" in kind or "dolby vision" in kind:
            return True
    return False


def _video_info(stream: dict[str, Any]) -> VideoInfo:
    width = int(stream.get("width") or 0)
    height = int(stream.get("height") or 0)
    sar = _parse_ratio(stream.get("sample_aspect_ratio"), ":") or Fraction(1)
    r_fps = _parse_ratio(stream.get("r_frame_rate"))
    avg = _parse_ratio(stream.get("avg_frame_rate"))
    if r_fps is not None and r_fps > _MAX_SANE_FPS and avg is not None:
        fps = avg  # e.g. 90000/1 on a phone VFR clip: the timebase, not a frame rate
    else:
        fps = r_fps or avg or Fraction(30)
    avg_fps = avg or fps
    vfr = abs(fps - avg_fps) / avg_fps > Fraction(1, 100) or (
        r_fps is not None and r_fps > _MAX_SANE_FPS
    )
    rotation = _rotation(stream)
    dw = max(2, round(width * sar)) if width else 0
    dh = height
    if rotation in (90, 270):
        dw, dh = dh, dw
    transfer = _tag(stream.get("color_transfer"))
    primaries = _tag(stream.get("color_primaries"))
    hdr = transfer in HDR_TRANSFERS or primaries in HDR_PRIMARIES or _is_dolby_vision(stream)
    return VideoInfo(
        index=int(stream["index"]),
        codec=str(stream.get("codec_name") or "unknown"),
        width=width,
        height=height,
        display_width=dw,
        display_height=dh,
        sar=sar,
        fps=fps,
        avg_fps=avg_fps,
        vfr=bool(vfr),
        rotation=rotation,
        pix_fmt=str(stream.get("pix_fmt") or "unknown"),
        color_range=_tag(stream.get("color_range")),
        color_space=_tag(stream.get("color_space")),
        color_primaries=primaries,
        color_transfer=transfer,
        hdr=hdr,
    )


def _audio_info(stream: dict[str, Any]) -> AudioInfo:
    return AudioInfo(
        index=int(stream["index"]),
        codec=str(stream.get("codec_name") or "unknown"),
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
    )


def _scan_duration(
    path: Path, start: Fraction, indexes: set[int], from_s: Fraction | None = None
) -> Fraction | None:
    """Duration from a packet scan (no decode) of the streams ``indexes``:
    max(pts + duration) - start. ``from_s`` scans only from there to the end."""
    argv = ["ffprobe", "-v", "error"]
    if from_s is not None:
        argv += ["-read_intervals", f"{float(from_s):.3f}%"]
    argv += [
        "-show_entries",
        "packet=stream_index,pts_time,duration_time",
        "-of",
        "csv=p=0",
        str(path),
    ]
    try:
        proc = ffmpeg.run(argv, timeout=_PROBE_TIMEOUT_S)
    except FfprobeError as exc:
        if exc.timed_out:
            raise ProbeError(
                f"{path}: the packet scan that establishes the duration (the container "
                f"records none) did not finish within {_PROBE_TIMEOUT_S:g} s. The machine "
                "may be overloaded or the file very long or on a slow disk; remux it (e.g. "
                "`ffmpeg -i IN -c copy OUT.mkv`) so the container records its duration, or "
                "try again when the machine is less busy."
            ) from exc
        return None
    end: Fraction | None = None
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        parts = line.strip().split(",")
        if len(parts) < 2 or not parts[0].isdigit() or int(parts[0]) not in indexes:
            continue
        pts = _parse_seconds(parts[1])
        if pts is None:
            continue
        dur = _parse_seconds(parts[2]) if len(parts) > 2 else None
        stop = pts + (dur or 0)
        if end is None or stop > end:
            end = stop
    if end is None:
        return None
    length = end - start
    return length if length > 0 else None


def _media_duration(
    path: Path, fmt: dict[str, Any], streams: list[dict[str, Any]], chosen: list[dict[str, Any]]
) -> Fraction | None:
    """Duration of the chosen video/audio streams.

    The container duration, unless other streams (subtitles, data) may stretch it: then
    the end of the chosen streams from their own durations or a scan of the last 30 s of
    packets. Without any container duration: stream durations, then a full packet scan
    (WebM written without a duration header)."""
    start = _parse_seconds(fmt.get("start_time")) or Fraction(0)
    indexes = {int(s["index"]) for s in chosen}
    container = _parse_seconds(fmt.get("duration"))
    own = [d for s in chosen for d in [_parse_seconds(s.get("duration"))] if d is not None]
    extra = any(int(s.get("index", -1)) not in indexes for s in streams)
    if container is not None:
        if not extra:
            return container
        if len(own) == len(chosen):
            return min(container, max(own))
        tail = _scan_duration(path, start, indexes, max(Fraction(0), container - 30))
        return min(container, tail) if tail is not None else container
    if own:
        return max(own)
    return _scan_duration(path, start, indexes)


def _decode_argv(path: Path, at_s: float, maps: list[int]) -> list[str]:
    argv = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-v",
        "error",
        "-nostats",
        "-xerror",
        "-err_detect",
        "explode",
    ]
    if at_s >= _NO_SEEK_BELOW_S:
        argv += ["-ss", f"{at_s:.3f}", "-t", f"{_DECODE_WINDOW_S}"]
    else:  # FFmpeg 5.1 fails seeks near the start of FLV files: decode from the start
        argv += ["-t", f"{at_s + _DECODE_WINDOW_S:.3f}"]
    argv += ["-i", str(path)]
    for index in maps:
        argv += ["-map", f"0:{index}"]
    return [*argv, "-progress", "pipe:1", "-f", "null", "-"]


def _decoded_until_us(progress_out: bytes) -> int:
    """The last ``out_time_us`` of an ``-progress`` report (0 if nothing was decoded)."""
    last = 0
    for line in progress_out.decode("ascii", "replace").splitlines():
        if line.startswith("out_time_us="):
            try:
                last = int(line.split("=", 1)[1])
            except ValueError:
                last = 0
    return last


def check_decodes(path: Path, duration_s: float, maps: list[int]) -> None:
    """Decode a short moment at the start, middle and end; raise CorruptInputError when
    a decoder reports an error or nothing decodes there (a truncated file)."""
    moments = sorted({0.0, max(0.0, duration_s / 2 - 0.15), max(0.0, duration_s - 0.6)})
    for at in moments:
        try:
            proc = ffmpeg.run(_decode_argv(path, at, maps), timeout=_DECODE_TIMEOUT_S)
        except RenderError as exc:
            detail = exc.stderr_tail.splitlines()[-1] if exc.stderr_tail else exc.message
            raise CorruptInputError(
                f"{path}: the media streams do not decode cleanly at {at:.2f} s "
                f"({detail.strip()}). The file is damaged (e.g. a broken download or "
                "recording) or uses a codec this FFmpeg cannot decode. Re-download or "
                "re-export it from the original (e.g. as H.264/AAC MP4) and try again."
            ) from exc
        if _decoded_until_us(proc.stdout) <= 0:
            raise CorruptInputError(
                f"{path}: nothing decodes at {at:.2f} s although the container says it lasts "
                f"{duration_s:.2f} s: the file is truncated (e.g. an interrupted download or "
                "copy). Re-download or re-export it from the original and try again."
            )


def probe(path: str | Path, *, tonemap: bool = False) -> MediaInfo:
    """Probe ``path`` and refuse what cannot be cut (see the module docstring)."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ProbeError(f"{p}: no such file. Check the path and try again.")
    if not p.is_file():
        raise ProbeError(f"{p}: not a regular file. Pass a video or audio file.")
    size = p.stat().st_size
    if size == 0:
        raise CorruptInputError(
            f"{p}: the file is empty (0 bytes). Re-download or re-export it and try again."
        )
    try:
        data = ffmpeg.ffprobe_json(p, timeout=_PROBE_TIMEOUT_S)
    except FfprobeError as exc:
        if exc.timed_out:
            raise ProbeError(
                f"{p}: ffprobe did not finish reading the container within "
                f"{_PROBE_TIMEOUT_S:g} s. The machine may be overloaded or the file on a slow "
                "or network disk; copy it to a local disk or try again when the machine is "
                "less busy."
            ) from exc
        detail = "; ".join(exc.stderr_tail.splitlines()[-2:]) or exc.message
        raise CorruptInputError(
            f"{p}: the container cannot be read ({detail.strip()}). The file is not a "
            "media file or is damaged or incomplete (e.g. an MP4 without its moov atom "
            "from an interrupted recording). Re-download or re-export it, or repair it "
            "(e.g. with `untrunc`), and try again."
        ) from exc

    fmt = data.get("format") or {}
    format_name = str(fmt.get("format_name") or "")
    streams = data.get("streams") or []
    if not fmt or format_name in _TEXT_FORMATS:
        raise CorruptInputError(
            f"{p}: not a media container (detected {format_name or 'nothing'}). "
            "Pass a video or audio file."
        )
    video_stream = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio_stream = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video_stream is None and audio_stream is None:
        kinds = sorted({str(s.get("codec_type")) for s in streams}) or ["none"]
        raise ProbeError(
            f"{p}: no video or audio stream (streams found: {', '.join(kinds)}). "
            "clipforge needs a file with video and/or audio."
        )
    video = _video_info(video_stream) if video_stream else None
    audio = _audio_info(audio_stream) if audio_stream else None

    if video is not None and video.hdr and not tonemap:
        dovi = ", Dolby Vision" if video_stream and _is_dolby_vision(video_stream) else ""
        raise HdrInputError(
            f"{p}: HDR video (transfer {video.color_transfer or '-'}, primaries "
            f"{video.color_primaries or '-'}{dovi}). clipforge renders SDR BT.709; pass "
            "`--tonemap` to tone-map it to SDR, or supply an SDR version of the file."
        )
    if video is not None and (video.width <= 0 or video.height <= 0):
        raise CorruptInputError(
            f"{p}: the video stream has no frame size ({video.codec}). The file is damaged "
            "or uses an unsupported codec; re-export it (e.g. H.264) and try again."
        )

    chosen = [s for s in (video_stream, audio_stream) if s is not None]
    duration = _media_duration(p, fmt, streams, chosen)
    if duration is None or duration <= 0:
        raise ProbeError(
            f"{p}: the duration cannot be established: the container records none (or "
            "zero) and a packet scan found no media data. If it is a live or streamed "
            "recording, remux it (e.g. `ffmpeg -i IN -c copy OUT.mkv`) so the container "
            "records its duration; if it is empty, re-export it. Then try again."
        )
    duration_us = s_to_us(duration)

    maps = [s.index for s in (video, audio) if s is not None]
    check_decodes(p, float(duration), maps)
    return MediaInfo(
        path=str(p),
        size=size,
        format_name=format_name,
        duration_us=duration_us,
        video=video,
        audio=audio,
    )
