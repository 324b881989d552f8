"""Attack sets: the paper's evaluation set for one (method, eps, predictor), on disk.

An attack set holds the indices of N clean, N noisy and N adversarial test images (disjoint,
seeded), the noisy and adversarial images themselves, and a record with the config, the
sha256 of the model files (named relative to the results folder) and the attack's success
rate. Noise image i is paired with adversarial image i: its noise has the same L2 norm after
clipping. Its scores are long-format rows, one per image. Source arrays are never modified.

PROTOCOL is part of every cache key: an attack set or score table made under an older rule
(the noise scaling, the success definition) is never reused silently. Every key also holds the
sha256 of the data's contents (``inputs.data_sha256``), not its path: a replaced data file is a
new data set. ``experiments/migrate.py`` brings protocol-2 records to 3 where it can check them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, inputs, predictors
from uncertadv.attacks import AttackConfig, attack
from uncertadv.experiments.layout import Layout, eval_seed, set_name
from uncertadv.measures import MEASURES

KINDS = ("clean", "noise", "adversarial")
# 2: noise matched in L2 after clipping; success = correct when clean and wrong after the attack;
#    model files named relative to the results folder.
# 3: keys hold data_sha256, the data's contents (images and labels).
PROTOCOL = 3
NOISE_PASSES = 10  # rescaling passes at most; MNIST needs about three to reach 1%


def draw_indices(n_available: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets ``{"clean", "noise", "adversarial"}``, each ``[n]``."""
    if n < 1 or 3 * n > n_available:
        raise ValueError(f"need 1 <= n and 3 * n <= {n_available} images, got n = {n}")
    order = np.random.default_rng(seed).permutation(n_available)
    return {"clean": order[:n], "noise": order[n : 2 * n], "adversarial": order[2 * n : 3 * n]}


def matched_noise(
    x: np.ndarray, l2_norms: np.ndarray, seed: int, pixel_max: float = 1.0, passes: int = NOISE_PASSES
) -> np.ndarray:
    """``x [N, ...]`` plus Gaussian noise whose L2 norm *after clipping* to ``[0, pixel_max]``
    equals ``l2_norms [N]`` (the paired adversarial perturbations). Returns a new array.

    Clipping removes part of the noise (on MNIST's black background, about a quarter), so the
    noise is rescaled by target / achieved until every image is within 1% of its target, or
    ``passes`` times. An image can fall short only if even saturated noise cannot reach the
    norm; ``perturbation_norms`` of the result tells."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    shape = (-1,) + (1,) * (x.ndim - 1)
    target = np.asarray(l2_norms, dtype=np.float64)
    scale = target / np.maximum(np.sqrt((noise.reshape(len(x), -1).astype(np.float64) ** 2).sum(axis=1)), 1e-12)
    for _ in range(passes):
        achieved = perturbation_norms(x, np.clip(x + noise * scale.reshape(shape).astype(np.float32), 0, pixel_max))[1]
        short = (target > 0) & (np.abs(achieved - target) > 0.01 * target)
        if not short.any():
            break
        scale[short] *= target[short] / np.maximum(achieved[short], 1e-12)
    return np.clip(x + noise * scale.reshape(shape).astype(np.float32), 0.0, pixel_max).astype(np.float32)


def perturbation_norms(x: np.ndarray, x_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image ``(L-inf, L2)`` norms of ``x_adv - x``, each ``[N]``."""
    delta = (x_adv - x).reshape(len(x), -1)
    return np.abs(delta).max(axis=1), np.sqrt((delta**2).sum(axis=1))


def build(
    models: list,
    model_files: list[Path],
    x: np.ndarray,
    y: np.ndarray,
    config: AttackConfig,
    *,
    n: int,
    layout: Layout,
    model: Path,
    data_options: dict | None = None,
    force: bool = False,
    stem: str | None = None,
) -> dict:
    """Make (or reuse) the attack set of ``config`` in ``layout`` (.npz + .json record); returns the record.

    models: loaded from ``model`` (the ``.keras`` file or manifest); ``model_files``: its files.
    stem: the set's file stem; default ``set_name`` with the settings that differ from the defaults."""
    out = layout.attack_set(stem or set_name(config.method, config.eps, config.predictor, config, n))
    want = {
        "protocol": PROTOCOL,
        "dataset": layout.dataset,
        "data_options": data_options or {},
        "attack": config.as_record(),
        "n": n,
        "index_seed": config.seed,
        "eval_samples": config.samples,
        "eval_seed": eval_seed(config.seed),
        "models": [artifacts.file_sha256(f) for f in model_files],
        "data_sha256": inputs.data_sha256(x, y),
    }
    found = None if force else artifacts.reusable_record(artifacts.sidecar_path(out), want, [out])
    if found is not None:
        return {**found, "reused": True}
    start = time.perf_counter()
    idx = draw_indices(len(x), n, config.seed)
    x_src, y_src = x[idx["adversarial"]], y[idx["adversarial"]]
    from_logits = (data_options or {}).get("from_logits", False)  # your own logits model
    x_adv = attack(models, x_src, y_src, config, from_logits=from_logits)
    linf, l2 = perturbation_norms(x_src, x_adv)
    x_noise = matched_noise(x[idx["noise"]], l2, seed=config.seed + 1, pixel_max=config.pixel_max)
    evaluate = dict(predictor=config.predictor, samples=config.samples, seed=eval_seed(config.seed),
                    from_logits=from_logits, pixel_max=config.pixel_max)  # fmt: skip
    clean_pred = predictors.predict(models, x_src, **evaluate).mean(axis=0).argmax(axis=-1)
    label_changed = predictors.predict(models, x_adv, **evaluate).mean(axis=0).argmax(axis=-1) != y_src
    success = (clean_pred == y_src) & label_changed
    with artifacts.atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                clean_index=idx["clean"],
                noise_index=idx["noise"],
                adversarial_index=idx["adversarial"],
                labels=y_src,
                x_noise=x_noise,
                x_adv=x_adv,
                success=success,
                label_changed=label_changed,
            )
    noise_l2 = perturbation_norms(x[idx["noise"]], x_noise)[1]
    record = artifacts.record(
        want,
        start,
        model=os.path.relpath(model, layout.folder),
        model_files=[os.path.relpath(f, layout.folder) for f in model_files],
        success_rate=float(success.mean()),
        label_changed_rate=float(label_changed.mean()),
        mean_linf_255=float(linf.mean() * 255 / config.pixel_max),
        mean_l2=float(l2.mean()),
        noise_l2_ratio=float(np.mean(noise_l2[l2 > 0] / l2[l2 > 0])) if (l2 > 0).any() else float("nan"),
    )
    artifacts.write_json(artifacts.sidecar_path(out), record)
    return record


def load(path: Path) -> tuple[dict, dict]:
    """``(arrays, record)`` of a saved attack set; a clear ValueError if it is missing or damaged."""
    path = Path(path)
    record_path = artifacts.sidecar_path(path)
    if not path.is_file() or not record_path.is_file():
        raise ValueError(f"no attack set at {path} (with its .json record); make one with `uncertadv attack`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read attack set {path}: {err}") from None
    return arrays, artifacts.read_json(record_path)


def check_data(npz: Path, record: dict, x: np.ndarray, y: np.ndarray) -> None:
    """Refuse to score an attack set against data other than the data it was made from (its
    clean rows would come from the new data and its adversarial rows from the old)."""
    cfg = record["config"]
    if cfg.get("protocol") != PROTOCOL:
        raise ValueError(f"{npz} was made by an older uncertadv protocol ({cfg.get('protocol')}); run "
                         "`uncertadv migrate RESULTS` to check and carry it over, or make it again")  # fmt: skip
    if cfg["data_sha256"] != inputs.data_sha256(x, y):
        raise ValueError(f"{npz} was made from other data than --data holds now (its contents changed); "
                         "make the set again: `uncertadv attack ... --force`")  # fmt: skip


def model_path(npz: Path, record: dict) -> Path:
    """The model (``.keras`` or manifest) an attack set was made against, its files checked
    against the sha256 it recorded."""
    folder = Layout.containing(npz).folder
    if "model" not in record:
        raise ValueError(f"{npz} does not name its model file (an older uncertadv made it); make it again with "
                         "`uncertadv attack --force`")  # fmt: skip
    files = [folder / f for f in record["model_files"]]
    for path, want in zip(files, record["config"]["models"]):
        if not path.is_file():
            raise ValueError(f"the attack set {npz} was made against {path}, which is missing")
        if artifacts.file_sha256(path) != want:
            raise ValueError(
                f"{path} changed since the attack set {npz} was made (sha256 differs); "
                "make the set again with `uncertadv attack --force`"
            )
    return folder / record["model"]


def score(models: list, arrays: dict, record: dict, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Long-format rows of one attack set, ``[3N]`` each, in the order clean, noise, adversarial:

    - kind (clean, noise or adversarial), index (test image), label, pred, confidence and the
      measures (NaN where not applicable);
    - l2: the L2 distance of the row's image from its source test image (0 for clean rows);
    - pair: i on noise row i and on adversarial row i, whose perturbation norms are matched
      (NaN on clean rows);
    - clean_pred (adversarial rows): the same predictor's prediction on the clean source image;
    - success (adversarial rows): correct when clean and wrong after the attack;
    - label_changed (adversarial rows): wrong after the attack (the paper's "success")."""
    images = {"clean": x[arrays["clean_index"]], "noise": arrays["x_noise"], "adversarial": arrays["x_adv"]}
    blocks = [kind_rows(models, record, kind, arrays[f"{kind}_index"], images[kind], x, y) for kind in KINDS]
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}


def kind_rows(
    models: list, record: dict, kind: str, index: np.ndarray, images: np.ndarray, x: np.ndarray, y: np.ndarray
) -> dict[str, np.ndarray]:
    """The rows ``[n]`` of one kind of an attack set (see ``score``): ``images`` were made from the
    test images ``x[index]`` and are scored by the evaluator that ``record`` names."""
    cfg = record["config"]
    predictor = cfg["attack"]["predictor"]
    evaluate = dict(predictor=predictor, samples=cfg["eval_samples"], seed=cfg["eval_seed"],
                    from_logits=cfg.get("data_options", {}).get("from_logits", False),
                    pixel_max=cfg["attack"]["pixel_max"])  # fmt: skip
    n = len(index)
    # one distinct network (no dropout, or T = 1): the sample-based measures are n/a, as for deterministic
    scored_as = predictor if predictors.sampled(models, predictor, cfg["eval_samples"]) else "deterministic"
    values = predictors.scores(predictors.predict(models, images, **evaluate), predictor=scored_as)
    none = np.full(n, np.nan)
    block = {
        "kind": np.full(n, kind),
        "index": index,
        "label": y[index],
        "pred": values["pred"],
        "clean_pred": none,
        "success": none,
        "label_changed": none,
        "l2": perturbation_norms(x[index], images)[1],
        "pair": none if kind == "clean" else np.arange(n),
        "confidence": values["confidence"],
        **{m: values[m] for m in MEASURES},
    }
    if kind == "adversarial":
        clean_pred = predictors.predict(models, x[index], **evaluate).mean(axis=0).argmax(axis=-1)
        changed = values["pred"] != y[index]
        block.update(clean_pred=clean_pred, label_changed=changed, success=(clean_pred == y[index]) & changed)
    return {k: (v if k == "kind" else np.asarray(v, dtype=float)) for k, v in block.items()}


def cached_scores(layout: Layout, stem: str, models: list, x: np.ndarray, y: np.ndarray) -> dict:
    """The score rows of one attack set, cached beside it (keyed by the set's sha256 and the data's)."""
    npz = layout.attack_set(stem)
    arrays, record = load(npz)
    check_data(npz, record, x, y)
    config = {
        "protocol": PROTOCOL,
        "data_sha256": record["config"]["data_sha256"],
        "attack_set": artifacts.file_sha256(npz),
        "eval_samples": record["config"]["eval_samples"],
        "eval_seed": record["config"]["eval_seed"],
    }
    return artifacts.cached_table(layout.score_cache(stem), config, lambda: score(models, arrays, record, x, y))
