"""A static HTML page to review a run's images: every job with its image, status and parameters."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .store import write_atomic

FILE_NAME = "report.html"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;background:#111;color:#eee}
h1{font-weight:600} .summary{color:#aaa;margin-bottom:1.5rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:1rem}
.card{background:#1c1c1c;border-radius:8px;padding:.75rem;border:2px solid #333}
.card.failed{border-color:#a33}.card.pending,.card.unknown,.card.running{border-color:#775}
.card img{width:100%;border-radius:4px;display:block}
.missing{height:180px;display:flex;align-items:center;justify-content:center;color:#888;background:#222}
.name{font-weight:600;margin:.5rem 0 .25rem} .status{font-size:.85rem;color:#aaa}
.error{color:#f88;font-size:.85rem} dl{font-size:.8rem;color:#ccc;margin:.5rem 0 0}
dt{float:left;clear:left;color:#888;margin-right:.4rem} dd{margin:0 0 .2rem;word-break:break-word}
"""


def render(snap: Mapping[str, Any], folder: Path) -> str:
    """The report page for a status snapshot; image links are relative to ``folder``."""
    counts = snap["counts"]
    cards = "\n".join(_card(job, folder) for job in snap["jobs"])
    summary = ", ".join(
        f"{counts[k]} {k}" for k in ("done", "failed", "pending", "unknown") if counts[k]
    )
    title = html.escape(folder.name)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{title} — batchgen report</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p class=summary>{counts['total']} jobs: {html.escape(summary)}; "
        f"{snap['credits']['spent']:.4g} credits spent</p>"
        f"<div class=grid>\n{cards}\n</div></body></html>\n"
    )


def _card(job: Mapping[str, Any], folder: Path) -> str:
    status = job["status"]
    if job["output"]:
        src = html.escape(Path(os.path.relpath(job["output"], folder)).as_posix(), quote=True)
        picture = (
            f'<a href="{src}"><img src="{src}" alt="{html.escape(job["name"])}" loading=lazy></a>'
        )
    else:
        picture = f"<div class=missing>{html.escape(status)}</div>"
    error = f"<div class=error>{html.escape(job['error'])}</div>" if job["error"] else ""
    params = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
        for k, v in job["params"].items()
    )
    return (
        f'<div class="card {html.escape(status)}">{picture}'
        f"<div class=name>{html.escape(job['name'])}</div>"
        f"<div class=status>{html.escape(status)} · {job['attempts']} attempts"
        f" · id {job['id'][:8]}</div>"
        f"{error}<dl>{params}</dl></div>"
    )


def write(snap: Mapping[str, Any], folder: Path) -> Path:
    """Write the report into the run folder; returns its path."""
    path = folder / FILE_NAME
    write_atomic(path, render(snap, folder).encode())
    return path
