"""Training recipes for the paper's MNIST models (CNN, ensemble of CNNs, VAE), seeded, each
saved with a record of the run. ``make_*`` reuse a finished model whose record matches."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np

from uncertadv import artifacts, data, io, mc
from uncertadv.experiments.seeds import ACCURACY_SEED
from uncertadv.models.cnn import build_cnn


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    """Everything that determines a trained CNN (recorded in its sidecar)."""

    dataset: str = "mnist"
    source: str = "auto"
    epochs: int = 3
    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 1e-3
    limit_train: int | None = None  # first n training images (quick runs and tests)
    limit_test: int | None = None
    eval_samples: int = 50  # T for the MC test accuracy
    eval_seed: int = ACCURACY_SEED  # differs from the training seed on purpose

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {value}")
        if self.eval_samples < 1:
            raise ValueError(f"eval samples must be >= 1, got {self.eval_samples}")


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the mean prediction: probs ``[T, N, C]``, labels ``[N]``."""
    return float(np.mean(probs.mean(axis=0).argmax(axis=-1) == labels))


def train_cnn(config: CNNConfig, *, verbose: int = 2) -> tuple[keras.Model, dict]:
    """Train the paper's CNN with Adam; returns the model and its test metrics."""
    config.validate()
    keras.utils.set_random_seed(config.seed)
    x_train, y_train = data.load(config.dataset, "train", config.source)
    x_test, y_test = data.load(config.dataset, "test", config.source)
    x_train, y_train = x_train[: config.limit_train], y_train[: config.limit_train]
    x_test, y_test = x_test[: config.limit_test], y_test[: config.limit_test]

    model = build_cnn(x_train.shape[1:], int(y_train.max()) + 1)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs, shuffle=True, verbose=verbose)
    train_seconds = time.perf_counter() - start

    det = mc.deterministic_predict(model, x_test, desc="deterministic test pass")
    probs = mc.mc_predict(model, x_test, samples=config.eval_samples, seed=config.eval_seed, desc="MC test pass")
    metrics = {
        "train_seconds": round(train_seconds, 2),
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "test_accuracy_deterministic": accuracy(det, y_test),
        "test_accuracy_mc": accuracy(probs, y_test),
        "mc_samples": config.eval_samples,
        "mc_seed": config.eval_seed,
    }
    return model, metrics


def reusable(path: Path, config: CNNConfig) -> dict | None:
    """The record of the model at ``path`` if it was trained with ``config``."""
    return artifacts.reusable_record(artifacts.sidecar_path(path), dataclasses.asdict(config), [path])


def make_cnn(out: Path, config: CNNConfig, *, force: bool = False) -> tuple[dict, bool]:
    """Train a CNN into ``out`` (.keras + record) unless one with this config exists.
    Returns ``(record, reused)``."""
    if out.suffix != ".keras":
        raise ValueError(f"--out must end in .keras, got {out.name}")
    found = None if force else reusable(out, config)
    if found is not None:
        return found, True
    start = time.perf_counter()
    model, metrics = train_cnn(config)
    record = artifacts.record(dataclasses.asdict(config), start, recipe="cnn", metrics=metrics)
    io.save_model(model, out, record)
    return record, False


def train_ensemble(
    config: CNNConfig, members: int, manifest: Path, *, first_member: Path | None = None, verbose: int = 2
) -> tuple[list[keras.Model], dict, list[Path]]:
    """K CNNs from seeds ``seed, seed + 1, ...``; together one MC model of K*T samples (Figure 6).

    Each member is saved as it finishes (with its own sidecar), so an interrupted run
    resumes; ``first_member`` is an existing CNN trained with seed ``seed`` by the same
    recipe, used as member 0 instead of training it again."""
    if members < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {members}")
    paths = io.member_paths(manifest, members)
    if first_member is not None:
        if reusable(first_member, config) is None:
            raise ValueError(
                f"{first_member} was not trained with this recipe and seed {config.seed}; it cannot be member 0"
            )
        paths[0] = first_member
    models, member_metrics = [], []
    for k, path in enumerate(paths):
        member_config = dataclasses.replace(config, seed=config.seed + k)
        record = reusable(path, member_config)
        if record is None:
            print(f"ensemble member {k + 1}/{members} (seed {member_config.seed})", flush=True)
            start = time.perf_counter()
            model, metrics = train_cnn(member_config, verbose=verbose)
            record = artifacts.record(dataclasses.asdict(member_config), start, recipe="cnn", metrics=metrics)
            io.save_model(model, path, record)
        else:
            print(f"ensemble member {k + 1}/{members}: reusing {path}", flush=True)
            model = io.load_model(path)
        models.append(model)
        member_metrics.append(record["metrics"])
    x_test, y_test = data.load(config.dataset, "test", config.source)
    x_test, y_test = x_test[: config.limit_test], y_test[: config.limit_test]
    det = mc.deterministic_predict(models, x_test, desc="ensemble deterministic pass")
    probs = mc.mc_predict(models, x_test, samples=config.eval_samples, seed=config.eval_seed, desc="ensemble MC pass")
    metrics = {
        "n_test": int(len(y_test)),
        "test_accuracy_deterministic": accuracy(det, y_test),  # mean of the K dropout-off members
        "test_accuracy_mc": accuracy(probs, y_test),
        "mc_samples": config.eval_samples * members,
        "mc_seed": config.eval_seed,
        "members": member_metrics,
    }
    return models, metrics, paths


def ensemble_config(config: CNNConfig, members: int, first_member: Path | None) -> dict:
    """The recorded config of an ensemble: the members' recipe plus how many and member 0."""
    return {
        **dataclasses.asdict(config),
        "members": members,
        "first_member": str(first_member) if first_member else None,
    }


def make_ensemble(
    out: Path, config: CNNConfig, members: int, *, first_member: Path | None = None, force: bool = False
) -> tuple[dict, bool]:
    """Train an ensemble of ``members`` CNNs into the manifest ``out`` unless one with this
    config exists. Returns ``(record, reused)``."""
    if out.suffix != ".json":
        raise ValueError(f"with --members > 1, --out must be an ensemble manifest ending in .json, got {out.name}")
    want = ensemble_config(config, members, first_member)
    paths = io.member_paths(out, members)
    if first_member is not None:
        paths[0] = first_member
    found = None if force else artifacts.reusable_record(out, want, paths)
    if found is not None:
        return found, True
    if force:  # forget our members' records so they retrain; a --first-member file is never touched
        for path in io.member_paths(out, members)[1 if first_member else 0 :]:
            artifacts.sidecar_path(path).unlink(missing_ok=True)
    start = time.perf_counter()
    _, metrics, paths = train_ensemble(config, members, out, first_member=first_member)
    record = artifacts.record(want, start, recipe="ensemble", metrics=metrics)
    io.save_manifest(out, paths, record)
    return record, False


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Everything that determines a trained VAE (recorded in its manifest)."""

    epochs: int = 20
    seed: int = 0
    batch_size: int = 100
    learning_rate: float = 1e-3
    limit_train: int | None = None
    source: str = "auto"

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError("epochs and batch size must be >= 1 and the learning rate > 0")
        if self.limit_train is not None and self.limit_train < 1:
            raise ValueError(f"limit-train must be >= 1, got {self.limit_train}")


def train_vae(config: VAEConfig, *, verbose: int = 2):
    """Train the paper's VAE on MNIST; returns the VAE and its metrics (negative ELBO, nats)."""
    from uncertadv.models.vae import build_vae

    config.validate()
    keras.utils.set_random_seed(config.seed)
    x_train, _ = data.load_mnist("train", config.source)
    x_test, _ = data.load_mnist("test", config.source)
    x_train = x_train[: config.limit_train]
    vae = build_vae(x_train.shape[1:], seed=config.seed)
    vae.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    start = time.perf_counter()
    history = vae.fit(x_train, epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=verbose)
    train_seconds = time.perf_counter() - start
    test = vae.evaluate(x_test, batch_size=1000, verbose=0, return_dict=True)
    metrics = {
        "train_seconds": round(train_seconds, 2),
        "n_train": int(len(x_train)),
        "train_loss_final": float(history.history["loss"][-1]),
        "test_loss": float(test["loss"]),
        "test_kl": float(test["kl"]),
    }
    return vae, metrics


def make_vae(out: Path, config: VAEConfig, *, force: bool = False) -> tuple[dict, bool]:
    """Train the VAE into the manifest ``out`` unless one with this config exists.
    Returns ``(record, reused)``."""
    if out.suffix != ".json":
        raise ValueError(f"--out must be a VAE manifest ending in .json, got {out.name}")
    found = None if force else artifacts.reusable_record(out, dataclasses.asdict(config), list(io.vae_paths(out)))
    if found is not None:
        return found, True
    start = time.perf_counter()
    vae, metrics = train_vae(config)
    record = artifacts.record(dataclasses.asdict(config), start, recipe="vae", metrics=metrics)
    io.save_vae(vae, out, record)
    return record, False
