"""Wall time of `make demo` on a fresh clone, step by step, the install apart.

    python benchmarks/demo_time.py --label before|after [--repo .] [--commit REV] [--keep]

Clones the repository's HEAD (commit it first), or ``--commit``, into a temporary folder, runs `make install` there
(timed, noting whether pip's cache was warm), then each command of `make demo` in turn, as
`make -n demo` lists them. Records results/benchmarks/demo_time.json, keeping the other label's run,
so that one record shows the time before and after a change. The machine's load average at the
start is recorded: the demo is timed once, so a busy machine shows up in the numbers.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _record import RESULTS, provenance, write_section  # noqa: E402

from uncertadv import artifacts  # noqa: E402

LABELS = ("before", "after")


def _pip_cache_bytes(python: str) -> int:
    """Bytes in pip's cache folder (0 if it has none)."""
    folder = subprocess.run([python, "-m", "pip", "cache", "dir"], capture_output=True, text=True).stdout.strip()
    if not folder or not Path(folder).is_dir():
        return 0
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def _run(command: str, cwd: Path, log) -> float:
    """Run one shell command in ``cwd``; its wall seconds. A failing step stops the benchmark."""
    log.write(f"$ {command}\n")
    log.flush()
    start = time.perf_counter()
    status = subprocess.run(["bash", "-c", command], cwd=cwd, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"error: `{command}` failed with status {status}; see {log.name}")
    return seconds


def demo_commands(clone: Path) -> list[str]:
    """The commands `make demo` runs once installed, as make prints them (echo lines left out)."""
    out = subprocess.run(["make", "-n", "demo"], cwd=clone, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip() and not line.lstrip().startswith("echo ")]


def _step_name(command: str) -> str:
    """``.venv/3.11/bin/uncertadv train cnn --epochs 3`` -> ``uncertadv train cnn --epochs 3``."""
    words = shlex.split(command)
    return " ".join([Path(words[0]).name, *words[1:]])


def time_demo(repo: Path, log_path: Path, keep: bool, commit: str | None = None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="demo-time-"))
    clone = folder / "uncertadv"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    if commit:
        subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True)
    python = sys.executable
    cache_before = _pip_cache_bytes(python)
    load = os.getloadavg()
    with open(log_path, "w") as log:
        install = _run("make install", clone, log)
        cache_growth = _pip_cache_bytes(python) - cache_before
        steps = []
        for command in demo_commands(clone):
            name = _step_name(command)
            print(f"{name} ...", flush=True)
            steps.append({"step": name, "seconds": round(_run(command, clone, log), 1)})
            print(f"  {steps[-1]['seconds']} s", flush=True)
    if not keep:
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    training = sum(s["seconds"] for s in steps if s["step"].startswith("uncertadv train"))
    total = sum(s["seconds"] for s in steps)
    return {
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": [round(v, 2) for v in load],
        "install_seconds": round(install, 1),
        # warm: the install downloaded (almost) nothing new into pip's cache
        "pip_cache_warm": cache_before > 0 and cache_growth < 50e6,
        "pip_cache_bytes_before": cache_before,
        "steps": steps,
        "training_seconds": round(training, 1),
        "other_seconds": round(total - training, 1),
        "demo_seconds": round(total, 1),
    }


def markdown(runs: dict) -> str:
    labels = [label for label in LABELS if label in runs]
    names = list(dict.fromkeys(s["step"] for label in labels for s in runs[label]["steps"]))
    seconds = {label: {s["step"]: s["seconds"] for s in runs[label]["steps"]} for label in labels}
    head = "| step | " + " | ".join(f"{label} (s)" for label in labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    rows = [f"| `{n}` | " + " | ".join(f"{seconds[label].get(n, '')}" for label in labels) + " |" for n in names]
    for key, title in (("training_seconds", "training"), ("other_seconds", "every other step"),
                       ("demo_seconds", "**make demo, install apart**"), ("install_seconds", "install")):  # fmt: skip
        rows.append(f"| {title} | " + " | ".join(f"{runs[label][key]}" for label in labels) + " |")
    notes = [
        f"- {label}: commit {runs[label]['commit']}, {runs[label]['date']}, load average at start "
        f"{', '.join(map(str, runs[label]['load_average_at_start']))}, pip's cache "
        f"{'warm' if runs[label]['pip_cache_warm'] else 'cold'}"
        for label in labels
    ]
    return "## `make demo` on a fresh clone\n\n" + head + "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", choices=LABELS, required=True, help="which run this is: before or after a change")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--commit", help="time this commit of the repository instead of its HEAD")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its results/ hold the demo's files)")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "demo_time.log")
    args = parser.parse_args()

    path = RESULTS / "benchmarks" / "demo_time.json"
    runs = artifacts.read_json(path).get("runs", {}) if path.is_file() else {}
    runs[args.label] = time_demo(args.repo.resolve(), args.log, args.keep, args.commit)
    weights = "trained by the demo itself"
    body = markdown(runs) + provenance(" ".join(["python", "benchmarks/demo_time.py"] + sys.argv[1:]), weights)
    write_section("demo_time", body, weights=weights, runs=runs)
    print(body)


if __name__ == "__main__":
    main()
