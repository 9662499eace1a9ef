"""Editor hand-off: an EDL as OpenTimelineIO (``.otio``) and FCP7 XML (``.xml``).

``export_edl(edl_path, fmt, out_path)`` is the one entry point the CLI calls. FCPXML
(Final Cut Pro X) is refused with the reason: otio-fcpx-xml-adapter 1.0.0 writes no
``library``/``event`` around the project, drops transitions, and crashes on a media
path containing a quote (it builds an XPath predicate from the path).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from clipforge.edl import Edl, load_edl
from clipforge.errors import ExportError
from clipforge.export.fcp7 import write_fcp7
from clipforge.export.otio import (
    CaptionCue,
    Captions,
    to_otio,
    to_otio_document,
    write_otio,
)

FORMATS = ("otio", "xml", "fcpxml")
SUFFIX = {"otio": ".otio", "xml": ".xml", "fcpxml": ".fcpxml"}

__all__ = ["FORMATS", "CaptionCue", "export_edl", "read_edl", "to_otio", "to_otio_document",
           "write_fcp7", "write_otio"]


def read_edl(edl_path: Path) -> Edl:
    """Load an EDL, or raise ``ExportError`` naming the file and what is wrong with it."""
    path = Path(edl_path)
    try:
        return load_edl(path)
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the EDL ({exc.strerror or exc}); pass the "
                          "edl.json a `clipforge run` wrote.") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise ExportError(f"{path}: not a valid clipforge EDL ({where}: {first['msg']}); "
                          "pass the edl.json a `clipforge run` wrote.") from exc


def export_edl(edl_path: Path, fmt: str, out_path: Path | None = None,
               captions: Captions | None = None) -> Path:
    """Write ``edl_path`` as ``fmt`` (one of ``FORMATS``) to ``out_path`` (default:
    ``highlights.<ext>`` beside the EDL) and return the written path."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of: "
                          f"{', '.join(FORMATS)} (srt/vtt come from the captions module).")
    if fmt == "fcpxml":
        raise ExportError(
            "FCPXML is not written: otio-fcpx-xml-adapter 1.0.0 produces an invalid "
            "document (no library/event, transitions dropped) and fails on paths with "
            "quotes. Use --format xml (Premiere Pro, DaVinci Resolve) or --format otio "
            "(DaVinci Resolve 18.5+ imports OTIO directly).")
    edl = read_edl(Path(edl_path))
    out = Path(out_path) if out_path is not None else \
        Path(edl_path).with_name("highlights" + SUFFIX[fmt])
    if fmt == "otio":
        return write_otio(edl, out, captions)
    return write_fcp7(edl, out, captions)
