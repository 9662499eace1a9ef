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


class ServiceError(ClipforgeError):
    """PostgreSQL or Redis could not be started or reached."""

    code = "service_unavailable"


class BudgetExceeded(ClipforgeError):
    code = "budget_exceeded"
    exit_code = 4


class EpisodeError(ClipforgeError):
    """An evaluation manifest names a missing file or a part FFmpeg cannot render."""

    code = "episode"
    exit_code = 2
