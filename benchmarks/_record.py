"""Shared helper for benchmark scripts: write a section of results/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from pathlib import Path

from uncertadv import artifacts

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "results" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\nSpeed figures measured by the scripts in `benchmarks/`; each section is rewritten by its script.\n"
)


def timed(fn, repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls, after one warm-up call (tracing)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    return f"{os.cpu_count()} cores ({artifacts.cpu_model()}), {platform.system()}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of results/benchmarks.md."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    artifacts.write_text(BENCHMARKS_MD, text)


def provenance(command: str) -> str:
    v = artifacts.versions()
    return (
        f"- command: `{command}`\n- machine: {machine()}\n"
        f"- versions: tensorflow {v['tensorflow']}, keras {v['keras']}, numpy {v['numpy']}, "
        f"uncertadv {v['uncertadv']} ({v['git_commit']})\n- date: {time.strftime('%Y-%m-%d')}"
    )
