"""Wall time of the whole MNIST Table 1 from scratch (attack sets and scores recomputed),
with the trained models of results/mnist/models copied into a temporary folder.

    python benchmarks/table1_speed.py

Needs `make demo` (or the train commands) to have run first. Writes the ``table1_speed``
section of results/benchmarks.md.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _record import RESULTS, provenance, write_section  # noqa: E402

from uncertadv.experiments.layout import Layout  # noqa: E402
from uncertadv.experiments.table1 import report  # noqa: E402

WEIGHTS = "trained: the models of results/mnist/models"


def main() -> None:
    models = RESULTS / "mnist" / "models"
    if not (models / "cnn.keras").is_file() or not (models / "ensemble.json").is_file():
        sys.exit("error: no trained MNIST models in results/mnist/models; run `make demo` first")
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "mnist"
        shutil.copytree(models, results / "models")
        cfg = report.TableConfig(layout=Layout.of("mnist", results), force=True)
        start = time.perf_counter()
        table, _ = report.run(cfg)
        seconds = time.perf_counter() - start
    body = (
        f"## Whole MNIST Table 1 from scratch, models already trained\n\n"
        f"{len(table)} settings ({', '.join(cfg.methods)} x eps {', '.join(f'{e:g}' for e in cfg.eps)} x "
        f"{', '.join(cfg.predictors)}), N = {cfg.n} per kind, T = {cfg.samples}, bootstrap {cfg.bootstrap}: "
        f"**{seconds:.0f} s** (bar: <= 600 s).\n\n" + provenance("python benchmarks/table1_speed.py", WEIGHTS)
    )
    write_section("table1_speed", body, weights=WEIGHTS)
    print(body)


if __name__ == "__main__":
    main()
