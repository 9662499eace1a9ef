"""Evaluation episodes composed at eval time from manifests, ground truth by construction.

A manifest (``eval/*.json``, the format of ``../shared/eval/public.json``) names parts in
order: real recordings (``src`` relative to the manifest's ``media`` folder, or
``pkg:DIST_MODULE/path`` for a file that an installed package ships), optionally shown over
a separate real ``video``, optionally with real ``noise`` (music, babble) mixed under the
speech at ``gain_db``, and ``gap`` parts of black silence. Composing renders one MP4
(640x360, 25 fps, BT.709, AAC 48 kHz stereo), the same timeline's speech without the
mixed-in noise (``NAME.speech.flac``, for the evaluation's independent word pass) and a
truth file mapping every labelled part and every case to episode seconds. No media is
committed; the output is deterministic (bit-exact flags, fixed encoder threads), so the
pipeline's sha256-keyed caches hit on a re-run.

usage: python -m clipforge.episodes compose MANIFEST... --out DIR
       python -m clipforge.episodes table RESULT.json...
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import ClipforgeError, EpisodeError

W, H, FPS, RATE = 640, 360, 25, 48000
VIDEO_OUT = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p",
             "-threads", "2", "-g", "50", "-color_primaries", "bt709", "-color_trc", "bt709",
             "-colorspace", "bt709"]
AUDIO_OUT = ["-c:a", "aac", "-b:a", "96k", "-ar", str(RATE), "-ac", "2"]
EXACT = ["-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1"]
FIT = (f"scale={W}:{H}:force_original_aspect_ratio=decrease,pad={W}:{H}:(ow-iw)/2:(oh-ih)/2,"
       f"setsar=1,fps={FPS},format=yuv420p")
STEREO = f"aresample={RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"


def resolve_source(ref: str, media: Path, manifest: Path) -> Path:
    """``pkg:module/rel/path`` -> the file inside the installed package (found without
    importing it); anything else -> ``media / ref``."""
    if ref.startswith("pkg:"):
        module, _, rel = ref[4:].partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise EpisodeError(
                f"{manifest}: part source {ref!r} needs the package that provides "
                f"`{module}`; install it (see eval/SOURCES.md for the pinned version)")
        path = Path(list(spec.submodule_search_locations)[0]) / rel
    else:
        path = media / ref
    if not path.is_file():
        raise EpisodeError(f"{manifest}: part source {path} does not exist; check the "
                           "manifest's path or ../shared/media beside the repository")
    return path


def _has_video(path: Path) -> bool:
    out = subprocess.run(  # noqa: S603 - argv list, never a shell
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                          "stream=codec_type", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return "video" in out


def frames_of(seconds: float) -> int:
    """A part lasts a whole number of video frames (its truth span is then exact)."""
    return max(1, int(seconds * FPS + 0.5))


def part_argv(part: dict[str, Any], media: Path, manifest: Path, video_out: Path,
              audio_out: Path, speech_out: Path | None = None
              ) -> tuple[list[list[str]], int, Path]:
    """The FFmpeg argvs that render one part to a video file (exactly ``frames`` frames)
    and a PCM WAV (exactly ``frames * RATE / FPS`` samples); returns argvs, frames and the
    part's speech-only WAV: ``speech_out`` (one more argv) when noise is mixed in and
    ``speech_out`` is given, else the part's audio itself."""
    speech_graph: list[str] | None = None
    if "gap" in part:
        frames = frames_of(float(part["gap"]))
        argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                f"color=black:s={W}x{H}:r={FPS}", "-f", "lavfi", "-i",
                f"anullsrc=r={RATE}:cl=stereo"]
        graph = [f"[0:v]{FIT}[v]", f"[1:a]{STEREO}[a0]"]
    else:
        src = resolve_source(part["src"], media, manifest)
        start, end = float(part["start"]), float(part["end"])
        frames = frames_of(end - start)
        argv = ["ffmpeg", "-v", "error", "-y", "-ss", f"{start}", "-t", f"{end - start}",
                "-i", str(src)]
        if part.get("video") or not _has_video(src):
            vsrc = resolve_source(part["video"], media, manifest)
            argv += ["-stream_loop", "-1", "-ss", f"{part.get('video_start', 0)}", "-i",
                     str(vsrc)]
            vin = "1:v:0"
        else:
            vin = "0:v:0"
        # `speech_gain_db` sets the recording's level; `pan` keeps it on one channel.
        speech = f"[0:a:0]{STEREO},volume={float(part.get('speech_gain_db', 0))}dB"
        if part.get("pan") in ("left", "right"):
            speech += ",pan=stereo|c0=c0|c1=0*c1" if part["pan"] == "left" else \
                ",pan=stereo|c0=0*c0|c1=c1"
        graph = [f"[{vin}]{FIT}[v]"]
        noise = part.get("noise")
        if noise:
            nsrc = resolve_source(noise["src"], media, manifest)
            idx = 2 if vin == "1:v:0" else 1
            argv += ["-stream_loop", "-1", "-ss", f"{noise.get('start', 0)}", "-i", str(nsrc)]
            graph += [f"{speech}[s]",
                      f"[{idx}:a:0]{STEREO},volume={float(noise['gain_db'])}dB[n]",
                      "[s][n]amix=inputs=2:duration=first:normalize=0[a0]"]
            speech_graph = [f"{speech}[a0]"]  # the same part without the noise
        else:
            graph += [f"{speech}[a0]"]
    samples = frames * RATE // FPS
    secs = f"{frames / FPS}"

    def wav_argv(audio_graph: list[str], out: Path) -> list[str]:
        """``audio_graph`` (ending in ``[a0]``) padded or cut to the part's samples."""
        chain = audio_graph + [f"[a0]apad=whole_len={samples},atrim=end_sample={samples}[a]"]
        return argv + ["-filter_complex", ";".join(chain), "-map", "[a]", "-t", secs,
                       "-c:a", "pcm_s16le", *EXACT, "-vn", str(out)]

    video_graph = graph[0].replace("[v]", f",trim=end_frame={frames}[v]")
    # Two runs: in one FFmpeg run the audio output stops when a short video input ends.
    video_argv = argv + ["-filter_complex", video_graph, "-map", "[v]", "-frames:v",
                         str(frames), "-t", secs, *VIDEO_OUT, *EXACT, "-an", str(video_out)]
    argvs = [video_argv, wav_argv(graph[1:], audio_out)]
    if speech_graph is None or speech_out is None:
        return argvs, frames, audio_out
    return argvs + [wav_argv(speech_graph, speech_out)], frames, speech_out


def manifest_digest(manifest: Path) -> str:
    return hashlib.sha256(manifest.read_bytes() + Path(__file__).read_bytes()).hexdigest()


def compose(manifest_path: Path, out_dir: Path) -> Path:
    """Render the episode and its truth file into ``out_dir``; returns the truth path.
    Skips the work when a truth file made from the same manifest and code exists."""
    manifest = json.loads(manifest_path.read_text())
    media = (manifest_path.parent / manifest.get("media", ".")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = manifest["name"]
    video, truth_path = out_dir / f"{name}.mp4", out_dir / f"{name}.truth.json"
    speech = out_dir / f"{name}.speech.flac"
    digest = manifest_digest(manifest_path)
    if truth_path.is_file() and video.is_file() and speech.is_file():
        old = json.loads(truth_path.read_text())
        if old.get("manifest_sha256") == digest:
            return truth_path
    spans: dict[str, list[float]] = {}
    frames_done = 0
    with tempfile.TemporaryDirectory() as tmp:
        vlist, alist, slist = [], [], []
        for i, part in enumerate(manifest["parts"]):
            vpart, apart = Path(tmp) / f"part{i:03d}.mkv", Path(tmp) / f"part{i:03d}.wav"
            argvs, frames, spart = part_argv(part, media, manifest_path, vpart, apart,
                                             Path(tmp) / f"speech{i:03d}.wav")
            try:
                for argv in argvs:
                    subprocess.run(  # noqa: S603 - argv list, never a shell
                        argv, check=True, capture_output=True, text=True)
            except subprocess.CalledProcessError as exc:
                raise EpisodeError(f"{manifest_path}: part {i} failed to render "
                                   f"({exc.stderr.strip()[-300:]}); argv: {exc.cmd}") from exc
            if "label" in part:
                spans[part["label"]] = [round(frames_done / FPS, 3),
                                        round((frames_done + frames) / FPS, 3)]
            vlist.append(f"file '{vpart}'")
            alist.append(f"file '{apart}'")
            slist.append(f"file '{spart}'")
            frames_done += frames
        (Path(tmp) / "v.txt").write_text("\n".join(vlist) + "\n")
        (Path(tmp) / "a.txt").write_text("\n".join(alist) + "\n")
        (Path(tmp) / "s.txt").write_text("\n".join(slist) + "\n")
        # The same timeline without the mixed-in noise: what the speakers said, for the
        # evaluation's independent word pass (word edges heard without babble or music).
        subprocess.run(  # noqa: S603 - argv list, never a shell
            ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
             str(Path(tmp) / "s.txt"), "-map", "0:a:0", "-c:a", "flac", *EXACT,
             str(speech)], check=True)
        subprocess.run(  # noqa: S603 - argv list, never a shell
            ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
             str(Path(tmp) / "v.txt"), "-f", "concat", "-safe", "0", "-i",
             str(Path(tmp) / "a.txt"), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
             *AUDIO_OUT, *EXACT, "-movflags", "+faststart", str(video)], check=True)
    t = frames_done / FPS
    cases = []
    for case in manifest.get("cases", []):
        t0, t1 = spans[case["part"]]
        lo, hi = case.get("within", [0, t1 - t0])
        cases.append({"id": case["id"], "prompt": case["prompt"],
                      "kind": case.get("kind", ""),
                      "expected": [round(t0 + lo, 3), round(t0 + min(hi, t1 - t0), 3)]})
    truth = {"video": video.name, "speech_audio": speech.name, "duration": round(t, 3),
             "parts": spans, "cases": cases,
             "manifest": str(manifest_path), "manifest_sha256": digest}
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    return truth_path


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """One line per set from ``clipforge eval --json`` outputs (name -> parsed JSON)."""
    head = (f"{'set':<22} {'cases':>5} {'hit@1':>7} {'hit@3':>7} {'precision':>9} "
            f"{'quiet cuts':>11} {'in-word':>8} {'off-part segments':>18}   "
            "loud / in-word cuts in silence")
    lines = [head, "-" * len(head)]
    for name, res in results.items():
        s = res["summary"]
        n = s["cases"]
        quiet = s.get("cuts_quiet", 0)
        cuts = s.get("cuts_distinct", s["cuts"])
        lines.append(
            f"{name:<22} {n:>5} {s['hit@1']:>3}/{n:<3} {s['hit@3']:>3}/{n:<3} "
            f"{s.get('mean_precision', s['mean_overlap']):>9.2f} {quiet:>5}/{cuts:<5} "
            f"{s.get('cuts_inside_words_independent', s['cuts_inside_words']):>8} "
            f"{s.get('off_part_segments', 0):>11}/{s.get('segments', 0):<6}   "
            f"{s.get('cuts_loud_in_silence', 0)} / {s.get('cuts_inside_words_in_silence', 0)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clipforge.episodes")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compose", help="render episodes and truth files from manifests")
    c.add_argument("manifests", nargs="+", type=Path)
    c.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table", help="one table from `clipforge eval --json` result files")
    t.add_argument("results", nargs="+", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "compose":
            for m in args.manifests:
                print(compose(m, args.out))
        else:
            loaded = {p.name.removesuffix(".json").removesuffix(".eval"):
                      json.loads(p.read_text()) for p in args.results}
            print(results_table(loaded))
    except ClipforgeError as exc:
        print(f"clipforge: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
