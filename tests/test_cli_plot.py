"""The plot commands end to end on tiny models (trained on a few hundred images)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from uncertadv import artifacts
from uncertadv.cli import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def results(fresh_results):
    result = run(
        "train", "vae", "--out", fresh_results / "models" / "vae.json", "--epochs", "1", "--limit-train", "500"
    )
    assert result.exit_code == 0, result.output
    return fresh_results


def test_ensemble_reuses_the_first_member_and_lists_both(results):
    manifest = artifacts.read_json(results / "models" / "ensemble.json")
    assert manifest["members"] == ["cnn.keras", "ensemble-member1.keras"]
    assert manifest["metrics"]["mc_samples"] == 4
    assert not (results / "models" / "ensemble-member0.keras").exists()


def test_latent_maps_for_each_predictor(results):
    for predictor in ("mc", "ensemble", "deterministic"):
        result = run("plot", "latent", "--results", results, "--predictor", predictor, "--grid", "12", "--samples", "3")
        assert result.exit_code == 0, result.output
        assert (results / f"latent_pair_{predictor}.png").stat().st_size > 10_000
    grid = artifacts.read_table(results / "cache" / "latent_grid_deterministic.csv")
    assert len(grid["z1"]) == 144 and np.isnan(grid["mutual_information"]).all()  # not applicable, not 0
    mc_grid = artifacts.read_table(results / "cache" / "latent_grid_mc.csv")
    assert (mc_grid["mutual_information"] >= 0).all() and not np.isnan(mc_grid["mutual_information"]).any()


def test_mi_of_the_deterministic_predictor_is_refused(results):
    result = run(
        "plot",
        "latent",
        "--results",
        results,
        "--predictor",
        "deterministic",
        "--measure",
        "mutual_information",
        "--grid",
        "12",
    )
    assert result.exit_code == 2 and "not defined for the deterministic model" in result.stderr


def test_interpolation_midpoints_holes_and_variance(results):
    assert run("plot", "interpolation", "--results", results, "--samples", "3", "--steps", "5").exit_code == 0
    table = artifacts.read_csv(results / "interpolation.csv")
    assert table["space"] == ["pixel"] * 5 + ["latent"] * 5

    result = run("plot", "midpoints", "--results", results, "--samples", "3", "--pairs", "40")
    assert result.exit_code == 0, result.output
    mids = artifacts.read_csv(results / "interpolation_midpoints.csv")
    assert mids["space"].count("pixel") == 40 and mids["space"].count("latent") == 40
    assert {"pair", "mutual_information", "predictive_entropy"} <= set(mids)
    aucs = artifacts.read_csv(results / "midpoint_aucs.csv")
    assert all(0.0 <= float(a) <= 1.0 for a in aucs["roc_auc_pixel_vs_latent"])

    result = run("plot", "holes", "--results", results, "--samples", "3", "--grid", "12")
    assert result.exit_code == 0, result.output
    holes = artifacts.read_csv(results / "holes.csv")
    assert holes["predictor"] == ["mc", "ensemble"]
    for far, hole in zip(holes["far_points"], holes["hole_points"]):
        assert 0 <= int(hole) <= int(far) <= 144

    result = run("plot", "variance-mi", "--results", results, "--samples", "3", "--pairs", "40")
    assert result.exit_code == 0, result.output
    rhos = artifacts.read_csv(results / "variance_vs_mi.csv")
    assert rhos["group"] == ["clean test", "pixel midpoints", "latent midpoints"]


def test_cached_grid_is_reused_and_invalidated_by_other_settings(results):
    cache = results / "cache" / "latent_grid_mc.csv"
    run("plot", "latent", "--results", results, "--grid", "12", "--samples", "3")
    before = cache.stat().st_mtime_ns
    assert run("plot", "latent", "--results", results, "--grid", "12", "--samples", "3").exit_code == 0
    assert cache.stat().st_mtime_ns == before
    assert run("plot", "latent", "--results", results, "--grid", "12", "--samples", "4").exit_code == 0
    assert cache.stat().st_mtime_ns != before


def test_missing_vae_is_a_one_line_error(tmp_path):
    result = run(
        "plot", "midpoints", "--results", tmp_path, "--vae", tmp_path / "none.json", "--cnn", tmp_path / "none.keras"
    )
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
