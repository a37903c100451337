"""The check's results: one dict, written to DIR/<name>.json and .md atomically every time it changes.

Writing the whole report after every section (and after every timed line of section 2) is what lets a
run that is cut short (a lease that ends, a kill, a crash in a CUDA library) leave everything measured
before it on disk. Nothing here is measured; it only keeps and renders what the sections put in.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import slug
from runtime.fsutil import atomic_file

TITLE = "dtvnet GPU check"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def results_name(gpu: str, quick: bool) -> str:
    """The files' name: the GPU's, plus -quick for a quick run (so it never replaces a full run's)."""
    return slug(gpu) + ("-quick" if quick else "")


class Report:
    """The results of one run, kept in `data` and flushed to `folder`/`name`.json and .md by `write`."""

    def __init__(self, folder: Path, name: str, header: dict[str, Any]) -> None:
        self.folder = folder
        self.name = name
        self.data: dict[str, Any] = {
            "check": TITLE,
            **header,
            "started": now(),
            "updated": now(),
            "finished": False,
            "sections": {},
        }

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.folder / f"{self.name}.json", self.folder / f"{self.name}.md"

    def section(self, key: str) -> dict[str, Any]:
        return self.data["sections"][key]

    def write(self) -> tuple[Path, Path]:
        """Both files, each replaced atomically (a reader never sees half a file)."""
        self.data["updated"] = now()
        json_path, md_path = self.paths
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(json_path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=2, default=str, allow_nan=True) + "\n")
        with atomic_file(md_path) as tmp:
            tmp.write_text(markdown(self.data))
        return json_path, md_path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of `rows` (dicts; the columns are every key, in first-seen order)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _render(result: dict[str, Any]) -> list[str]:
    scalars = [f"- {k}: {_cell(v)}" for k, v in result.items() if not _is_table(v)]
    lines = [*scalars, ""] if scalars else []
    for key, value in result.items():
        if _is_table(value):
            lines += [f"**{key}**", "", *table(value), ""]
    return lines


def markdown(data: dict[str, Any]) -> str:
    """The report as Markdown: a header, then per section its status, time, error and results."""
    state = "finished" if data.get("finished") else f"not finished ({data.get('stopped') or 'running'})"
    lines = [f"# {TITLE}: {data.get('gpu', 'unknown GPU')}", ""]
    lines += [f"- {k}: {_cell(data.get(k))}" for k in ("command", "started", "updated") if k in data]
    lines += [f"- run: {state}", ""]
    for key, entry in data["sections"].items():
        lines += [f"## {entry.get('title', key)}", ""]
        lines.append(
            f"{entry['status']}, {entry.get('seconds', 0):.1f} s of a {entry['limit_s']:.0f} s time box"
        )
        lines.append("")
        if entry.get("error"):
            lines += [f"error: `{_cell(entry['error'])}`", ""]
        lines += _render(entry.get("result", {}))
    return "\n".join(lines).rstrip() + "\n"
