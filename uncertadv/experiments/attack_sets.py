"""Attack sets: the paper's evaluation set for one (method, eps, predictor), on disk.

An attack set holds the indices of N clean, N noisy and N adversarial test images (disjoint,
seeded), the noisy and adversarial images themselves, and a record with the config, the
sha256 of the model files and the attack's success rate. Its scores are long-format rows,
one per image. Source arrays are never modified.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, predictors
from uncertadv.attacks import AttackConfig, attack
from uncertadv.experiments.layout import eval_seed
from uncertadv.measures import MEASURES

KINDS = ("clean", "noise", "adversarial")


def draw_indices(n_available: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets ``{"clean", "noise", "adversarial"}``, each ``[n]``."""
    if n < 1 or 3 * n > n_available:
        raise ValueError(f"need 1 <= n and 3 * n <= {n_available} images, got n = {n}")
    order = np.random.default_rng(seed).permutation(n_available)
    return {"clean": order[:n], "noise": order[n : 2 * n], "adversarial": order[2 * n : 3 * n]}


def matched_noise(x: np.ndarray, l2_norms: np.ndarray, seed: int, pixel_max: float = 1.0) -> np.ndarray:
    """``x [N, ...]`` plus Gaussian noise whose L2 norm equals ``l2_norms [N]`` (the paired
    adversarial perturbations), then clipped to the image range. Returns a new array."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    norms = np.sqrt((noise.reshape(len(x), -1) ** 2).sum(axis=1))
    noise *= (l2_norms / np.maximum(norms, 1e-12)).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.clip(x + noise, 0.0, pixel_max).astype(np.float32)


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
    out: Path,
    dataset: str,
    data_options: dict | None = None,
    force: bool = False,
) -> dict:
    """Make (or reuse) the attack set ``out`` (.npz + .json record); returns the record."""
    want = {
        "attack": dataclasses.asdict(config),
        "n": n,
        "index_seed": config.seed,
        "eval_samples": config.samples,
        "eval_seed": eval_seed(config.seed),
        "models": [artifacts.file_sha256(f) for f in model_files],
    }
    found = None if force else artifacts.reusable_record(artifacts.sidecar_path(out), want, [out])
    if found is not None:
        return {**found, "reused": True}
    start = time.perf_counter()
    idx = draw_indices(len(x), n, config.seed)
    x_src, y_src = x[idx["adversarial"]], y[idx["adversarial"]]
    x_adv = attack(models, x_src, y_src, config)
    linf, l2 = perturbation_norms(x_src, x_adv)
    x_noise = matched_noise(x[idx["noise"]], l2, seed=config.seed + 1, pixel_max=config.pixel_max)
    probs = predictors.predict(
        models, x_adv, predictor=config.predictor, samples=config.samples, seed=eval_seed(config.seed)
    )
    success = probs.mean(axis=0).argmax(axis=-1) != y_src
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
            )
    noise_l2 = perturbation_norms(x[idx["noise"]], x_noise)[1]
    record = artifacts.record(
        want,
        start,
        dataset=dataset,
        data_options=data_options or {},
        model_files=[str(f) for f in model_files],
        success_rate=float(success.mean()),
        mean_linf_255=float(linf.mean() * 255 / config.pixel_max),
        mean_l2=float(l2.mean()),
        mean_noise_l2_after_clipping=float(noise_l2.mean()),
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


def score(models: list, arrays: dict, record: dict, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Long-format rows of one attack set: kind (clean, noise or adversarial), index, label,
    pred, success (adversarial rows only, else NaN), confidence and the measures (NaN where
    not applicable)."""
    cfg = record["config"]
    predictor = cfg["attack"]["predictor"]
    images = {"clean": x[arrays["clean_index"]], "noise": arrays["x_noise"], "adversarial": arrays["x_adv"]}
    columns: dict[str, list] = {}
    for kind in KINDS:
        index = arrays[f"{kind}_index"]
        probs = predictors.predict(
            models, images[kind], predictor=predictor, samples=cfg["eval_samples"], seed=cfg["eval_seed"]
        )
        values = predictors.scores(probs, predictor=predictor)
        success = (values["pred"] != y[index]).astype(float) if kind == "adversarial" else np.full(len(index), np.nan)
        block = {
            "index": index,
            "label": y[index],
            "pred": values["pred"],
            "success": success,
            "confidence": values["confidence"],
            **{m: values[m] for m in MEASURES},
        }
        columns.setdefault("kind", []).append(np.full(len(index), kind))
        for k, v in block.items():
            columns.setdefault(k, []).append(np.asarray(v, dtype=float))
    return {k: np.concatenate(v) for k, v in columns.items()}
