"""Writing results safely and recording how they were made.

Every file goes to a temporary name in the same folder and is renamed into
place, so an interrupted run never leaves a half-written result. A sidecar JSON
beside each artefact records the config, seed, versions and wall time.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); rename it onto ``path``
    only if the block finishes. The temporary file is removed on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path | str) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def reusable_record(record_path: Path, config: dict, files: list[Path]) -> dict | None:
    """The record at ``record_path`` if it was made with ``config`` and all ``files`` exist;
    None means: (re)compute."""
    if not record_path.is_file() or not all(Path(f).is_file() for f in files):
        return None
    record = read_json(record_path)
    return record if record.get("config") == config else None


def sidecar_path(path: Path | str) -> Path:
    """``model.keras -> model.json``."""
    return Path(path).with_suffix(".json")


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("uncertadv", "tensorflow", "keras", "tensorflow-probability", "numpy", "cleverhans", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    out["git_commit"] = _git_commit()
    return out


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if res.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command as the user typed it (program name shortened)."""
    return " ".join(["uncertadv"] + sys.argv[1:]) if sys.argv else "uncertadv"


def write_csv(path: Path | str, columns: dict[str, "list | object"], digits: int = 8) -> None:
    """Write equal-length columns as CSV, atomically. Floats keep ``digits`` significant
    digits; None and NaN become empty cells ("not applicable")."""
    import csv
    import math

    names = list(columns)
    rows = zip(*(list(columns[n]) for n in names))

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return v

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for row in rows:
                writer.writerow([cell(v.item() if hasattr(v, "item") else v) for v in row])


def read_csv(path: Path | str) -> dict[str, list[str]]:
    """Columns of a CSV as lists of strings."""
    import csv

    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        try:
            names = next(reader)
        except StopIteration:
            raise ValueError(f"{path} is empty") from None
        cols: dict[str, list[str]] = {n: [] for n in names}
        for row in reader:
            if len(row) != len(names):
                raise ValueError(f"{path} has a malformed row: {row}")
            for n, v in zip(names, row):
                cols[n].append(v)
    return cols


def file_sha256(path: Path | str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_numeric_csv(path: Path | str) -> dict[str, np.ndarray]:
    """Columns of an all-numeric CSV as float64 arrays (empty cells are NaN)."""
    return {k: np.array([float(v) if v != "" else np.nan for v in col]) for k, col in read_csv(path).items()}


def cached_table(path: Path | str, config: dict, compute, digits: int = 6) -> dict:
    """The numeric table at ``path`` if its sidecar records the same ``config``; otherwise
    ``compute()`` (a dict of equal-length columns), written atomically with a sidecar.

    Either way the columns are returned as stored (``digits`` significant digits), so
    whatever is derived from them can be recomputed exactly from the file."""
    import time

    path = Path(path)
    record_path = sidecar_path(path)
    if path.is_file() and record_path.is_file():
        try:
            if read_json(record_path).get("config") == config:
                return read_numeric_csv(path)
        except ValueError:
            pass  # an unreadable cache is recomputed
    start = time.perf_counter()
    columns = compute()
    write_csv(path, columns, digits=digits)
    write_json(record_path, {"command": command_line(), "config": config, "versions": versions(),
                             "wall_seconds": round(time.perf_counter() - start, 2)})
    return read_numeric_csv(path)
