"""The one place that knows where the paper's results live, which seeds they use, and how
to make sure that the models an experiment needs exist.

A results folder ``RESULTS`` (default ``results/DATASET``; ``$UNCERTADV_RESULTS`` moves the
root) holds::

    models/        cnn.keras, ensemble.json (+ members), vae.json (+ encoder, decoder),
                   catsdogs.json (+ members); each with a JSON record
    attacks/       METHOD_epsEPS_PREDICTOR.npz + .json: one attack set each
    scores/        per-attack-set score caches
    cache/         score tables behind the MNIST figures
    scores.csv     every scored row of Table 1; table1.{csv,md,json}; figures and their CSVs
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from uncertadv import artifacts, io

# The seeds live in their own module, which the training recipes import (layout runs those recipes).
from uncertadv.experiments.seeds import ACCURACY_SEED, EVAL_SEED_OFFSET, eval_seed  # noqa: F401

RESULTS_ENV = "UNCERTADV_RESULTS"
DATASETS = ("mnist", "catsdogs")
DEFAULT_EPS = {"mnist": (5.0, 10.0, 76.0), "catsdogs": (5.0, 10.0)}


def results_root() -> Path:
    """``$UNCERTADV_RESULTS``, else ``results`` (relative to the working folder)."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


def check_dataset(dataset: str) -> str:
    """``dataset`` if the paper's experiments know it, else a one-line ValueError."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    return dataset


@dataclasses.dataclass(frozen=True)
class Layout:
    """Paths inside one data set's results folder."""

    dataset: str
    folder: Path

    @classmethod
    def of(cls, dataset: str, folder: Path | None = None) -> Layout:
        """The results folder of ``dataset``: ``folder``, else ``$UNCERTADV_RESULTS/DATASET``."""
        check_dataset(dataset)
        return cls(dataset, Path(folder) if folder is not None else results_root() / dataset)

    @classmethod
    def containing(cls, attack_set: Path, dataset: str = "") -> Layout:
        """The results folder that holds the attack set ``RESULTS/attacks/NAME.npz``."""
        return cls(dataset, Path(attack_set).parent.parent)

    @property
    def models(self) -> Path:
        return self.folder / "models"

    @property
    def cnn(self) -> Path:
        return self.models / "cnn.keras"

    @property
    def ensemble(self) -> Path:
        return self.models / "ensemble.json"

    @property
    def vae(self) -> Path:
        return self.models / "vae.json"

    @property
    def catsdogs(self) -> Path:
        return self.models / "catsdogs.json"

    def classifier(self, predictor: str) -> Path:
        """The model file a predictor of the paper's recipe reads."""
        if self.dataset == "catsdogs":
            return self.catsdogs
        return self.ensemble if predictor == "ensemble" else self.cnn

    def attack_set(self, stem: str) -> Path:
        return self.folder / "attacks" / f"{stem}.npz"

    def score_cache(self, stem: str) -> Path:
        return self.folder / "scores" / f"{stem}.csv"

    @property
    def scores(self) -> Path:
        return self.folder / "scores.csv"

    @property
    def cache(self) -> Path:
        return self.folder / "cache"

    def table1(self, suffix: str) -> Path:
        return self.folder / f"table1.{suffix}"

    @property
    def model_record(self) -> Path:
        """The record that names the models behind this folder's tables and figures."""
        return self.catsdogs if self.dataset == "catsdogs" else self.cnn.with_suffix(".json")


def own_layout(folder: Path | None) -> Layout:
    """The results folder for your own model and data (``--model``): ``folder``, else RESULTS/own."""
    return Layout("own", Path(folder) if folder is not None else results_root() / "own")


DEFAULT_N = 200  # report's --n; with the other defaults below, a set's name carries no setting


def settings_suffix(n: int, samples: int = 20, iterations: int = 10, step: float | None = None, seed: int = 0) -> str:
    """What differs from the default settings, for a file name: ``""`` at n 200, T 20, 10 iterations, the
    paper's step and seed 0 (the committed sets keep their names), else e.g. ``_n10_T5_seed3``. Two sets
    that differ in any of these never share a file (issue 29)."""
    parts = [f"n{n}" if n != DEFAULT_N else "", f"T{samples}" if samples != 20 else "",
             f"it{iterations}" if iterations != 10 else "", f"step{step:g}" if step is not None else "",
             f"seed{seed}" if seed != 0 else ""]  # fmt: skip
    return "".join(f"_{p}" for p in parts if p)


def config_suffix(config, n: int | None = None) -> str:
    """``settings_suffix`` of an ``AttackConfig`` made for ``n`` images (None: no config, no suffix)."""
    if config is None:
        return ""
    return settings_suffix(DEFAULT_N if n is None else n, config.samples, config.iterations, config.step, config.seed)


def set_name(method: str, eps: float, predictor: str, config=None, n: int | None = None) -> str:
    """``mim_eps5_mc``: the file stem of an attack set, with ``config_suffix`` of ``config`` (an
    ``AttackConfig``) and ``n`` where they are given."""
    return f"{method}_eps{eps:g}_{predictor}" + config_suffix(config, n)


def _train_here(what: str) -> None:
    """Refuse to train on several workers: training is not split, so each would train its own model."""
    from uncertadv import distribute

    if distribute.current() is not None:
        raise ValueError(f"{what} is missing: train it on one worker first (training is not split across workers)")


def ensure_classifiers(layout: Layout, predictors: tuple[str, ...]) -> tuple[dict[str, tuple[list, list[Path]]], dict]:
    """``({predictor: (models, model files)}, data options)`` for the paper's recipe.

    A model whose file is missing is trained (saying so) by the recipe its committed record
    names, or by the default recipe where there is no record: a fresh clone holds the records
    but not the ``.keras`` files. Existing files are used as they are; their records say how
    they were made."""
    if layout.dataset == "catsdogs":
        return _catsdogs(layout, predictors)
    from uncertadv.experiments import training

    if not layout.cnn.is_file():
        _train_here(str(layout.cnn))
        config = training.CNNConfig(**_recorded(layout.cnn.with_suffix(".json"), training.CNNConfig))
        print(f"training the CNN ({layout.cnn})", flush=True)
        training.make_cnn(layout.cnn, config)
    out = {p: ([io.load_model(layout.cnn)], [layout.cnn]) for p in predictors if p != "ensemble"}
    if "ensemble" in predictors:
        if not _complete(layout.ensemble):
            _train_here(str(layout.ensemble))
            recorded = _recorded(layout.ensemble, training.CNNConfig)
            members = artifacts.read_json(layout.ensemble)["config"]["members"] if recorded else 5
            print(f"training the missing members of a {members}-member ensemble ({layout.ensemble})", flush=True)
            training.make_ensemble(layout.ensemble, training.CNNConfig(**recorded), members, first_member=layout.cnn)
        out["ensemble"] = (io.load_classifier(layout.ensemble), io.model_files(layout.ensemble))
    return out, {}


def ensure_vae(layout: Layout) -> Path:
    """The VAE manifest, trained (saying so) by its committed record's recipe if its files are missing."""
    if not (layout.vae.is_file() and all(f.is_file() for f in io.vae_paths(layout.vae))):
        from uncertadv.experiments import training

        _train_here(str(layout.vae))
        print(f"training the VAE ({layout.vae})", flush=True)
        training.make_vae(layout.vae, training.VAEConfig(**_recorded(layout.vae, training.VAEConfig)))
    return layout.vae


def _complete(manifest: Path) -> bool:
    return manifest.is_file() and all(f.is_file() for f in io.model_files(manifest))


def _recorded(record: Path, config_class) -> dict:
    """The fields of ``config_class`` recorded in ``record``; {} (the defaults) without one."""
    if not record.is_file():
        return {}
    fields = {f.name for f in dataclasses.fields(config_class)}
    return {k: v for k, v in artifacts.read_json(record)["config"].items() if k in fields}


def _catsdogs(layout: Layout, predictors: tuple[str, ...]):
    """Member 0 of ``catsdogs.json`` is the single model; all members are the ensemble."""
    from uncertadv.experiments.catsdogs import training as catsdogs_training

    if not _complete(layout.catsdogs):
        _train_here(str(layout.catsdogs))
        config = catsdogs_training.CatsDogsConfig(**_recorded(layout.catsdogs, catsdogs_training.CatsDogsConfig))
        print(f"training the cats-vs-dogs models ({layout.catsdogs}): {config.title}", flush=True)
        catsdogs_training.make(layout.catsdogs, config)
    models = io.load_classifier(layout.catsdogs)  # trunk-and-heads members share one trunk
    first = io.member_files(layout.catsdogs)[0]
    out = {p: (models[:1], first) for p in predictors if p != "ensemble"}
    if "ensemble" in predictors:
        out["ensemble"] = (models, io.model_files(layout.catsdogs))
    cfg = artifacts.read_json(layout.catsdogs)["config"]
    return out, {"data_dir": cfg["data_dir"], "image_size": cfg["image_size"], "seed": cfg["seed"]}
