"""``uncertadv report``: Table 1 end to end - models, attack sets, scores, table - reusing
every finished step and recomputing only what is missing or stale."""

from __future__ import annotations

import dataclasses
import importlib.resources
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, data
from uncertadv.attacks import AttackConfig
from uncertadv.experiments import attack_sets, own
from uncertadv.experiments.layout import Layout, ensure_classifiers, eval_seed, set_name
from uncertadv.experiments.table1 import detection
from uncertadv.measures import MEASURES
from uncertadv.progress import progress_bar

# detector_measure: the measure of the detector an adaptive attack evaded; empty for the attacks
# that ignore the detector (every Table 1 row).
GROUP_COLUMNS = ("attack", "eps", "predictor", "detector_measure")
LONG_COLUMNS = [
    *GROUP_COLUMNS, "kind", "index", "label", "pred", "clean_pred", "success", "label_changed", "l2", "pair",
    *MEASURES,
]  # fmt: skip
INTEGER_COLUMNS = ("index", "label", "pred", "clean_pred", "success", "label_changed", "pair")


@dataclasses.dataclass(frozen=True)
class TableConfig:
    layout: Layout
    methods: tuple[str, ...] = ("fgm", "bim", "mim", "pgd")
    eps: tuple[float, ...] = (5.0, 10.0, 76.0)
    predictors: tuple[str, ...] = ("deterministic", "mc", "ensemble")
    n: int | None = 200  # None with --data: the largest that fits (own.fit_n)
    samples: int = 20
    seed: int = 0
    bootstrap: int = 1000
    force: bool = False
    model: Path | None = None  # your own model file (--model); None: the paper's models in the layout
    data: dict | None = None  # with --model: {"spec", "pixel_max", "image_size"} of --data

    def recorded(self) -> dict:
        out = dataclasses.asdict(self)
        out["layout"] = {"dataset": self.layout.dataset, "folder": str(self.layout.folder)}
        return out


def _settings(cfg: TableConfig):
    for method in cfg.methods:
        for eps in cfg.eps:
            for predictor in cfg.predictors:
                yield AttackConfig(method=method, eps=eps, predictor=predictor, samples=cfg.samples, seed=cfg.seed,
                                   pixel_max=(cfg.data or {}).get("pixel_max", 1.0))  # fmt: skip


def run(cfg: TableConfig) -> tuple[list[dict], list[Path]]:
    """Build every attack set and score, then write scores.csv, table1.csv and table1.md."""
    start = time.perf_counter()
    layout = cfg.layout
    if cfg.model is not None:  # your own model and data
        data_options = cfg.data
        models = own.classifiers(cfg.model, cfg.predictors, data_options.get("from_logits", False), cfg.samples)
        loaded = {p: own.load(data_options, models[p][0], p, cfg.samples, eval_seed(cfg.seed)) for p in cfg.predictors}
        cfg = dataclasses.replace(cfg, n=own.fit_n(cfg.n, len(next(iter(loaded.values()))[0])))
    else:
        models, data_options = ensure_classifiers(layout, cfg.predictors)
        loaded = dict.fromkeys(cfg.predictors, data.load(layout.dataset, "test", **data_options))
    settings = list(_settings(cfg))
    groups, table, records = [], [], {}
    for config in progress_bar(settings, desc=f"Table 1 ({len(settings)} settings)", total=len(settings)):
        member_models, files = models[config.predictor]
        x, y = loaded[config.predictor]
        stem = set_name(config.method, config.eps, config.predictor, config, cfg.n)
        records[stem] = attack_sets.build(
            member_models,
            files,
            x,
            y,
            config,
            n=cfg.n,
            layout=layout,
            model=cfg.model or layout.classifier(config.predictor),
            data_options=data_options,
            force=cfg.force,
        )
        rows = attack_sets.cached_scores(layout, stem, member_models, x, y)
        table.append(
            {
                "attack": config.method,
                "eps": config.eps,
                "predictor": config.predictor,
                **detection.table_row(rows, bootstrap_rounds=cfg.bootstrap, seed=cfg.seed),
            }
        )
        groups.append(long_rows((config.method, config.eps, config.predictor, ""), rows))
    outputs = _write(cfg, table, groups, records, start)
    return table, outputs


def score_set(npz: Path) -> tuple[AttackConfig, dict]:
    """Score one saved attack set with the models it was made against (cached beside it)."""
    from uncertadv import io

    _, record = attack_sets.load(npz)
    if "method" in record["config"] or "hole_search" in record["config"]:
        raise ValueError(f"{npz} is an adaptive attack set; `uncertadv report --adaptive` scores it")
    if record["config"].get("protocol") != attack_sets.PROTOCOL:
        raise ValueError(f"{npz} was made by an older uncertadv protocol; run `uncertadv migrate RESULTS`, or make "
                         "it again with `uncertadv attack`")  # fmt: skip
    config = AttackConfig(**record["config"]["attack"])
    models = io.load_classifier(attack_sets.model_path(npz, record))
    if record["config"]["dataset"] == own.DATASET:
        cfg = record["config"]
        x, y = own.load(cfg["data_options"], models, config.predictor, cfg["eval_samples"], cfg["eval_seed"])
    else:
        x, y = data.load(record["config"]["dataset"], "test", **record["config"]["data_options"])
    layout = Layout.containing(npz, record["config"]["dataset"])
    return config, attack_sets.cached_scores(layout, npz.stem, models, x, y)


def merge_into_scores(scores_csv: Path, config: AttackConfig, rows: dict, started: float) -> None:
    """Replace the rows of one (attack, eps, predictor) in the long scores.csv, keeping the others."""
    write_scores(scores_csv, [long_rows((config.method, config.eps, config.predictor, ""), rows)], started)


def long_rows(group: tuple, rows: dict) -> dict[str, list]:
    """The scores.csv cells of one group ``(attack, eps, predictor, detector_measure)`` of score rows."""
    n = len(rows["kind"])
    long = {c: [v] * n for c, v in zip(GROUP_COLUMNS, group)}
    long["kind"] = [str(k) for k in rows["kind"]]
    for col in INTEGER_COLUMNS:  # NaN (not applicable) becomes an empty cell
        long[col] = [None if np.isnan(v) else int(v) for v in rows[col]]
    for col in ("l2", *MEASURES):
        long[col] = list(rows[col])
    return long


def write_scores(scores_csv: Path, groups: list[dict[str, list]], started: float) -> None:
    """Write ``groups`` (from ``long_rows``) into scores.csv: a group already there is replaced, the
    others are kept, and groups are ordered by attack, eps, predictor and measure, so the file does
    not depend on which report ran first. Its sidecar (scores.json) records the command that wrote
    it last, the groups that command wrote, and the file's sha256."""
    found: dict[tuple, dict[str, list]] = {}
    if scores_csv.is_file():
        old = artifacts.read_csv(scores_csv)
        if "predictor" not in old:
            raise ValueError(
                f"{scores_csv} is from an older uncertadv (no 'predictor' column); run `uncertadv report` to rebuild it"
            )
        old.setdefault("detector_measure", [""] * len(old["attack"]))
        missing = [c for c in LONG_COLUMNS if c not in old]
        if missing:
            raise ValueError(f"{scores_csv} is from an older uncertadv (no {', '.join(missing)} column); move it "
                             "away and run the report again")  # fmt: skip
        for i in range(len(old["attack"])):
            key = _group_key([old[c][i] for c in GROUP_COLUMNS])
            block = found.setdefault(key, {c: [] for c in LONG_COLUMNS})
            for c in LONG_COLUMNS:
                block[c].append(old[c][i])
    for group in groups:
        found[_group_key([group[c][0] for c in GROUP_COLUMNS])] = group
    artifacts.write_csv(scores_csv, {c: [v for key in sorted(found) for v in found[key][c]] for c in LONG_COLUMNS})
    written = [[g[c][0] for c in GROUP_COLUMNS] for g in groups]
    artifacts.write_json(
        artifacts.sidecar_path(scores_csv),
        artifacts.record(
            {"groups_written": written},
            started,
            rows=sum(len(b["attack"]) for b in found.values()),
            groups=len(found),
            sha256=artifacts.file_sha256(scores_csv),
        ),  # fmt: skip
    )


def _group_key(values: list) -> tuple:
    """Sort key of a group: the attacks, predictors and measures in their documented order."""
    from uncertadv.attacks import METHODS
    from uncertadv.predictors import PREDICTORS

    def rank(order, value):
        return (order.index(value), "") if value in order else (len(order), str(value))

    attack, eps, predictor, measure = values
    measure = measure or ""
    return rank(METHODS, attack), float(eps), rank(PREDICTORS, predictor), rank(("", *MEASURES), measure)


def _models_line(layout: Layout) -> str:
    """Which models produced the table, with their test accuracies (from their records)."""
    manifest = layout.model_record
    if not manifest.is_file():
        return ""
    rec = artifacts.read_json(manifest)
    m = rec["metrics"]
    title = rec.get("title", "the paper's MNIST CNN (Conv32-Conv64-Pool-Dropout0.25-Dense128-Dropout0.5)")
    line = (
        f"Models: {title}. Test accuracy of the single model: dropout off {m['test_accuracy_deterministic']:.4f}, "
        f"MC (T={m['mc_samples']}) {m['test_accuracy_mc']:.4f}"
    )
    if "ensemble_test_accuracy_mc" in m:
        line += (
            f"; ensemble of {len(m['members'])}: dropout off {m['ensemble_test_accuracy_deterministic']:.4f}, "
            f"MC {m['ensemble_test_accuracy_mc']:.4f}"
        )
    return line + f" (`{manifest.relative_to(layout.folder)}`)."


def _write(cfg: TableConfig, table: list[dict], groups: list[dict], records: dict, start: float) -> list[Path]:
    write_scores(cfg.layout.scores, groups, start)
    _write_tables(cfg, table)
    sets = {
        k: {
            "success_rate": r["success_rate"],
            "mean_linf_255": r["mean_linf_255"],
            "mean_l2": r["mean_l2"],
            "wall_seconds": r["wall_seconds"],
        }
        for k, r in records.items()
    }
    artifacts.write_json(
        cfg.layout.table1("json"),
        artifacts.record(
            cfg.recorded(),
            start,
            attack_sets=sets,
            attack_sets_built=sum(not r.get("reused") for r in records.values()),
            attack_sets_reused=sum(bool(r.get("reused")) for r in records.values()),
            outputs=["scores.csv", "scores.json", "table1.csv", "table1.md"],
        ),
    )
    return [cfg.layout.scores, cfg.layout.table1("csv"), cfg.layout.table1("md"), cfg.layout.table1("json")]


def _write_tables(cfg: TableConfig, table: list[dict]) -> None:
    """table1.csv and table1.md from the rows of ``table``."""
    columns = detection.PAPER_COLUMNS + detection.EXTRA_COLUMNS
    artifacts.write_csv(cfg.layout.table1("csv"), {c: [r[c] for r in table] for c in columns})
    # the markdown from the values as stored, so that it re-renders from table1.csv alone, cell for cell
    artifacts.write_text(cfg.layout.table1("md"), markdown(cfg, table_from_csv(cfg.layout)))


def markdown(cfg: TableConfig, table: list[dict]) -> str:
    """table1.md's text: the header (config, definitions, the paper's reference, the models) and the tables."""
    where = (f"{cfg.data['spec']} (your model {Path(cfg.model).name})" if cfg.model is not None
             else cfg.layout.dataset)  # fmt: skip
    header = (
        f"# Table 1 on {where}: detecting adversarial inputs by uncertainty (ROC-AUC)\n\n"
        f"N = {cfg.n} images per kind (clean, noise, adversarial); MC predictors use T = {cfg.samples} samples "
        f"per network (ensemble: {cfg.samples} x members); attacker seed {cfg.seed}, evaluator seed "
        f"{eval_seed(cfg.seed)}, index seed {cfg.seed}, bootstrap {cfg.bootstrap} rounds. "
        "eps in 0-255 pixel units, L-infinity. n/a: undefined for the deterministic predictor (one network), "
        "not 0.5.\n\nSuccess rate: share of the N adversarial images that the predictor (same evaluator seed) "
        "classified correctly when clean and wrongly after the attack; (S) columns keep those images only. "
        "Label changed: share whose prediction differs from the true label, the paper's definition, which also "
        "counts images that were wrong before any attack; the (S, label changed) columns keep those images, the "
        "paper's filter. vs clean / vs noise: the AUC against one kind of negative only (the AUC column uses "
        "both). Noise images carry Gaussian noise rescaled until its L2 norm after clipping matches its paired "
        "adversarial perturbation's. Entropies are in nats; an AUC below 0.5 means the measure ranks adversarial "
        "images as less uncertain than the negatives."
    )
    paper = None
    if cfg.layout.dataset == "catsdogs":
        paper = detection.read_paper_table(importlib.resources.files("uncertadv.assets") / "paper_table1.csv")
        header += (
            "\n\nIn brackets: the paper's value (Smith & Gal 2018, Table 1: ImageNet ResNet50 + dropout head, "
            "`assets/paper_table1.csv`); n/a where the paper has none. The paper's success rate counts label "
            "changes, so it stands beside our label-changed rate; its (S) columns drop unchanged labels, so they "
            "stand beside our (S, label changed) columns."
        )
    header += "\n\n" + _models_line(cfg.layout)
    if cfg.model is not None:
        header += f"Model: `{cfg.model}`; data: `{cfg.data['spec']}` (pixel scale 0-{cfg.data['pixel_max']:g})."
    return detection.markdown(table, header, paper)


def render(layout: Layout) -> list[Path]:
    """Table 1 again from the folder's committed files, with no model and no attack: the rows of
    ``scores.csv`` and the config that ``table1.json`` recorded (the bootstrap is redone, with its
    recorded seed). table1.json keeps the run's record and gains ``rendered``: the command, versions
    and wall time of this rendering."""
    start = time.perf_counter()
    if not layout.table1("json").is_file() or not layout.scores.is_file():
        raise ValueError(f"{layout.folder} has no table1.json and scores.csv to render from; run `uncertadv report`")
    record = artifacts.read_json(layout.table1("json"))
    cfg = recorded_config(layout)
    groups = score_groups(layout.scores)
    table = []
    for config in _settings(cfg):
        key = (config.method, float(config.eps), config.predictor)
        if key not in groups:
            raise ValueError(f"{layout.scores} has no rows for {key}; run `uncertadv report` to make them")
        row = detection.table_row(groups[key], bootstrap_rounds=cfg.bootstrap, seed=cfg.seed)
        table.append({"attack": config.method, "eps": config.eps, "predictor": config.predictor, **row})
    _write_tables(cfg, table)
    rendered = artifacts.record({"from": ["scores.csv", "table1.json"]}, start)
    artifacts.write_json(layout.table1("json"), {**record, "rendered": {k: v for k, v in rendered.items()
                                                                        if k != "config"}})  # fmt: skip
    return [layout.table1("csv"), layout.table1("md"), layout.table1("json")]


def recorded_config(layout: Layout) -> TableConfig:
    """The TableConfig that ``table1.json`` recorded."""
    recorded = artifacts.read_json(layout.table1("json"))["config"]
    fields = {f.name for f in dataclasses.fields(TableConfig)} - {"layout"}
    lists = ("methods", "eps", "predictors")
    return TableConfig(
        layout=layout, **{k: (tuple(v) if k in lists else v) for k, v in recorded.items() if k in fields}
    )


def table_from_csv(layout: Layout) -> list[dict]:
    """table1.csv's rows as dicts (numbers as floats, counts as ints): the table, rendered nothing again."""
    cols = artifacts.read_table(layout.table1("csv"))
    counts = ("n_adversarial", "n_clean_correct", "n_successful", "n_negative", "n_label_changed")
    return [{k: (int(v[i]) if k in counts else v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()}
            for i in range(len(cols["attack"]))]  # fmt: skip


def score_groups(scores_csv: Path) -> dict[tuple, dict[str, np.ndarray]]:
    """Table 1's rows of scores.csv by ``(attack, eps, predictor)``, in file order (the adaptive
    attacks' rows, which name a detector measure, left out)."""
    table = artifacts.read_table(scores_csv)
    measure = table.get("detector_measure")
    keep = np.ones(len(table["attack"]), bool) if measure is None or measure.dtype.kind == "f" else measure == ""
    out = {}
    for attack, eps, predictor in dict.fromkeys(zip(table["attack"][keep], table["eps"][keep],
                                                    table["predictor"][keep])):  # fmt: skip
        sel = keep & (table["attack"] == attack) & (table["eps"] == eps) & (table["predictor"] == predictor)
        out[(str(attack), float(eps), str(predictor))] = {c: v[sel] for c, v in table.items()}
    return out
