"""How far the MNIST results of this checkout are from those committed at another commit (for
example a run of the same recipe on another CPU): the cross-machine spread.

    python benchmarks/compare_results.py --against COMMIT [--checkout PATH] [--out FILE]

First, every CSV under results/mnist present at both: byte-identical or not, and its largest absolute
difference with the column it is in (text columns: the count of differing cells). Then the outputs
whose recipe did not change between the two commits: the trained models' records, the test-set
scores and the manifold figures' numbers. Reads the old files with `git show` in the checkout (default:
this one; another clone's regenerated results with --checkout); writes results/reproducibility.md
(or --out).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts

ROOT = Path(__file__).resolve().parent.parent
MNIST = "results/mnist"
STARTED = time.perf_counter()


def old_text(commit: str, path: str, root: Path = ROOT) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "show", f"{commit}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def cpu_details() -> str:
    """This machine's CPU beyond its name (two "AMD EPYC" can differ): family, model, stepping, microcode,
    and the widest vector unit, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "not read"
    first = {
        k.strip(): v for k, v in (line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    }
    get = lambda k: first.get(k, "?").strip()  # noqa: E731
    flags = get("flags").split()
    vector = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "neither avx2 nor avx512f"
    return (f"family {get('cpu family')}, model {get('model')}, stepping {get('stepping')}, microcode "
            f"{get('microcode')}, {vector}")  # fmt: skip


def tracked_csvs(commit: str, root: Path) -> list[str]:
    """The CSV files under results/mnist at ``commit``."""
    out = subprocess.run(["git", "-C", str(root), "ls-tree", "-r", "--name-only", commit, MNIST],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [p for p in out.split() if p.endswith(".csv")]


def largest_difference(old: str, new: str) -> tuple[float, str, int, str]:
    """``(largest absolute difference over the float columns, its column, differing text or integer cells
    (labels, indices, counts), note)``
    of two CSV texts with the same header; NaN and a note where they cannot be compared cell by cell."""
    a, b = table(old), table(new)
    if list(a) != list(b) or len(next(iter(a.values()), [])) != len(next(iter(b.values()), [])):
        return float("nan"), "", 0, "columns or row counts differ"
    best, where, text_cells = 0.0, "", 0
    for column in a:
        try:
            x = np.array([float(v) if v != "" else np.nan for v in a[column]])
            y = np.array([float(v) if v != "" else np.nan for v in b[column]])
        except ValueError:
            text_cells += sum(u != v for u, v in zip(a[column], b[column]))
            continue
        both = ~(np.isnan(x) & np.isnan(y))
        whole = lambda v: np.all(np.isnan(v) | (v == np.round(v)))  # noqa: E731
        if whole(x) and whole(y):  # labels, indices, counts: a difference is a changed cell, not a size
            text_cells += int(np.sum(x[both] != y[both]))
            continue
        diff = np.abs(x[both] - y[both])
        if np.isnan(diff).any():  # a value on one side only
            text_cells += int(np.isnan(diff).sum())
            diff = diff[~np.isnan(diff)]
        if diff.size and diff.max() > best:
            best, where = float(diff.max()), column
    return best, where, text_cells, ""


def table(text: str) -> dict[str, list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    return {name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])}


def kind_column(t: dict) -> str:
    return "predictor" if "predictor" in t else "model"  # renamed between the commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="The commit whose committed results to compare with.")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="The checkout whose regenerated results to read.")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "reproducibility.md", help="Where to write.")
    args = parser.parse_args()
    root = args.checkout.resolve()
    new = lambda path: (root / path).read_text()  # noqa: E731
    old = lambda path: old_text(args.against, path)  # noqa: E731  the committed files: this repository's
    where = "this checkout's" if root == ROOT else f"the regenerated files in `{root}`:"
    lines = [f"# Reproducibility: {where} {MNIST} against those committed at {args.against}", ""]
    lines += ["| file | byte-identical | largest difference | in column | differing text and integer cells |"]
    lines += ["|---|---|---|---|---|"]
    for path in tracked_csvs(args.against, ROOT):
        if not (root / path).is_file():
            continue
        then, now = old(path), new(path)
        best, column, cells, note = largest_difference(then, now)
        shown = note or f"{best:.3g}"
        lines.append(f"| {path.removeprefix(MNIST + '/')} | {then == now} | {shown} | {column} | {cells} |")
    lines.append("")

    def cpu(record):
        return record["versions"].get("cpu", "not recorded")

    rows = [("model record", "metric", args.against, "now")]
    for name, metrics in (
        ("cnn.json", ("test_accuracy_deterministic", "test_accuracy_mc")),
        ("ensemble.json", ("test_accuracy_deterministic", "test_accuracy_mc")),
        ("vae.json", ("test_loss", "test_kl")),
    ):
        then, now = (json.loads(f(f"{MNIST}/models/{name}")) for f in (lambda p: old(p), new))
        if then["config"] != now["config"]:
            rows.append((name, "recipe differs: not compared", "", ""))
            continue
        rows += [(name, m, f"{then['metrics'][m]:.6g}", f"{now['metrics'][m]:.6g}") for m in metrics]
        rows.append((name, "CPU", cpu(then), cpu(now)))
    lines += ["| " + " | ".join(r) + " |" for r in rows[:1]] + ["|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]

    then, now = table(old(f"{MNIST}/test_scores.csv")), table(new(f"{MNIST}/test_scores.csv"))
    same_bytes = old(f"{MNIST}/test_scores.csv") == new(f"{MNIST}/test_scores.csv")
    lines += ["", f"`test_scores.csv` (10,000 test images, T = 50): byte-identical: **{same_bytes}**"]
    for col in ("mc_pred", "det_pred"):
        lines.append(f"- `{col}` differs on {sum(a != b for a, b in zip(then[col], now[col]))} images")
    for col in ("predictive_entropy", "mutual_information"):
        diff = np.abs(np.array(then[col], float) - np.array(now[col], float))
        lines.append(f"- `{col}`: max absolute difference {diff.max():.3g}, median {np.median(diff):.3g}")

    lines += ["", "| figure number | " + args.against + " | now |", "|---|---|---|"]
    for path, key_col, value_col in (
        ("midpoint_aucs.csv", "measure", "roc_auc_pixel_vs_latent"),
        ("holes.csv", None, "hole_share_of_far"),
        ("variance_vs_mi.csv", "group", "spearman_rho"),
    ):
        try:
            past = table(old(f"{MNIST}/{path}"))
        except subprocess.CalledProcessError:
            continue
        cur = table(new(f"{MNIST}/{path}"))
        keys_old = past[key_col] if key_col else past[kind_column(past)]
        keys_new = cur[key_col] if key_col else cur[kind_column(cur)]
        for k, v in zip(keys_old, past[value_col]):
            if k in keys_new:
                lines.append(
                    f"| {path}: {value_col} ({k}) | {float(v):.4f} | {float(cur[value_col][keys_new.index(k)]):.4f} |"
                )
    made = {json.loads(new(f"{MNIST}/models/{n}"))["versions"].get("git_commit", "?") for n in ("cnn.json", "vae.json")}
    v = artifacts.versions()
    command = f"python benchmarks/compare_results.py {' '.join(sys.argv[1:])}"
    lines += [
        "",
        f"- now: the results in `{root.name}`, made at commit {', '.join(sorted(made))} (their records)",
        f"- compared at commit {v['git_commit']} on {v['cpu']} ({cpu_details()}; {v['threads']['cpus']} cpus), "
        f"{time.strftime('%Y-%m-%d')}",
        f"- command: `{command}`",
    ]
    out = args.out
    artifacts.write_text(out, "\n".join(lines) + "\n")
    record = artifacts.record({"against": args.against}, STARTED, outputs=[out.name])
    artifacts.write_json(out.with_suffix(".json"), {**record, "command": command})
    print(out.read_text())


if __name__ == "__main__":
    main()
