"""The cats-vs-dogs ablation's switches (issue 18): each one a difference between the model the
paper describes, which ``results/catsdogs`` runs, and the model the authors' code ran
(``lsgos/uncertainty-adversarial-paper`` at 75ac8fb; pull request #3, dbc7ec5, changed only the
epochs and N). A variant is a set of named switches; its name is its folder under
``results/catsdogs-ablation/``. Every sidecar and reuse key records the switches.

Each switch, with the line of the authors' code that it emulates:

- ``head``: ``features`` (Dropout -> Dense on the pooled features, trained 20 epochs at batch 64)
  or ``imagenet-probs`` (on the 1000-way ImageNet softmax: ``ResNet50(weights='imagenet',
  include_top='False')`` in ``cats_and_dogs.py``, ``define_model_resnet``; the string is truthy).
  The switch carries the training recipe: any head but today's trains as the authors' did
  (``model.fit(..., shuffle='batch')`` with Keras's batch 32, ``optimizer='adam'``, 15 epochs by
  the pull request).
- ``point_estimate``: ``dropout-off`` or ``one-dropout-sample`` (``load_model``:
  ``K.set_learning_phase(not deterministic)``, undone by ``define_model_resnet``'s
  ``K.set_learning_phase(True)``): the deterministic row is one fresh dropout mask per example
  per call, for the attack, the success check and the entropy.
- ``attack_labels``: ``true`` or ``predicted`` (``attack.generate`` is given no ``y``:
  CleverHans then attacks the model's own prediction).
- ``negatives``: ``matched`` (Gaussian noise of the adversarial L2) or ``as-coded-flat``
  (``ROC_curves_cats.py``, ``run``: ``noise /= (dists * norm(noise))`` with the *squared* L2 of
  ``batch_L_norm_distances``, then ``np.clip(x_plus_noise, 0, 1)`` in caffe space, which flattens
  each pixel to the channel's ImageNet mean or mean + 1).
- ``clip``: ``image-range`` ([0, 1]) or ``as-coded`` (``clip_min=-103.939, clip_max=131.32``
  on all three caffe channels).
- ``batchnorm``: ``inference`` or ``batch-statistics`` (learning phase 1: every BatchNorm uses
  the batch's moments; evaluation in ``--batch_size`` 5, one kind per batch).
"""

from __future__ import annotations

import dataclasses

SWITCHES = {
    "head": ("features", "imagenet-probs"),
    "point_estimate": ("dropout-off", "one-dropout-sample"),
    "attack_labels": ("true", "predicted"),
    "negatives": ("matched", "as-coded-flat"),
    "clip": ("image-range", "as-coded"),
    "batchnorm": ("inference", "batch-statistics"),
}
# The order in which the ablation adds the switches, one at a time (issue 18).
CUMULATIVE_ORDER = ("negatives", "head", "point_estimate", "attack_labels", "clip", "batchnorm")
AS_CODED_BATCH = 5  # ROC_curves_cats.py: --batch_size 5, for attacks and scores
AS_CODED_TRAIN_BATCH = 32  # Keras 2's default batch in model.fit
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # keras.applications' caffe means, in RGB order
CAFFE_CLIP = (-103.939, 131.32)  # ROC_curves_cats.py's clip_min, clip_max on every caffe channel


@dataclasses.dataclass(frozen=True)
class HeadRecipe:
    """How a head is trained: epochs, batch, and whether batches are fixed blocks of a seeded
    permutation, reordered each epoch (Keras 2's ``shuffle='batch'``)."""

    epochs: int
    batch_size: int
    block_shuffle: bool
    learning_rate: float = 1e-3


TODAY_RECIPE = HeadRecipe(epochs=20, batch_size=64, block_shuffle=False)
AS_CODED_RECIPE = HeadRecipe(epochs=15, batch_size=AS_CODED_TRAIN_BATCH, block_shuffle=True)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One setting of the six switches; the defaults are today's model (``results/catsdogs``)."""

    head: str = "features"
    point_estimate: str = "dropout-off"
    attack_labels: str = "true"
    negatives: str = "matched"
    clip: str = "image-range"
    batchnorm: str = "inference"

    def __post_init__(self):
        for name, allowed in SWITCHES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    def switched(self, *names: str) -> Variant:
        """This variant with each named switch flipped."""
        flip = {n: SWITCHES[n][1 - SWITCHES[n].index(getattr(self, n))] for n in names}
        return dataclasses.replace(self, **flip)

    @property
    def on(self) -> tuple[str, ...]:
        """The switches set to the authors' code, in SWITCHES order."""
        return tuple(n for n in SWITCHES if getattr(self, n) != SWITCHES[n][0])

    @property
    def batch_size(self) -> int | None:
        """The batch every attack and score runs in when outputs depend on batch-mates, else None."""
        return AS_CODED_BATCH if self.batchnorm == "batch-statistics" else None

    @property
    def recipe(self) -> HeadRecipe:
        """Today's head keeps today's recipe; every other head trains as the authors' code did."""
        return TODAY_RECIPE if (self.head, self.batchnorm) == ("features", "inference") else AS_CODED_RECIPE

    def model_key(self) -> dict:
        """The switches the trained head depends on."""
        return {"head": self.head, "batchnorm": self.batchnorm, "recipe": dataclasses.asdict(self.recipe)}

    def attack_key(self, predictor: str) -> dict:
        """The switches an attack set of ``predictor`` depends on (the negatives only re-score it;
        the point estimate does not touch the mc predictor)."""
        key = {**self.model_key(), "attack_labels": self.attack_labels, "clip": self.clip}
        if predictor == "deterministic":
            key["point_estimate"] = self.point_estimate
        return key

    def score_key(self, predictor: str) -> dict:
        return {**self.attack_key(predictor), "point_estimate": self.point_estimate, "negatives": self.negatives}


TODAY = Variant()
AS_CODED = Variant(**{name: allowed[1] for name, allowed in SWITCHES.items()})
PRESETS = {"today": TODAY, "as-coded": AS_CODED}


def cumulative() -> dict[str, Variant]:
    """today, then each switch of CUMULATIVE_ORDER added to the one before; the last is as-coded."""
    out, variant = {"today": TODAY}, TODAY
    for name in CUMULATIVE_ORDER:
        variant = variant.switched(name)
        out["as-coded" if variant == AS_CODED else f"+{name}"] = variant
    return out


def leave_one_out() -> dict[str, Variant]:
    """as-coded with each switch set back to today's alone, to measure interactions."""
    return {f"as-coded-{name}": AS_CODED.switched(name) for name in CUMULATIVE_ORDER}


def ablation() -> dict[str, Variant]:
    """Every variant the ablation runs, in order, fixed before the run (issue 18)."""
    return {**cumulative(), **leave_one_out()}


def named(name: str) -> Variant:
    """The variant called ``name`` (a preset or an ablation variant); a one-line error otherwise."""
    known = {**PRESETS, **ablation()}
    if name not in known:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(known)}")
    return known[name]


def previous(name: str) -> str | None:
    """The variant an ablation row is compared with: the one before it in the cumulative chain,
    or as-coded for a leave-one-out variant; None for today."""
    chain = list(cumulative())
    if name in chain:
        return chain[chain.index(name) - 1] if chain.index(name) else None
    return "as-coded" if name in leave_one_out() else None
