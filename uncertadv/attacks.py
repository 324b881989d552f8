"""L-infinity attacks from ``cleverhans.tf2.attacks`` against deterministic, MC and ensemble models.

Budgets are in 0-255 pixel units, as in the paper, and converted to the model's input
scale here. Defaults follow the paper's code: 10 iterations with step 0.5 (eps 5) and
1.2 (eps 10), eps / 10 otherwise. Images are clipped to the valid range.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

from uncertadv import mc

METHODS = ("fgm", "bim", "mim", "pgd")
TARGETS = ("deterministic", "mc", "ensemble")
PAPER_STEPS = {5.0: 0.5, 10.0: 1.2}  # eps -> step, 0-255 units (the paper's code)


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """One attack setting. ``eps`` and ``step`` are in 0-255 pixel units."""

    method: str
    eps: float
    target: str = "mc"
    samples: int = 20  # T per network for the mc/ensemble targets
    iterations: int = 10
    step: float | None = None  # None: the paper's default for this eps
    seed: int = 0
    pixel_max: float = 1.0  # the model's input range is [0, pixel_max]

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown attack method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.target not in TARGETS:
            raise ValueError(f"unknown target model {self.target!r}; choose from {', '.join(TARGETS)}")
        if not np.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps must be >= 0 (0-255 pixel units), got {self.eps}")
        if self.iterations < 1 or self.samples < 1:
            raise ValueError("iterations and samples must be >= 1")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"step must be > 0, got {self.step}")

    @property
    def step_size(self) -> float:
        """Step per iteration in 0-255 units."""
        if self.step is not None:
            return self.step
        return PAPER_STEPS.get(float(self.eps), self.eps / 10.0)

    def scale(self, value: float) -> float:
        """0-255 units -> model input units."""
        return value / 255.0 * self.pixel_max


def model_fn(models: list, target: str, *, samples: int, seed: int):
    """The logits CleverHans differentiates: ``x [N, ...] -> [N, C]``.

    deterministic: log p of the first model with dropout off; mc: log of the MC-mean
    predictive of the first model; ensemble: over every model. The MC targets draw fresh
    networks at every call (expectation over the dropout distribution): a counter in a
    tf.Variable advances the RNG key each time the graph runs."""
    if target == "deterministic":
        model = models[0]
        tiny = np.finfo(np.float32).tiny
        return lambda x: tf.math.log(tf.maximum(model(x, training=False), tiny))
    members = models[:1] if target == "mc" else models
    calls = tf.Variable(0, dtype=tf.int64, trainable=False)
    base = tf.constant(seed, tf.int64) * 1_000_003

    def fn(x):
        step = calls.assign_add(1)
        return mc.mc_log_predictive(members, x, samples=samples, seed=base + step)

    return fn


def check_images(x: np.ndarray, pixel_max: float = 1.0) -> None:
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > pixel_max:
        raise ValueError(f"images must be finite and in [0, {pixel_max:g}], got [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]")


def attack(models: list, x: np.ndarray, y: np.ndarray, config: AttackConfig, batch_size: int = 200) -> np.ndarray:
    """Adversarial versions of ``x [N, ...]`` (untargeted, true labels ``y [N]``). ``x`` is not modified."""
    check_images(x, config.pixel_max)
    if config.eps == 0:
        return x.copy()
    tf.random.set_seed(config.seed)  # PGD's random start
    fn = model_fn(models, config.target, samples=config.samples, seed=config.seed)
    eps, step = config.scale(config.eps), config.scale(config.step_size)
    common = dict(norm=np.inf, clip_min=0.0, clip_max=config.pixel_max, sanity_checks=False)
    out = []
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start : start + batch_size], tf.float32)
        yb = tf.constant(y[start : start + batch_size], tf.int64)
        if config.method == "fgm":
            adv = fast_gradient_method(fn, xb, eps, y=yb, **common)
        elif config.method == "bim":
            adv = basic_iterative_method(fn, xb, eps, step, config.iterations, y=yb, **common)
        elif config.method == "mim":
            adv = momentum_iterative_method(fn, xb, eps, step, config.iterations, y=yb, **common)
        else:  # pgd: random start inside the ball
            adv = projected_gradient_descent(fn, xb, eps, step, config.iterations, y=yb, rand_init=True,
                                             rand_minmax=eps, **common)
        out.append(adv.numpy())
    # Clip again: float rounding can put x + eta a hair outside the ball or the range.
    adv = np.concatenate(out)
    eps = config.scale(config.eps)
    return np.clip(np.clip(adv, x - eps, x + eps), 0.0, config.pixel_max).astype(np.float32)
