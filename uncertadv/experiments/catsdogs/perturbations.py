"""The ablation's attacks and negatives on a ``VariantNetwork``: FGM, BIM and MIM as CleverHans
builds them (BIM a loop over FGM with ``clip_eta``; MIM with decay 1.0 and L1-normalised
gradients), with per-channel clip bounds, and the two kinds of noise negatives.

The order of steps, projections and clips is CleverHans 2's (the version the authors pinned):
FGM clips to the bounds; BIM keeps ``eta = clip_eps(clip_bounds(x + eta + step sign(grad)) - x)``,
takes every gradient at ``x + eta`` (not clipped to the bounds) and clips to the bounds once at the
end; MIM projects onto the eps-ball and clips to the bounds at every iterate, and takes its
gradient there. The loss is ``network.gradient``'s (see ``VariantNetwork``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from uncertadv.experiments.attack_sets import matched_noise
from uncertadv.experiments.catsdogs import variants
from uncertadv.experiments.catsdogs.network import VariantNetwork, key

STEPS = {5.0: 0.5, 10.0: 1.2}  # eps -> step (0-255 units), the paper's code; 10 iterations
ITERATIONS = 10
MIM_DECAY = 1.0


def clip_bounds(clip: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (RGB) bounds ``([3], [3])`` in [0, 1] units: the image range, or the authors'
    ``[-103.939, 131.32]`` on every caffe channel (BGR minus the means) written in RGB: R >= 19.74,
    G in [12.84, 248.10], B <= 235.26 in 0-255 units."""
    if clip == "image-range":
        return np.zeros(3, np.float32), np.ones(3, np.float32)
    mean = np.asarray(variants.CAFFE_MEAN_RGB)
    lo = np.clip(mean + variants.CAFFE_CLIP[0], 0, 255) / 255.0
    hi = np.clip(mean + variants.CAFFE_CLIP[1], 0, 255) / 255.0
    return lo.astype(np.float32), hi.astype(np.float32)


def attack_batch(network: VariantNetwork, x: np.ndarray, labels: np.ndarray, *, method: str, eps: float,
                 samples: int, bounds, seed_parts: tuple[int, ...], gradient=None,
                 moving: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Adversarial versions ``[B, S, S, 3]`` of one batch ``x`` (eps in 0-255 units), moving away
    from ``labels``, in CleverHans 2's order (module doc). Each gradient call draws fresh masks from
    key ``(*seed_parts, call)``. With the authors' bounds a pixel outside them ends at the bound,
    further than eps.

    gradient: ``(image [B, ...], call) -> [B, ...]`` in place of ``network.gradient`` (the batching
    experiment's attacker, whose masks are the images' own); moving: bool ``[B]``, the members that
    move (the others stay where they are: clean batch-mates)."""
    lo, hi = (tf.constant(b.reshape(1, 1, 1, 3)) for b in bounds)
    x0 = tf.constant(x, tf.float32)
    radius = eps / 255.0
    if gradient is None:
        gradient = lambda image, call: network.gradient(image, labels, key(*seed_parts, call), samples)  # noqa: E731
    still = None if moving is None else tf.constant(~np.asarray(moving, bool).reshape(-1, 1, 1, 1))

    def bound(image):
        return tf.clip_by_value(image, lo, hi)

    def ball(image):
        return x0 + tf.clip_by_value(image - x0, -radius, radius)

    def held(image):  # the members that do not move keep their input
        return image if still is None else tf.where(still, x0, image)

    if method == "fgm":
        return held(bound(x0 + radius * tf.sign(gradient(x0, 0)))).numpy()
    step = STEPS[float(eps)] / 255.0
    if method == "bim":
        eta = tf.zeros_like(x0)
        for call in range(ITERATIONS):
            grad = gradient(x0 + eta, call)
            eta = held(ball(bound(x0 + eta + step * tf.sign(grad)))) - x0
        return held(bound(x0 + eta)).numpy()
    adv, momentum = x0, tf.zeros_like(x0)
    for call in range(ITERATIONS):  # mim
        grad = gradient(adv, call)
        grad = grad / tf.maximum(tf.reduce_mean(tf.abs(grad), axis=(1, 2, 3), keepdims=True), 1e-12)
        momentum = MIM_DECAY * momentum + grad
        adv = held(bound(ball(adv + step * tf.sign(momentum))))
    return adv.numpy()


def pgd_batch(network: VariantNetwork, x: np.ndarray, labels: np.ndarray, *, eps: float, steps: int, samples: int,
              bounds, seed_parts: tuple[int, ...]) -> np.ndarray:  # fmt: skip
    """The adaptive suite's PGD on one batch ``x [B, S, S, 3]``: a uniform random start in the
    eps-ball (key ``(*seed_parts, steps)``), then ``steps`` sign steps of ``2.5 eps / steps`` (as
    ``SuiteConfig.pgd``), each projected onto the ball and clipped to the bounds; the last iterate.
    Each gradient call draws fresh masks from key ``(*seed_parts, call)``."""
    lo, hi = (tf.constant(b.reshape(1, 1, 1, 3)) for b in bounds)
    x0 = tf.constant(x, tf.float32)
    radius, step = eps / 255.0, 2.5 * eps / steps / 255.0

    def project(image):
        return tf.clip_by_value(x0 + tf.clip_by_value(image - x0, -radius, radius), lo, hi)

    adv = project(x0 + tf.random.stateless_uniform(tf.shape(x0), key(*seed_parts, steps), -radius, radius))
    for call in range(steps):
        adv = project(adv + step * tf.sign(network.gradient(adv, labels, key(*seed_parts, call), samples)))
    return adv.numpy()


def moved(x: np.ndarray, x_adv: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    """``(L-inf per image [N] in 0-255 units, share of all pixels moved further than eps)``."""
    delta = np.abs(x_adv - x).reshape(len(x), -1) * 255.0
    return delta.max(axis=1), float(np.mean(delta > eps + 1e-3))


def flat_negatives(x: np.ndarray, l2: np.ndarray, seed: int) -> np.ndarray:
    """The authors' noise negatives ``[N, S, S, 3]`` in [0, 1], emulated in RGB: uniform noise
    divided by (squared L2 of the paired perturbation, in caffe units) x (its own norm), added in
    caffe space, then clipped to [0, 1] there. Each pixel ends at its channel's ImageNet mean, the
    mean + 1 (0-255 units), or in between where the pixel already was."""
    rng = np.random.default_rng(seed)
    noise = rng.random(x.shape)
    squared = (np.asarray(l2, np.float64) * 255.0) ** 2  # batch_L_norm_distances(ord=2): no square root
    noise /= (squared * np.sqrt((noise.reshape(len(x), -1) ** 2).sum(axis=1)))[:, None, None, None]
    mean = np.asarray(variants.CAFFE_MEAN_RGB)
    caffe = x.astype(np.float64) * 255.0 - mean + noise
    return ((np.clip(caffe, 0.0, 1.0) + mean) / 255.0).astype(np.float32)


def negatives(kind: str, x: np.ndarray, l2: np.ndarray, seed: int) -> np.ndarray:
    """The noise negatives of the ``negatives`` switch: ``matched`` or ``as-coded-flat``."""
    if kind == "matched":
        return matched_noise(x, l2, seed=seed)
    return flat_negatives(x, l2, seed)
