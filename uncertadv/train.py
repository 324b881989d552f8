"""Training the paper's classifiers, with seeds and a record of the run."""

from __future__ import annotations

import dataclasses
import os
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from uncertadv import artifacts, data, mc
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
    eval_seed: int = 1_000_003  # differs from the training seed on purpose

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


def cnn_record(config: CNNConfig, metrics: dict, wall_seconds: float) -> dict:
    """The sidecar of a trained CNN: how to remake it and what it scored."""
    return {"kind": "cnn", "command": artifacts.command_line(), "config": dataclasses.asdict(config),
            "metrics": metrics, "versions": artifacts.versions(), "wall_seconds": round(wall_seconds, 2)}


def reusable(path: Path, config: CNNConfig) -> dict | None:
    """The sidecar of the model at ``path`` if it was trained with ``config``."""
    return artifacts.reusable_record(artifacts.sidecar_path(path), dataclasses.asdict(config), [path])


def train_ensemble(config: CNNConfig, members: int, manifest: Path, *, first_member: Path | None = None,
                   verbose: int = 2) -> tuple[list[keras.Model], dict, list[Path]]:
    """K CNNs from seeds ``seed, seed + 1, ...``; together one MC model of K*T samples (Figure 6).

    Each member is saved as it finishes (with its own sidecar), so an interrupted run
    resumes; ``first_member`` is an existing CNN trained with seed ``seed`` by the same
    recipe, used as member 0 instead of training it again."""
    if members < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {members}")
    paths = member_paths(manifest, members)
    if first_member is not None:
        if reusable(first_member, config) is None:
            raise ValueError(f"{first_member} was not trained with this recipe and seed {config.seed}; "
                             "it cannot be member 0")
        paths[0] = first_member
    models, member_metrics = [], []
    for k, path in enumerate(paths):
        member_config = dataclasses.replace(config, seed=config.seed + k)
        record = reusable(path, member_config)
        if record is None:
            print(f"ensemble member {k + 1}/{members} (seed {member_config.seed})", flush=True)
            start = time.perf_counter()
            model, metrics = train_cnn(member_config, verbose=verbose)
            record = cnn_record(member_config, metrics, time.perf_counter() - start)
            save_model(model, path, record)
        else:
            print(f"ensemble member {k + 1}/{members}: reusing {path}", flush=True)
            model = load_model(path)
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


def member_paths(manifest: Path, members: int) -> list[Path]:
    """``ensemble.json -> [ensemble-member0.keras, ...]``."""
    return [manifest.with_name(f"{manifest.stem}-member{k}.keras") for k in range(members)]


def save_manifest(manifest: Path | str, paths: list[Path], record: dict) -> None:
    """The ensemble manifest: member files relative to its folder (written last)."""
    manifest = Path(manifest)
    names = [os.path.relpath(p, manifest.parent) for p in paths]
    artifacts.write_json(manifest, {**record, "members": names})


def load_classifier(path: Path | str) -> list[keras.Model]:
    """A ``.keras`` model, or an ensemble manifest ``.json``: always a list of models."""
    path = Path(path)
    if path.suffix == ".json":
        if not path.is_file():
            raise ValueError(f"no ensemble manifest at {path}")
        names = artifacts.read_json(path).get("members")
        if not names:
            raise ValueError(f"{path} is not an ensemble manifest (no 'members')")
        return [load_model(path.with_name(name)) for name in names]
    return [load_model(path)]


def save_model(model: keras.Model, path: Path | str, record: dict) -> None:
    """Save ``model`` to a ``.keras`` file and ``record`` to its JSON sidecar, atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model path must end in .keras, got {path.name}")
    with artifacts.atomic_path(path) as tmp:
        model.save(tmp)
    artifacts.write_json(artifacts.sidecar_path(path), record)


def load_model(path: Path | str) -> keras.Model:
    """Load a ``.keras`` model; a missing or unreadable file is a ValueError with one line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"cannot load model {path}: not a .keras archive (corrupt or another format)")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a damaged archive
        raise ValueError(f"cannot load model {path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None


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


def vae_paths(manifest: Path) -> tuple[Path, Path]:
    """``vae.json -> (vae-encoder.keras, vae-decoder.keras)``."""
    return manifest.with_name(f"{manifest.stem}-encoder.keras"), manifest.with_name(f"{manifest.stem}-decoder.keras")


def save_vae(vae, manifest: Path | str, record: dict) -> None:
    manifest = Path(manifest)
    enc_path, dec_path = vae_paths(manifest)
    for model, path in ((vae.encoder, enc_path), (vae.decoder, dec_path)):
        with artifacts.atomic_path(path) as tmp:
            model.save(tmp)
    artifacts.write_json(manifest, {**record, "encoder": enc_path.name, "decoder": dec_path.name})


def load_vae(manifest: Path | str) -> tuple[keras.Model, keras.Model]:
    """(encoder, decoder) from a VAE manifest written by ``save_vae``."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ValueError(f"no VAE manifest at {manifest}; train one with `uncertadv train vae --out {manifest}`")
    record = artifacts.read_json(manifest)
    if "encoder" not in record or "decoder" not in record:
        raise ValueError(f"{manifest} is not a VAE manifest")
    return load_model(manifest.with_name(record["encoder"])), load_model(manifest.with_name(record["decoder"]))
