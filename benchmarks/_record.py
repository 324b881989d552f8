"""Shared helper for benchmark scripts: write a section of results/benchmarks.md."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

from uncertadv import artifacts

RESULTS = Path(__file__).resolve().parent.parent / "results"
STARTED = time.perf_counter()  # the script's start: its record's wall time covers the whole run


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


def write_section(name: str, body: str, *, weights: str, **extra) -> None:
    """Record the section ``name`` (results/benchmarks/NAME.json: the command, versions, CPU, threads,
    commit, wall time, what the weights were, the section's markdown and any ``extra`` fields, such as
    the measured numbers) and render benchmarks.md from every such record."""
    from uncertadv.experiments.claims import documents

    if name not in documents.BENCHMARK_SECTIONS:
        raise ValueError(f"add {name!r} to documents.BENCHMARK_SECTIONS, which orders benchmarks.md")
    config = {"section": name, "argv": sys.argv[1:], "weights": weights}
    record = artifacts.record(config, STARTED, markdown=body, **extra)
    record["command"] = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    artifacts.write_json(RESULTS / "benchmarks" / f"{name}.json", record)
    artifacts.write_text(RESULTS / "benchmarks.md", documents.benchmarks_markdown(RESULTS))


def provenance(command: str, weights: str) -> str:
    """The lines under a section: the command, machine, threads, weights, versions and date."""
    v = artifacts.versions()
    t = v["threads"]
    pools = f"TensorFlow intra-op {t.get('intra_op', '?')}, inter-op {t.get('inter_op', '?')} (0 = its own choice)"
    return (
        f"- command: `{command}`\n- machine: {machine()}; {t['cpus']} cpus available, {pools}\n"
        f"- weights: {weights}\n"
        f"- versions: tensorflow {v['tensorflow']}, keras {v['keras']}, numpy {v['numpy']}, "
        f"uncertadv {v['uncertadv']} ({v['git_commit']})\n- date: {time.strftime('%Y-%m-%d')}"
    )
