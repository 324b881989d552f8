"""What a newcomer with their own model still met (issue 29), one test per section, each failing on the
code before its fix. The model and data are test_user_mistakes' (16x16 grayscale, Dropout, 10 classes)."""

import numpy as np
import pytest
from conftest import assert_one_line_error
from test_user_mistakes import _model, run, user  # noqa: F401 (a fixture)

import uncertadv as ua
from uncertadv import artifacts
from uncertadv.detector import SAMPLE_MEASURES

# ------------------------------------------------------------------ 1. one distinct network


def test_1_fewer_than_two_networks_refuse_the_sample_measures_and_write_na(user, tmp_path):  # noqa: F811
    root, model, x, y = user
    for measure in SAMPLE_MEASURES:  # mc at T = 1 draws one network: MI is 0 by construction, not a finding
        with pytest.raises(ValueError, match="draws one network"):
            ua.Detector(model, measure, samples=1)
    ua.Detector(model, "predictive_entropy", samples=1)
    ua.Detector([model, _model(1.0, seed=1)], "mutual_information", predictor="ensemble", samples=1)  # K networks
    fit = run("detect", "fit", "--model", root / "mine.keras", "--data", root / "t.npz", "--samples", "1",
              "--out", tmp_path / "d.json")  # fmt: skip
    assert_one_line_error(fit, "--samples 1 draws one network")
    assert not (tmp_path / "d.json").exists()
    result = run("report", "--model", root / "mine.keras", "--data", root / "t.npz", "--methods", "fgm", "--eps",
                 "8", "--n", "10", "--samples", "1", "--bootstrap", "10", "--results", tmp_path / "r")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: the mc predictor at --samples 1 draws one network" in result.stderr
    table = artifacts.read_table(tmp_path / "r" / "table1.csv")
    assert np.isnan(table["mi_auc"]).all() and not np.isnan(table["entropy_auc"]).any()
    score = run("score", "--model", root / "mine.keras", "--data", root / "t.npz", "--samples", "1",
                "--out", tmp_path / "s.csv")  # fmt: skip
    assert score.exit_code == 0 and "draws one network" in score.stderr
    scores = artifacts.read_table(tmp_path / "s.csv")
    assert all(np.isnan(scores[m]).all() for m in SAMPLE_MEASURES)
    help_text = " ".join(run("detect", "fit", "--help").output.replace("│", " ").split())
    assert "need two distinct networks (T >= 2 with dropout, or an ensemble)" in help_text
