"""The MC-dropout engine: T sampled networks of a Keras model, evaluated cheaply.

A sample is one network (eq. 2): the dropout masks of sample t are drawn once,
from a stateless RNG keyed by (seed, member, layer, t), and shared by every
input. So the same seed gives the same networks, and an input's scores depend on
its batch only through float32 rounding (within 1e-5 in p; 1.7e-6 seen: TensorFlow
picks other kernels for other batch sizes, as plain Keras does).

Only dropout layers are stochastic; every other layer (BatchNorm included) runs
in inference mode. The model graph is walked node by node: tensors upstream of
the first dropout layer stay ``[N, ...]`` and are computed once per input; a
dropout layer folds the sample axis into the batch (``[T*N, ...]``, sample
major) and everything downstream runs on the folded batch.

Supported: Functional and Sequential Keras 3 models (nested ones too) whose
only stochastic layers are Dropout, SpatialDropout1D/2D/3D, GaussianDropout or
AlphaDropout, with one input and a ``[N, C]`` softmax output.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from uncertadv import _keras_compat as compat
from uncertadv import distribute, inputs
from uncertadv.progress import progress_bar

compat.check_version()

_BERNOULLI = (keras.layers.Dropout,)  # SpatialDropout* subclass Dropout
_STOCHASTIC = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)
# Rows of the folded batch (T * chunk) per call; bounds memory of the sampled head.
_ROWS_PER_CALL = 16384


# ----------------------------------------------------------------------------- model checks


def _as_models(models) -> list[keras.Model]:
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise ValueError("expected a Keras model or a non-empty list of models")
    for m in models:
        if not isinstance(m, keras.Model):
            raise ValueError(f"expected a Keras model, got {type(m).__name__}")
        _check_graph(m)
        if len(m.inputs) != 1 or len(m.outputs) != 1:
            raise ValueError(
                f"model {m.name!r} must have one input and one output; wrap the classifier you want scored in a "
                "Functional model: keras.Model(inputs, probabilities)"
            )
        if len(m.outputs[0].shape) != 2:
            raise ValueError(f"model {m.name!r} must output [N, C], got {m.outputs[0].shape}")
    return models


def _check_graph(model: keras.Model) -> None:
    """Refuse, in one line, the models whose graph and input shape cannot be read."""
    if not compat.is_graph_model(model):
        raise ValueError(
            f"model {model.name!r} is a subclassed Keras model, whose graph cannot be walked; "
            "build it as a Functional model: keras.Model(inputs, outputs)"
        )
    try:
        _ = model.inputs  # an unbuilt Sequential (no Input) raises here
    except AttributeError:
        raise ValueError(
            f"Sequential model {model.name!r} has no defined input; start it with keras.Input(shape)"
        ) from None


def _sublayers(model: keras.Model) -> list:
    """The layers a model runs, in graph order (Sequential: its chain)."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    return list(model.operations) if compat.is_graph_model(model) else []


def stochastic_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Dropout-family layers of ``model``, nested models included, in a fixed order."""
    found = []
    for layer in _sublayers(model):
        if isinstance(layer, _STOCHASTIC):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(stochastic_layers(layer))
    return found


def _output_layer(model: keras.Model):
    if not compat.is_graph_model(model):
        return model  # a subclassed model: its last layer cannot be read off
    if isinstance(model, keras.Sequential):
        layer = model.layers[-1]
    else:
        layer = compat.producing_layer(model.outputs[0])
    return _output_layer(layer) if isinstance(layer, keras.Model) else layer


def has_softmax_output(model: keras.Model) -> bool:
    """True if the model's last layer is a softmax (layer, Activation or activation=)."""
    layer = _output_layer(model)
    softmax = keras.activations.softmax
    if isinstance(layer, keras.layers.Softmax):
        return True
    return getattr(layer, "activation", None) is softmax


def _check_models(models, from_logits: bool) -> None:
    for m in models:
        for sub in compat.all_layers(m):
            if isinstance(sub, keras.Model) and not compat.is_graph_model(sub):
                if any(isinstance(layer, _STOCHASTIC) for layer in compat.all_layers(sub, include_self=False)):
                    raise ValueError(
                        f"model {sub.name!r} is subclassed and holds dropout; "
                        "build it as a Functional or Sequential model"
                    )
        if from_logits and has_softmax_output(m):
            raise ValueError(
                f"model {m.name!r} ends in a softmax, so it outputs probabilities, not logits; drop "
                "from_logits (--from-logits), or softmax would be applied twice"
            )
        if not from_logits and not has_softmax_output(m):
            raise ValueError(
                f"model {m.name!r} has no softmax output; if it outputs logits, say so "
                "(from_logits=True, or --from-logits on the command line)"
            )


def check_models(models, from_logits: bool = False) -> list[keras.Model]:
    """The checks every entry point runs: graph models with one input and an ``[N, C]``
    output, softmax unless ``from_logits``. Returns the models as a list."""
    models = _as_models(models)
    _check_models(models, from_logits)
    return models


def check_input(model: keras.Model, x: np.ndarray) -> None:
    """Refuse ``x`` whose rank or feature shape does not fit the model's input."""
    inputs.check_shape(model, x)


# ----------------------------------------------------------------------------- noise


def _noise_shape(layer, feature_shape: list) -> list:
    """Per-example noise shape of a dropout layer for inputs ``[N, *feature_shape]``."""
    if isinstance(layer, keras.layers.GaussianDropout):
        return list(feature_shape)
    if compat.is_spatial_dropout(layer):  # SpatialDropout1D/2D/3D
        probe = tf.zeros([1] + [d if isinstance(d, int) else 1 for d in feature_shape])
        shape = compat.spatial_noise_shape(layer, probe)[1:]
        return [1 if s == 1 else f for s, f in zip(shape, feature_shape)]
    if layer.noise_shape is None:
        return list(feature_shape)
    return [f if s is None else s for s, f in zip(layer.noise_shape[1:], feature_shape)]


def _per_sample(draw, key, samples: int):
    """Stack ``draw(key_t)`` over samples: one independent stream per (key, t)."""
    return tf.stack([draw(tf.random.experimental.stateless_fold_in(key, t)) for t in range(samples)])


def _keep_mask(layer, key, samples: int, feature_shape: list):
    """Bernoulli keep mask of a Dropout/AlphaDropout layer: bool ``[T, *noise]``."""
    shape = _noise_shape(layer, feature_shape)
    return _per_sample(lambda k: tf.random.stateless_uniform(shape, k) >= layer.rate, key, samples)


def _affine_noise(layer, key, samples: int, feature_shape: list, dtype):
    """Noise of one layer as ``(mult, add)`` of shape ``[T, 1, *noise]``, so that the
    sampled output is ``x * mult + add`` (``add`` may be None)."""
    rate = float(layer.rate)
    if isinstance(layer, keras.layers.GaussianDropout):
        stddev = math.sqrt(rate / (1.0 - rate))
        shape = _noise_shape(layer, feature_shape)
        mult = _per_sample(lambda k: 1.0 + stddev * tf.random.stateless_normal(shape, k, dtype=dtype), key, samples)
        return mult[:, None], None
    keep = tf.cast(_keep_mask(layer, key, samples, feature_shape), dtype)[:, None]
    if isinstance(layer, keras.layers.AlphaDropout):
        # Keras's affine alpha dropout: a * (x * keep + alpha_p * (1 - keep)) + b.
        alpha_p = -1.6732632423543772 * 1.0507009873554805
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        return a * keep, a * alpha_p * (1.0 - keep) + b
    if rate >= 1.0:
        return keep * 0.0, None
    return keep / (1.0 - rate), None


class _Masked:
    """Output of a Bernoulli dropout on an unsampled input, not yet multiplied out:
    sample t is ``x * keep[t] / (1 - rate)``. x: ``[N, *F]``; keep: bool ``[T, *noise]``.

    Kept lazy so that a following Dense can use ``(x W - x_dropped W_dropped)``:
    per sample it then multiplies only the dropped features (rate * D of them)
    instead of all D, which makes MC sampling cost little more than one pass."""

    def __init__(self, x, keep, rate: float, name: str = ""):
        self.x, self.keep, self.rate, self.name = x, keep, rate, name  # name: its dropout's, for the masks' state

    def flatten(self) -> _Masked:
        feature = [d if d is not None else tf.shape(self.x)[i] for i, d in enumerate(self.x.shape) if i > 0]
        keep = tf.broadcast_to(self.keep, [tf.shape(self.keep)[0]] + feature)
        return _Masked(
            tf.reshape(self.x, [tf.shape(self.x)[0], -1]),
            tf.reshape(keep, [tf.shape(keep)[0], -1]),
            self.rate,
            self.name,
        )

    def materialise(self):
        """``[T*N, *F]`` sample-major."""
        mult = tf.cast(self.keep, self.x.dtype)[:, None] / (1.0 - self.rate)  # [T, 1, *noise]
        return _merge(self.x[None] * mult)

    def dropped(self, kernel):
        """The dropped features of each sample, padded to a common width W: indices ``[T, W]`` and their
        kernel rows ``[T, W, K]`` (zero in the padding). They depend on the masks and weights only."""
        drop = tf.cast(tf.logical_not(tf.broadcast_to(self.keep, [tf.shape(self.keep)[0], kernel.shape[0]])), tf.int32)
        count = tf.reduce_sum(drop, axis=1)  # [T]
        width = tf.reduce_max(count)
        idx = tf.argsort(-drop, axis=1, stable=True)[:, :width]  # [T, W]
        valid = tf.cast(tf.range(width)[None] < count[:, None], kernel.dtype)  # [T, W]
        return idx, tf.gather(kernel, idx) * valid[..., None]

    def dense(self, layer, dropped=None):
        """``layer(x * keep_t / (1 - rate))`` for every t: ``[T*N, K]``; ``dropped``: ``self.dropped``'s
        result where the caller has it already."""
        x, kernel = self.x, layer.kernel  # [N, D], [D, K]
        idx, w_dropped = self.dropped(kernel) if dropped is None else dropped  # [T, W], [T, W, K]
        x_dropped = tf.gather(tf.transpose(x), idx)  # [T, W, N]
        z = (tf.matmul(x, kernel)[None] - tf.matmul(x_dropped, w_dropped, transpose_a=True)) / (1.0 - self.rate)
        if layer.use_bias:
            z = z + layer.bias
        out = layer.activation(z) if layer.activation is not None else z  # [T, N, K]
        return _merge(out)


def _fusable_dense(op, masked: _Masked) -> bool:
    return (
        type(op) is keras.layers.Dense
        and masked.x.shape.rank == 2
        and getattr(op, "quantization_mode", None) is None
        and not getattr(op, "lora_enabled", False)
    )


# ----------------------------------------------------------------------------- graph walk


def _split(x, samples: int):
    """``[T*N, ...] -> [T, N, ...]`` keeping static feature dims."""
    dims = [d if d is not None else tf.shape(x)[i] for i, d in enumerate(x.shape) if i > 0]
    return tf.reshape(x, [samples, -1] + dims)


def _merge(x):
    """``[T, N, ...] -> [T*N, ...]``."""
    dims = [d if d is not None else tf.shape(x)[i] for i, d in enumerate(x.shape) if i > 1]
    return tf.reshape(x, [-1] + dims)


class _SampledRun:
    """One forward pass of T networks. Tracks which tensors carry the folded
    sample axis (``[T*N, ...]``) so unsampled ones are tiled only when they meet."""

    def __init__(self, samples: int, key, layer_ids: dict[int, int], fuse: bool = True, memo: dict | None = None,
                 state: dict | None = None):  # fmt: skip
        self.samples = samples
        self.fuse = fuse
        self.key = key
        # The masks and the fused Dense's dropped rows, by name: given (``state``), or recorded as drawn, so
        # that a run over many batches draws them once (``mask_state``), not once per batch.
        self.state = {} if state is None else dict(state)
        # Unsampled outputs by (layer, inputs), shared by the members of one ensemble call: heads
        # on one frozen trunk then run the trunk once, not once per member.
        self.memo = {} if memo is None else memo
        self.layer_ids = layer_ids
        self.sampled: dict[int, tf.Tensor] = {}  # id -> tensor (kept alive so ids stay unique)

    def is_sampled(self, x) -> bool:
        return id(x) in self.sampled

    def mark(self, x):
        self.sampled[id(x)] = x
        return x

    def tile(self, x):
        if not tf.is_tensor(x) or self.is_sampled(x):
            return x
        return self.mark(tf.tile(x, [self.samples] + [1] * (x.shape.rank - 1)))

    def call(self, op, *args, **kwargs):
        flat = tf.nest.flatten((args, kwargs))
        masked = [t for t in flat if isinstance(t, _Masked)]
        if masked and len(flat) == 1:
            if isinstance(op, keras.layers.Flatten):
                return masked[0].flatten()
            if _fusable_dense(op, masked[0]):
                if not masked[0].name:  # masks of a dynamic shape: not kept
                    return self.mark(masked[0].dense(op))
                name = f"dense/{masked[0].name}/{id(op)}"
                if name not in self.state:
                    self.state[name] = masked[0].dropped(op.kernel)
                return self.mark(masked[0].dense(op, self.state[name]))
        if masked:  # any other consumer gets the samples multiplied out
            args, kwargs = tf.nest.map_structure(
                lambda t: self.mark(t.materialise()) if isinstance(t, _Masked) else t, (args, kwargs)
            )
            flat = tf.nest.flatten((args, kwargs))
        any_sampled = any(tf.is_tensor(t) and self.is_sampled(t) for t in flat)
        if isinstance(op, _STOCHASTIC):
            out = self.dropout(op, args[0])
        elif isinstance(op, keras.Model) and stochastic_layers(op):
            out = self.model(op, args[0])
        elif (
            not any_sampled
            and all(v is None for v in kwargs.values())  # e.g. mask=None
            and all(tf.is_tensor(t) for t in tf.nest.flatten(args))
        ):
            key = (id(op), *(id(t) for t in tf.nest.flatten(args)), *sorted(kwargs))
            if key not in self.memo:  # the inputs are kept with the output, so their ids stay unique
                if compat.takes_training(op):
                    kwargs = {**kwargs, "training": False}
                self.memo[key] = (op(*args, **kwargs), args)
            out = self.memo[key][0]
        else:
            if any_sampled:
                args, kwargs = tf.nest.map_structure(self.tile, (args, kwargs))
            if compat.takes_training(op):
                kwargs = {**kwargs, "training": False}
            out = op(*args, **kwargs)
            if any_sampled:
                tf.nest.map_structure(lambda t: self.mark(t) if tf.is_tensor(t) else t, out)
        return out

    def dropout(self, layer, x):
        if float(layer.rate) == 0.0:
            return x
        feature_shape = [d if d is not None else tf.shape(x)[i] for i, d in enumerate(x.shape) if i > 0]
        index = self.layer_ids[id(layer)]
        key = tf.random.experimental.stateless_fold_in(self.key, index)
        bernoulli = isinstance(layer, keras.layers.Dropout) and float(layer.rate) <= 0.5
        # A layer's masks are kept by its index and input shape (a shared layer may see several shapes), and
        # only where that shape is static: with a dynamic one they are drawn in every call, as before.
        static = all(isinstance(d, int) for d in feature_shape)
        shape = "x".join(str(d) for d in feature_shape) if static else None
        if self.fuse and bernoulli and not self.is_sampled(x):
            name = f"keep/{index}/{shape}"
            keep = self.state.get(name) if static else None
            if keep is None:
                keep = _keep_mask(layer, key, self.samples, feature_shape)
                if static:
                    self.state[name] = keep
            return _Masked(x, keep, float(layer.rate), name if static else "")
        name = f"noise/{index}/{shape}"
        noise = self.state.get(name) if static else None
        if noise is None:
            mult, add = _affine_noise(layer, key, self.samples, feature_shape, x.dtype)
            noise = (mult,) if add is None else (mult, add)
            if static:
                self.state[name] = noise
        mult, add = (*noise, None)[:2]
        # Unsampled x: [1, N, ...] broadcasts against the [T, 1, ...] noise.
        xs = _split(x, self.samples) if self.is_sampled(x) else x[None]
        out = xs * mult if add is None else xs * mult + add
        return self.mark(_merge(out))

    def model(self, model: keras.Model, x):
        """Run a (nested) model; its output is a plain tensor, sampled or not."""
        if isinstance(model, keras.Sequential):
            out = x
            for layer in model.layers:
                out = self.call(layer, out)
        else:
            out = compat.run_graph(model, [x], self.call)
            out = out[0] if isinstance(out, (list, tuple)) else out
        return self.mark(out.materialise()) if isinstance(out, _Masked) else out


def _layer_ids(model) -> dict[int, int]:
    return {id(layer): i for i, layer in enumerate(stochastic_layers(model))}


def sample_probs(
    model: keras.Model,
    x,
    *,
    samples: int,
    key,
    from_logits: bool = False,
    fuse: bool = True,
    memo: dict | None = None,
    state: dict | None = None,
):
    """Differentiable core: probabilities of T networks, ``[N, ...] -> [T, N, C]`` (tf).

    key: int64 ``[2]`` tensor, the RNG key of this call (seed, member).
    fuse: use the Dropout->Dense shortcut (same values up to rounding; off for tests).
    memo: shared by the members of one ensemble call, so that a layer they share (a frozen
        trunk) runs once on the same input.
    state: ``mask_state(model, key)``'s masks, used instead of drawing them (the same values). It holds
        the fused Dense's dropped kernel rows too: the weights must not change after ``mask_state``,
        and no gradient reaches the kernel through them (gradients in x are exact)."""
    return _sampled_run(model, x, samples, key, from_logits, fuse, memo, state)[0]


def _sampled_run(model, x, samples, key, from_logits=False, fuse=True, memo=None, state=None):
    """``(probs [T, N, C], state)``: sample_probs, and the masks it drew or was given."""
    run = _SampledRun(samples, key, _layer_ids(model), fuse, memo, state)
    x = tf.convert_to_tensor(x)
    out = run.model(model, x)
    out = _split(run.tile(out), samples)  # a model with no dropout still gives T rows
    return (tf.nn.softmax(out, axis=-1) if from_logits else out), run.state


def _static_input(model: keras.Model) -> bool:
    """Whether the model's input has static feature dims: its masks' shapes then do not depend on x."""
    return all(d is not None for d in model.inputs[0].shape[1:])


def mask_state(model: keras.Model, *, samples: int, key, memo: dict | None = None, row=None) -> dict:
    """The T networks' masks for ``key`` (and the fused Dense's dropped rows), drawn by running the
    model on one row of zeros (the masks do not depend on the inputs): ``sample_probs(..., state=)``
    then reuses them for every batch. Needs an input with static feature dims (``_static_input``).
    ``memo`` as in sample_probs, with ``row`` (``[1, ...]``, the batches' dtype; float32 zeros by
    default) the one row that the members sharing it run on."""
    if row is None:
        row = tf.zeros([1, *model.inputs[0].shape[1:]], tf.float32)
    return _sampled_run(model, row, samples, key, memo=memo)[1]


def _key(seed, member: int = 0):
    return tf.stack([tf.cast(seed, tf.int64), tf.constant(member, tf.int64)])


def _ensemble_probs(models: list, x, *, samples: int, seed, from_logits: bool, states: list | None = None):
    """``[K*T, N, C]``: T networks of each of K members, member-major, in one graph; ``states``: each
    member's ``mask_state``, where the caller drew them once."""
    x, memo = tf.convert_to_tensor(x), {}
    states = states or [None] * len(models)
    return tf.concat(
        [
            sample_probs(m, x, samples=samples, key=_key(seed, k), from_logits=from_logits, memo=memo, state=st)
            for k, (m, st) in enumerate(zip(models, states))
        ],
        axis=0,
    )


# ----------------------------------------------------------------------------- public API


def sampled_probs(models, x, *, samples: int, seed, from_logits: bool = False):
    """Probabilities of T networks of each of K models, ``[N, ...] -> [K*T, N, C]`` tf tensor.

    Differentiable, like ``mc_log_predictive``; the networks are those ``mc_predict`` draws
    with the same seed, so an attack that knows a detector's seed sees its very networks."""
    models = check_models(models, from_logits)
    _check_samples(samples)
    return _ensemble_probs(models, x, samples=samples, seed=seed, from_logits=from_logits)


def mc_log_predictive(models, x, *, samples: int, seed, from_logits: bool = False):
    """log of the MC-mean predictive, ``[N, ...] -> [N, C]`` tf tensor.

    Usable inside ``tf.GradientTape`` and ``tf.function``; serves as the logits an
    attack differentiates (CleverHans ``model_fn``). ``seed`` may be a tensor, so a
    caller draws fresh networks per call by passing a new seed. A list of models
    is an ensemble of K*T samples. Runs the same model checks as ``mc_predict``, so a
    logits model without ``from_logits=True`` is refused rather than differentiated."""
    mean = tf.reduce_mean(sampled_probs(models, x, samples=samples, seed=seed, from_logits=from_logits), axis=0)
    # Clamp at the smallest normal float so log stays finite; exact for every representable p.
    return tf.math.log(tf.maximum(mean, np.finfo(mean.dtype.as_numpy_dtype).tiny))


def _check_samples(samples) -> None:
    if not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")


_COMPILED: weakref.WeakKeyDictionary[keras.Model, dict] = weakref.WeakKeyDictionary()


def _compiled(model: keras.Model, from_logits: bool) -> Callable:
    """The deterministic pass of ``model`` as a tf.function, ``x -> [1, N, C]``.

    The functions reach the model through a weak reference: a strong one, held by the cache's
    value, would keep its own key alive and the model would never be freed."""
    cache = _COMPILED.setdefault(model, {})
    if (None, from_logits) not in cache:
        spec = tf.TensorSpec([None] + list(model.inputs[0].shape[1:]), model.inputs[0].dtype)
        ref = weakref.ref(model)

        @tf.function(input_signature=[spec])
        def fn(x):
            out = ref()(x, training=False)
            return (tf.nn.softmax(out, -1) if from_logits else out)[None]

        cache[(None, from_logits)] = fn
    return cache[(None, from_logits)]


def _state_spec(states: list[dict]) -> list[dict]:
    """TensorSpecs of ``mask_state``s: the dropped widths W (dim 1 of a ``dense/`` entry) vary with the
    seed, every other dim is fixed."""

    def spec(name, value):
        shape = [None if name.startswith("dense/") and i == 1 else d for i, d in enumerate(value.shape)]
        return tf.TensorSpec(shape, value.dtype)

    return [{name: tf.nest.map_structure(lambda v, n=name: spec(n, v), entry) for name, entry in st.items()}
            for st in states]  # fmt: skip


def _compiled_sampled(models: list, samples: int, from_logits: bool) -> tuple[Callable, Callable]:
    """``(prepare, run_for)`` for K members: ``prepare(seed, row)`` draws each member's masks (``mask_state``,
    on ``row [1, ...]``) once; ``run_for(states, dtype)`` is the tf.function ``(x, seed[, states]) ->
    [K*T, N, C]`` that reuses them for every batch (``states=None`` draws them in the call, for inputs whose
    feature dims are not static). Layers the members share (one frozen trunk under K heads) run once per input."""
    cache = _COMPILED.setdefault(models[0], {})
    key = ("sampled", tuple(id(m) for m in models), samples, from_logits)
    # ids can be reused once a member is freed: a hit counts only if it holds these very models
    if key not in cache or any(ref() is not m for ref, m in zip(cache[key][0], models)):
        refs = [weakref.ref(m) for m in models]

        @tf.function
        def prepare(seed, row):
            memo = {}
            return [mask_state(r(), samples=samples, key=_key(seed, k), memo=memo, row=row)
                    for k, r in enumerate(refs)]  # fmt: skip

        runs = {}

        def run_for(states: list | None, dtype) -> Callable:
            names = None if states is None else tuple(tuple(sorted(st)) for st in states)
            if (names, dtype) not in runs:
                x_spec = tf.TensorSpec([None, *refs[0]().inputs[0].shape[1:]], dtype)
                signature = [x_spec, tf.TensorSpec([], tf.int64)] + ([] if states is None else [_state_spec(states)])

                @tf.function(input_signature=signature)
                def run(x, seed, *given):
                    return _ensemble_probs([r() for r in refs], x, samples=samples, seed=seed,
                                           from_logits=from_logits, states=given[0] if given else None)  # fmt: skip

                runs[(names, dtype)] = run
            return runs[(names, dtype)]

        cache[key] = (refs, prepare, run_for)
    return cache[key][1:]


def _run_chunks(fn: Callable, x: np.ndarray, batch_size: int, desc: str | None) -> np.ndarray:
    chunks = []
    starts = range(0, len(x), batch_size)
    for start in progress_bar(starts, desc=desc, total=len(starts)):
        chunks.append(fn(x[start : start + batch_size]).numpy())
    return np.concatenate(chunks, axis=1)


def _prepare(models, x, from_logits, pixel_max):
    models = check_models(models, from_logits)
    x = inputs.images(x, pixel_max)
    hint = inputs.scale_hint(models[0], pixel_max)
    if hint:
        warnings.warn(hint, stacklevel=3)
    for m in models:
        check_input(m, x)
    return models, x


def mc_predict(
    models,
    x,
    *,
    samples: int,
    seed: int,
    batch_size: int | None = None,
    from_logits: bool = False,
    desc: str | None = None,
    strategy: tf.distribute.Strategy | None = None,
    pixel_max: float | None = 1.0,
) -> np.ndarray:
    """Probabilities of T sampled networks: ``x [N, ...] -> [K*T, N, C]`` float32.

    models: a Keras model, or a list of K models acting as one ensemble.
    batch_size: inputs per compiled call (default keeps T * batch near 16384 rows);
        it changes speed and memory, and the values only by float32 rounding (within 1e-5).
    desc: show a progress bar with this label.
    strategy: a ``tf.distribute`` strategy (MirroredStrategy over local devices, or
        MultiWorkerMirroredStrategy across processes and hosts, each calling with the same ``x``): each
        call's inputs are split across its replicas, which draw the same networks (the masks depend on
        the seed only), and every worker gets the whole result, equal to the single-device one up to
        float32 rounding. Default: the running command's (``uncertadv.distribute``), if any.
    pixel_max: the model's input range [0, pixel_max]; ``x`` outside it is refused and uint8 is
        scaled into it (``uncertadv.inputs``); None for inputs in another scale (features)."""
    _check_samples(samples)
    models, x = _prepare(models, x, from_logits, pixel_max)
    if len(models) == 1 and not stochastic_layers(models[0]):
        warnings.warn(f"model {models[0].name!r} has no dropout layer: its {samples} networks are identical, so "
                      "mutual information, softmax variance and variation ratio are 0 (not applicable)",
                      stacklevel=2)  # fmt: skip
    if batch_size is None:
        batch_size = max(1, _ROWS_PER_CALL // samples)
    strategy = distribute.current(strategy)
    prepare, run_for = _compiled_sampled(models, samples, from_logits)
    seed = tf.constant(seed, tf.int64)
    # The masks are drawn once for all batches (the same values as drawing them in each call)
    states = None
    if len(x) and all(_static_input(m) for m in models):
        states = prepare(seed, tf.zeros([1, *x.shape[1:]], x.dtype))
    fn = run_for(states, tf.as_dtype(x.dtype))
    extra = (seed,) if states is None else (seed, states)
    if strategy is not None:
        _check_workers(strategy, models, x)
        return _run_chunks(lambda xb: _replicated(strategy, fn, xb, *extra), x, batch_size, desc)
    return _run_chunks(lambda xb: fn(xb, *extra), x, batch_size, desc)


def _check_workers(strategy: tf.distribute.Strategy, models: list, *arrays) -> None:
    """Refuse workers whose inputs or weights differ (each splits and gathers rows of its own)."""
    weights = [v.numpy() for m in models for v in m.weights]
    distribute.check_same(strategy, "inputs or model weights", distribute.checksum(*arrays, *weights))


def _replicated(strategy: tf.distribute.Strategy, fn: Callable, xb: np.ndarray, *extra) -> tf.Tensor:
    """``fn(xb, *extra)`` with the inputs split across the strategy's replicas: ``[S, n, C]``."""
    parts = np.array_split(xb, strategy.num_replicas_in_sync)
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(parts[context.replica_id_in_sync_group])
    )
    out = _distributed(strategy, fn)(values, *extra)
    # gather, not the local results: across workers (MultiWorkerMirroredStrategy) a worker holds only its own
    return strategy.gather(out, axis=1)


_DISTRIBUTED: dict = {}


def _distributed(strategy: tf.distribute.Strategy, fn: Callable) -> Callable:
    """One tf.function per (strategy, compiled fn) that runs fn's Python body on every replica."""
    key = (id(strategy), id(fn))
    if key not in _DISTRIBUTED or _DISTRIBUTED[key][0] is not strategy or _DISTRIBUTED[key][1] is not fn:
        body = fn.python_function
        # retracing relaxes what varies between calls: the batch size, and the dropped widths of each seed
        run = tf.function(lambda values, *k: strategy.run(body, args=(values, *k)), reduce_retracing=True)
        _DISTRIBUTED[key] = (strategy, fn, run)
    return _DISTRIBUTED[key][2]


def deterministic_predict(
    models,
    x,
    *,
    batch_size: int = 512,
    from_logits: bool = False,
    desc: str | None = None,
    strategy: tf.distribute.Strategy | None = None,
    pixel_max: float | None = 1.0,
) -> np.ndarray:
    """Dropout off: ``x [N, ...] -> [K, N, C]`` (``[1, N, C]`` for one model); ``strategy`` and
    ``pixel_max`` as in mc_predict."""
    models, x = _prepare(models, x, from_logits, pixel_max)
    strategy = distribute.current(strategy)
    if strategy is not None:
        _check_workers(strategy, models, x)
    out = []
    for m in models:
        fn = _compiled(m, from_logits)
        run = fn if strategy is None else (lambda xb, fn=fn: _replicated(strategy, fn, xb))
        out.append(_run_chunks(run, x, batch_size, desc))
    return np.concatenate(out)


def naive_mc_predict(model: keras.Model, x, *, samples: int, batch_size: int = 512) -> np.ndarray:
    """The common recipe, for benchmarks only: T calls of ``model(x, training=True)``.
    Redoes the whole network T times, draws a mask per example, and puts
    BatchNorm in training mode. ``[N, ...] -> [T, N, C]``."""
    fn = tf.function(lambda xb: model(xb, training=True))
    x = np.asarray(x, dtype=np.float32)
    return np.stack(
        [
            np.concatenate([fn(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)])
            for _ in range(samples)
        ]
    )


__all__: Sequence[str] = (
    "mc_predict",
    "mc_log_predictive",
    "sampled_probs",
    "deterministic_predict",
    "sample_probs",
    "check_models",
    "stochastic_layers",
    "has_softmax_output",
)
