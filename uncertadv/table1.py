"""``uncertadv report``: Table 1 end to end - models, attack sets, scores, table - reusing
every finished step and recomputing only what is missing or stale."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import adversarial, artifacts, data, report
from uncertadv.attacks import AttackConfig
from uncertadv.measures import MEASURES

DEFAULT_EPS = {"mnist": (5.0, 10.0, 76.0), "catsdogs": (5.0, 10.0)}


@dataclasses.dataclass(frozen=True)
class TableConfig:
    dataset: str = "mnist"
    results: Path = Path("results/mnist")
    methods: tuple[str, ...] = ("fgm", "bim", "mim", "pgd")
    eps: tuple[float, ...] = (5.0, 10.0, 76.0)
    targets: tuple[str, ...] = ("deterministic", "mc", "ensemble")
    n: int = 200
    samples: int = 20
    seed: int = 0
    bootstrap: int = 1000
    force: bool = False


def mnist_models(results: Path, targets: tuple[str, ...]) -> tuple[dict[str, tuple[list, list[Path]]], dict]:
    """``({target: (models, files)}, data options)``, training the default recipe where a model is missing."""
    from uncertadv import train as training

    models_dir = results / "models"
    cnn_path, ensemble_path = models_dir / "cnn.keras", models_dir / "ensemble.json"
    config = training.CNNConfig()
    if not cnn_path.is_file():
        print(f"training the CNN ({cnn_path})", flush=True)
        start = time.perf_counter()
        model, metrics = training.train_cnn(config)
        training.save_model(model, cnn_path, training.cnn_record(config, metrics, time.perf_counter() - start))
    cnn = training.load_classifier(cnn_path)
    out = {t: (cnn, [cnn_path]) for t in targets if t != "ensemble"}
    if "ensemble" in targets:
        if not ensemble_path.is_file():
            print(f"training a 5-member ensemble ({ensemble_path})", flush=True)
            start = time.perf_counter()
            _, metrics, paths = training.train_ensemble(config, 5, ensemble_path, first_member=cnn_path)
            training.save_manifest(ensemble_path, paths, {
                "kind": "ensemble", "command": artifacts.command_line(),
                "config": {**dataclasses.asdict(config), "members": 5, "first_member": str(cnn_path)},
                "metrics": metrics, "versions": artifacts.versions(),
                "wall_seconds": round(time.perf_counter() - start, 2)})
        names = artifacts.read_json(ensemble_path)["members"]
        out["ensemble"] = (training.load_classifier(ensemble_path), [ensemble_path.with_name(n) for n in names])
    return out, {}


def catsdogs_models(results: Path, targets: tuple[str, ...]) -> tuple[dict[str, tuple[list, list[Path]]], dict]:
    """Member 0 of ``RESULTS/models/catsdogs.json`` is the single model, all members the ensemble;
    trains the default (small-trunk) recipe if the manifest is missing."""
    from uncertadv import train as training
    from uncertadv import train_catsdogs

    manifest = results / "models" / "catsdogs.json"
    if not manifest.is_file():
        config = train_catsdogs.CatsDogsConfig()
        print(f"training the cats-vs-dogs models ({manifest}): {config.title}", flush=True)
        start = time.perf_counter()
        members, metrics = train_catsdogs.train(config)
        train_catsdogs.save(members, manifest, config, metrics, time.perf_counter() - start)
    record = artifacts.read_json(manifest)
    files = [manifest.with_name(n) for n in record["members"]]
    models = training.load_classifier(manifest)
    out = {t: (models[:1], files[:1]) for t in targets if t != "ensemble"}
    if "ensemble" in targets:
        out["ensemble"] = (models, files)
    cfg = record["config"]
    return out, {"data_dir": cfg["data_dir"], "image_size": cfg["image_size"], "seed": cfg["seed"]}


MODEL_SOURCES = {"mnist": mnist_models, "catsdogs": catsdogs_models}


def _settings(cfg: TableConfig):
    for method in cfg.methods:
        for eps in cfg.eps:
            for target in cfg.targets:
                yield AttackConfig(method=method, eps=eps, target=target, samples=cfg.samples, seed=cfg.seed)


def run(cfg: TableConfig) -> tuple[list[dict], list[Path]]:
    """Build every attack set and score, then write scores.csv, table1.csv and table1.md."""
    from uncertadv.progress import progress_bar

    if cfg.dataset not in MODEL_SOURCES:
        raise ValueError(f"no Table 1 recipe for dataset {cfg.dataset!r}; choose from {', '.join(MODEL_SOURCES)}")
    start = time.perf_counter()
    models, data_options = MODEL_SOURCES[cfg.dataset](cfg.results, cfg.targets)
    x, y = data.load(cfg.dataset, "test", **data_options)
    settings = list(_settings(cfg))
    long: dict[str, list] = {c: [] for c in LONG_COLUMNS}
    table, records = [], {}
    for config in progress_bar(settings, desc=f"Table 1 ({len(settings)} settings)", total=len(settings)):
        member_models, files = models[config.target]
        stem = adversarial.set_name(config)
        npz = cfg.results / "attacks" / f"{stem}.npz"
        records[stem] = adversarial.build(member_models, files, x, y, config, n=cfg.n, out=npz, dataset=cfg.dataset, data_options=data_options, force=cfg.force)
        arrays, record = adversarial.load(npz)
        rows = artifacts.cached_table(
            cfg.results / "scores" / f"{stem}.csv",
            {"attack_set": artifacts.file_sha256(npz), "eval_samples": record["config"]["eval_samples"],
             "eval_seed": record["config"]["eval_seed"]},
            lambda: adversarial.score(member_models, arrays, record, x, y))
        table.append({"attack": config.method, "eps": config.eps, "model": config.target,
                      **report.table_row(rows, bootstrap_rounds=cfg.bootstrap, seed=cfg.seed)})
        _append_long(long, config, rows)
    outputs = _write(cfg, table, long, records, time.perf_counter() - start)
    return table, outputs


def score_set(npz: Path) -> tuple[AttackConfig, dict]:
    """Score one saved attack set with the model it was made against (cached beside it)."""
    from uncertadv.train import load_classifier

    arrays, record = adversarial.load(npz)
    config = AttackConfig(**record["config"]["attack"])
    files = [Path(f) for f in record["model_files"]]
    models = [load_classifier(f)[0] for f in files]
    x, y = data.load(record["dataset"], "test", **record.get("data_options", {}))
    rows = artifacts.cached_table(
        npz.parent.parent / "scores" / f"{npz.stem}.csv",
        {"attack_set": artifacts.file_sha256(npz), "eval_samples": record["config"]["eval_samples"],
         "eval_seed": record["config"]["eval_seed"]},
        lambda: adversarial.score(models, arrays, record, x, y))
    return config, rows


def merge_into_scores(scores_csv: Path, config: AttackConfig, rows: dict) -> None:
    """Replace the rows of one (attack, eps, model) in the long scores.csv, keeping the others."""
    long: dict[str, list] = {c: [] for c in LONG_COLUMNS}
    if scores_csv.is_file():
        old = artifacts.read_csv(scores_csv)
        keep = [i for i in range(len(old["attack"]))
                if (old["attack"][i], float(old["eps"][i]), old["model"][i]) != (config.method, config.eps, config.target)]
        for c in LONG_COLUMNS:
            long[c] = [old[c][i] for i in keep]
    _append_long(long, config, rows)
    artifacts.write_csv(scores_csv, long)


LONG_COLUMNS = ["attack", "eps", "model", "kind", "index", "label", "pred", "success", *MEASURES]


def _append_long(long: dict, config: AttackConfig, rows: dict) -> None:
    n = len(rows["kind"])
    long["attack"] += [config.method] * n
    long["eps"] += [config.eps] * n
    long["model"] += [config.target] * n
    long["kind"] += [adversarial.KINDS[int(k)] for k in rows["kind"]]
    for col in ("index", "label", "pred"):
        long[col] += [int(v) for v in rows[col]]
    long["success"] += [None if np.isnan(v) else int(v) for v in rows["success"]]
    for m in MEASURES:
        long[m] += list(rows[m])


def _models_line(cfg: TableConfig) -> str:
    """Which models produced the table, with their test accuracies (from their records)."""
    manifest = cfg.results / "models" / ("catsdogs.json" if cfg.dataset == "catsdogs" else "cnn.json")
    if not manifest.is_file():
        return ""
    rec = artifacts.read_json(manifest)
    m = rec["metrics"]
    title = rec.get("title", "the paper's MNIST CNN (Conv32-Conv64-Pool-Dropout0.25-Dense128-Dropout0.5)")
    line = (f"Models: {title}. Test accuracy of the single model: dropout off {m['test_accuracy_deterministic']:.4f}, "
            f"MC (T={m['mc_samples']}) {m['test_accuracy_mc']:.4f}")
    if "ensemble_test_accuracy_mc" in m:
        line += (f"; ensemble of {len(m['members'])}: dropout off {m['ensemble_test_accuracy_deterministic']:.4f}, "
                 f"MC {m['ensemble_test_accuracy_mc']:.4f}")
    return line + f" (`{manifest.relative_to(cfg.results)}`)."


def _write(cfg: TableConfig, table: list[dict], long: dict, records: dict, seconds: float) -> list[Path]:
    out = cfg.results
    artifacts.write_csv(out / "scores.csv", long)
    columns = report.PAPER_COLUMNS + report.EXTRA_COLUMNS
    artifacts.write_csv(out / "table1.csv", {c: [r[c] for r in table] for c in columns})
    header = (f"# Table 1 on {cfg.dataset}: detecting adversarial inputs by uncertainty (ROC-AUC)\n\n"
              f"N = {cfg.n} images per kind (clean, noise, adversarial); MC models use T = {cfg.samples} samples "
              f"per network (ensemble: {cfg.samples} x members); attacker seed {cfg.seed}, evaluator seed "
              f"{adversarial.eval_seed(cfg.seed)}, index seed {cfg.seed}, bootstrap {cfg.bootstrap} rounds. "
              "eps in 0-255 pixel units, L-infinity. n/a: undefined for a deterministic model (one network), "
              "not 0.5.\n\nSuccess rate: share of adversarial inputs whose predicted label differs from the true one.")
    paper = None
    if cfg.dataset == "catsdogs":
        import importlib.resources

        paper = report.read_paper_table(importlib.resources.files("uncertadv.assets") / "paper_table1.csv")
        header += ("\n\nIn brackets: the paper's value (Smith & Gal 2018, Table 1: ImageNet ResNet50 + dropout head, "
                   "`assets/paper_table1.csv`); n/a where the paper has none.")
    header += "\n\n" + _models_line(cfg)
    artifacts.write_text(out / "table1.md", report.markdown(table, header, paper))
    artifacts.write_json(out / "table1.json", {
        "command": artifacts.command_line(), "config": {**dataclasses.asdict(cfg), "results": str(cfg.results)},
        "attack_sets": {k: {"success_rate": r["success_rate"], "mean_linf_255": r["mean_linf_255"],
                            "mean_l2": r["mean_l2"], "wall_seconds": r["wall_seconds"]} for k, r in records.items()},
        "attack_sets_built": sum(not r.get("reused") for r in records.values()),
        "attack_sets_reused": sum(bool(r.get("reused")) for r in records.values()),
        "versions": artifacts.versions(), "wall_seconds": round(seconds, 2)})
    return [out / "scores.csv", out / "table1.csv", out / "table1.md", out / "table1.json"]
