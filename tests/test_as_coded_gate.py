"""The as-coded variant's gate (issue 19): the TPR and its interval, the PGD on a variant network,
and the run on a tiny trunk."""

import numpy as np
import pytest
from conftest import assert_one_line_error
from test_catsdogs_ablation import tiny_trunk, write_petimages

from uncertadv import artifacts
from uncertadv.experiments.adaptive import as_coded_gate
from uncertadv.experiments.catsdogs import ablation, perturbations
from uncertadv.experiments.catsdogs.network import VariantNetwork
from uncertadv.models import catsdogs as cd


def test_tpr_is_the_flagged_share_of_successful_images_above_the_conformal_threshold():
    fit = np.arange(99) / 100.0  # M = 99: the upper threshold is the ceil(0.95 * 100) = 95th smallest, 0.94
    adv = np.array([0.5, 0.95, 0.99, 2.0, 0.1, 3.0])
    success = np.array([True, True, True, False, True, True])  # 2.0 is not successful: not counted
    upper, tpr, lo, hi = as_coded_gate.tpr_interval(adv, success, np.arange(6), fit, np.arange(99), rounds=200)
    assert upper == pytest.approx(0.94)
    assert tpr == pytest.approx(3 / 5)
    assert 0.0 <= lo <= tpr <= hi <= 1.0 and hi - lo > 0.2  # five images: a wide interval
    # coupled batches are drawn whole: two batches, one all flagged and one all missed, give 0 or 1 per round
    adv, everyone = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]), np.ones(6, bool)
    batches = as_coded_gate.tpr_interval(adv, everyone, np.array([0, 0, 0, 1, 1, 1]), fit, np.arange(99), rounds=400)
    rows = as_coded_gate.tpr_interval(adv, everyone, np.arange(6), fit, np.arange(99), rounds=400)
    assert batches[1] == rows[1] == 0.5
    assert (batches[2], batches[3]) == (0.0, 1.0) and rows[3] - rows[2] < 1.0
    assert np.isnan(as_coded_gate.tpr_interval(adv, np.zeros(6, bool), np.arange(6), fit, np.arange(99))[1])
    with pytest.raises(ValueError, match="fit on more"):
        as_coded_gate.tpr_interval(adv, success, np.arange(6), fit[:10], np.arange(10))


def test_variant_pgd_stays_in_the_ball_and_the_bounds_and_moves_towards_the_other_class():
    # the gate's network: batch statistics, a head on the 1000-way softmax, the authors' coupled loss
    trunk = cd.with_batch_statistics(tiny_trunk())
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(0, 30, (1000, 2)).astype(np.float32), np.zeros(2, np.float32)
    net = VariantNetwork(trunk, kernel, bias, "probs", mean_as_logits=True)
    x = rng.random((3, 16, 16, 3), dtype=np.float32)
    labels = net.probs(x, np.array([0, 0]), 4).mean(0).argmax(-1)
    bounds = perturbations.clip_bounds("as-coded")
    adv = perturbations.pgd_batch(net, x, labels, eps=8.0, steps=10, samples=4, bounds=bounds, seed_parts=(0, 1))
    assert (adv >= bounds[0].reshape(1, 1, 1, 3) - 1e-7).all() and (adv <= bounds[1].reshape(1, 1, 1, 3) + 1e-7).all()
    inside = (x >= bounds[0].reshape(1, 1, 1, 3)) & (x <= bounds[1].reshape(1, 1, 1, 3))
    assert np.abs(adv - x)[inside].max() <= 8 / 255 + 1e-6  # a pixel inside the bounds never moves beyond eps
    before = net.probs(x, np.array([0, 1]), 4).mean(0)[np.arange(3), labels]
    after = net.probs(adv, np.array([0, 1]), 4).mean(0)[np.arange(3), labels]
    assert after.mean() < before.mean()  # coupled batch-mates: the batch's loss rises, not every image's
    again = perturbations.pgd_batch(net, x, labels, eps=8.0, steps=10, samples=4, bounds=bounds, seed_parts=(0, 1))
    np.testing.assert_array_equal(adv, again)  # seeded


def test_gate_runs_on_a_tiny_trunk_records_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("UNCERTADV_CACHE", str(tmp_path / "cache"))
    root = write_petimages(tmp_path / "PetImages", per_class=70)  # 28 test images: 3 x 2 + 20 fit + 2 calibration
    cfg = as_coded_gate.GateConfig(
        ablation=ablation.AblationConfig(folder=tmp_path / "ab", image_size=16, n=2, samples=4, bootstrap=50,
                                         data_dir=str(root)),  # fmt: skip
        steps=3, n_fit=20, n_calibration=2,
    )  # fmt: skip
    trunk = tiny_trunk()
    paths = as_coded_gate.run(cfg, trunk=trunk)
    table = artifacts.read_table(paths[0])
    assert list(table) == list(as_coded_gate.COLUMNS)
    assert table["n"][0] == 2 and table["n_fit"][0] == 20 and table["steps"][0] == 3
    tpr, lo, hi = table["tpr"][0], table["tpr_lo"][0], table["tpr_hi"][0]
    if table["n_successful"][0] > 0:
        assert lo <= tpr <= hi
        assert table["passes"][0] == str(lo > as_coded_gate.GATE)
    else:  # nothing succeeded: no rate, and the gate cannot pass
        assert np.isnan(tpr) and table["passes"][0] == "False"
    record = artifacts.read_json(paths[1])
    assert record["config"]["steps"] == 3 and record["config"]["variant"] == "as-coded" and "versions" in record
    sets = sorted((cfg.ablation.folder / "attacks").glob("gate_pgd_*.npz"))
    assert len(sets) == 1
    stamp = sets[0].stat().st_mtime_ns
    before = paths[0].read_bytes()
    as_coded_gate.run(cfg, trunk=trunk)  # a re-run reuses the PGD set and writes the same bytes
    assert sets[0].stat().st_mtime_ns == stamp and paths[0].read_bytes() == before
    block = as_coded_gate.findings(cfg.ablation.folder)  # the README block, from the CSV alone
    assert f"| 5 | 3 | {int(table['n_successful'][0])} / 2 | 20 |" in block
    assert "not been run" in as_coded_gate.findings(tmp_path / "elsewhere")


def test_cli_gate_refuses_other_variants_and_options_it_does_not_use():
    from typer.testing import CliRunner

    from uncertadv.cli import app

    runner = CliRunner()
    base = ["report", "--adaptive", "--dataset", "catsdogs", "--variant"]
    assert_one_line_error(runner.invoke(app, [*base, "today"]), "as-coded variant only")
    assert_one_line_error(runner.invoke(app, [*base, "as-coded", "--measures", "predictive_entropy"]), "--measures")
    assert_one_line_error(runner.invoke(app, [*base, "as-coded", "--restarts", "0"]), "--restarts")
    assert_one_line_error(runner.invoke(app, ["report", "--adaptive", "--variant", "as-coded"]), "catsdogs")


def test_cli_gate_checks_eps_and_reports_a_gate_with_no_successful_image(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from uncertadv.cli import app

    runner = CliRunner()
    base = ["report", "--adaptive", "--dataset", "catsdogs", "--variant", "as-coded", "--results", str(tmp_path)]
    assert_one_line_error(runner.invoke(app, [*base, "--eps", "300"]), "--eps")

    def no_success(cfg, trunk=None):  # what run() writes when PGD fools nothing: an empty rate
        path = tmp_path / "as-coded" / "adaptive_gate.csv"
        path.parent.mkdir(parents=True)
        row = {c: "" for c in as_coded_gate.COLUMNS} | {"eps": 5.0, "n_successful": 0, "gate": 0.05, "passes": False}
        artifacts.write_csv(path, {c: [row[c]] for c in as_coded_gate.COLUMNS})
        return [path, path.with_suffix(".json")]

    monkeypatch.setattr(as_coded_gate, "run", no_success)
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "n/a (no successful image)" in result.output and "fails: the issue skips the suite" in result.output
