"""Writing results safely and recording how they were made.

Every file goes to a temporary name in the same folder and is renamed into
place, so an interrupted run never leaves a half-written result. A sidecar JSON
beside each artefact is built by ``record`` (command, config, versions with the
CPU and git commit, wall time), and ``reusable_record`` is the one rule for
reusing a finished artefact: its recorded config matches and its files exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from uncertadv import distribute


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); rename it onto ``path``
    only if the block finishes. The temporary file is removed on error. On several workers
    (``uncertadv.distribute``) only the chief writes, and all wait until the file is in place."""
    path = Path(path)
    if not distribute.writes():  # a non-chief worker: a private file, discarded; the chief writes ``path``
        fd, tmp = tempfile.mkstemp(suffix=f".tmp{path.suffix}")
        os.close(fd)
        try:
            yield Path(tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)
        distribute.barrier(path.name)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; a result file gets the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    distribute.barrier(path.name)  # on several workers: none reads the file before it is in place


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, data: dict) -> None:
    """Write ``data`` as sorted, indented JSON, atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path | str) -> dict:
    """Read a JSON file; a damaged one is a one-line ValueError."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def reusable_record(record_path: Path, config: dict, files: list[Path] = ()) -> dict | None:
    """The record at ``record_path`` if it was made with ``config`` and all ``files`` exist;
    None means: (re)compute. An unreadable record is recomputed, never trusted."""
    if not Path(record_path).is_file() or not all(Path(f).is_file() for f in files):
        return None
    try:
        record = read_json(record_path)
    except ValueError:
        return None
    return record if record.get("config") == config else None


def record(config: dict, started: float, **extra) -> dict:
    """The provenance record of an artefact: the command that made it, its ``config``, the
    versions, CPU and git commit, and the wall time since ``started`` (``time.perf_counter()``)."""
    import time

    return {
        "command": command_line(),
        "config": config,
        **extra,
        "versions": versions(),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


def sidecar_path(path: Path | str) -> Path:
    """``model.keras -> model.json``."""
    return Path(path).with_suffix(".json")


def check_overwrite(out: Path | str, writer: str, legacy=None) -> None:
    """Refuse to overwrite ``out`` or its sidecar unless the command ``writer`` (e.g. ``"detect run"``) wrote
    them, as its sidecar's ``writer`` says (``legacy(record)``: a record of that command from before the field).
    A CSV with no sidecar, or a sidecar of another command (a detector, a manifest, a score table), is refused:
    nothing already saved is lost (issue 29)."""
    out, side = Path(out), sidecar_path(out)
    if side.is_file():
        try:
            record = read_json(side)
        except ValueError:
            record = {}
        if record.get("writer") != writer and not (legacy is not None and "writer" not in record and legacy(record)):
            raise ValueError(f"--out {out.name} would overwrite {side}, which `uncertadv {writer}` did not write "
                             "(a detector, a manifest or another table?); choose another --out")  # fmt: skip
    elif out.is_file() and out != side:
        raise ValueError(f"--out {out} exists and no record of `uncertadv {writer}` is beside it; choose another "
                         "--out, or remove the file")  # fmt: skip


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("uncertadv", "tensorflow", "keras", "tensorflow-probability", "numpy", "cleverhans", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    out["cpu"] = cpu_model()
    out["threads"] = _threads()
    out["git_commit"] = _git_commit()
    return out


def cpu_model() -> str:
    """The CPU's model name (float results can differ between CPU families)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _threads() -> dict:
    """CPU cores available and the TensorFlow thread pools (0 = TensorFlow's own choice)."""
    out = {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        out["intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        out["inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    return out


def _git_commit() -> str:
    """Short HEAD of the checkout this code runs from, ``-dirty`` if its code differs from HEAD.

    Changes under ``results/`` do not count: a run rewrites the committed results as it
    goes, and its later artefacts must still name the clean commit that made them."""
    root = Path(__file__).resolve().parent.parent
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if res.returncode != 0:
            return "unknown"  # an installed wheel, not a checkout
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return res.stdout.strip() + ("-dirty" if status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command as the user typed it (program name shortened)."""
    return " ".join(["uncertadv"] + sys.argv[1:]) if sys.argv else "uncertadv"


def write_csv(path: Path | str, columns: dict[str, list | object], digits: int = 8) -> None:
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
    """Hex sha256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: Path | str) -> dict[str, np.ndarray]:
    """Columns of a CSV as arrays: float64 where every cell is a number or empty (NaN),
    strings otherwise."""

    def column(cells: list[str]) -> np.ndarray:
        try:
            return np.array([float(v) if v != "" else np.nan for v in cells])
        except ValueError:
            return np.array(cells)

    return {k: column(col) for k, col in read_csv(path).items()}


def cached_table(path: Path | str, config: dict, compute, digits: int = 6) -> dict:
    """The table at ``path`` if its sidecar records the same ``config``; otherwise
    ``compute()`` (a dict of equal-length columns), written atomically with a sidecar.

    Either way the columns are returned as stored (``digits`` significant digits), so
    whatever is derived from them can be recomputed exactly from the file."""
    import time

    path = Path(path)
    if reusable_record(sidecar_path(path), config, [path]) is not None:
        return read_table(path)
    start = time.perf_counter()
    columns = compute()
    write_csv(path, columns, digits=digits)
    write_json(sidecar_path(path), record(config, start))
    return read_table(path)
