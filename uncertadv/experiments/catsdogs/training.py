"""Training the cats-vs-dogs models in the paper's two stages.

1. A deterministic trunk: the ImageNet ResNet50 as is (faithful path), or the small CNN
   trained from scratch on the training split with a plain softmax layer (path that runs here).
2. The trunk frozen, K fresh Dropout(0.5) -> Dense(2) heads trained on its features, one per
   seed. Member 0 is the MC/deterministic model of Table 1; all K form the ensemble.

The trunk is deterministic, so its features are computed once and the heads train on them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from uncertadv import artifacts, data, io, mc
from uncertadv.experiments.seeds import ACCURACY_SEED
from uncertadv.experiments.training import accuracy
from uncertadv.models import catsdogs as cd


@dataclasses.dataclass(frozen=True)
class CatsDogsConfig:
    """Everything that determines the cats-vs-dogs models (recorded in the manifest)."""

    backbone: str = "efficientnet-lite0"
    weights: str | None = "imagenet"  # pretrained trunks: "imagenet", a local weights file, or None
    image_size: int = 224
    trunk_epochs: int = 12  # small trunk only
    head_epochs: int = 20
    members: int = 5
    seed: int = 0
    batch_size: int = 64
    learning_rate: float = 1e-3
    source: str = "auto"
    data_dir: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    eval_samples: int = 20

    def validate(self) -> None:
        if self.backbone not in cd.BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose from {', '.join(cd.BACKBONES)}")
        if self.backbone == "resnet50" and self.image_size < 32:
            raise ValueError("ResNet50 needs images of at least 32 pixels")
        for name in ("trunk_epochs", "head_epochs", "members", "batch_size", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")

    @property
    def data_options(self) -> dict:
        return {"data_dir": self.data_dir, "image_size": self.image_size, "seed": self.seed}

    @property
    def title(self) -> str:
        return self.title_for(None)

    def title_for(self, source_px: int | None) -> str:
        """The title with the image size, and whether the images were upsampled to it."""
        size = f"{self.image_size}px"
        if source_px is not None and source_px < self.image_size:
            size += f" (PetImages of {source_px}px, upsampled)"
        if self.backbone in cd.PRETRAINED:
            name = {"resnet50": "ResNet50", "efficientnet-lite0": "EfficientNet-Lite0"}[self.backbone]
            return f"{name} trunk ({self.weights or 'random'} weights, frozen) + dropout head, {size}"
        return f"small CNN trunk (trained here, frozen) + dropout head, {size}"


def _augmented(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled batches with random horizontal flips; seeded (with the global seed set by the caller)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda image, label: (tf.image.random_flip_left_right(image, seed=seed), label))
    return ds.batch(batch_size).prefetch(2)


def build_trunk(config: CatsDogsConfig, x_train, y_train, verbose: int = 2) -> tuple[keras.Model, dict]:
    """Stage 1: the frozen trunk (ResNet50 as is, or the small CNN trained here) and its metrics."""
    if config.backbone == "resnet50":
        return cd.resnet50_trunk(config.image_size, config.weights), {}
    keras.utils.set_random_seed(config.seed)
    trunk = cd.small_trunk(config.image_size)
    model = cd.pretraining_model(trunk)
    model.compile(keras.optimizers.Adam(config.learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(
        _augmented(x_train, y_train, config.batch_size, config.seed),
        epochs=config.trunk_epochs,
        shuffle=False,
        verbose=verbose,
    )  # the dataset shuffles itself
    return trunk, {
        "trunk_train_seconds": round(time.perf_counter() - start, 2),
        "trunk_train_accuracy_final": float(history.history["accuracy"][-1]),
    }


def features_of(trunk: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Deterministic trunk features ``[N, F]`` (inference mode)."""
    fn = tf.function(lambda xb: trunk(xb, training=False))
    return np.concatenate([fn(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)])


FEATURES_VERSION = 1  # raise when decoding or the trunk's code changes, so cached features are not reused


def streamed_features(trunk: keras.Model, config: CatsDogsConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(features [N, F], labels [N])`` of a split, decoded and passed through the trunk in
    batches (a split is never held as images), cached in the per-user cache so that training
    heads again takes seconds. The cache key names the trunk's weights by their sha256."""
    import hashlib
    import json

    from uncertadv import backbones
    from uncertadv.progress import progress_bar

    weights = hashlib.sha256()
    for w in trunk.get_weights():
        weights.update(w.tobytes())
    limit = config.limit_train if split == "train" else config.limit_test
    folder = data.petimages_dir(config.data_dir).resolve()
    paths = data.petimages_split(folder, config.seed)[split][0][:limit]
    files = hashlib.sha256("\n".join(f"{p}:{Path(p).stat().st_size}" for p in paths).encode()).hexdigest()
    # Everything the features depend on: the code (FEATURES_VERSION, the trunk's architecture),
    # every weight, and the split's files with their sizes.
    key = {"version": FEATURES_VERSION, "trunk": trunk.to_json(), "weights": weights.hexdigest(), "split": split,
           "limit": limit, **config.data_options, "data_dir": str(folder), "files": files}  # fmt: skip
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = backbones.cache_dir() / f"features-{digest}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            return cached["features"], cached["labels"]
    batches = data.catsdogs_batches(split, **config.data_options, batch_size=50, limit=limit)
    fn = tf.function(lambda xb: trunk(xb, training=False), reduce_retracing=True)
    feats, labels = [], []
    for xb, yb in progress_bar(batches, desc=f"{split} features ({config.image_size}px)", total=len(batches)):
        feats.append(fn(tf.constant(xb)).numpy())
        labels.append(yb)
    features, labels = np.concatenate(feats), np.concatenate(labels)
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, features=features, labels=labels)
    return features, labels


def test_predictions(y_test: np.ndarray, det: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per test image, the true label and the single model's predicted classes with dropout off and by
    MC (``det [1, N, C]``, ``probs [T, N, C]``, as ``accuracy`` takes them): the paired data of claim 9 (MC
    accuracy vs the point estimate)."""
    return {
        "index": np.arange(len(y_test)),
        "label": np.asarray(y_test).astype(int),
        "mc_pred": probs.mean(axis=0).argmax(axis=-1),
        "det_pred": det.mean(axis=0).argmax(axis=-1),
    }


def _fit_head(config: CatsDogsConfig, k: int, f_train: np.ndarray, y_train: np.ndarray) -> keras.Model:
    """Head ``k``: Dropout -> Dense(2) trained on the features ``f_train [N, D]`` with seed SEED + k."""
    keras.utils.set_random_seed(config.seed + k)
    h = cd.head(f_train.shape[1], name=f"head{k}")
    h.compile(keras.optimizers.Adam(config.learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    h.fit(f_train, y_train, epochs=config.head_epochs, batch_size=config.batch_size, verbose=0)
    return h


def train_heads(config: CatsDogsConfig, f_train, y_train, f_test, y_test) -> tuple[list[keras.Model], dict, dict]:
    """K Dropout -> Dense heads on frozen features (seeds SEED..SEED+K-1), with their test
    accuracies measured on the test features (the trunk is deterministic, so this equals
    running trunk and head on the images). Returns ``(heads, metrics, head 0's test_predictions)``."""
    heads, member_metrics, first = [], [], None
    for k in range(config.members):
        h = _fit_head(config, k, f_train, y_train)
        det = mc.deterministic_predict(h, f_test, pixel_max=None)  # features, not images
        probs = mc.mc_predict(h, f_test, samples=config.eval_samples, seed=ACCURACY_SEED, pixel_max=None)
        member_metrics.append({"seed": config.seed + k, "test_accuracy_deterministic": accuracy(det, y_test),
                               "test_accuracy_mc": accuracy(probs, y_test)})  # fmt: skip
        first = first or test_predictions(y_test, det, probs)
        _say_head(k, config.members, member_metrics[-1])
        heads.append(h)
    det = mc.deterministic_predict(heads, f_test, pixel_max=None)
    probs = mc.mc_predict(heads, f_test, samples=config.eval_samples, seed=ACCURACY_SEED, pixel_max=None)
    return heads, _metrics(member_metrics, det, probs, len(y_train), y_test, config.eval_samples), first


def _say_head(k: int, members: int, m: dict) -> None:
    print(f"head {k + 1}/{members}: test accuracy deterministic {m['test_accuracy_deterministic']:.4f}, "
          f"MC {m['test_accuracy_mc']:.4f}", flush=True)  # fmt: skip


def _metrics(member_metrics: list, det, probs, n_train: int, y_test, samples: int) -> dict:
    """Accuracies of member 0 and of the ensemble (``det [K, N, C]``, ``probs [K*T, N, C]``)."""
    return {
        "n_train": int(n_train),
        "n_test": int(len(y_test)),
        "test_accuracy_deterministic": member_metrics[0]["test_accuracy_deterministic"],
        "test_accuracy_mc": member_metrics[0]["test_accuracy_mc"],
        "mc_samples": samples,
        "ensemble_test_accuracy_deterministic": accuracy(det, y_test),
        "ensemble_test_accuracy_mc": accuracy(probs, y_test),
        "members": member_metrics,
    }


def train_pretrained(config: CatsDogsConfig) -> tuple[keras.Model, list[keras.Model], dict, dict]:
    """A frozen ImageNet trunk and K heads trained on its features:
    ``(trunk, heads, metrics, head 0's test_predictions)``."""
    config.validate()
    if config.source != "auto":
        raise ValueError("the pretrained trunks read the PetImages folder; --source tfds is for the small trunk")
    trunk = cd.pretrained_trunk(config.backbone, config.image_size, config.weights)
    source_px = data.petimages_source_size(config.data_dir)
    start = time.perf_counter()
    f_train, y_train = streamed_features(trunk, config, "train")
    f_test, y_test = streamed_features(trunk, config, "test")
    features_seconds = time.perf_counter() - start
    start = time.perf_counter()
    heads, metrics, predictions = train_heads(config, f_train, y_train, f_test, y_test)
    metrics.update(
        features_seconds=round(features_seconds, 2),
        head_train_seconds=round(time.perf_counter() - start, 2),
        source_image_px=source_px,
    )
    return trunk, heads, metrics, predictions


def train(config: CatsDogsConfig, verbose: int = 2) -> tuple[list[keras.Model], dict, dict]:
    """The small trunk's two stages; returns the K members (trunk + head each), their metrics and
    member 0's test_predictions."""
    config.validate()
    x_train, y_train = data.load_catsdogs("train", config.source, **config.data_options)
    x_test, y_test = data.load_catsdogs("test", config.source, **config.data_options)
    x_train, y_train = x_train[: config.limit_train], y_train[: config.limit_train]
    x_test, y_test = x_test[: config.limit_test], y_test[: config.limit_test]
    trunk, metrics = build_trunk(config, x_train, y_train, verbose)
    start = time.perf_counter()
    f_train = features_of(trunk, x_train)
    members, member_metrics, first = [], [], None
    for k in range(config.members):
        h = _fit_head(config, k, f_train, y_train)
        model = cd.classifier(trunk, h, name=f"catsdogs_member{k}")
        det = mc.deterministic_predict(model, x_test)
        probs = mc.mc_predict(model, x_test, samples=config.eval_samples, seed=ACCURACY_SEED)
        member_metrics.append(
            {
                "seed": config.seed + k,
                "test_accuracy_deterministic": accuracy(det, y_test),
                "test_accuracy_mc": accuracy(probs, y_test),
            }
        )
        first = first or test_predictions(y_test, det, probs)
        _say_head(k, config.members, member_metrics[-1])
        members.append(model)
    det = mc.deterministic_predict(members, x_test)
    probs = mc.mc_predict(members, x_test, samples=config.eval_samples, seed=ACCURACY_SEED, desc="ensemble MC pass")
    metrics.update(head_train_seconds=round(time.perf_counter() - start, 2))
    metrics.update(_metrics(member_metrics, det, probs, len(y_train), y_test, config.eval_samples))
    return members, metrics, first


def make(out: Path, config: CatsDogsConfig, *, force: bool = False) -> tuple[dict, bool]:
    """Train both stages into the manifest ``out`` (members beside it) unless a manifest
    with this config exists. Returns ``(record, reused)``. Training also writes RESULTS/test_scores.csv
    (claim 9's per-image predictions); a reused manifest leaves it as it is (``force`` makes it)."""
    if out.suffix != ".json":
        raise ValueError(f"--out must be a manifest ending in .json, got {out.name}")
    config.validate()
    want = dataclasses.asdict(config)
    if config.backbone in cd.PRETRAINED:  # one trunk, K heads
        files = [out.with_name(f"{out.stem}-trunk.keras")]
        files += [out.with_name(f"{out.stem}-head{k}.keras") for k in range(config.members)]
    else:
        files = io.member_paths(out, config.members)
    found = None if force else artifacts.reusable_record(out, want, files)
    if found is not None:
        return found, True
    start = time.perf_counter()
    if config.backbone in cd.PRETRAINED:
        trunk, heads, metrics, predictions = train_pretrained(config)
        title = config.title_for(metrics["source_image_px"])
        record = artifacts.record(want, start, recipe="catsdogs", title=title, metrics=metrics)
        io.save_trunk_and_heads(out, trunk, heads, record)
    else:
        members, metrics, predictions = train(config)
        record = artifacts.record(want, start, recipe="catsdogs", title=config.title, metrics=metrics)
        paths = io.member_paths(out, len(members))
        for k, (model, path) in enumerate(zip(members, paths)):
            io.save_model(model, path, {**record, "member": k})
        io.save_manifest(out, paths, record)
    _write_test_predictions(out, predictions, record)
    return record, False


def _write_test_predictions(manifest: Path, predictions: dict, record: dict) -> None:
    """RESULTS/test_scores.csv (one row per test image) beside the results folder's models/, with a
    sidecar that shares the training run's record."""
    folder = manifest.parent.parent if manifest.parent.name == "models" else manifest.parent
    path = folder / "test_scores.csv"
    artifacts.write_csv(path, predictions)
    meta = {"model": str(manifest.name), "member": 0, "samples": record["config"]["eval_samples"],
            "seed": ACCURACY_SEED}  # fmt: skip
    artifacts.write_json(artifacts.sidecar_path(path), {**record, "config": {**record["config"], **meta},
                                                        "metrics": {}, "outputs": [path.name]})  # fmt: skip
