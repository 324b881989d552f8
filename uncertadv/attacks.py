"""L-infinity attacks built from ``cleverhans.tf2`` against a predictor (deterministic, mc, ensemble).

Budgets are in 0-255 pixel units, as in the paper, and converted to the model's input
scale here. Defaults follow the paper's code: 10 iterations with step 0.5 (eps 5) and
1.2 (eps 10), eps / 10 otherwise. Images are clipped to the valid range.

FGM is CleverHans's ``fast_gradient_method``; BIM and PGD are loops over it with
``clip_eta`` (as CleverHans builds them); MIM is CleverHans's momentum loop. They are
written out here so that one compiled step serves every batch and budget of a
(model, predictor, method, shape): CleverHans's own functions retrace its gradient for
every attack set. PGD's random start comes from a stateless RNG keyed by the seed.

The adaptive attacks know a detector (its measure U and threshold τ) and maximise the
loss of the MC-mean predictive minus ``c * max(0, U(x) / τ - 1)``: fool the classifier
while staying under the threshold (Carlini & Wagner 2017). U comes from the same T sampled
networks as the predictive, so it costs no extra forward pass. ``pgd-adaptive`` draws fresh
networks at every step (the attacker does not know the detector's seed); ``pgd-adaptive-known``
attacks the detector's own T networks (it knows the seed: the white-box worst case).
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.utils import clip_eta, compute_gradient, optimize_linear

from uncertadv import inputs, mc, measures
from uncertadv.predictors import PREDICTORS, check_predictor, members

ADAPTIVE_METHODS = ("pgd-adaptive", "pgd-adaptive-known")
METHODS = ("fgm", "bim", "mim", "pgd", *ADAPTIVE_METHODS)
# The measures an adaptive attack can differentiate (variation ratio counts votes: no gradient).
DIFFERENTIABLE_MEASURES = ("predictive_entropy", "expected_entropy", "mutual_information", "softmax_variance")
PAPER_STEPS = {5.0: 0.5, 10.0: 1.2}  # eps -> step, 0-255 units (the paper's code)
MIM_DECAY = 1.0  # CleverHans's default momentum decay
# Seed s draws the attacker's networks from keys s * stride + step: streams of two seeds never meet.
_SEED_STRIDE = 1_000_003


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """One attack setting. ``eps`` and ``step`` are in 0-255 pixel units."""

    method: str
    eps: float
    predictor: str = "mc"
    samples: int = 20  # T per network for the mc/ensemble predictors
    iterations: int = 10
    step: float | None = None  # None: the paper's default for this eps
    seed: int = 0
    pixel_max: float = 1.0  # the model's input range is [0, pixel_max]
    # Adaptive methods only: the detector's measure and threshold τ, the penalty weight c, and
    # (pgd-adaptive-known) the detector's seed, which fixes its T networks.
    measure: str | None = None
    threshold: float | None = None
    c: float = 0.0
    detector_seed: int | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown attack method {self.method!r}; choose from {', '.join(METHODS)}")
        check_predictor(self.predictor)
        inputs.check_eps(self.eps)  # 0 <= eps <= 255 (0-255 units)
        if self.iterations < 1 or self.samples < 1:
            raise ValueError("iterations and samples must be >= 1")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.adaptive:
            self._check_adaptive()
        elif self.measure is not None or self.threshold is not None or self.detector_seed is not None:
            raise ValueError(f"{self.method} ignores the detector; measure, threshold and detector_seed are for "
                             f"{' and '.join(ADAPTIVE_METHODS)}")  # fmt: skip

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_METHODS

    def _check_adaptive(self) -> None:
        if self.predictor == "deterministic":
            raise ValueError(f"{self.method} needs sampled networks: use the mc or ensemble predictor")
        if self.measure not in DIFFERENTIABLE_MEASURES:
            raise ValueError(f"{self.method} needs a differentiable measure ({', '.join(DIFFERENTIABLE_MEASURES)}), "
                             f"got {self.measure!r}")  # fmt: skip
        if self.threshold is None or not np.isfinite(self.threshold) or not self.threshold > 0:
            raise ValueError(f"{self.method} needs the detector's threshold (> 0), got {self.threshold}")
        if not np.isfinite(self.c) or self.c < 0:
            raise ValueError(f"the penalty weight c must be >= 0, got {self.c}")
        if (self.method == "pgd-adaptive-known") != (self.detector_seed is not None):
            raise ValueError("pgd-adaptive-known, and only it, takes the detector's seed (detector_seed)")

    @property
    def step_size(self) -> float:
        """Step per iteration in 0-255 units."""
        if self.step is not None:
            return self.step
        return PAPER_STEPS.get(float(self.eps), self.eps / 10.0)

    def scale(self, value: float) -> float:
        """0-255 units -> model input units."""
        return value / 255.0 * self.pixel_max


class _LogPredictive:
    """The log-probabilities an attack differentiates: ``x [N, ...] -> [N, C]``.

    deterministic: log p of the first model with dropout off; mc: log of the first model's
    MC-mean predictive; ensemble: over every model. The MC predictors draw fresh networks
    at every call (an expectation over the dropout distribution): a call counter in a
    tf.Variable, reset at the start of each attack, advances the RNG key. The models are held
    by weak reference, so that the per-model cache of compiled steps does not keep them alive."""

    def __init__(self, models: list, predictor: str, samples: int, from_logits: bool, strategy=None,
                 measure: str | None = None, fixed: bool = False):  # fmt: skip
        self._models = [weakref.ref(m) for m in models]
        self.predictor, self.samples, self.from_logits = predictor, samples, from_logits
        # measure: also return U [N] from the same networks; fixed: the networks of seed ``base`` every call
        self.measure, self.fixed = measure, fixed
        if strategy is None:
            self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.base = tf.Variable(0, dtype=tf.int64, trainable=False)
        else:  # a copy of the counter per replica, each advanced once per call: the same networks everywhere
            sync = dict(synchronization=tf.VariableSynchronization.ON_READ,
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)  # fmt: skip
            with strategy.scope():
                self.calls = tf.Variable(0, dtype=tf.int64, trainable=False, **sync)
                self.base = tf.Variable(0, dtype=tf.int64, trainable=False, **sync)

    @property
    def models(self) -> list:
        return [ref() for ref in self._models]

    def __call__(self, x):
        if self.predictor == "deterministic":
            out = self.models[0](x, training=False)
            probs = tf.nn.softmax(out, -1) if self.from_logits else out
            return tf.math.log(tf.maximum(probs, np.finfo(np.float32).tiny))
        seed = self.base if self.fixed else self.base + self.calls.assign_add(1)
        if self.measure is None:
            return mc.mc_log_predictive(self.models, x, samples=self.samples, seed=seed, from_logits=self.from_logits)
        probs = mc.sampled_probs(self.models, x, samples=self.samples, seed=seed, from_logits=self.from_logits)
        # Clamped so that log p, and so the gradient of the entropies, stay finite where p underflows to 0.
        probs = tf.maximum(probs, np.finfo(np.float32).tiny)
        uncertainty = getattr(measures, self.measure)(probs, as_tensor=True)  # [N]
        return tf.math.log(tf.reduce_mean(probs, axis=0)), uncertainty


def _loss(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def _adaptive_loss(c, threshold):
    """The adaptive attacks' objective ``[N]``: cross-entropy of the MC-mean predictive minus
    ``c * max(0, U / τ - 1)``, so that U above the threshold costs in proportion."""

    def loss(labels, logits):
        log_predictive, uncertainty = logits
        return _loss(labels, log_predictive) - c * tf.nn.relu(uncertainty / threshold - 1.0)

    return loss


def _build_step(
    target: _LogPredictive, method: str, iterations: int, pixel_max: float, targeted: bool = False,
    noise_given: bool = False,
):  # fmt: skip
    """One attack ``(x, y, eps, step, start, c, threshold) -> x_adv`` for every batch, budget and
    penalty (compiled by _step). targeted: move towards the labels ``y`` instead of away from them.
    c, threshold: the adaptive methods' penalty (ignored by the others).
    start: PGD's stateless key ``[2]``, or with ``noise_given`` the random start itself (replicas
    receive their share of one draw, so they start where a single device would)."""
    clip = dict(clip_min=0.0, clip_max=pixel_max, targeted=targeted)

    def project(x, adv, eps):
        return tf.clip_by_value(x + clip_eta(adv - x, np.inf, eps), 0.0, pixel_max)

    def run(x, y, eps, step, start, c, threshold):
        if method == "fgm":
            return fast_gradient_method(target, x, eps, np.inf, y=y, sanity_checks=False, **clip)
        loss = _adaptive_loss(c, threshold) if method in ADAPTIVE_METHODS else _loss
        adv = x
        if method.startswith("pgd"):  # random start inside the ball, from the stateless key
            noise = start if noise_given else tf.random.stateless_uniform(tf.shape(x), start, -eps, eps)
            adv = project(x, x + noise, eps)
        momentum = tf.zeros_like(x)
        for _ in range(iterations):
            if method == "mim":
                grad = compute_gradient(target, _loss, adv, y, targeted)
                scale = tf.reduce_mean(tf.abs(grad), axis=list(range(1, len(grad.shape))), keepdims=True)
                momentum = MIM_DECAY * momentum + grad / tf.maximum(tf.cast(1e-12, grad.dtype), scale)
                adv = adv + optimize_linear(momentum, step, np.inf)
            else:  # bim, pgd: a loop over FGM
                adv = fast_gradient_method(target, adv, step, np.inf, loss_fn=loss, y=y, sanity_checks=False, **clip)
            adv = project(x, adv, eps)
        return adv

    return run  # plain Python: _step compiles it, for one device or a strategy's replicas


# (first model) -> {(member ids, predictor, method, samples, iterations, pixel_max, from_logits): (target, step)}
_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _step(models: list, config: AttackConfig, from_logits: bool, targeted: bool = False, strategy=None):
    key = (
        tuple(id(m) for m in models),
        config.predictor,
        config.method,
        config.samples,
        config.iterations,
        config.pixel_max,
        from_logits,
        targeted,
        id(strategy),
        config.measure,
        config.detector_seed is not None,
    )
    cache = _STEPS.setdefault(models[0], {})
    # ids can be reused once a member is freed: a hit counts only if it holds these very models
    if key not in cache or any(a is not b for a, b in zip(cache[key][0].models, models)):
        target = _LogPredictive(models, config.predictor, config.samples, from_logits, strategy,
                                measure=config.measure, fixed=config.detector_seed is not None)  # fmt: skip
        body = _build_step(target, config.method, config.iterations, config.pixel_max, targeted, strategy is not None)
        if strategy is None:
            run = tf.function(body, reduce_retracing=True)
        else:
            run = tf.function(lambda *args: strategy.run(body, args=args))
        cache[key] = (target, run)
    return cache[key]


def attack(
    models,
    x: np.ndarray,
    y: np.ndarray | None = None,
    config: AttackConfig | None = None,
    *,
    batch_size: int = 200,
    from_logits: bool = False,
    targeted: bool = False,
    clip_min: float | None = None,
    clip_max: float | None = None,
    strategy=None,
    detector=None,
    **settings,
) -> np.ndarray:
    """Adversarial versions of ``x [N, ...]``: ``[N, ...]`` float32 in [0, pixel_max] (uint8 ``x`` is
    0-255 and scaled into that range first, so compare the result with the scaled images).

    models: a Keras model or the model file's models (a list; the predictor picks which it uses).
    y: true labels ``[N]``; None uses the predictor's own clean predictions (CleverHans's
        convention, which avoids label leaking).
    config: an ``AttackConfig``, or its fields as keywords, CleverHans-style::

        ua.attack(model, x, y, method="pgd", eps=8, predictor="mc", samples=20, seed=0)

    eps and step are in 0-255 units of the image range [0, pixel_max] (or CleverHans's
    [clip_min, clip_max]); eps above 255 is refused and eps below 1 warned about (0.3 is
    ART's [0, 1] unit). ``x`` is checked against [0, pixel_max] (uint8 is scaled into it; see
    ``uncertadv.inputs``). targeted: move towards the labels ``y`` (then required).
    strategy: a ``tf.distribute`` strategy; each batch is split across its replicas, which share
    the MC networks' counter, so the images equal the single-device ones up to float rounding.
    detector: a fitted ``ua.Detector`` for the adaptive methods, which then take its measure,
    threshold, predictor and T (and, for pgd-adaptive-known, its seed)::

        ua.attack(models, x, y, method="pgd-adaptive", eps=8, c=10, detector=detector)

    ``x`` is not modified, nothing global is touched, and the same config gives the same images."""
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if detector is not None:
        if clip_min not in (None, 0):  # the shifted models below would not be the detector's
            raise ValueError("an attack on a detector takes the image range [0, pixel_max], not clip_min != 0")
        if config is not None:
            raise ValueError("give the detector with keyword settings (method=..., eps=...), not an AttackConfig")
        settings = _detector_settings(detector, settings, clip=clip_min is not None or clip_max is not None)
    if targeted and y is None:
        raise ValueError("a targeted attack needs the target labels y")
    if "pixel_max" in settings and settings["pixel_max"] is None:  # no scale: clip_min/clip_max must give one
        if clip_max is None:
            raise ValueError("an attack needs the image range: pixel_max, or clip_min and clip_max")
        del settings["pixel_max"]
    if clip_min is not None or clip_max is not None:
        if clip_min is None or clip_max is None or not clip_max > clip_min:
            raise ValueError(f"give both clip_min < clip_max, got {clip_min}, {clip_max}")
        if config is not None or "pixel_max" in settings:
            raise ValueError("give pixel_max or clip_min/clip_max, not both")
        if clip_min != 0:  # attack the model on x - clip_min in [0, clip_max - clip_min], then shift back
            shifted = [_shifted(m, clip_min) for m in models]
            adv = attack(shifted, x - np.float32(clip_min), y, batch_size=batch_size, from_logits=from_logits,
                         targeted=targeted, strategy=strategy, pixel_max=clip_max - clip_min, **settings)  # fmt: skip
            return (adv + np.float32(clip_min)).astype(np.float32)
        settings["pixel_max"] = float(clip_max)
    if config is None:
        config = AttackConfig(**settings)
    elif settings:
        raise ValueError("give an AttackConfig or its fields as keywords, not both")
    if targeted and config.adaptive:
        raise ValueError(f"{config.method} is untargeted: it moves away from y while evading the detector")
    x = inputs.images(x, config.pixel_max)
    chosen = mc.check_models(members(models, config.predictor), from_logits)
    inputs.check_shape(chosen[0], x)
    if detector is not None:
        detector.check_models(models)
        if detector.pixel_max != config.pixel_max:
            raise ValueError(
                f"the detector takes inputs in [0, {detector.pixel_max}], the attack [0, {config.pixel_max:g}]"
            )
    warning = inputs.check_eps(config.eps)
    if warning:
        warnings.warn(warning, stacklevel=2)
    if y is not None:
        y = inputs.labels(y, len(x), inputs.classes(chosen[0]))
    else:
        from uncertadv import predictors

        probs = predictors.predict(models, x, predictor=config.predictor, samples=config.samples, seed=config.seed,
                                   from_logits=from_logits, pixel_max=config.pixel_max)  # fmt: skip
        y = probs.mean(axis=0).argmax(axis=-1)
    if config.eps == 0:
        return x.copy()
    target, run = _step(chosen, config, from_logits, targeted, strategy)
    target.calls.assign(0)
    target.base.assign(config.seed * _SEED_STRIDE if config.detector_seed is None else config.detector_seed)
    eps = tf.constant(config.scale(config.eps), tf.float32)
    step = tf.constant(config.scale(config.step_size), tf.float32)
    penalty = (tf.constant(config.c, tf.float32), tf.constant(config.threshold or 1.0, tf.float32))
    out = []
    for i, start in enumerate(range(0, len(x), batch_size)):
        xb = tf.constant(x[start : start + batch_size], tf.float32)
        yb = tf.constant(y[start : start + batch_size], tf.int64)
        key = tf.constant([config.seed, i], tf.int64)  # PGD's random start for this batch
        if strategy is None:
            out.append(run(xb, yb, eps, step, key, *penalty).numpy())
            continue
        pgd = config.method.startswith("pgd")
        noise = tf.random.stateless_uniform(tf.shape(xb), key, -eps, eps) if pgd else xb * 0
        shards = [np.array_split(a.numpy(), strategy.num_replicas_in_sync) for a in (xb, yb, noise)]
        dx, dy, dn = (strategy.experimental_distribute_values_from_function(
            lambda ctx, parts=parts: tf.constant(parts[ctx.replica_id_in_sync_group])) for parts in shards)  # fmt: skip
        replicas = strategy.experimental_local_results(run(dx, dy, eps, step, dn, *penalty))
        out.append(np.concatenate([r.numpy() for r in replicas]))
    # Clip again: float rounding can put x + eta a hair outside the ball or the range.
    adv = np.concatenate(out)
    eps = config.scale(config.eps)
    return np.clip(np.clip(adv, x - eps, x + eps), 0.0, config.pixel_max).astype(np.float32)


def _detector_settings(detector, settings: dict, clip: bool = False) -> dict:
    """The adaptive attack's settings filled in from a fitted detector (a conflict is an error)."""
    if detector.threshold is None:
        raise ValueError("the detector has no threshold yet: fit it on clean data first")
    known = settings.get("method") == "pgd-adaptive-known"
    given = {"measure": detector.measure, "threshold": detector.threshold, "predictor": detector.predictor,
             "samples": detector.samples, **({"detector_seed": detector.seed} if known else {})}  # fmt: skip
    if detector.pixel_max is None:
        raise ValueError("the detector takes inputs in another scale (pixel_max None); an attack needs an image range")
    if not clip:  # CleverHans's range, if given, is checked against the detector's below
        given["pixel_max"] = float(detector.pixel_max)
    for key, value in given.items():
        if key in settings and settings[key] != value:
            raise ValueError(f"{key}={settings[key]!r} conflicts with the detector's {value!r}")
    return {**settings, **given}


def _shifted(model, offset: float):
    """``model`` on inputs shifted by ``offset``: a Functional wrapper the MC engine can walk."""
    import keras

    inputs = keras.Input(model.inputs[0].shape[1:])
    return keras.Model(inputs, model(keras.layers.Rescaling(1.0, offset=offset)(inputs)))


__all__ = ("AttackConfig", "attack", "METHODS", "ADAPTIVE_METHODS", "PREDICTORS")
