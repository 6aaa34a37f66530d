"""Shared by the bench scripts: ratio tables on stdout, and their sections of BENCHMARKS.md.

Each script owns one section of BENCHMARKS.md (between `<!-- bench:NAME -->` markers) and
rewrites it with its table, the command behind it, the machine and the date, leaving the
other scripts' sections as they were.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = """# Benchmarks

Figures of the app against the plain alternatives, on the embedded SmolLM2-135M-Instruct on CPU.
Every section is written by the script named in it; rerun the command to refresh it. Ratios are
ours over the alternative's, each a median over the runs, measured side by side in one run.
"""

median = statistics.median


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    bf16 = ", avx512_bf16" if torch.cpu._is_avx512_bf16_supported() else ""
    return (f"{cpu} ({os.cpu_count()} cores{bf16}), Python {platform.python_version()}, torch {torch.__version__}, "
            f"{platform.system()}")


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    """A Markdown table: readable on stdout and in BENCHMARKS.md alike."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def publish(name: str, title: str, command: str, body: str) -> None:
    """Print `body` and put it in BENCHMARKS.md as section `name`."""
    print(f"\n{title}\n\n{body}\n")
    section = (f"<!-- bench:{name} -->\n## {title}\n\n`{command}`, {datetime.date.today().isoformat()}, "
               f"{machine()}\n\n{body}\n<!-- /bench:{name} -->")
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    start, end = text.find(f"<!-- bench:{name} -->"), text.find(f"<!-- /bench:{name} -->")
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(f"<!-- /bench:{name} -->"):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)
