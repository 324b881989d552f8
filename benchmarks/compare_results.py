"""How far the MNIST results of this checkout are from those committed at another commit (for
example a run of the same recipe on another CPU): the cross-machine spread.

    python benchmarks/compare_results.py --against COMMIT

Compares only outputs whose recipe did not change between the two commits: the trained models'
records, the test-set scores and the manifold figures' numbers (Table 1 is left out when its
protocol differs). Reads the old files with `git show`; writes results/reproducibility.md.
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


def old_text(commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def table(text: str) -> dict[str, list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    return {name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])}


def kind_column(t: dict) -> str:
    return "predictor" if "predictor" in t else "model"  # renamed between the commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="The commit whose committed results to compare with.")
    args = parser.parse_args()
    new = lambda path: (ROOT / path).read_text()  # noqa: E731
    lines = [f"# Reproducibility: this checkout's {MNIST} against commit {args.against}", ""]

    def cpu(record):
        return record["versions"].get("cpu", "not recorded")

    rows = [("model record", "metric", args.against, "now")]
    for name, metrics in (
        ("cnn.json", ("test_accuracy_deterministic", "test_accuracy_mc")),
        ("ensemble.json", ("test_accuracy_deterministic", "test_accuracy_mc")),
        ("vae.json", ("test_loss", "test_kl")),
    ):
        then, now = (json.loads(f(f"{MNIST}/models/{name}")) for f in (lambda p: old_text(args.against, p), new))
        if then["config"] != now["config"]:
            rows.append((name, "recipe differs: not compared", "", ""))
            continue
        rows += [(name, m, f"{then['metrics'][m]:.6g}", f"{now['metrics'][m]:.6g}") for m in metrics]
        rows.append((name, "CPU", cpu(then), cpu(now)))
    lines += ["| " + " | ".join(r) + " |" for r in rows[:1]] + ["|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]

    then, now = table(old_text(args.against, f"{MNIST}/test_scores.csv")), table(new(f"{MNIST}/test_scores.csv"))
    same_bytes = old_text(args.against, f"{MNIST}/test_scores.csv") == new(f"{MNIST}/test_scores.csv")
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
            old = table(old_text(args.against, f"{MNIST}/{path}"))
        except subprocess.CalledProcessError:
            continue
        cur = table(new(f"{MNIST}/{path}"))
        keys_old = old[key_col] if key_col else old[kind_column(old)]
        keys_new = cur[key_col] if key_col else cur[kind_column(cur)]
        for k, v in zip(keys_old, old[value_col]):
            if k in keys_new:
                lines.append(
                    f"| {path}: {value_col} ({k}) | {float(v):.4f} | {float(cur[value_col][keys_new.index(k)]):.4f} |"
                )
    made = {json.loads(new(f"{MNIST}/models/{n}"))["versions"].get("git_commit", "?") for n in ("cnn.json", "vae.json")}
    v = artifacts.versions()
    command = f"python benchmarks/compare_results.py {' '.join(sys.argv[1:])}"
    lines += [
        "",
        f"- now: the results committed beside this file, made at commit {', '.join(sorted(made))} (their records)",
        f"- compared at commit {v['git_commit']} on {v['cpu']} ({v['threads']['cpus']} cpus), "
        f"{time.strftime('%Y-%m-%d')}",
        f"- command: `{command}`",
    ]
    out = ROOT / "results" / "reproducibility.md"
    artifacts.write_text(out, "\n".join(lines) + "\n")
    record = artifacts.record({"against": args.against}, STARTED, outputs=[out.name])
    artifacts.write_json(out.with_suffix(".json"), {**record, "command": command})
    print(out.read_text())


if __name__ == "__main__":
    main()
