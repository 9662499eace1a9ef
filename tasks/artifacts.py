"""Prefect artifacts a person can read in the UI: the highlights table and a summary with
a contact sheet of the chosen moments."""

from __future__ import annotations

import base64
import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from clipforge.contact import contact_sheet
from clipforge.edl import Edl


def _key(job_id: int, what: str) -> str:
    # artifact keys: lowercase letters, digits and dashes only
    return re.sub(r"[^a-z0-9-]", "-", f"clipforge-job-{job_id}-{what}")


def publish(edl: Edl, source_path: str, job_id: int, wall_seconds: float) -> None:
    rows = [
        {"rank": h.rank, "start": h.start, "end": h.end, "seconds": round(h.end - h.start, 2),
         "score": h.score, "text": h.text[:300]}
        for h in edl.highlights
    ]
    create_table_artifact(table=rows, key=_key(job_id, "highlights"),
                          description=f"Highlights for {edl.prompt!r}")
    jpeg = contact_sheet(source_path, [(h.rank, h.start, h.end) for h in edl.highlights[:12]])
    image = base64.b64encode(jpeg).decode()
    ratio = wall_seconds / edl.source.duration if edl.source.duration else 0.0
    lines = [
        f"# clipforge job {job_id}",
        f"**Prompt:** {edl.prompt}  ",
        f"**Source:** `{edl.source.uri}` ({edl.source.duration:.1f} s)  ",
        f"**Reel:** {len(edl.segments)} segments, {edl.duration:.1f} s  ",
        f"**Processing:** {wall_seconds:.1f} s (processing_time / source_duration = "
        f"{ratio:.3f})",
        "",
        f"![contact sheet](data:image/jpeg;base64,{image})",
        "",
        "| # | start | end | score | text |",
        "|---|---|---|---|---|",
    ]
    for h in edl.highlights:
        text = h.text.replace("|", "\\|")[:120]
        lines.append(f"| {h.rank} | {h.start:.2f} | {h.end:.2f} | {h.score:.3f} | {text} |")
    create_markdown_artifact(markdown="\n".join(lines), key=_key(job_id, "summary"),
                             description="Summary and contact sheet")
