"""Attack sets on disk and their scores.

An attack set is the paper's evaluation set for one (method, eps, target model): the
indices of N clean, N noisy and N adversarial test images, the noisy and adversarial
images themselves, and a sidecar with the config, the model fingerprints and the attack's
success rate. Its scores are long-format rows, one per image.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from uncertadv import artifacts, evalsets
from uncertadv.attacks import AttackConfig, attack
from uncertadv.measures import MEASURES
from uncertadv.scoring import measures_of, model_probs

KINDS = ("clean", "noise", "adversarial")
EVAL_SEED_OFFSET = 1_000_000  # the evaluator's networks never equal the attacker's


def eval_seed(seed: int) -> int:
    return seed + EVAL_SEED_OFFSET


def set_name(config: AttackConfig) -> str:
    """``mim_eps5_mc``: the file stem of an attack set."""
    return f"{config.method}_eps{config.eps:g}_{config.target}"


def fingerprint(files: list[Path]) -> list[str]:
    return [artifacts.file_sha256(f) for f in files]


def build(models: list, model_files: list[Path], x: np.ndarray, y: np.ndarray, config: AttackConfig, *, n: int,
          out: Path, dataset: str, data_options: dict | None = None, force: bool = False) -> dict:
    """Make (or reuse) the attack set ``out`` (.npz + .json sidecar); returns the sidecar."""
    want = {"attack": dataclasses.asdict(config), "n": n, "index_seed": config.seed,
            "eval_samples": config.samples, "eval_seed": eval_seed(config.seed), "models": fingerprint(model_files)}
    record_path = artifacts.sidecar_path(out)
    if not force and out.is_file() and record_path.is_file():
        record = artifacts.read_json(record_path)
        if record.get("config") == want:
            return {**record, "reused": True}
    start = time.perf_counter()
    idx = evalsets.draw_indices(len(x), n, config.seed)
    x_src, y_src = x[idx["adversarial"]], y[idx["adversarial"]]
    x_adv = attack(models, x_src, y_src, config)
    linf, l2 = evalsets.perturbation_norms(x_src, x_adv)
    x_noise = evalsets.matched_noise(x[idx["noise"]], l2, seed=config.seed + 1, pixel_max=config.pixel_max)
    probs = model_probs(models, x_adv, mode=config.target, samples=config.samples, seed=eval_seed(config.seed))
    success = probs.mean(axis=0).argmax(axis=-1) != y_src
    with artifacts.atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, clean_index=idx["clean"], noise_index=idx["noise"],
                                adversarial_index=idx["adversarial"], labels=y_src, x_noise=x_noise, x_adv=x_adv,
                                success=success)
    noise_l2 = evalsets.perturbation_norms(x[idx["noise"]], x_noise)[1]
    record = {
        "command": artifacts.command_line(), "config": want, "dataset": dataset, "data_options": data_options or {},
        "model_files": [str(f) for f in model_files],
        "success_rate": float(success.mean()),
        "mean_linf_255": float(linf.mean() * 255 / config.pixel_max),
        "mean_l2": float(l2.mean()), "mean_noise_l2_after_clipping": float(noise_l2.mean()),
        "versions": artifacts.versions(), "wall_seconds": round(time.perf_counter() - start, 2),
    }
    artifacts.write_json(record_path, record)
    return record


def load(path: Path) -> tuple[dict, dict]:
    """``(arrays, sidecar)`` of a saved attack set; a clear ValueError if it is missing or damaged."""
    path = Path(path)
    record_path = artifacts.sidecar_path(path)
    if not path.is_file() or not record_path.is_file():
        raise ValueError(f"no attack set at {path} (with its .json sidecar); make one with `uncertadv attack`")
    try:
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read attack set {path}: {err}") from None
    return arrays, artifacts.read_json(record_path)


def score(models: list, arrays: dict, record: dict, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Numeric long-format rows for one attack set: kind (0 clean, 1 noise, 2 adversarial),
    index, label, pred, success (adversarial rows only, else NaN), confidence and the
    measures (NaN where not applicable)."""
    cfg = record["config"]
    target = cfg["attack"]["target"]
    images = {"clean": x[arrays["clean_index"]], "noise": arrays["x_noise"], "adversarial": arrays["x_adv"]}
    columns: dict[str, list] = {}
    for code, kind in enumerate(KINDS):
        index = arrays[f"{kind}_index"]
        probs = model_probs(models, images[kind], mode=target, samples=cfg["eval_samples"], seed=cfg["eval_seed"])
        values = measures_of(probs, deterministic=target == "deterministic")
        success = (values["pred"] != y[index]).astype(float) if kind == "adversarial" else np.full(len(index), np.nan)
        block = {"kind": np.full(len(index), code), "index": index, "label": y[index], "pred": values["pred"],
                 "success": success, "confidence": values["confidence"], **{m: values[m] for m in MEASURES}}
        for k, v in block.items():
            columns.setdefault(k, []).append(np.asarray(v, dtype=float))
    return {k: np.concatenate(v) for k, v in columns.items()}
