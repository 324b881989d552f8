"""Which record made each file under results/: the coverage rule, and PROVENANCE.md.

A *record* is a JSON file with the command, versions (CPU, threads, git commit) and wall time of
the run that wrote it. A file is covered when it is a record, when a record shares its stem (its
sidecar: ``roc_bim_eps10.png`` -> ``roc_bim_eps10.json``), when a record in its folder lists it
under ``outputs``, or when it is a generated document that re-renders from records (``documents``).
READMEs are prose; their numbers are rendered blocks or none (``documents.loose_numbers``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

PROSE = ("README.md",)
# what these records' commands have always written beside them, listed or not (records made before
# ``outputs`` existed name none)
WRITES = {"table1.json": ("scores.csv", "table1.csv", "table1.md"),
          "adaptive.json": ("scores.csv", "adaptive.csv", "adaptive.md")}  # fmt: skip
IGNORED = ("*.keras", "*.npz", "*.tmp.*")
SIDECAR_KINDS = (".csv", ".png", ".keras", ".npz")  # rebuilt by the commands, never committed (.gitignore)


def results_files(root: Path, *, untracked: bool = True) -> list[Path]:
    """The files under ``root`` that git tracks, and with ``untracked`` those it would add (not
    ignored). Outside a git checkout: every file but the ignored kinds and the ``scores/`` caches."""
    args = ["ls-files", "-z", "-c", "--full-name"] + (["-o", "--exclude-standard"] if untracked else []) + ["."]
    try:
        res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        res = None
    if res is not None and res.returncode == 0 and top.returncode == 0:
        base = Path(top.stdout.strip())
        return sorted({p for p in (base / name for name in res.stdout.split("\0") if name) if p.is_file()})
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "scores" not in p.relative_to(root).parts[:-1] and not any(p.match(g) for g in IGNORED)
    )


def read_record(path: Path) -> dict | None:
    """The record in ``path``, or None when the file is not one (not JSON, or no provenance)."""
    if path.suffix != ".json":
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and "command" in data and isinstance(data.get("versions"), dict):
        return data
    return None


def covering_record(path: Path, generated: set[Path], files: list[Path]) -> Path | str | None:
    """The record among ``files`` that covers ``path`` (or "generated"/"prose"), None when nothing does."""
    if path.name in PROSE:
        return "prose"
    if path in generated:
        return "generated"
    if read_record(path) is not None:
        return path
    candidates = [f for f in files if f.parent == path.parent and f.suffix == ".json"]
    for candidate in candidates:
        record = read_record(candidate)
        if record is None:
            continue
        if path.name in (*record.get("outputs", ()), *WRITES.get(candidate.name, ())):
            return candidate
        # a sidecar: a record of the same stem that lists no outputs covers the artefact it describes
        if candidate.stem == path.stem and "outputs" not in record and path.suffix in SIDECAR_KINDS:
            return candidate
    return None


def uncovered(files: list[Path], generated: set[Path]) -> list[Path]:
    """The ``files`` that no record among them covers."""
    return [f for f in files if covering_record(f, generated, files) is None]


def _row(root: Path, path: Path, record: dict) -> str:
    v = record["versions"]
    threads = v.get("threads", {})
    cpu = (
        f"{v.get('cpu', 'not recorded')}, {threads.get('cpus', '?')} cpus" if threads else v.get("cpu", "not recorded")
    )
    made = [path.name, *[o for o in record.get("outputs", ()) if o != path.name]]
    rendered = record.get("rendered")
    commit = v.get("git_commit", "not recorded")
    if rendered:
        commit += f" (re-rendered at {rendered['versions'].get('git_commit', '?')})"
    wall = record.get("wall_seconds", "")
    folder = f"`{path.parent.relative_to(root)}/`"
    return f"| {folder} | {', '.join(made)} | `{record['command']}` | {commit} | {cpu} | {wall} |"


def markdown(root: Path) -> str:
    """PROVENANCE.md: every record under ``root`` with the files it covers, the command, the commit,
    the CPU and the wall time. Artefacts reused across commits keep the commit that made them."""
    root, rows = root.resolve(), []
    for path in results_files(root, untracked=False):  # what a clean clone holds
        record = read_record(path)
        if record is not None:
            rows.append(_row(root, path, record))
    return "\n".join(
        [
            "# Provenance of every results file",
            "",
            "Generated by `uncertadv render` from the JSON records under `results/`; do not edit. Each row is "
            "one record: the files it covers (the record itself, then its outputs; a file with the record's "
            "stem is its sidecar), the command that wrote it, the git commit it ran from (a clean checkout), "
            "the CPU and the wall seconds. A re-render names its own commit beside the run's.",
            "",
            "| folder | files | command | commit | CPU | wall s |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
