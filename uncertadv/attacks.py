"""L-infinity attacks built from ``cleverhans.tf2`` against a predictor (deterministic, mc, ensemble).

Budgets are in 0-255 pixel units, as in the paper, and converted to the model's input
scale here. Defaults follow the paper's code: 10 iterations with step 0.5 (eps 5) and
1.2 (eps 10), eps / 10 otherwise. Images are clipped to the valid range.

FGM is CleverHans's ``fast_gradient_method``; BIM and PGD are loops over it with
``clip_eta`` (as CleverHans builds them); MIM is CleverHans's momentum loop. They are
written out here so that one compiled step serves every batch and budget of a
(model, predictor, method, shape): CleverHans's own functions retrace its gradient for
every attack set. PGD's random start comes from a stateless RNG keyed by the seed.

The adaptive attacks know a detector (its measure U and thresholds) and combine a
classification loss with a detector loss (``uncertadv.objectives``: CE or the CW margin, the
margined hinge or U-matching, summed with weight c or chosen per image by selective or
orthogonal PGD). By default they maximise the loss of the MC-mean predictive minus
``c * max(0, U(x) / τ - 1)`` (Carlini & Wagner 2017). U comes from the same T sampled networks as
the predictive, so it costs no extra forward pass. ``pgd-adaptive`` draws fresh networks at every
step (the attacker does not know the detector's seed), from keys of its own (negative seeds, which
no detector uses), ``eot`` draws per step; ``pgd-adaptive-known`` attacks the detector's own T
networks (it knows the seed: the white-box worst case). Both can keep the best iterate by their
own estimate of the verdict, restart where that estimate says the image still fails, and halve the
step at each quarter of the run (``schedule="decay"``).
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.utils import clip_eta, compute_gradient, optimize_linear

from uncertadv import distribute, inputs, mc, measures, objectives
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
    # Adaptive methods only (uncertadv.objectives): the classification loss (ce, cw with margin kappa),
    # the detector loss (hinge with margin m, u-matching towards u_target), the update rule, a
    # two-sided detector's lower threshold, restarts, EOT draws per step, the step schedule, and
    # whether to return the best iterate by the attacker's own estimate instead of the last.
    loss: str = "ce"
    kappa: float = 0.0
    penalty: str = "hinge"
    margin: float = 0.0
    u_target: float | None = None
    update: str = "sum"
    lower_threshold: float | None = None
    restarts: int = 1
    eot: int = 1
    schedule: str = "constant"
    best_iterate: bool = False

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
            self._check_objective()
        elif self.measure is not None or self.threshold is not None or self.detector_seed is not None:
            raise ValueError(f"{self.method} ignores the detector; measure, threshold and detector_seed are for "
                             f"{' and '.join(ADAPTIVE_METHODS)}")  # fmt: skip
        elif self.objective_settings():
            raise ValueError(f"{self.method} ignores the detector; {', '.join(self.objective_settings())} are for "
                             f"{' and '.join(ADAPTIVE_METHODS)}")  # fmt: skip

    def objective_settings(self) -> dict:
        """The adaptive-only settings that differ from their defaults (the rest are left out of records,
        so that the keys of sets made before these settings existed still match)."""
        fields = {f.name: f.default for f in dataclasses.fields(self)}
        return {k: getattr(self, k) for k in _OBJECTIVE_FIELDS if getattr(self, k) != fields[k]}

    def as_record(self) -> dict:
        """The config as a reuse key and a recorded dict: ``AttackConfig(**as_record())`` gives it back."""
        record = dataclasses.asdict(self)
        return {k: v for k, v in record.items() if k not in _OBJECTIVE_FIELDS or k in self.objective_settings()}

    def _check_objective(self) -> None:
        choices = {"loss": objectives.LOSSES, "penalty": objectives.PENALTIES, "update": objectives.UPDATES,
                   "schedule": objectives.SCHEDULES}  # fmt: skip
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"unknown {key} {getattr(self, key)!r}; choose from {', '.join(allowed)}")
        if not np.isfinite(self.kappa) or self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")
        if not 0 <= self.margin < 1:
            raise ValueError(f"the hinge margin m must be in [0, 1), got {self.margin}")
        if self.penalty == "u-matching" and (self.u_target is None or not self.u_target > 0):
            raise ValueError(
                f"u-matching needs the target U (u_target > 0, e.g. the clean median), got {self.u_target}"
            )
        if self.lower_threshold is not None and not 0 <= self.lower_threshold < self.threshold:
            raise ValueError(f"the lower threshold must be in [0, threshold), got {self.lower_threshold}")
        if self.restarts < 1 or self.eot < 1:
            raise ValueError("restarts and eot must be >= 1")
        if self.eot > 1 and self.detector_seed is not None:
            raise ValueError("eot averages over fresh networks; pgd-adaptive-known attacks the detector's fixed ones")

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


_OBJECTIVE_FIELDS = ("loss", "kappa", "penalty", "margin", "u_target", "update", "lower_threshold", "restarts",
                     "eot", "schedule", "best_iterate")  # fmt: skip


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
        # The detector-aware attacker's fresh networks walk down from a negative base: its own stream,
        # which no detector (seed >= 0) draws from. The other attacks keep their keys (Table 1's sets).
        self.stride = -1 if measure is not None and not fixed else 1
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
        seed = self.base if self.fixed else self.base + self.stride * self.calls.assign_add(1)
        if self.measure is None:
            return mc.mc_log_predictive(self.models, x, samples=self.samples, seed=seed, from_logits=self.from_logits)
        probs = mc.sampled_probs(self.models, x, samples=self.samples, seed=seed, from_logits=self.from_logits)
        # Clamped so that log p, and so the gradient of the entropies, stay finite where p underflows to 0.
        probs = tf.maximum(probs, np.finfo(np.float32).tiny)
        uncertainty = getattr(measures, self.measure)(probs, as_tensor=True)  # [N]
        return tf.math.log(tf.reduce_mean(probs, axis=0)), uncertainty


def _loss(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def _build_step(
    target: _LogPredictive, method: str, iterations: int, pixel_max: float, targeted: bool = False,
    noise_given: bool = False,
):  # fmt: skip
    """One attack ``(x, y, eps, step, start) -> x_adv`` for every batch and budget (compiled by _step).
    targeted: move towards the labels ``y`` instead of away from them.
    start: PGD's stateless key ``[2]``, or with ``noise_given`` the random start itself (replicas
    receive their share of one draw, so they start where a single device would)."""
    clip = dict(clip_min=0.0, clip_max=pixel_max, targeted=targeted)

    def project(x, adv, eps):
        return tf.clip_by_value(x + clip_eta(adv - x, np.inf, eps), 0.0, pixel_max)

    def run(x, y, eps, step, start):
        if method == "fgm":
            return fast_gradient_method(target, x, eps, np.inf, y=y, sanity_checks=False, **clip)
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
                adv = fast_gradient_method(target, adv, step, np.inf, loss_fn=_loss, y=y, sanity_checks=False, **clip)
            adv = project(x, adv, eps)
        return adv

    return run  # plain Python: _step compiles it, for one device or a strategy's replicas


def _build_detector_step(target: _LogPredictive, config: AttackConfig, bounds=None, coupled: bool = False):
    """One detector-aware attack ``(x, y, eps, step, start, settings) -> (x_adv, score, first)`` for every
    batch, budget and setting of c, κ, m, U* and thresholds (compiled by _step).

    x_adv ``[N, ...]``: the last iterate, or the best one by the attacker's own estimate
    (``objectives.iterate_score``) with ``best_iterate``; score ``[N]``: that iterate's score;
    first ``[N]`` int: the first iterate (0 = the random start) that evaded by that estimate, -1 if
    none. settings ``[7]``: c, τ_hi, τ_lo (-1: none), m, κ, log U*, and 0 (reserved).
    bounds: ``(lo, hi)`` the iterates are clipped to (scalars or broadcastable, e.g. per channel
    ``[1, 1, 1, 3]``; default ``(0, pixel_max)``). coupled: the outputs of an image depend on its
    batch-mates (batch statistics), so the best iterate is chosen for the whole batch, by the sum of
    its images' scores: a mix of iterates would be a batch the attacker never judged."""
    iterations, pixel_max, eot = config.iterations, config.pixel_max, config.eot
    lo, hi = (0.0, pixel_max) if bounds is None else bounds

    def project(x, adv, eps):
        return tf.clip_by_value(x + clip_eta(adv - x, np.inf, eps), lo, hi)

    def estimate(adv, y, settings):
        """f, g (averaged over the eot draws, [N] each), misclassified and evading ([N] bool).

        Each draw of T networks is judged as the evaluator judges its one draw, and an image counts as
        misclassified (evading) when more than half of the draws say so: a verdict on the mean U over
        draws would be biased, since U is skewed and the evaluator sees a single draw."""
        c, high, low, margin, kappa, log_target = (settings[i] for i in range(6))
        fs, gs, wrong, evading = [], [], [], []
        for _ in range(eot):
            log_predictive, uncertainty = target(adv)
            fs.append(objectives.classification_loss(log_predictive, y, config.loss, kappa))
            gs.append(objectives.detector_loss(uncertainty, config.penalty, high, margin, log_target))
            misclassified = tf.argmax(tf.exp(log_predictive), axis=-1) != y  # exp: as before, bit for bit
            wrong.append(tf.cast(misclassified, tf.float32))
            evading.append(tf.cast(misclassified & (uncertainty <= high) & (uncertainty >= low), tf.float32))
        majority = lambda votes: tf.add_n(votes) / eot > 0.5  # noqa: E731
        return tf.add_n(fs) / eot, tf.add_n(gs) / eot, majority(wrong), majority(evading)

    def keep(i, adv, score, best, best_score, first):
        """The best iterate so far, its score, and the first evading iterate, after scoring iterate i."""
        first = tf.where((first < 0) & (score > objectives.EVADING_SCORE), i, first)
        if coupled:
            whole = tf.fill(tf.shape(score), _batch_value(score) > _batch_value(best_score))
            better = tf.reshape(whole, [-1] + [1] * (len(adv.shape) - 1))
            return tf.where(better, adv, best), tf.where(whole, score, best_score), first
        better = tf.reshape(score > best_score, [-1] + [1] * (len(adv.shape) - 1))
        return tf.where(better, adv, best), tf.maximum(score, best_score), first

    def run(x, y, eps, step, start, settings):
        c = settings[0]
        adv = project(x, x + tf.random.stateless_uniform(tf.shape(x), start, -eps, eps), eps)
        best, best_score = adv, tf.fill([tf.shape(x)[0]], -np.inf)
        first = tf.fill([tf.shape(x)[0]], tf.constant(-1, tf.int32))
        for i in tf.range(iterations):  # score iterate i, then step from it
            with tf.GradientTape(persistent=config.update != "sum") as tape:
                tape.watch(adv)
                f, g, misclassified, evading = estimate(adv, y, settings)
                objective = f - c * g
            score = objectives.iterate_score(misclassified, evading, g)
            best, best_score, first = keep(i, adv, score, best, best_score, first)
            if config.update == "sum":
                ascent = tape.gradient(objective, adv)
            else:
                grad_f, grad_g = tape.gradient(f, adv), tape.gradient(g, adv)
                ascent = objectives.direction(grad_f, grad_g, misclassified, config.update, c)
            size = step * objectives.step_factor(i, iterations, config.schedule)
            adv = project(x, adv + size * tf.sign(ascent), eps)
        _, g, misclassified, evading = estimate(adv, y, settings)  # the last iterate
        score = objectives.iterate_score(misclassified, evading, g)
        best, best_score, first = keep(iterations, adv, score, best, best_score, first)
        if config.best_iterate:
            return best, best_score, first
        return adv, score, first

    return run


def _batch_value(score):
    """One number per batch from its images' ``objectives.iterate_score`` ``[B]``, ranking batches by
    their evading images, then their misclassified ones, then the mean detector term (a plain sum
    would rank 1 evading + 4 misclassified above 2 evading). -inf scores (no iterate yet) give -inf."""
    width = tf.cast(tf.shape(score)[0] + 1, score.dtype)
    evading = tf.cast(score > objectives.EVADING_SCORE, score.dtype)
    misclassified = tf.cast(score > objectives.MISCLASSIFIED_SCORE, score.dtype)
    rest = score - 3.0 * evading - 1.5 * misclassified  # -0.5 tanh(g), in [-0.5, 0]
    return width * width * tf.reduce_sum(evading) + width * tf.reduce_sum(misclassified) + tf.reduce_mean(rest)


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
        *(getattr(config, k) for k in ("loss", "penalty", "update", "eot", "schedule", "best_iterate")),
    )
    cache = _STEPS.setdefault(models[0], {})
    # ids can be reused once a member is freed: a hit counts only if it holds these very models
    if key not in cache or any(a is not b for a, b in zip(cache[key][0].models, models)):
        target = _LogPredictive(models, config.predictor, config.samples, from_logits, strategy,
                                measure=config.measure, fixed=config.detector_seed is not None)  # fmt: skip
        if config.adaptive:
            body = _build_detector_step(target, config)
        else:
            body = _build_step(target, config.method, config.iterations, config.pixel_max, targeted,
                               strategy is not None)  # fmt: skip
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
    return_trace: bool = False,
    **settings,
):
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
        ua.attack(models, x, y, method="pgd-adaptive", eps=8, update="orthogonal", loss="cw", kappa=5,
                  margin=0.2, iterations=100, schedule="decay", best_iterate=True, restarts=2, detector=detector)

    return_trace: the adaptive methods also return an ``AttackTrace`` (the attacker's own verdicts).
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
    if return_trace and not config.adaptive:
        raise ValueError(f"return_trace is for the detector-aware methods ({', '.join(ADAPTIVE_METHODS)})")
    if config.eps == 0 and not config.adaptive:
        return x.copy()
    if config.adaptive and strategy is not None:
        raise ValueError("the detector-aware methods run on one device; call them without a strategy")
    if not config.adaptive:  # the running command's workers (uncertadv.distribute), if any
        strategy = distribute.current(strategy)
    if strategy is not None:
        mc._check_workers(strategy, chosen, x, y)
    target, run = _step(chosen, config, from_logits, targeted, strategy)
    target.calls.assign(0)
    if config.detector_seed is not None:
        target.base.assign(config.detector_seed)
    elif config.adaptive:  # the attacker's own stream: negative keys (stride -1 in _LogPredictive)
        target.base.assign(-1 - config.seed * _SEED_STRIDE)
    else:
        target.base.assign(config.seed * _SEED_STRIDE)
    eps = tf.constant(config.scale(config.eps), tf.float32)
    step = tf.constant(config.scale(config.step_size), tf.float32)
    if config.adaptive:
        adv, trace = _detector_attack(run, x, y, config, eps, step, batch_size)
        return (adv, trace) if return_trace else adv
    out = []
    for i, start in enumerate(range(0, len(x), batch_size)):
        xb = tf.constant(x[start : start + batch_size], tf.float32)
        yb = tf.constant(y[start : start + batch_size], tf.int64)
        key = tf.constant([config.seed, i], tf.int64)  # PGD's random start for this batch
        if strategy is None:
            out.append(run(xb, yb, eps, step, key).numpy())
            continue
        pgd = config.method.startswith("pgd")
        noise = tf.random.stateless_uniform(tf.shape(xb), key, -eps, eps) if pgd else xb * 0
        shards = [np.array_split(a.numpy(), strategy.num_replicas_in_sync) for a in (xb, yb, noise)]
        dx, dy, dn = (strategy.experimental_distribute_values_from_function(
            lambda ctx, parts=parts: tf.constant(parts[ctx.replica_id_in_sync_group])) for parts in shards)  # fmt: skip
        out.append(strategy.gather(run(dx, dy, eps, step, dn), axis=0).numpy())  # every worker's rows
    # Clip again: float rounding can put x + eta a hair outside the ball or the range.
    adv = np.concatenate(out)
    eps = config.scale(config.eps)
    return np.clip(np.clip(adv, x - eps, x + eps), 0.0, config.pixel_max).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class AttackTrace:
    """What a detector-aware attacker knows of its own images ``[N]`` each.

    score: the returned iterate's ``objectives.iterate_score`` by the attacker's networks;
    evaded: whether that estimate says it evades (misclassified, inside the detector's range);
    first: the first iterate that evaded by that estimate, counted across restarts (restart r's
    iterates are ``r * (iterations + 1) + i``, i = 0 the random start), -1 if none: the curve of
    evasion against iterations is ``mean(0 <= first <= k)``;
    restarts: how many runs each image took (later restarts run only where the image still fails)."""

    score: np.ndarray
    evaded: np.ndarray
    first: np.ndarray
    restarts: np.ndarray


def _detector_attack(run, x: np.ndarray, y: np.ndarray, config: AttackConfig, eps, step, batch_size: int):
    """The detector-aware attack over batches and restarts: ``(x_adv [N, ...], AttackTrace)``. Restart 0
    starts where PGD of the same seed and batch size starts; restart r > 0 runs only on the images whose
    best iterate so far does not evade, from its own random start, and an image keeps its better run."""
    log_target = np.log(config.u_target) if config.u_target is not None else 0.0
    low = -1.0 if config.lower_threshold is None else config.lower_threshold
    settings = tf.constant([config.c, config.threshold, low, config.margin, config.kappa, log_target, 0.0],
                           tf.float32)  # fmt: skip
    adv = np.array(x, dtype=np.float32, copy=True)
    score = np.full(len(x), -np.inf)
    first = np.full(len(x), -1, dtype=np.int64)
    runs = np.zeros(len(x), dtype=np.int64)
    todo = np.arange(len(x))
    for r in range(config.restarts):
        for b, start in enumerate(range(0, len(todo), batch_size)):
            index = todo[start : start + batch_size]
            key = tf.constant([config.seed, b + (r << 32)], tf.int64)  # r = 0: PGD's random start for this batch
            xb, yb = tf.constant(x[index], tf.float32), tf.constant(y[index], tf.int64)
            out, out_score, out_first = (t.numpy() for t in run(xb, yb, eps, step, key, settings))
            better = out_score > score[index]
            adv[index[better]], score[index[better]] = out[better], out_score[better]
            newly = (first[index] < 0) & (out_first >= 0)
            first[index[newly]] = r * (config.iterations + 1) + out_first[newly]
            runs[index] += 1
        todo = np.flatnonzero(score <= objectives.EVADING_SCORE)
        if len(todo) == 0:
            break
    radius = config.scale(config.eps)  # clip again: float rounding can leave the ball or the range by a hair
    adv = np.clip(np.clip(adv, x - radius, x + radius), 0.0, config.pixel_max).astype(np.float32)
    return adv, AttackTrace(score=score, evaded=score > objectives.EVADING_SCORE, first=first, restarts=runs)


def _detector_settings(detector, settings: dict, clip: bool = False) -> dict:
    """The adaptive attack's settings filled in from a fitted detector (a conflict is an error)."""
    if detector.threshold is None and detector.lower_threshold is None:
        raise ValueError("the detector has no threshold yet: fit it on clean data first")
    if detector.threshold is None:
        raise ValueError("the detector-aware attacks take an upper or two-sided detector; not a lower-tail one")
    known = settings.get("method") == "pgd-adaptive-known"
    lower = {} if detector.lower_threshold is None else {"lower_threshold": detector.lower_threshold}
    given = {"measure": detector.measure, "threshold": detector.threshold, "predictor": detector.predictor, **lower,
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


__all__ = ("AttackConfig", "AttackTrace", "attack", "METHODS", "ADAPTIVE_METHODS", "PREDICTORS")
