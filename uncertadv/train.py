"""Training the paper's classifiers, with seeds and a record of the run."""

from __future__ import annotations

import dataclasses
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
