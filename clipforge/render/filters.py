"""FFmpeg filter graphs of a part: colour conversion, fit, fps, exact trims, fades and
the ``xfade``/``acrossfade`` chains of crossfaded runs."""

from __future__ import annotations

from fractions import Fraction

from clipforge.probe import VideoInfo
from clipforge.render.colour import OutputFormat, _even_floor, _fit, input_colour
from clipforge.render.loudness import AUDIO_RATE, _audio_prep
from clipforge.render.timeline import PartPlan, SegmentPlan


def _fps_str(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def _num(x: float | Fraction) -> str:
    text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _exact_video(frames: int) -> list[str]:
    return ["tpad=stop=-1:stop_mode=clone", f"trim=end_frame={frames}", "setpts=PTS-STARTPTS"]


def _exact_audio(samples: int) -> list[str]:
    return ["apad", f"atrim=end_sample={samples}", "asetpts=N/SR/TB"]


def _video_fades(plan: SegmentPlan) -> list[str]:
    steps = []
    if plan.fade_in_frames:
        steps.append(f"fade=t=in:s=0:n={plan.fade_in_frames}")
    if plan.fade_out_frames:
        steps.append(f"fade=t=out:s={plan.frames - plan.fade_out_frames}:n={plan.fade_out_frames}")
    return steps


DECLICK_SAMPLES = 240  # 5 ms at 48 kHz: the shortest audio fade at every cut


def _audio_fades(plan: SegmentPlan, declick: bool = True) -> list[str]:
    """Dips (``fade``) plus, with ``declick``, at least a 5 ms ramp at both ends of the
    span (at most half of it), so no cut clicks; the video is not faded by it."""
    least = min(DECLICK_SAMPLES, plan.samples // 2) if declick else 0
    n_in = max(plan.fade_in_samples, least)
    n_out = max(plan.fade_out_samples, least)
    steps = []
    if n_in:
        steps.append(f"afade=t=in:ss=0:ns={n_in}")
    if n_out:
        steps.append(f"afade=t=out:ss={plan.samples - n_out}:ns={n_out}")
    return steps


def video_filter(
    video: VideoInfo | None,
    canvas: OutputFormat,
    plan: SegmentPlan,
    *,
    src_label: str,
    out_label: str = "v",
    lead_trim: Fraction = Fraction(0),
) -> str:
    """Filter chain for one segment's video, ``[src_label] ... [out_label]``.

    CFR -> reframe (``plan.reframe``: the per-frame crop/fit/split fragment of
    :func:`clipforge.reframe.reframe_filter_steps`, before the tags because its
    split/overlay/vstack drop them) -> tag (setparams) -> zscale to BT.709 limited at the
    fitted size -> letterbox pad -> setsar=1 -> pad/trim to exactly ``plan.frames`` -> dips
    to black. A reframed segment must have the canvas's size (``reframe.width x height``)."""
    w, h = canvas.width, canvas.height
    fps = _fps_str(canvas.fps)
    steps: list[str] = []
    if video is None:
        steps += [
            "format=yuv420p",
            "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709",
        ]
    else:
        c = input_colour(video)
        sw, sh = _fit(video.display_width, video.display_height, w, h)
        reframe = plan.reframe
        if reframe is not None:
            sw, sh = reframe.width, reframe.height
        if lead_trim > 0:  # the input was not seeked: drop frames before the seek point
            steps.append(f"trim=start={_num(lead_trim)}")
        steps.append("setpts=PTS-STARTPTS")
        if video.width % 2 or video.height % 2:
            # zscale refuses odd sizes with chroma subsampling: drop the odd row/column
            steps.append("crop=floor(iw/2)*2:floor(ih/2)*2:0:0")
        steps.append(f"fps={fps}")
        if reframe is not None:
            # imported here: the reframe package pulls in its analysis (cv2, av)
            from clipforge.reframe.filters import reframe_filter_steps

            # the frames arrive auto-rotated at the coded size (cropped even above), which
            # differs from the display size for non-square pixels
            fw, fh = (video.height, video.width) if video.rotation in (90, 270) else (
                video.width, video.height)
            steps.append(reframe_filter_steps(
                reframe, video.display_width, video.display_height, reframe.width,
                reframe.height, plan.source_in, frame_w=_even_floor(fw), frame_h=_even_floor(fh),
                label=f"rf{out_label}"))
        steps.append(
            f"setparams=range={c.range}:color_primaries={c.primaries}"
            f":color_trc={c.transfer}:colorspace={c.matrix}"
        )
        if video.hdr:
            steps += [
                "zscale=t=linear:npl=100",
                "format=gbrpf32le",
                "zscale=p=bt709",
                "tonemap=tonemap=hable:desat=0",
                f"zscale=w={sw}:h={sh}:f=bicubic:t=bt709:m=bt709:r=tv",
            ]
        else:
            steps.append(f"zscale=w={sw}:h={sh}:f=bicubic:p=bt709:t=bt709:m=bt709:r=tv")
        steps += [
            "format=yuv420p",
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:black",
        ]
    steps += ["setsar=1", *_exact_video(plan.frames), *_video_fades(plan)]
    return f"[{src_label}]" + ",".join(steps) + f"[{out_label}]"


def audio_filter(
    plan: SegmentPlan,
    *,
    src_label: str,
    silent: bool,
    out_label: str = "a",
    skip_samples: int = 0,
    declick: bool = True,
) -> str:
    """Filter chain for one segment's audio: 48 kHz stereo, gain, exact sample count,
    fades (``declick``: a 5 ms ramp at both ends, off for the inner ends of crossfades).

    ``skip_samples``: audio between where decoding starts and ``source_in``."""
    steps: list[str] = []
    if silent:
        steps.append(_audio_prep())
    else:
        # async + first_pts: fill timestamp gaps (edit lists, VFR phones) with silence and
        # start exactly at the seek point, keeping A/V sync
        steps += [
            f"aresample={AUDIO_RATE}:async=1:first_pts=0",
            "aformat=sample_fmts=fltp:channel_layouts=stereo",
        ]
        if skip_samples > 0:
            steps += [f"atrim=start_sample={skip_samples}", "asetpts=N/SR/TB"]
        if plan.gain_db:
            steps.append(f"volume={plan.gain_db:.2f}dB:precision=double")
        if plan.limit_db is not None:  # fixed parameters: identical for every segment
            steps.append(f"alimiter=limit={10 ** (plan.limit_db / 20):.6f}:level=0:latency=1:"
                         "attack=5:release=50")
    steps += [*_exact_audio(plan.samples), *_audio_fades(plan, declick)]
    return f"[{src_label}]" + ",".join(steps) + f"[{out_label}]"


def _xfade_chain(part: PartPlan, fps: Fraction, whole: SegmentPlan) -> str:
    """``[v0][v1]xfade...`` over the part's segments, then exact length and end dips."""
    segs = part.segments
    if len(segs) == 1:
        return "[v0]null[v]"
    chain: list[str] = []
    label, length = "v0", segs[0].frames
    for m, seg in enumerate(segs[1:], start=1):
        offset = Fraction(length - seg.xfade_frames) / fps
        out = f"x{m}"
        dur, off = _num(Fraction(seg.xfade_frames) / fps), _num(offset)
        chain.append(f"[{label}][v{m}]xfade=transition=fade:duration={dur}:offset={off}[{out}]")
        label, length = out, length + seg.frames - seg.xfade_frames
    tail = ",".join([*_exact_video(part.frames), *_video_fades(whole)])
    chain.append(f"[{label}]{tail}[v]")
    return ";".join(chain)


def _acrossfade_chain(part: PartPlan, whole: SegmentPlan) -> str:
    segs = part.segments
    if len(segs) == 1:
        return "[a0]anull[a]"
    chain: list[str] = []
    label = "a0"
    for m, seg in enumerate(segs[1:], start=1):
        out = f"y{m}"
        chain.append(f"[{label}][a{m}]acrossfade=ns={seg.xfade_samples}:c1=tri:c2=tri[{out}]")
        label = out
    tail = ",".join([*_exact_audio(part.samples), *_audio_fades(whole)])
    chain.append(f"[{label}]{tail}[a]")
    return ";".join(chain)
