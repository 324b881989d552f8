"""The cats-vs-dogs ablation (issue 18): each switch against the line of the authors' code it
emulates, on tiny trunks; the run's reuse and pairing; the cluster bootstrap; the summary."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from uncertadv import artifacts, metrics
from uncertadv.experiments.catsdogs import ablation, ablation_report, perturbations, variants
from uncertadv.experiments.catsdogs.network import VariantNetwork, head_log_probs, head_probs, key
from uncertadv.models import catsdogs as cd


def tiny_trunk(size: int = 16) -> keras.Model:
    """Conv -> BatchNorm -> pooled features [N, 4] -> a 1000-way softmax: the two outputs of a trunk."""
    keras.utils.set_random_seed(0)
    image = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3)(image)
    x = keras.layers.BatchNormalization()(x)
    features = keras.layers.GlobalAveragePooling2D()(x)
    probs = keras.layers.Dense(1000, activation="softmax")(features)
    trunk = keras.Model(image, [features, probs])
    trunk.layers[2].set_weights([np.full(4, 2.0), np.full(4, 0.5), np.full(4, 0.3), np.full(4, 4.0)])
    trunk.trainable = False
    return trunk


def write_petimages(root, per_class: int = 30):
    """A PetImages folder of ``per_class`` 24 x 24 JPEGs per class (cats dark, dogs bright)."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("Cat", "Dog")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = np.clip(60 + 120 * label + rng.normal(0, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
            (root / name / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(image).numpy())
    return root


@pytest.fixture(scope="module")
def petimages(tmp_path_factory):
    return write_petimages(tmp_path_factory.mktemp("PetImages"))


def test_variants_chain_adds_one_switch_at_a_time_and_ends_as_coded():
    chain = list(variants.cumulative().values())
    assert chain[0] == variants.TODAY and chain[-1] == variants.AS_CODED
    for before, after in zip(chain, chain[1:]):
        assert len(set(after.on) - set(before.on)) == 1 and set(before.on) < set(after.on)
    for name, variant in variants.leave_one_out().items():
        assert set(variants.AS_CODED.on) - set(variant.on) == {name.removeprefix("as-coded-")}
        assert variants.previous(name) == "as-coded"
    assert variants.previous("+head") == "+negatives" and variants.previous("today") is None
    with pytest.raises(ValueError, match="head must be one of"):
        variants.Variant(head="logits")
    with pytest.raises(ValueError, match="unknown variant"):
        variants.named("as-written")


def test_keys_hold_exactly_the_switches_a_file_depends_on():
    today, flat = variants.TODAY, variants.TODAY.switched("negatives")
    assert today.attack_key("mc") == flat.attack_key("mc") and today.score_key("mc") != flat.score_key("mc")
    one = today.switched("point_estimate")
    assert today.attack_key("mc") == one.attack_key("mc")  # the mc predictor never uses the point estimate
    assert today.attack_key("deterministic") != one.attack_key("deterministic")
    assert today.recipe == variants.TODAY_RECIPE
    assert today.switched("head").recipe == variants.AS_CODED_RECIPE == variants.AS_CODED.switched("head").recipe
    assert variants.AS_CODED_RECIPE.epochs == 15 and variants.AS_CODED_RECIPE.batch_size == 32


def test_imagenet_probs_head_is_dropout_on_a_1000_way_softmax():
    trunk = cd.two_output_trunk("efficientnet-lite0", 32, weights=None)
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    features, probs = (t.numpy() for t in trunk(x))
    assert features.shape == (3, 1280) and probs.shape == (3, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    head = cd.head(1000)
    assert [type(layer).__name__ for layer in head.layers[1:]] == ["Dropout", "Dense"] and head.input_shape[-1] == 1000
    net = VariantNetwork(trunk, *head.get_layer("probs").get_weights(), "probs")
    np.testing.assert_allclose(net.trunk_outputs(x).numpy(), probs, rtol=1e-6)


def test_resnet50_path_builds_the_same_two_outputs_without_weights():
    trunk = cd.two_output_trunk("resnet50", 32, weights=None)
    features, probs = trunk(np.zeros((1, 32, 32, 3), np.float32))
    assert features.shape == (1, 2048) and probs.shape == (1, 1000)


def test_one_dropout_sample_draws_a_new_mask_per_example_and_per_call():
    rng = np.random.default_rng(0)
    z = tf.constant(np.repeat(rng.random((1, 50)), 4, axis=0), tf.float32)  # four identical examples
    kernel, bias = tf.constant(rng.normal(size=(50, 2)), tf.float32), tf.zeros(2)
    net = VariantNetwork(tiny_trunk(), kernel.numpy(), bias.numpy(), "features")
    first = head_probs(z, kernel, bias, net._masks(z, 1, tf.constant(key(0, 0))))[0].numpy()
    again = head_probs(z, kernel, bias, net._masks(z, 1, tf.constant(key(0, 1))))[0].numpy()
    assert len({round(float(p), 6) for p in first[:, 0]}) > 1  # identical inputs, different masks
    assert not np.allclose(first, again)  # a new call, new masks
    off = head_probs(z, kernel, bias)[0].numpy()
    np.testing.assert_allclose(off, off[:1].repeat(4, 0), rtol=1e-6)  # dropout off: no randomness
    # the MC log-predictive is the log of the mean of the T sampled probabilities
    keep = net._masks(z, 7, tf.constant(key(1)))
    np.testing.assert_allclose(np.exp(head_log_probs(z, kernel, bias, keep).numpy()),
                               head_probs(z, kernel, bias, keep).numpy().mean(0), rtol=1e-5)  # fmt: skip


def authors_flat_negatives(x_rgb, x_adv_rgb, noise_rgb):
    """ROC_curves_cats.py's lines, in their caffe space (BGR, 0-255, minus the ImageNet means), written
    out independently: squared L2 from batch_L_norm_distances(ord=2), noise /= dists * |noise|, + noise,
    np.clip(x_plus_noise, 0, 1); returned in RGB [0, 1]."""
    mean_bgr = np.array([103.939, 116.779, 123.68])
    caffe = x_rgb[..., ::-1] * 255.0 - mean_bgr
    caffe_adv = x_adv_rgb[..., ::-1] * 255.0 - mean_bgr
    n = len(x_rgb)
    dists = np.sum((caffe.reshape(n, -1) - caffe_adv.reshape(n, -1)) ** 2, axis=1)
    noise = noise_rgb[..., ::-1].copy()
    noise /= (dists * np.linalg.norm(noise.reshape(n, -1), axis=1))[:, None, None, None]
    flat = np.clip(caffe + noise, 0, 1)
    return ((flat + mean_bgr) / 255.0)[..., ::-1]


def test_flat_negatives_match_the_authors_lines():
    rng = np.random.default_rng(0)
    x = rng.random((3, 8, 8, 3))
    for scale in (0.01, 3.0):  # a tiny L2 leaves noise of about 0.01, which the squared L2 decides
        x_adv = np.clip(x + rng.choice([-1, 1], x.shape) * scale / np.sqrt(x[0].size), 0, 1)
        l2 = np.sqrt(((x_adv - x).reshape(3, -1) ** 2).sum(axis=1))
        ours = perturbations.flat_negatives(x.astype(np.float32), l2, seed=5)
        want = authors_flat_negatives(x, x_adv, np.random.default_rng(5).random(x.shape))
        np.testing.assert_allclose(ours, want, atol=2e-6)


def test_flat_negatives_lie_at_the_channel_mean_or_up_to_one_above():
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 3), dtype=np.float32)
    flat = perturbations.flat_negatives(x, l2=np.full(4, 3.0), seed=0) * 255.0
    mean = np.asarray(variants.CAFFE_MEAN_RGB)
    assert np.all(flat >= mean - 1e-3) and np.all(flat <= mean + 1 + 1e-3)
    assert flat.std(axis=(1, 2)).max() < 0.5  # near-constant images
    matched = perturbations.negatives("matched", x, np.full(4, 3.0), seed=0)
    assert not np.all((matched * 255 >= mean - 1e-3) & (matched * 255 <= mean + 1 + 1e-3))


def test_batch_statistics_couple_batch_mates_and_never_touch_moving_statistics():
    trunk = tiny_trunk()
    coupled = cd.with_batch_statistics(trunk)
    assert "BatchStatisticsNormalization" in [type(layer).__name__ for layer in coupled.layers]
    x = np.random.default_rng(1).random((4, 16, 16, 3), dtype=np.float32)
    other = np.concatenate([x[:2], x[2:][::-1] * 0.1])
    for model, depends in ((coupled, True), (trunk, False)):
        moving = [w.numpy().copy() for w in model.weights]
        a, b = model(x, training=True)[0].numpy(), model(other, training=True)[0].numpy()
        assert bool(not np.allclose(a[:2], b[:2], atol=1e-6)) is depends
        for before, after in zip(moving, model.weights):
            np.testing.assert_array_equal(before, after.numpy())  # moving mean and variance unchanged
    # the layer normalises by the batch's own moments (biased variance), as Keras 2 did
    layer = cd.BatchStatisticsNormalization(epsilon=1e-3)
    y = np.random.default_rng(2).normal(2, 3, (5, 3, 3, 2)).astype(np.float32)
    layer.build(y.shape)
    layer.set_weights([np.full(2, 1.5), np.full(2, 0.2), np.zeros(2), np.ones(2)])
    expected = (y - y.mean((0, 1, 2))) / np.sqrt(y.var((0, 1, 2)) + 1e-3) * 1.5 + 0.2
    np.testing.assert_allclose(layer(y).numpy(), expected, atol=1e-5)


def test_as_coded_clip_bounds_and_the_pixels_they_move():
    lo, hi = perturbations.clip_bounds("as-coded")
    np.testing.assert_allclose(lo * 255, [19.741, 12.84, 0.0], atol=1e-3)
    np.testing.assert_allclose(hi * 255, [255.0, 248.099, 235.259], atol=1e-3)
    trunk = tiny_trunk()
    kernel = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    net = VariantNetwork(trunk, kernel, np.zeros(2, np.float32), "features")
    x = np.full((2, 16, 16, 3), 0.5, np.float32)
    x[0, 0, 0] = [0.0, 0.0, 1.0]  # R and G below their bounds, B above
    for clip, beyond in (("image-range", False), ("as-coded", True)):
        adv = perturbations.attack_batch(net, x, np.array([0, 1]), method="bim", eps=5.0, samples=0,
                                         bounds=perturbations.clip_bounds(clip), seed_parts=(0,))  # fmt: skip
        linf, share = perturbations.moved(x, adv, 5.0)
        assert bool(share > 0) is beyond and bool(linf.max() > 5.0 + 1e-3) is beyond and linf.min() > 4.99
        assert np.all(adv >= perturbations.clip_bounds(clip)[0] - 1e-6)


def cleverhans2_bim(net, x, labels, eps, step, lo, hi, iterations=10):
    """CleverHans 2's BasicIterativeMethod.generate, written out: eta kept unclipped to the bounds
    between iterations, FGM's own clip inside, the bounds once more at the end."""
    x0 = tf.constant(x)
    eta = tf.zeros_like(x0)
    for i in range(iterations):
        grad = net.gradient(x0 + eta, labels, key(0, i), 0)
        adv = tf.clip_by_value(x0 + eta + step * tf.sign(grad), lo, hi)  # FastGradientMethod with clip
        eta = tf.clip_by_value(adv - x0, -eps, eps)  # clip_eta
    return tf.clip_by_value(x0 + eta, lo, hi).numpy()


def cleverhans2_mim(net, x, labels, eps, step, lo, hi, iterations=10):
    """CleverHans 2's MomentumIterativeMethod.generate (decay 1.0), written out."""
    x0 = tf.constant(x)
    adv, momentum = x0, tf.zeros_like(x0)
    for i in range(iterations):
        grad = net.gradient(adv, labels, key(0, i), 0)
        grad = grad / tf.maximum(1e-12, tf.reduce_mean(tf.abs(grad), [1, 2, 3], keepdims=True))
        momentum = 1.0 * momentum + grad
        adv = adv + step * tf.sign(momentum)
        adv = x0 + tf.clip_by_value(adv - x0, -eps, eps)
        adv = tf.clip_by_value(adv, lo, hi)
    return adv.numpy()


def test_bim_and_mim_follow_cleverhans_2_order_with_pixels_outside_the_bounds():
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(4, 2)).astype(np.float32)
    net = VariantNetwork(tiny_trunk(), kernel, np.zeros(2, np.float32), "features")
    x = rng.random((2, 16, 16, 3)).astype(np.float32)
    x[:, :4, :4] = [0.0, 0.02, 0.99]  # R and G below the authors' bounds, B above them
    bounds = perturbations.clip_bounds("as-coded")
    lo, hi = (b.reshape(1, 1, 1, 3) for b in bounds)
    labels = np.array([0, 1])
    for eps in (5.0, 10.0):
        step = perturbations.STEPS[eps] / 255.0
        for method, reference in (("bim", cleverhans2_bim), ("mim", cleverhans2_mim)):
            ours = perturbations.attack_batch(net, x, labels, method=method, eps=eps, samples=0, bounds=bounds,
                                              seed_parts=(0,))  # fmt: skip
            np.testing.assert_allclose(ours, reference(net, x, labels, eps / 255.0, step, lo, hi), atol=1e-6)
    assert perturbations.STEPS == {5.0: 0.5, 10.0: 1.2} and perturbations.ITERATIONS == 10


def test_block_batches_keep_fixed_blocks_and_the_partial_one_last():
    z = np.arange(70, dtype=np.float32)[:, None]
    seen = []
    for epoch in ablation.block_batches(z, np.zeros(70, np.int64), 32, seed=0).repeat(3).batch(1).unbatch():
        seen.append(epoch[0].numpy()[:, 0])
    blocks = [tuple(b.astype(int)) for b in seen]
    assert len(blocks) == 9 and all(len(b) in (32, 6) for b in blocks)
    for b in blocks:  # every batch is one of the fixed contiguous blocks
        assert b in {tuple(range(0, 32)), tuple(range(32, 64)), tuple(range(64, 70))}
    assert all(blocks[i] == tuple(range(64, 70)) for i in (2, 5, 8))  # the partial block always last


def test_mc_attack_loss_is_the_authors_under_batch_statistics():
    rng = np.random.default_rng(0)
    trunk = cd.with_batch_statistics(tiny_trunk())
    kernel = rng.normal(size=(4, 2)).astype(np.float32)
    x = rng.random((5, 16, 16, 3)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 1])
    theirs = VariantNetwork(trunk, kernel, np.zeros(2, np.float32), "features", mean_as_logits=True)
    ours = VariantNetwork(trunk, kernel, np.zeros(2, np.float32), "features")
    g_theirs, g_ours = (n.gradient(x, labels, key(1), 20).numpy() for n in (theirs, ours))
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        z = trunk(x_t)[0]
        mean = tf.reduce_mean(
            head_probs(z, tf.constant(kernel), tf.zeros(2), theirs._masks(z, 20, tf.constant(key(1)))), 0
        )
        loss = tf.nn.softmax_cross_entropy_with_logits(tf.one_hot(labels, 2), mean)  # CleverHans 2's model_loss
    np.testing.assert_allclose(g_theirs, tape.gradient(loss, x_t).numpy(), rtol=1e-4, atol=1e-9)
    assert not np.allclose(np.sign(g_theirs), np.sign(g_ours))  # coupled batch-mates: the losses differ


def test_cluster_bootstrap_matches_the_row_bootstrap_on_single_rows_and_widens_on_blocks():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 200), rng.normal(0, 1, 400)
    auc, lo, hi = metrics.cluster_bootstrap_auc_difference(pos, neg, None, None, np.arange(200), np.arange(400))
    assert auc == pytest.approx(metrics.roc_auc(pos, neg)) and lo < auc < hi
    row_lo, row_hi = metrics.bootstrap_auc(pos, neg)
    assert abs((hi - lo) - (row_hi - row_lo)) < 0.02
    # blocks of 5 identical scores: 40 independent units, not 200; the interval must widen
    pos5, neg5 = np.repeat(pos[:40], 5), np.repeat(neg[:80], 5)
    _, lo5, hi5 = metrics.cluster_bootstrap_auc_difference(pos5, neg5, None, None, np.arange(200) // 5,
                                                           np.arange(400) // 5)  # fmt: skip
    _, lo1, hi1 = metrics.cluster_bootstrap_auc_difference(pos5, neg5, None, None, np.arange(200), np.arange(400))
    assert hi5 - lo5 > 1.5 * (hi1 - lo1)
    # paired: a set against itself differs by exactly 0
    assert metrics.cluster_bootstrap_auc_difference(pos, neg, pos, neg, np.arange(200), np.arange(400)) == (0, 0, 0)
    d, lo, hi = metrics.cluster_bootstrap_mean_difference(np.ones(10), np.zeros(10), np.arange(10) // 5)
    assert (d, lo, hi) == (1.0, 1.0, 1.0)


def test_ablation_runs_reuses_shares_sets_and_pairs_by_source_image(petimages, tmp_path, monkeypatch):
    monkeypatch.setenv("UNCERTADV_CACHE", str(tmp_path / "cache"))
    cfg = ablation.AblationConfig(folder=tmp_path / "catsdogs-ablation", image_size=16, n=3, samples=4,
                                  bootstrap=50, data_dir=str(petimages), batch_size=2, methods=("fgm", "bim"),
                                  eps=(5.0,))  # fmt: skip
    names = ["today", "+negatives", "+head", "as-coded", "as-coded-batchnorm"]
    trunk = tiny_trunk()
    ablation.run(cfg, names, trunk=trunk)
    folder = cfg.folder
    sets = sorted((folder / "attacks").glob("*.npz"))
    # 4 attack keys per predictor (today = +negatives, which only re-scores; +head; as-coded; as-coded-batchnorm)
    # x 2 predictors x 2 methods
    assert len(sets) == 16
    today, flat = (artifacts.read_table(folder / n / "scores.csv") for n in ("today", "+negatives"))
    adv = today["kind"] == "adversarial"
    np.testing.assert_array_equal(today["l2"][adv], flat["l2"][adv])
    noise = today["kind"] == "noise"
    assert not np.allclose(today["l2"][noise], flat["l2"][noise])
    for name in names:  # every variant draws the same images
        table = artifacts.read_table(folder / name / "scores.csv")
        np.testing.assert_array_equal(table["index"], today["index"])
    coded = artifacts.read_table(folder / "as-coded" / "scores.csv")
    assert np.isfinite(coded["batch"]).all() and np.isnan(today["batch"]).all()
    assert set(coded["point_estimate"][coded["predictor"] == "deterministic"]) == {"one-dropout-sample"}
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.suffix in (".npz", ".csv")}
    made = sorted(folder.rglob("*.npz"))
    ablation.run(cfg, names, trunk=trunk)  # a re-run reuses every set and score
    assert sorted(folder.rglob("*.npz")) == made
    assert all(p.read_bytes() == b for p, b in before.items())
    rows = ablation_report.table(folder)
    assert {r["variant"] for r in rows} == set(names)
    by = {(r["variant"], r["attack"], r["predictor"]): r for r in rows}
    r = by[("+head", "bim", "mc")]
    assert r["previous"] == "+negatives"
    assert r["mi_auc"] == pytest.approx(metrics.roc_auc(*_split(folder / "+head" / "scores.csv", "bim", "mc")))
    assert by[("as-coded-batchnorm", "bim", "mc")]["previous"] == "as-coded"
    paths = ablation_report.write(folder)
    assert all(p.is_file() for p in paths)
    assert "as-coded beside the paper's Table 1" in (folder / "ablation.md").read_text()
    # the claims ledger judges every variant as a setting of its own, by the committed rules
    from uncertadv.experiments.claims import ledger

    judged = ledger.measure(tmp_path)
    settings = {r["setting"] for r in judged}
    assert settings == {f"catsdogs-ablation/{n}" for n in names} | {ledger.BATCHING}  # 7c: not run yet
    claims = {r["claim"] for r in judged if r["setting"] == "catsdogs-ablation/as-coded"}
    assert {"6", "7a", "7b", "8", "9", "10a", "10b"} <= claims
    coupled = artifacts.read_table(folder / "as-coded" / "scores.csv")
    rows = {c: v[(coupled["attack"] == "bim") & (coupled["predictor"] == "mc")] for c, v in coupled.items()}
    assert ledger._clusters(rows) is not None and ledger._clusters({**rows, "batch": today["batch"][:9]}) is None


def _split(scores_csv, attack, predictor):
    t = artifacts.read_table(scores_csv)
    sel = (t["attack"] == attack) & (t["predictor"] == predictor)
    mi, kind = t["mutual_information"][sel], t["kind"][sel]
    return mi[kind == "adversarial"], mi[kind != "adversarial"]


def test_config_refuses_what_the_ablation_does_not_run(tmp_path):
    with pytest.raises(ValueError, match="fgm, bim and mim"):
        ablation.AblationConfig(folder=tmp_path, methods=("pgd",)).validate()
    with pytest.raises(ValueError, match="eps 5 and 10"):
        ablation.AblationConfig(folder=tmp_path, eps=(76.0,)).validate()
    with pytest.raises(ValueError, match="pretrained backbone"):
        ablation.AblationConfig(folder=tmp_path, backbone="small").validate()
    assert dataclasses.asdict(variants.AS_CODED) == {n: a[1] for n, a in variants.SWITCHES.items()}


def test_cli_refuses_ablation_options_that_make_no_sense():
    from conftest import assert_one_line_error
    from typer.testing import CliRunner

    from uncertadv.cli import app

    runner = CliRunner()
    assert_one_line_error(runner.invoke(app, ["report", "--dataset", "mnist", "--variant", "as-coded"]), "catsdogs")
    assert_one_line_error(
        runner.invoke(app, ["report", "--dataset", "catsdogs", "--variant", "today", "--ablation"]), "not both"
    )
    assert_one_line_error(runner.invoke(app, ["report", "--dataset", "catsdogs", "--variant", "as-written"]), "unknown")
    # options another mode would ignore are refused, not silently dropped (each message names the option)
    for args, flag in (
        (["--dataset", "catsdogs", "--variant", "today", "--methods", "pgd"], "--methods"),
        (["--dataset", "catsdogs", "--ablation", "--eps", "8"], "--eps"),
        (["--dataset", "catsdogs", "--ablation", "--adaptive"], "--adaptive"),
        (["--dataset", "mnist", "--backbone", "resnet50"], "--backbone"),
        (["--dataset", "mnist", "--adaptive", "--methods", "fgm"], "--methods"),
        (["--dataset", "mnist", "--restarts", "1"], "--restarts"),
        (["--dataset", "mnist", "--render", "--n", "5"], "--n"),
    ):
        assert_one_line_error(runner.invoke(app, ["report", *args]), flag)
    help_text = runner.invoke(app, ["report", "--help"]).output
    assert "--variant" in help_text and "--ablation" in help_text


def test_one_variant_run_rewrites_the_summary_and_a_head_seed_run_leaves_it(tmp_path, monkeypatch):
    """The summary (ablation.csv/md/json) is a function of the variants' scores.csv, so a run of one
    variant at seed 0 rewrites it; a head-seed run writes under seeds/ and leaves it alone."""
    from typer.testing import CliRunner

    from uncertadv.cli import app

    written = []
    monkeypatch.setattr(ablation, "run", lambda cfg, names, force=False: [])
    monkeypatch.setattr(ablation_report, "write", lambda folder: written.append(folder) or [])
    runner = CliRunner()
    base = ["report", "--dataset", "catsdogs", "--variant", "as-coded", "--results", str(tmp_path)]
    assert runner.invoke(app, base).exit_code == 0
    assert written == [tmp_path]
    assert runner.invoke(app, [*base, "--head-seed", "1"]).exit_code == 0
    assert written == [tmp_path]


def test_variants_scoring_two_weights_of_one_head_key_are_named(tmp_path):
    """A variant regenerated on another CPU trains its head again under the same key; the variants that
    still score the earlier weights are named, so no Δ between them passes for the switch alone."""
    same = {"batchnorm": "batch-statistics", "head": "imagenet-probs"}
    made = [("as-coded", same, "new"), ("as-coded-clip", same, "old"), ("as-coded-negatives", same, "old"),
            ("+head", {"head": "imagenet-probs"}, "x")]  # fmt: skip
    for name, config, sha in made:
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.csv").write_text("variant\n")
        artifacts.write_json(tmp_path / name / "scores.json", {"head": {"config": config, "sha256": sha}})
    assert ablation_report.retrained_heads(tmp_path) == [["as-coded", "as-coded-negatives, as-coded-clip"]]
    assert "- as-coded | as-coded-negatives, as-coded-clip" in ablation_report.retrained_heads_markdown(tmp_path)
    artifacts.write_json(tmp_path / "as-coded" / "scores.json", {"head": {"config": same, "sha256": "old"}})
    assert ablation_report.retrained_heads_markdown(tmp_path) == []


COMMITTED = __import__("pathlib").Path(__file__).resolve().parents[1] / "results" / "catsdogs-ablation"


@pytest.mark.skipif(not (COMMITTED / "ablation.csv").is_file(), reason="no committed ablation results to check yet")
def test_committed_ablation_rows_recompute_from_the_variants_scores():
    """Every point value of ablation.csv (AUCs, rates, counts, accuracy) from the variants' scores.csv;
    the intervals are bootstraps, which ``uncertadv render`` does not redo (slow): their seed is recorded."""
    table = artifacts.read_table(COMMITTED / "ablation.csv")
    for i, name in enumerate(table["variant"]):
        scores = artifacts.read_table(COMMITTED / str(name) / "scores.csv")
        sel = (scores["attack"] == table["attack"][i]) & (scores["eps"] == table["eps"][i])
        rows = {c: v[sel & (scores["predictor"] == table["predictor"][i])] for c, v in scores.items()}
        adv, kind = rows["kind"] == "adversarial", rows["kind"]
        for short, measure in ablation_report.SHORT.items():
            want = metrics.roc_auc(rows[measure][adv], rows[measure][~adv])
            np.testing.assert_allclose(table[f"{short}_auc"][i], want, rtol=1e-6, equal_nan=True)
            want = metrics.roc_auc(rows[measure][adv], rows[measure][kind == "clean"])
            np.testing.assert_allclose(table[f"{short}_auc_vs_clean"][i], want, rtol=1e-6, equal_nan=True)
        assert table["n_label_changed"][i] == np.sum(rows["label_changed"][adv] == 1)
        assert table["n_successful"][i] == np.sum(rows["success"][adv] == 1)
        clean = kind == "clean"
        assert table["clean_accuracy"][i] == pytest.approx(np.mean(rows["pred"][clean] == rows["label"][clean]))


def test_a_head_seed_trains_another_head_under_its_own_name_and_leaves_seed_0s_key(petimages, tmp_path, monkeypatch):
    """Issue 28: head seed N > 0 changes the head's initialisation, dropout and block order only; seed 0
    keeps the name and key of the committed heads, so they are reused; seeds write to seeds/NAME-sN/."""
    monkeypatch.setenv("UNCERTADV_CACHE", str(tmp_path / "cache"))
    base = ablation.AblationConfig(folder=tmp_path / "a", image_size=16, n=3, samples=4, data_dir=str(petimages))
    trunks = ablation.Trunks(base, tiny_trunk())
    variant = variants.named("+head")
    net_zero, zero = ablation.ensure_head(base, trunks, variant)
    one_cfg = dataclasses.replace(base, head_seed=1)
    net_one, one = ablation.ensure_head(one_cfg, trunks, variant)
    # each head is attacked afresh: the key holds its weights (the head switch's name once shadowed them)
    x_src, y_src = np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32), np.array([0, 1, 0])
    sets = [ablation._attack_set(c, net, rec, variant, "mc", "fgm", 5.0, x_src, y_src, "data")
            for c, net, rec in ((base, net_zero, zero), (one_cfg, net_one, one))]  # fmt: skip
    assert sets[0]["record"]["config"]["head_sha256"] == zero["sha256"] != sets[1]["record"]["config"]["head_sha256"]
    assert len(list((base.folder / "attacks").glob("fgm_eps5_mc-*.npz"))) == 2
    assert "head_seed" not in zero["config"] and one["config"]["head_seed"] == 1
    assert (base.folder / "models" / "head-imagenet-probs-inference-s1.keras").is_file()
    assert one["sha256"] != zero["sha256"]
    assert one_cfg.variant_folder("+head") == base.folder / "seeds" / "+head-s1"
    assert base.variant_folder("+head") == base.folder / "+head"
    with pytest.raises(ValueError, match="head-seed"):
        dataclasses.replace(base, head_seed=-1).validate()
