"""The error hierarchy. Every message names the file, the problem and the remedy.

Each class carries a stable ``code`` that is recorded on the job row and used for
metrics, and an ``exit_code`` the CLI returns.
"""

from __future__ import annotations


class ClipforgeError(Exception):
    """Base class of every error clipforge raises on purpose."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def one_line(self) -> str:
        return " ".join(self.message.split())


class ConfigError(ClipforgeError):
    code = "config"
    exit_code = 2


class InputError(ClipforgeError):
    """Input that clipforge refuses before doing any work."""

    code = "bad_input"
    exit_code = 2


class ProbeError(InputError):
    code = "probe_failed"


class CorruptInputError(ProbeError):
    code = "corrupt_input"


class HdrInputError(ProbeError):
    code = "hdr_input"


class NoHighlightsError(ClipforgeError):
    code = "no_highlights"
    exit_code = 3


class TranscriptionError(ClipforgeError):
    code = "transcription_failed"


class RenderError(ClipforgeError):
    """An FFmpeg run failed. Carries the argv and the tail of its stderr."""

    code = "render_failed"

    def __init__(self, message: str, argv: list[str] | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.argv = list(argv or [])
        self.stderr_tail = stderr_tail


class FfprobeError(ClipforgeError):
    """An ffprobe run failed or timed out (reading a file's facts, not rendering).
    Carries the argv, the tail of its stderr and whether it timed out."""

    code = "ffprobe_failed"

    def __init__(self, message: str, argv: list[str] | None = None, stderr_tail: str = "",
                 *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.argv = list(argv or [])
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out


class ServiceError(ClipforgeError):
    """PostgreSQL or Redis could not be started or reached."""

    code = "service_unavailable"


class BudgetExceeded(ClipforgeError):
    code = "budget_exceeded"
    exit_code = 4


class ExportError(InputError):
    """An editor hand-off (OTIO / XML) could not be written from an EDL."""

    code = "export_failed"


class FeedbackImportError(InputError):
    """An analytics export that cannot be imported; nothing was written.

    ``problems`` lists ``(row, reason)``: the CSV line number (header = line 1) or the
    JSON item number (from 1), 0 for the file as a whole.
    """

    code = "feedback_import"

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = "; ".join(f"row {n}: {why}" if n else why for n, why in self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(
            f"{source}: {len(self.problems)} problem(s), nothing imported: {shown}{more}. "
            "Remedy: fix those rows (or remove them) and import the file again.")


class AspectError(InputError):
    """``--aspect`` is not one of the supported values (see ``clipforge.reframe.aspect``)."""

    code = "bad_aspect"


class LayoutError(InputError):
    """``--layout`` is not one of auto, track, static, split, fit."""

    code = "bad_layout"


class EpisodeError(ClipforgeError):
    """An evaluation manifest names a missing file or a part FFmpeg cannot render."""

    code = "episode"
    exit_code = 2
