"""FCP7 XML (``xmeml``) for Premiere Pro and DaVinci Resolve, through otio-fcp-adapter.

The adapter writes the cut list, the dissolves (crossfades centred on the cut, dips to
black as ``end-black``/``start-black`` Cross Dissolves) and clip markers (name, in/out
and a ``<comment>`` with the highlight's text). What FCP7 XML cannot carry from the
OTIO timeline, and so is not in this file: clip effects (the reframe/crop path -- the
adapter reads ``<filter>`` but never writes one), track markers and track names, and
OTIO metadata. Caption cues are therefore moved to sequence markers (comment = text).
"""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from clipforge.edl import Edl
from clipforge.export.otio import CAPTIONS_TRACK, Captions, to_otio_document, write_atomic

ADAPTER = "fcp_xml"


def _for_xml(tl: otio.schema.Timeline) -> otio.schema.Timeline:
    tl = tl.clone()
    for track in list(tl.tracks):
        if track.name == CAPTIONS_TRACK:
            tl.tracks.markers.extend(m.clone() for m in track.markers)
            tl.tracks.remove(track)
    return tl


def xml_bytes(edl: Edl, captions: Captions | None = None) -> bytes:
    doc = to_otio_document(edl, captions)
    if isinstance(doc, otio.schema.Timeline):
        out: otio.schema.Timeline | otio.schema.SerializableCollection = _for_xml(doc)
    else:
        out = otio.schema.SerializableCollection(
            name=doc.name, children=[_for_xml(t) for t in doc])
    text = otio.adapters.write_to_string(out, ADAPTER)
    return (text.rstrip("\n") + "\n").encode()


def write_fcp7(edl: Edl, path: Path, captions: Captions | None = None) -> Path:
    """Write the FCP7 XML for ``edl``; same EDL, same bytes."""
    return write_atomic(Path(path), xml_bytes(edl, captions))
