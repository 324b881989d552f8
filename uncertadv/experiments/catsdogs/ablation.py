"""The cats-vs-dogs ablation (issue 18): the paper's Table 1 grid (FGM, BIM and MIM at eps 5
and 10, the point estimate and MC, N = 200, T = 20) for each variant of ``variants``, written
to ``results/catsdogs-ablation/NAME/scores.csv``.

Every variant draws the same source images and the same negatives' sources
(``attack_sets.draw_indices`` with the seed), so variants pair by source image. Heads, attack
sets and scores are cached by content (the trunk's weights, the data's sha256, the switches
they depend on), so a variant that shares an attack set with another reuses it, and a stopped
run resumes per attack set.

Seeds: attacker keys ``(seed, predictor, method, eps, batch, call)``; the evaluator's masks
``(seed + EVAL_SEED_OFFSET, predictor, kind, batch)``: the same clean rows in every set of a
variant and predictor. "Correct when clean" is decided by the evaluator's draw on the source images
(kind code 3), in the same batches as the attack; "wrong after the attack" by a separate draw on
the adversarial images (kind code 4), as the authors' ``m.predict(x_adv)`` was a pass of its own,
so that the (S) filters are not drawn from the masks that give the scores they filter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from uncertadv import artifacts, backbones, data, inputs, predictors
from uncertadv.experiments.attack_sets import draw_indices, perturbation_norms
from uncertadv.experiments.catsdogs import perturbations, variants
from uncertadv.experiments.catsdogs.network import VariantNetwork, key, samples_for
from uncertadv.experiments.layout import eval_seed
from uncertadv.measures import MEASURES
from uncertadv.models import catsdogs as cd
from uncertadv.progress import progress_bar

VERSION = 2  # part of every cache key: raise it when the code changes what a cached file holds
TRAIN_OUTPUTS_VERSION = 1  # the cached trunk outputs of the training split: raise when their code changes
HEAD_SEED_STRIDE = 1000  # head seed N trains with seed + 1000 N (init, dropout, block order); the blocks stay
KIND_CODES = {"clean": 0, "noise": 1, "adversarial": 2, "source": 3, "success_check": 4}
PREDICTOR_CODES = {"deterministic": 0, "mc": 1}
COLUMNS = ("attack", "eps", "predictor", "detector_measure", "point_estimate", "kind", "index", "batch", "label",
           "pred", "clean_pred", "success", "label_changed", "l2", "linf_255", "pair", *MEASURES)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    folder: Path
    backbone: str = "efficientnet-lite0"
    weights: str | None = "imagenet"
    image_size: int = 224
    methods: tuple[str, ...] = ("fgm", "bim", "mim")
    eps: tuple[float, ...] = (5.0, 10.0)
    predictors: tuple[str, ...] = ("deterministic", "mc")
    n: int = 200
    samples: int = 20
    seed: int = 0
    bootstrap: int = 1000
    batch_size: int = 50  # attacks and scores of inference-BatchNorm variants (batch-statistics ones take 5)
    data_dir: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    head_seed: int = 0  # the head's initialisation, training dropout and block order only (issue 28)

    def recorded(self) -> dict:
        out = dataclasses.asdict(self)
        out["folder"] = str(self.folder)
        return out

    def validate(self) -> None:
        if self.backbone not in cd.PRETRAINED:
            raise ValueError(f"the ablation needs a pretrained backbone ({', '.join(cd.PRETRAINED)})")
        for method in self.methods:
            if method not in ("fgm", "bim", "mim"):
                raise ValueError(f"the ablation runs the paper's fgm, bim and mim, got {method!r}")
        for e in self.eps:
            if float(e) not in perturbations.STEPS:
                raise ValueError(f"the ablation runs the paper's eps 5 and 10, got {e:g}")
        if self.head_seed < 0:
            raise ValueError(f"--head-seed must be >= 0, got {self.head_seed}")

    def variant_folder(self, name: str) -> Path:
        """Where a variant's scores go: ``NAME/``, or ``seeds/NAME-sN/`` for head seed N > 0."""
        return self.folder / name if not self.head_seed else self.folder / "seeds" / f"{name}-s{self.head_seed}"


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _weights_sha256(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


class Trunks:
    """The frozen two-output trunk in both BatchNorm modes, built once."""

    def __init__(self, cfg: AblationConfig, trunk: keras.Model | None = None):
        self.inference = trunk if trunk is not None else cd.two_output_trunk(cfg.backbone, cfg.image_size, cfg.weights)
        self.batch_statistics = cd.with_batch_statistics(self.inference)
        self.weights_sha256 = _weights_sha256(self.inference)

    def of(self, batchnorm: str) -> keras.Model:
        return self.inference if batchnorm == "inference" else self.batch_statistics


def _train_files(cfg: AblationConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """``(paths [N], labels [N], digest)`` of the training split; the digest names every file and its size."""
    folder = data.petimages_dir(cfg.data_dir).resolve()
    paths, labels = data.petimages_split(folder, cfg.seed)["train"]
    paths, labels = paths[: cfg.limit_train], labels[: cfg.limit_train]
    return paths, labels, _digest([f"{p}:{Path(p).stat().st_size}" for p in paths])


def block_batches(z: np.ndarray, y: np.ndarray, size: int, seed: int) -> tf.data.Dataset:
    """Keras 2's ``shuffle='batch'``: contiguous blocks of ``size`` that never change, the full ones
    in a new order every epoch, the last partial block always last (``batch_shuffle``)."""
    full = len(z) // size * size
    blocks = tf.data.Dataset.from_tensor_slices((z[:full], y[:full])).batch(size)
    blocks = blocks.shuffle(max(full // size, 1), seed=seed, reshuffle_each_iteration=True)
    if full < len(z):
        blocks = blocks.concatenate(tf.data.Dataset.from_tensor_slices((z[full:], y[full:])).batch(size))
    return blocks


def train_outputs(cfg: AblationConfig, trunks: Trunks, batchnorm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features [N, F], probs [N, 1000], labels [N])`` of the training split, in contiguous
    blocks of 32 of a seeded permutation of its files, each block through the trunk together:
    with batch statistics this is exactly what Keras 2's ``fit(..., shuffle='batch')`` fed the
    head (the blocks never change). Cached per user, keyed by the trunk's weights and the files."""
    paths, labels, files = _train_files(cfg)
    order = np.random.default_rng(cfg.seed).permutation(len(paths))
    spec = {"version": TRAIN_OUTPUTS_VERSION, "trunk": trunks.inference.to_json(), "weights": trunks.weights_sha256,
            "files": files, "batchnorm": batchnorm, "image_size": cfg.image_size, "seed": cfg.seed,
            "block": variants.AS_CODED_TRAIN_BATCH}  # fmt: skip
    path = backbones.cache_dir() / f"ablation-train-{_digest(spec)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            return cached["features"], cached["probs"], cached["labels"]
    stream = data._decoded(paths[order], labels[order], cfg.image_size, variants.AS_CODED_TRAIN_BATCH)
    trunk = trunks.of(batchnorm)
    run = tf.function(lambda xb: trunk(xb, training=False), reduce_retracing=True)
    feats, probs, ys = [], [], []
    total = int(np.ceil(len(paths) / variants.AS_CODED_TRAIN_BATCH))
    for xb, yb in progress_bar(stream, desc=f"train outputs ({batchnorm})", total=total):
        f, p = run(xb)
        feats.append(f.numpy())
        probs.append(p.numpy())
        ys.append(yb.numpy())
    out = np.concatenate(feats), np.concatenate(probs), np.concatenate(ys)
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, features=out[0], probs=out[1], labels=out[2])
    return out


def fit_head(z: np.ndarray, y: np.ndarray, recipe: variants.HeadRecipe, seed: int) -> keras.Model:
    """Dropout(0.5) -> Dense(2) softmax on ``z [N, D]``. ``block_shuffle``: fixed contiguous blocks,
    their order reshuffled every epoch (Keras 2's ``shuffle='batch'``); else Keras's shuffle."""
    keras.utils.set_random_seed(seed)
    head = cd.head(z.shape[1])
    head.compile(keras.optimizers.Adam(recipe.learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    if recipe.block_shuffle:
        head.fit(
            block_batches(z, y, recipe.batch_size, seed),
            epochs=recipe.epochs,
            shuffle=False,
            verbose=0,
        )  # the blocks are shuffled above
    else:
        head.fit(z, y, epochs=recipe.epochs, batch_size=recipe.batch_size, verbose=0)
    return head


def ensure_head(
    cfg: AblationConfig, trunks: Trunks, variant: variants.Variant, fresh: set | None = None
) -> tuple[VariantNetwork, dict]:
    """The variant's network, its head trained (or reused from ``models/``, keyed by content)."""
    want = {"version": VERSION, "train_files": _train_files(cfg)[2], "trunk_weights": trunks.weights_sha256,
            "backbone": cfg.backbone, "image_size": cfg.image_size, "seed": cfg.seed, "limit_train": cfg.limit_train,
            **variant.model_key()}  # fmt: skip
    name = f"head-{variant.head}-{variant.batchnorm}"
    if cfg.head_seed:  # seed 0 keeps the keys and names that the committed heads have
        want["head_seed"] = cfg.head_seed
        name += f"-s{cfg.head_seed}"
    path = cfg.folder / "models" / f"{name}.keras"
    found = _reuse(path, want, fresh)
    if found is None:
        start = time.perf_counter()
        features, probs, labels = train_outputs(cfg, trunks, variant.batchnorm)
        z = features if variant.head == "features" else probs
        head = fit_head(z, labels, variant.recipe, cfg.seed + HEAD_SEED_STRIDE * cfg.head_seed)
        train_acc = float(np.mean(head.predict(z, batch_size=1024, verbose=0).argmax(-1) == labels))
        path.parent.mkdir(parents=True, exist_ok=True)
        with artifacts.atomic_path(path) as tmp:
            head.save(tmp)
        found = artifacts.record(want, start, n_train=int(len(z)), train_accuracy_dropout_off=train_acc,
                                 sha256=artifacts.file_sha256(path))  # fmt: skip
        artifacts.write_json(artifacts.sidecar_path(path), found)
    head = keras.saving.load_model(path, safe_mode=True, compile=False)
    kernel, bias = head.get_layer("probs").get_weights()
    inputs_kind = "features" if variant.head == "features" else "probs"
    coupled = variant.batchnorm == "batch-statistics"
    return VariantNetwork(trunks.of(variant.batchnorm), kernel, bias, inputs_kind, mean_as_logits=coupled), found


def _batches(n: int, size: int):
    return [(b, slice(s, s + size)) for b, s in enumerate(range(0, n, size))]


def predict(network: VariantNetwork, x: np.ndarray, samples: int, batch: int, seed_parts: tuple) -> np.ndarray:
    """Probabilities ``[max(samples, 1), N, 2]`` in contiguous batches, masks keyed per batch."""
    out = [network.probs(x[sl], key(*seed_parts, b), samples) for b, sl in _batches(len(x), batch)]
    return np.concatenate(out, axis=1)


def _reuse(path: Path, want: dict, fresh: set | None) -> dict | None:
    """The record of ``path`` if it holds ``want``; with ``fresh`` (``--force``), only if this run made it."""
    if fresh is not None and path not in fresh:
        fresh.add(path)
        return None
    return artifacts.reusable_record(artifacts.sidecar_path(path), want, [path])


def _attack_set(cfg, network, head_record, variant, predictor, method, eps, x_src, y_src, data_sha256,
                fresh=None) -> dict:  # fmt: skip
    """The adversarial images of one (variant's attack key, predictor, method, eps), cached."""
    batch = variant.batch_size or cfg.batch_size
    trunk = {"trunk_weights": head_record["config"]["trunk_weights"], "backbone": cfg.backbone,
             "image_size": cfg.image_size}  # fmt: skip
    # the head's weights under a name of their own: attack_key's "head" (the head switch) overwrote "head" here,
    # so a head trained again (another head seed, another CPU) reused the sets made against the first one
    want = {"version": VERSION, **trunk, "head_sha256": head_record["sha256"], "data_sha256": data_sha256,
            "n": cfg.n, "seed": cfg.seed, "samples": cfg.samples, "batch": batch, "method": method, "eps": float(eps),
            "predictor": predictor, **variant.attack_key(predictor)}  # fmt: skip
    path = cfg.folder / "attacks" / f"{method}_eps{eps:g}_{predictor}-{_digest(want)}.npz"
    found = _reuse(path, want, fresh)
    if found is not None:
        with np.load(path, allow_pickle=False) as saved:
            return {"x_adv": saved["x_adv"], "attack_labels": saved["attack_labels"], "record": found}
    start = time.perf_counter()
    samples = samples_for(predictor, variant.point_estimate, cfg.samples)
    code = (cfg.seed, PREDICTOR_CODES[predictor], ("fgm", "bim", "mim").index(method), int(eps * 10))
    if variant.attack_labels == "true":
        labels = y_src
    else:  # the attacked predictor's own prediction on the clean image, one call (CleverHans without y)
        labels = predict(network, x_src, samples, batch, (*code, 99)).mean(axis=0).argmax(axis=-1)
    bounds = perturbations.clip_bounds(variant.clip)
    parts = [perturbations.attack_batch(network, x_src[sl], labels[sl], method=method, eps=eps, samples=samples,
                                        bounds=bounds, seed_parts=(*code, b))
             for b, sl in _batches(len(x_src), batch)]  # fmt: skip
    x_adv = np.concatenate(parts)
    linf, share = perturbations.moved(x_src, x_adv, eps)
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, x_adv=x_adv, attack_labels=labels)
    record = artifacts.record(want, start, mean_linf_255=float(linf.mean()), max_linf_255=float(linf.max()),
                              share_pixels_beyond_eps=share,
                              attack_labels_true_share=float(np.mean(labels == y_src)))  # fmt: skip
    artifacts.write_json(artifacts.sidecar_path(path), record)
    return {"x_adv": x_adv, "attack_labels": labels, "record": record}


def _kind_rows(network, variant, predictor, cfg, kind, index, images, x_ref, y_all) -> dict:
    batch = variant.batch_size or cfg.batch_size
    samples = samples_for(predictor, variant.point_estimate, cfg.samples)
    evaluator = (eval_seed(cfg.seed), PREDICTOR_CODES[predictor])
    probs = predict(network, images, samples, batch, (*evaluator, KIND_CODES[kind]))
    scored_as = "mc" if predictor == "mc" else "deterministic"
    values = predictors.scores(probs, predictor=scored_as)
    n = len(index)
    none = np.full(n, np.nan)
    position = np.arange(n)
    rows = {"kind": np.full(n, kind), "index": index, "label": y_all[index], "pred": values["pred"],
            "clean_pred": none, "success": none, "label_changed": none,
            "batch": position // batch if variant.batch_size else none,
            "l2": perturbation_norms(x_ref, images)[1], "linf_255": np.abs(images - x_ref).reshape(n, -1).max(1) * 255,
            "pair": none if kind == "clean" else position, **{m: values[m] for m in MEASURES}}  # fmt: skip
    if kind == "adversarial":
        clean = predict(network, x_ref, samples, batch, (*evaluator, KIND_CODES["source"]))
        clean_pred = clean.mean(axis=0).argmax(axis=-1)
        after = predict(network, images, samples, batch, (*evaluator, KIND_CODES["success_check"]))
        changed = after.mean(axis=0).argmax(axis=-1) != y_all[index]
        rows.update(clean_pred=clean_pred, label_changed=changed, success=(clean_pred == y_all[index]) & changed)
    return rows


def run_variant(
    cfg: AblationConfig, name: str, trunks: Trunks, test: tuple[np.ndarray, np.ndarray], fresh: set | None = None
) -> list[Path]:
    """Every attack set and score of one variant; writes NAME/scores.csv and NAME/variant.json."""
    start = time.perf_counter()
    variant = variants.named(name)
    x, y = test
    data_sha256 = inputs.data_sha256(x, y)
    idx = draw_indices(len(x), cfg.n, cfg.seed)
    network, head_record = ensure_head(cfg, trunks, variant, fresh)
    groups, sets = [], {}
    settings = [(p, m, e) for m in cfg.methods for e in cfg.eps for p in cfg.predictors]
    for predictor, method, eps in progress_bar(settings, desc=f"variant {name}", total=len(settings)):
        x_src = x[idx["adversarial"]]
        made = _attack_set(cfg, network, head_record, variant, predictor, method, eps, x_src, y[idx["adversarial"]],
                           data_sha256, fresh)  # fmt: skip
        want = {"version": VERSION, "attack_set": made["record"]["config"], "score": variant.score_key(predictor),
                "data_sha256": data_sha256}  # fmt: skip
        cache = cfg.folder / "scores" / f"{method}_eps{eps:g}_{predictor}-{_digest(want)}.csv"

        def compute(made=made, predictor=predictor, x_src=x_src):
            l2 = perturbation_norms(x_src, made["x_adv"])[1]
            noise = perturbations.negatives(variant.negatives, x[idx["noise"]], l2, seed=cfg.seed + 1)
            images = {"clean": x[idx["clean"]], "noise": noise, "adversarial": made["x_adv"]}
            blocks = [_kind_rows(network, variant, predictor, cfg, kind, idx[kind], images[kind], x[idx[kind]], y)
                      for kind in ("clean", "noise", "adversarial")]  # fmt: skip
            return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}

        if fresh is not None and cache not in fresh:  # --force: score again once in this run
            fresh.add(cache)
            cache.unlink(missing_ok=True)
        rows = artifacts.cached_table(cache, want, compute)
        n = len(rows["kind"])
        group = {"attack": [method] * n, "eps": [float(eps)] * n, "predictor": [predictor] * n,
                 "detector_measure": [""] * n,
                 "point_estimate": [variant.point_estimate if predictor == "deterministic" else ""] * n}  # fmt: skip
        groups.append({c: (group[c] if c in group else list(rows[c])) for c in COLUMNS})
        rec = made["record"]
        kept = ("mean_linf_255", "max_linf_255", "share_pixels_beyond_eps", "wall_seconds")
        sets[f"{method}_eps{eps:g}_{predictor}"] = {k: rec[k] for k in kept}
    return _write_variant(cfg, name, variant, groups, sets, head_record, start)


def _write_variant(cfg, name, variant, groups, sets, head_record, start) -> list[Path]:
    folder = cfg.variant_folder(name)
    scores = folder / "scores.csv"
    table = {c: [v for g in groups for v in g[c]] for c in COLUMNS}
    artifacts.write_csv(scores, table)
    record = artifacts.record({**cfg.recorded(), "variant": name, "switches": dataclasses.asdict(variant)}, start,
                              head={k: head_record[k] for k in ("config", "n_train", "train_accuracy_dropout_off",
                                                                "sha256")},
                              attack_sets=sets, sha256=artifacts.file_sha256(scores),
                              outputs=["scores.csv"])  # fmt: skip
    artifacts.write_json(folder / "scores.json", record)
    return [scores, folder / "scores.json"]


def load_test(cfg: AblationConfig) -> tuple[np.ndarray, np.ndarray]:
    """The test split, decoded as ``results/catsdogs`` decodes it (so the draws pick the same images)."""
    x, y = data.load_catsdogs("test", data_dir=cfg.data_dir, image_size=cfg.image_size, seed=cfg.seed)
    return x[: cfg.limit_test], y[: cfg.limit_test]


def run(cfg: AblationConfig, names: list[str], trunk: keras.Model | None = None, force: bool = False) -> list[Path]:
    """Run the named variants in order, one at a time. ``force``: make every head, attack set and
    score again, once each (a file shared by two variants is made for the first)."""
    cfg.validate()
    for name in names:
        variants.named(name)
    trunks = Trunks(cfg, trunk)
    test = load_test(cfg)
    outputs, fresh = [], (set() if force else None)
    for name in names:
        outputs += run_variant(cfg, name, trunks, test, fresh)
    return outputs
