"""The batch-composition experiment (issue 28): would as-coded's MC MI flag an adversarial image that
arrives among clean ones? The same images as the ablation's ``as-coded`` rows (BIM and MIM at eps 5
and 10, the mc predictor, T = 20), scored under other batchings (``ARMS``).

Every image keeps the dropout masks it has in ``one-kind`` (image i of a kind: row i % 5 of the mask
draw of one-kind batch i // 5, ``image_masks``), so that only its batch-mates change. "Correct when
clean" is decided for every arm as the ablation decides it: by the source image in clean one-kind
batches. "Wrong after the attack" is a pass of its own (the ablation's success-check masks) in the
arm's batching. Flat noise images are scored as in one-kind in the arms that mix kinds (``mixed``,
``one-adversarial``, ``crafted-mixed``); the others batch them as they batch every kind (regrouped:
permuted within the kind; single: alone; inference: moving statistics).

The pool of one setting: clean images 0..N-1, adversarial N..2N-1, noise 2N..3N-1. An arm is a list
of batches of pool ids, each with the members it scores (its "owners"): in ``one-adversarial`` a
batch holds one adversarial image and four clean ones and scores the adversarial image alone.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from uncertadv import artifacts, inputs, predictors
from uncertadv.experiments.attack_sets import draw_indices, perturbation_norms
from uncertadv.experiments.catsdogs import ablation, perturbations, variants
from uncertadv.experiments.catsdogs.network import VariantNetwork, head_probs, keep_masks, key
from uncertadv.experiments.claims import rules
from uncertadv.experiments.layout import eval_seed
from uncertadv.measures import MEASURES
from uncertadv.progress import progress_bar

VARIANT = "as-coded"
ARMS = ("one-kind", "one-kind-regrouped", "mixed", "one-adversarial", "single", "crafted-mixed", "inference")
# each arm's fixed part of its seed: a new arm or a new order of ARMS never moves another arm's batches (nor
# the mixed batches that crafted-mixed's cached attacks were made in)
ARM_CODE = {"one-kind": 0, "one-kind-regrouped": 1, "mixed": 2, "one-adversarial": 3, "single": 4, "crafted-mixed": 5,
            "inference": 6}  # fmt: skip
SETTINGS = rules.BATCHING_SETTINGS  # the ablation's BIM/MIM grid; claim 7c judges each arm on it
BATCH = variants.AS_CODED_BATCH
MATES = BATCH - 1  # clean batch-mates of an adversarial image in one-adversarial
VERSION = 1
MC = ablation.PREDICTOR_CODES["mc"]
ARM_SEED = 7  # the arms' seeded orders: (seed, ARM_SEED, arm, setting)
SCORE_COLUMNS = ("attack", "eps", "kind", "index", "batch", "label", "pred", "clean_pred", "label_changed", "success",
                 *MEASURES)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Arm:
    """Batches of pool ids; ``owners[b]`` (bool, per member) marks the members whose scores batch b gives."""

    batches: tuple[np.ndarray, ...]
    owners: tuple[np.ndarray, ...]


def _cut(ids: np.ndarray, size: int = BATCH) -> list[np.ndarray]:
    return [ids[s : s + size] for s in range(0, len(ids), size)]


def _owned(batches: list[np.ndarray]) -> Arm:
    return Arm(tuple(batches), tuple(np.ones(len(b), bool) for b in batches))


def arm_batches(arm: str, n: int, seed: int, setting: int) -> Arm:
    """The batches of ``arm`` over a pool of ``n`` clean, ``n`` adversarial and ``n`` noise images."""
    clean, adv, noise = np.arange(n), np.arange(n, 2 * n), np.arange(2 * n, 3 * n)
    rng = np.random.default_rng([seed, ARM_SEED, ARM_CODE[arm], setting])
    one_kind = [*_cut(clean), *_cut(adv), *_cut(noise)]
    if arm in ("one-kind", "inference"):
        return _owned(one_kind)
    if arm == "one-kind-regrouped":
        return _owned([*_cut(rng.permutation(clean)), *_cut(rng.permutation(adv)), *_cut(rng.permutation(noise))])
    if arm in ("mixed", "crafted-mixed"):  # the same batches: the crafted attack is made inside mixed's
        rng = np.random.default_rng([seed, ARM_SEED, ARM_CODE["mixed"], setting])
        return _owned([*_cut(rng.permutation(np.r_[clean, adv])), *_cut(noise)])
    if arm == "single":
        return _owned([np.array([i]) for i in range(3 * n)])
    if arm == "one-adversarial":
        lone = [np.r_[a, rng.choice(clean, MATES, replace=False)] for a in adv]
        batches = [*_cut(clean), *lone, *_cut(noise)]
        owners = [np.ones(len(b), bool) if len(b) != BATCH or b[0] < n or b[0] >= 2 * n else np.arange(BATCH) == 0
                  for b in batches]  # fmt: skip
        return Arm(tuple(batches), tuple(owners))
    raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")


def image_masks(seed_parts: tuple, n: int, samples: int, dim: int) -> tf.Tensor:
    """Each image's one-kind masks ``[T, n, D]``: image i gets row i % BATCH of the draw keyed by its
    one-kind batch i // BATCH, exactly what ``ablation.predict`` draws for that batch."""
    parts = [keep_masks(key(*seed_parts, b), samples, min(BATCH, n - s), dim) for b, s in enumerate(range(0, n, BATCH))]
    return tf.concat(parts, axis=1)


def score(network: VariantNetwork, images: np.ndarray, masks: list[tf.Tensor], arm: Arm) -> tuple[list, np.ndarray]:
    """``([probs [T, M, 2] per mask set], batch [M])``: each pool image scored in the batch that owns it,
    once per set of masks ``[T, M, D]`` (the trunk runs once per batch: the masks touch the head only)."""
    probs = [np.zeros((m.shape[0], len(images), 2), np.float32) for m in masks]
    batch = np.full(len(images), -1)
    trunk = tf.function(network.trunk_outputs, reduce_retracing=True)
    for b, (members, owners) in enumerate(zip(arm.batches, arm.owners)):
        z = trunk(tf.constant(images[members]))
        for out, m in zip(probs, masks):
            p = head_probs(z, network.kernel, network.bias, tf.gather(m, members, axis=1)).numpy()
            out[:, members[owners]] = p[:, owners]
        batch[members[owners]] = b
    if (batch < 0).any():
        raise ValueError("an arm's batches leave a pool image unscored")
    return probs, batch


def crafted(network: VariantNetwork, images: np.ndarray, labels: np.ndarray, arm: Arm, n: int, method: str, eps: float,
            samples: int, bounds, code: tuple) -> np.ndarray:  # fmt: skip
    """Attacks made inside ``arm``'s batches: the adversarial members (pool ids n..2n-1, starting at their
    source images) move, their clean batch-mates stay fixed, and the loss sums over the adversarial
    members alone, each with the masks its one-kind attack batch gives it (the ablation's keys
    ``(*code, batch, call)``). Returns the pool with the adversarial members replaced ``[M, ...]``."""
    dim = int(network.trunk_outputs(tf.constant(images[:1])).shape[-1])
    out = images.copy()
    call_masks = [_call_masks((*code, call), n, samples, dim) for call in range(perturbations.ITERATIONS)]
    loss_grad = tf.function(_member_gradient(network), reduce_retracing=True)
    for members in progress_bar(arm.batches, desc=f"crafted-mixed {method} eps {eps:g}", total=len(arm.batches)):
        moving = (members >= n) & (members < 2 * n)
        if not moving.any():
            continue
        rows = np.where(moving, members - n, 0)
        weight = tf.constant(moving.astype(np.float32))

        def gradient(x, call, members=members, moving=moving, rows=rows, weight=weight):
            keep = tf.where(moving[None, :, None], tf.gather(call_masks[call], rows, axis=1), True)
            return loss_grad(x, tf.constant(labels[members]), keep, weight)

        out[members] = perturbations.attack_batch(network, images[members], labels[members], method=method, eps=eps,
                                                  samples=samples, bounds=bounds, seed_parts=code, gradient=gradient,
                                                  moving=moving)  # fmt: skip
    return out


def _call_masks(code_call: tuple, n: int, samples: int, dim: int) -> tf.Tensor:
    """The attack's masks of one gradient call for every adversarial image ``[T, n, D]``: the ablation keys
    a call's masks by ``(*code, batch, call)``, so image i gets row i % BATCH of its batch's draw."""
    *code, call = code_call
    parts = [keep_masks(key(*code, b, call), samples, min(BATCH, n - s), dim) for b, s in enumerate(range(0, n, BATCH))]
    return tf.concat(parts, axis=1)


def _member_gradient(network: VariantNetwork):
    """The gradient of the summed loss of the weighted members (the authors' loss, as the network's own)."""

    def gradient(x, labels, keep, weight):
        with tf.GradientTape() as tape:
            tape.watch(x)
            p = head_probs(network.trunk_outputs(x), network.kernel, network.bias, keep)  # [T, B, 2]
            logits = tf.reduce_mean(p, axis=0)  # mean probabilities as logits (``VariantNetwork`` doc)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits) * weight
        return tape.gradient(loss, x)

    return gradient


@dataclasses.dataclass
class Setting:
    """One attack setting's pool and what every arm shares."""

    attack: str
    eps: float
    images: np.ndarray  # [3N, ...] clean, adversarial, noise
    source: np.ndarray  # [N, ...] the adversarial images' sources
    labels: np.ndarray  # [3N] true labels
    index: np.ndarray  # [3N] test-set index of each pool image (for the adversarial and noise: of its source)
    attack_labels: np.ndarray  # [N] the labels the ablation's attack moved away from
    clean_pred: np.ndarray  # [N] the source image's prediction in clean one-kind batches
    attack_set: dict  # the ablation's attack set's reuse key (its record's config)


def setting(cfg: ablation.AblationConfig, network, head_record, x, y, attack: str, eps: float) -> Setting:
    """The ablation's as-coded images of one setting (its attack set, reused by content key)."""
    variant = variants.named(VARIANT)
    idx = draw_indices(len(x), cfg.n, cfg.seed)
    src = idx["adversarial"]
    made = ablation._attack_set(cfg, network, head_record, variant, "mc", attack, eps, x[src], y[src],
                                inputs.data_sha256(x, y))  # fmt: skip
    l2 = perturbation_norms(x[src], made["x_adv"])[1]
    noise = perturbations.negatives(variant.negatives, x[idx["noise"]], l2, seed=cfg.seed + 1)
    evaluator = (eval_seed(cfg.seed), MC, ablation.KIND_CODES["source"])
    clean = ablation.predict(network, x[src], cfg.samples, BATCH, evaluator)
    return Setting(attack, eps, np.concatenate([x[idx["clean"]], made["x_adv"], noise]), x[src],
                   np.concatenate([y[idx["clean"]], y[src], y[idx["noise"]]]),
                   np.concatenate([idx["clean"], src, idx["noise"]]), made["attack_labels"],
                   clean.mean(axis=0).argmax(axis=-1), made["record"]["config"])  # fmt: skip


def score_arm(cfg: ablation.AblationConfig, trunks: ablation.Trunks, network: VariantNetwork, s: Setting, arm: str,
              crafted_images: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """The rows of ``scores.csv`` for one arm and setting (SCORE_COLUMNS)."""
    n = cfg.n
    number = SETTINGS.index((s.attack, s.eps))
    batches = arm_batches(arm, n, cfg.seed, number)
    net = network
    if arm == "inference":  # as-coded's head on the trunk's moving statistics: batch-independent
        net = VariantNetwork(trunks.inference, network.kernel.numpy(), network.bias.numpy(), network.inputs)
    images = s.images if crafted_images is None else crafted_images
    dim = int(net.trunk_outputs(tf.constant(images[:1])).shape[-1])
    evaluator = (eval_seed(cfg.seed), MC)
    codes = ablation.KIND_CODES
    kinds = ("clean", "adversarial", "noise")
    masks = tf.concat([image_masks((*evaluator, codes[k]), n, cfg.samples, dim) for k in kinds], axis=1)
    check = tf.concat([image_masks((*evaluator, codes[k]), n, cfg.samples, dim)
                       for k in ("clean", "success_check", "noise")], axis=1)  # fmt: skip
    (probs, after), batch = score(net, images, [masks, check], batches)
    values = predictors.scores(probs, predictor="mc")
    changed = after.mean(axis=0).argmax(axis=-1) != s.labels
    kind = np.repeat(np.array(kinds), n)
    adv = kind == "adversarial"
    nan = np.full(3 * n, np.nan)
    clean_pred = nan.copy()
    clean_pred[adv] = s.clean_pred
    success = np.where(adv, (clean_pred == s.labels) & changed, np.nan)
    return {"attack": np.full(3 * n, s.attack), "eps": np.full(3 * n, s.eps), "kind": kind, "index": s.index,
            "batch": batch, "label": s.labels, "pred": values["pred"], "clean_pred": clean_pred,
            "label_changed": np.where(adv, changed, np.nan), "success": success,
            **{m: values[m] for m in MEASURES}}  # fmt: skip


def crafted_images(cfg, network, head_record, s: Setting, data_sha256: str) -> np.ndarray:
    """The crafted-mixed pool of one setting, cached by content under ``batching/attacks``."""
    want = {"version": VERSION, "ablation_version": ablation.VERSION, "attack_set": s.attack_set,
            "head": head_record["sha256"], "data_sha256": data_sha256, "arm_seed": ARM_SEED}  # fmt: skip
    path = cfg.folder / "batching" / "attacks" / f"crafted-mixed_{s.attack}_eps{s.eps:g}-{ablation._digest(want)}.npz"
    n = cfg.n
    pool = s.images.copy()
    if artifacts.reusable_record(artifacts.sidecar_path(path), want, [path]) is not None:
        with np.load(path, allow_pickle=False) as saved:
            pool[n : 2 * n] = saved["x_adv"]  # the other arms' clean and noise images, always
        return pool
    start = time.perf_counter()
    pool[n : 2 * n] = s.source  # the attack starts at the source images
    labels = np.concatenate([s.labels[:n], s.attack_labels, s.labels[2 * n :]])
    code = (cfg.seed, MC, ("fgm", "bim", "mim").index(s.attack), int(s.eps * 10))
    arm = arm_batches("crafted-mixed", n, cfg.seed, SETTINGS.index((s.attack, s.eps)))
    bounds = perturbations.clip_bounds(variants.named(VARIANT).clip)
    out = crafted(network, pool, labels, arm, n, s.attack, s.eps, cfg.samples, bounds, code)
    linf, share = perturbations.moved(s.source, out[n : 2 * n], s.eps)
    path.parent.mkdir(parents=True, exist_ok=True)
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, x_adv=out[n : 2 * n])
    artifacts.write_json(artifacts.sidecar_path(path), artifacts.record(want, start, max_linf_255=float(linf.max()),
                                                                        share_pixels_beyond_eps=share))  # fmt: skip
    return out
