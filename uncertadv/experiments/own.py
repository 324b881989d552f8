"""Your own model and data: what ``score``, ``attack`` and ``report`` do with ``--model`` and
``--data`` instead of the paper's data sets. Attack sets, scores and Table 1 then live in the
``--results`` folder, in the same layout and with the same columns as the paper's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from uncertadv import data, io, mc, own_data, predictors

DATASET = "own"  # the data set name recorded for --data


def allowed_predictors(model: Path) -> tuple[str, ...]:
    """deterministic and mc for one model; ensemble too for a manifest of several."""
    return predictors.PREDICTORS if len(io.member_files(model)) > 1 else ("deterministic", "mc")


def classifiers(model: Path, wanted: tuple[str, ...], from_logits: bool = False,
                samples: int | None = None) -> dict[str, tuple[list, list[Path]]]:  # fmt: skip
    """``{predictor: (models, model files)}`` for ``--model``, refusing predictors it cannot give; warns once
    for each sampling predictor with one distinct network at ``samples`` (no dropout, or T = 1)."""
    allowed = allowed_predictors(model)
    bad = [p for p in wanted if p not in allowed]
    if bad:
        raise ValueError(f"{model} gives the predictors {', '.join(allowed)}; not {', '.join(bad)} "
                         "(an ensemble needs a manifest of several models)")  # fmt: skip
    models = mc.check_models(io.load_classifier(model), from_logits)
    t = 2 if samples is None else samples  # T unknown here: only a model without dropout is warned about
    for p in [p for p in wanted if p != "deterministic"]:
        if not predictors.sampled(models, p, t):
            print(f"warning: {predictors.one_network_reason(models, p, t)}, so its expected entropy, MI, "
                  "softmax variance and variation ratio are n/a (they need two distinct networks)",
                  file=sys.stderr)  # fmt: skip
    first, every = io.member_files(model)[0], io.model_files(model)
    return {p: (models, every if p == "ensemble" else first) for p in wanted}


def fit_n(n: int | None, available: int, held_out: int = 0, why: str = "") -> int:
    """Images per kind for ``available`` images of your own data, each kind drawn apart: 3n + ``held_out``
    must fit. None: the largest n up to DEFAULT_N that fits, said in one line; an explicit n that does not
    fit is refused, naming the largest that does (``why``: what the held-out images are for)."""
    from uncertadv.experiments.layout import DEFAULT_N

    largest = (available - held_out) // 3
    need = f"3 x n{f' + {held_out}' if held_out else ''}"
    if largest < 1:
        raise ValueError(f"--data holds {available} images; {need} must fit, so it needs at least "
                         f"{3 + held_out}{why}")  # fmt: skip
    if n is None:
        n = min(DEFAULT_N, largest)
        print(f"--n {n}: the largest n up to {DEFAULT_N} for which {need} fits the {available} images of --data"
              f"{why}", file=sys.stderr)  # fmt: skip
    elif n > largest:
        raise ValueError(f"--n {n} needs {3 * n + held_out} images ({need}), --data holds {available}: the "
                         f"largest n that fits is {largest}{why}")  # fmt: skip
    return n


def load(options: dict, models: list, predictor: str, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of ``--data`` (``options``: spec, pixel_max, image_size, from_logits, classes,
    color_mode), checked against the model's contract (``own_data.load_for_model``). Without labels,
    ``y`` is the predictor's own prediction on the clean inputs (the CleverHans convention), with
    ``seed``; ``options["labels"]`` records which (``data`` or ``predictor``) and
    ``options["class_labels"]`` a folder's ``{subfolder: label}``."""
    x, y, info = own_data.load_for_model(options, models[0])
    options["labels"] = "data" if y is not None else "predictor"
    if "classes" in info:
        options["class_labels"] = info["classes"]
    if y is None:
        probs = predictors.predict(models, x, predictor=predictor, samples=samples, seed=seed,
                                   from_logits=options.get("from_logits", False),
                                   pixel_max=options["pixel_max"])  # fmt: skip
        y = probs.mean(axis=0).argmax(axis=-1).astype(np.int64)
    return data.read_only(x, y)
