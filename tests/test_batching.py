"""The batch-composition experiment (issue 28) on a tiny trunk: one-kind is the ablation's as-coded rows
of the same run, every arm scores each image once in the batches it names, the crafted attack moves the
adversarial members alone, and batching.csv recomputes from the arms' scores.csv files."""

import numpy as np
import pytest
from test_as_coded_suite import sharp_trunk
from test_catsdogs_ablation import write_petimages

from uncertadv import artifacts
from uncertadv.experiments.catsdogs import ablation, batching, batching_report
from uncertadv.experiments.claims import rules

N = 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batching")
    root = write_petimages(tmp / "PetImages", per_class=80)  # 32 test images: 3 x N drawn
    mp = pytest.MonkeyPatch()
    mp.setenv("UNCERTADV_CACHE", str(tmp / "cache"))
    two = (("bim", 5.0), ("mim", 5.0))  # two of the four settings: the suite's time budget
    mp.setattr(batching, "SETTINGS", two)
    mp.setattr(rules, "BATCHING_SETTINGS", two)  # the ledger's rows of claim 7c: the same two
    cfg = ablation.AblationConfig(folder=tmp / "catsdogs-ablation", image_size=16, n=N, samples=4, bootstrap=50,
                                  data_dir=str(root), methods=("bim", "mim"), eps=(5.0,),
                                  predictors=("mc",))  # fmt: skip
    trunk = sharp_trunk()  # its softmax varies with the image: the head separates classes, attacks succeed
    ablation.run(cfg, ["as-coded"], trunk=trunk)
    paths = batching_report.run(cfg, batching.ARMS, trunk=trunk)
    yield cfg, trunk, paths
    mp.undo()


def test_one_kind_is_the_ablations_as_coded_rows_of_the_same_run(run):
    cfg, _, _ = run
    coded = artifacts.read_table(cfg.folder / "as-coded" / "scores.csv")
    mine = artifacts.read_table(cfg.folder / "batching" / "one-kind" / "scores.csv")
    for attack, eps in batching.SETTINGS:
        a = (coded["attack"] == attack) & (coded["eps"] == eps) & (coded["predictor"] == "mc")
        b = (mine["attack"] == attack) & (mine["eps"] == eps)
        for kind in ("clean", "noise", "adversarial"):  # each kind in draw order (the files order kinds apart)
            ka, kb = a & (coded["kind"] == kind), b & (mine["kind"] == kind)
            for column in ("index", "pred", "clean_pred", "label_changed", "success", "mutual_information",
                           "predictive_entropy"):  # fmt: skip
                np.testing.assert_array_equal(mine[column][kb], coded[column][ka], err_msg=f"{attack} {eps} {column}")
            # the same batches of five: the ablation numbers them within a kind, the pool across kinds
            np.testing.assert_array_equal(np.unique(mine["batch"][kb], return_inverse=True)[1],
                                          np.unique(coded["batch"][ka], return_inverse=True)[1])  # fmt: skip


def test_every_arm_scores_each_image_once_in_the_batches_it_names():
    for arm in batching.ARMS:
        made = batching.arm_batches(arm, N, 0, 1)
        owned = np.concatenate([b[o] for b, o in zip(made.batches, made.owners)])
        assert sorted(owned) == list(range(3 * N)), arm
        size = {len(b) for b in made.batches}
        assert size == ({1} if arm == "single" else {batching.BATCH}), arm
    mixed = batching.arm_batches("mixed", N, 0, 1)
    kinds = [set(b // N) for b in mixed.batches if b[0] < 2 * N]
    assert any(k == {0, 1} for k in kinds) and all(k <= {0, 1} for k in kinds)  # clean and adversarial together
    lone = batching.arm_batches("one-adversarial", N, 0, 1)
    for members, owners in zip(lone.batches, lone.owners):
        if owners.sum() == 1:  # an adversarial image with four clean batch-mates
            assert N <= members[0] < 2 * N and np.all(members[1:] < N)
    regrouped = batching.arm_batches("one-kind-regrouped", N, 0, 1)
    assert [set(b // N) for b in regrouped.batches] == [
        set(b // N) for b in batching.arm_batches("one-kind", N, 0, 1).batches
    ]
    again = batching.arm_batches("mixed", N, 0, 1)
    assert all(np.array_equal(a, b) for a, b in zip(mixed.batches, again.batches))  # seeded


def test_the_crafted_attack_moves_the_adversarial_members_alone_with_the_ablations_keys(run):
    """Inside mixed batches the clean mates stay fixed; inside one-kind batches (no clean mates) the same
    code, keys and loss give the ablation's own attack set exactly."""
    cfg, trunk, _ = run
    paths = sorted((cfg.folder / "batching" / "attacks").glob("*.npz"))
    assert len(paths) == len(batching.SETTINGS)
    x, y = ablation.load_test(cfg)
    idx = batching.draw_indices(len(x), N, cfg.seed)
    for path in paths:
        with np.load(path, allow_pickle=False) as saved:
            moved = np.abs(saved["x_adv"] - x[idx["adversarial"]]).max(axis=(1, 2, 3)) * 255
        assert moved.max() > 0
    trunks = ablation.Trunks(cfg, trunk)
    network, head = ablation.ensure_head(cfg, trunks, ablation.variants.named("as-coded"))
    s = batching.setting(cfg, network, head, x, y, "mim", 5.0)
    pool = s.images.copy()
    pool[N : 2 * N] = s.source
    labels = np.concatenate([s.labels[:N], s.attack_labels, s.labels[2 * N :]])
    arm = batching.arm_batches("one-kind", N, cfg.seed, 0)
    code = (cfg.seed, batching.MC, 2, 50)
    bounds = ablation.perturbations.clip_bounds("as-coded")
    out = batching.crafted(network, pool, labels, arm, N, "mim", 5.0, cfg.samples, bounds, code)
    np.testing.assert_array_equal(out[N : 2 * N], s.images[N : 2 * N])  # the ablation's x_adv, bit for bit
    np.testing.assert_array_equal(out[:N], pool[:N])


def test_mixed_arms_score_noise_and_one_adversarials_clean_as_one_kind_does(run):
    cfg, _, _ = run
    folder = cfg.folder / "batching"
    base = artifacts.read_table(folder / "one-kind" / "scores.csv")
    for arm, kinds in (("mixed", ("noise",)), ("one-adversarial", ("noise", "clean")), ("crafted-mixed", ("noise",))):
        mine = artifacts.read_table(folder / arm / "scores.csv")
        for kind in kinds:
            sel = base["kind"] == kind
            np.testing.assert_array_equal(mine["mutual_information"][sel], base["mutual_information"][sel])
    table = artifacts.read_table(folder / "batching.csv")
    assert table["n_successful"].max() > 0  # the sharp trunk's attacks succeed: the success columns are exercised


def test_batching_csv_recomputes_from_the_arms_scores(run):
    cfg, _, paths = run
    folder = cfg.folder / "batching"
    table = artifacts.read_table(folder / "batching.csv")
    again = batching_report.table(folder, cfg.bootstrap)
    assert len(again) == len(batching.ARMS) * len(batching.SETTINGS)
    for i, row in enumerate(again):
        for column in ("n_successful", "clean_accuracy", "mutual_information_auc_clean", "c7_lo", "c7_change"):
            assert table[column][i] == pytest.approx(row[column], nan_ok=True), column
        assert (table["verdict"][i] if isinstance(table["verdict"][i], str) else "") == row["verdict"]
        want = rules.deployed_detection(row["c7_lo"], row["c7_hi"], row["n_successful"], row["c7_change_lo"],
                                        row["c7_change_hi"]) if row["arm"] in rules.BATCHING_ARMS else ""  # fmt: skip
        assert row["verdict"] == want
    assert (folder / "batching.md").read_text() == batching_report.rendered_markdown(folder)
    record = artifacts.read_json(folder / "batching.json")
    assert record["config"]["arms"] == list(batching.ARMS)


def test_the_ledger_judges_claim_7c_per_arm_then_across_arms(run):
    from uncertadv.experiments.claims import ledger

    cfg, _, _ = run
    rows = [r for r in ledger.measure(cfg.folder.parent) if r["claim"] == "7c"]
    judged = [r for r in rows if r["row"] != "all"]
    assert len(judged) == len(rules.BATCHING_ARMS) * len(batching.SETTINGS)
    assert {r["row"].split(":")[0] for r in judged} == set(rules.BATCHING_ARMS)
    table = artifacts.read_table(cfg.folder / "batching" / "batching.csv")
    for r in judged:
        arm, rest = r["row"].split(": ")
        attack, _, eps = rest.split()
        i = np.flatnonzero((table["arm"] == arm) & (table["attack"] == attack) & (table["eps"] == float(eps)))[0]
        assert r["verdict"] == table["verdict"][i] and r["n"] == table["n_successful"][i]
    arms = {}
    for r in judged:
        arms.setdefault(r["row"].split(":")[0], []).append(r["verdict"])
    (combined,) = [r for r in rows if r["row"] == "all"]
    assert combined["verdict"] == rules.combine_arms(arms)


def test_the_ledger_names_7c_rows_of_a_cut_run_as_cut_not_as_arms_that_never_ran(tmp_path, monkeypatch):
    """A run cut to eps 5 (batching.json's settings) leaves the eps-10 rows out: "not run: the run was cut",
    while an arm missing at a setting that ran "has not run"."""
    from uncertadv.experiments.claims import ledger

    monkeypatch.setattr(rules, "BATCHING_SETTINGS", (("bim", 5.0), ("bim", 10.0), ("mim", 5.0), ("mim", 10.0)))
    folder = tmp_path / ledger.BATCHING
    cols = ["n_successful", "n_successful_both", "c7_auc", "c7_lo", "c7_hi", "c7_change", "c7_change_lo",
            "c7_change_hi"]  # fmt: skip
    ran = [("mixed", "bim"), ("mixed", "mim"), ("one-adversarial", "bim")]
    artifacts.write_csv(folder / "batching.csv", {"arm": [a for a, _ in ran], "attack": [t for _, t in ran],
                                                  "eps": [5.0] * 3, **{c: [10.0] * 3 for c in cols}})  # fmt: skip
    artifacts.write_json(folder / "batching.json", {"config": {"settings": [["bim", 5.0], ["mim", 5.0]]}})
    rows = {r["row"]: r for r in ledger._batching_claim(tmp_path)}
    assert len(rows) == len(rules.BATCHING_ARMS) * len(rules.BATCHING_SETTINGS)
    assert rows["mixed: bim eps 10"]["reason"] == "not run: the run was cut to bim eps 5, mim eps 5"
    assert rows["one-adversarial: mim eps 5"]["reason"] == "this arm has not run"
    assert rows["mixed: bim eps 5"]["verdict"] == rules.NOT_TESTABLE  # 10 successful images: fewer than 20


COMMITTED = __import__("pathlib").Path(__file__).resolve().parents[1] / "results" / "catsdogs-ablation"


@pytest.mark.skipif(not (COMMITTED / "batching" / "batching.csv").is_file(), reason="no committed batching run yet")
def test_the_committed_one_kind_arm_is_the_committed_as_coded_rows():
    """The control and the ablation come from one run: every score of the committed one-kind arm equals the
    committed as-coded row of the same image (MC, BIM and MIM), as written (to the CSV's precision)."""
    arm = artifacts.read_table(COMMITTED / "batching" / "one-kind" / "scores.csv")
    coded = artifacts.read_table(COMMITTED / "as-coded" / "scores.csv")
    for attack, eps in (("bim", 5.0), ("bim", 10.0), ("mim", 5.0), ("mim", 10.0)):  # all four, whatever is patched
        for kind in ("clean", "noise", "adversarial"):  # the arm's pool order is clean, adversarial, noise
            mine = (arm["attack"] == attack) & (arm["eps"] == eps) & (arm["kind"] == kind)
            theirs = (coded["attack"] == attack) & (coded["eps"] == eps) & (coded["predictor"] == "mc") & (
                coded["kind"] == kind)  # fmt: skip
            assert mine.sum() == theirs.sum() > 0
            for column in ("index", "pred", "success", "mutual_information", "predictive_entropy"):
                np.testing.assert_array_equal(
                    arm[column][mine], coded[column][theirs], err_msg=f"{attack} {eps} {kind}"
                )


def _synthetic(arm, n, mi_adv, mi_clean, success, base_mi_adv=None, base_success=None):
    """An arm's rows and one-kind's (pool order: clean, adversarial), batches of five."""

    def rows(mi_a, succ):
        kind = np.repeat(["clean", "adversarial"], n)
        return {"attack": np.full(2 * n, "bim"), "eps": np.full(2 * n, 5.0), "kind": kind,
                "index": np.tile(np.arange(n), 2), "batch": np.arange(2 * n) // 5, "label": np.zeros(2 * n),
                "pred": np.zeros(2 * n), "label_changed": np.r_[np.full(n, np.nan), succ],
                "success": np.r_[np.full(n, np.nan), succ], "mutual_information": np.r_[mi_clean, mi_a],
                "predictive_entropy": np.r_[mi_clean, mi_a]}  # fmt: skip

    base = rows(mi_adv if base_mi_adv is None else base_mi_adv, success if base_success is None else base_success)
    return batching_report.claim_7c(arm, rows(mi_adv, success), base)


def test_claim_7c_columns_follow_the_rule_on_scores_whose_answer_is_known():
    rng = np.random.default_rng(0)
    n = 100
    clean = rng.random(n)
    ones = np.ones(n)
    high = _synthetic("mixed", n, clean + 2, clean, ones)  # every successful image above every clean one
    assert high["c7_lo"] > 0.5 and high["verdict"] == rules.HOLDS
    low = _synthetic("mixed", n, clean - 2, clean, ones, base_mi_adv=clean + 2)  # fell from one-kind's
    assert low["c7_hi"] < 0.6 and low["c7_change_hi"] < 0 and low["verdict"] == rules.DOES_NOT_HOLD
    same = _synthetic("mixed", n, clean - 2, clean, ones)  # low, but no fall from one-kind: not a failure
    assert same["c7_change"] == 0 and same["verdict"] == rules.INCONCLUSIVE
    few = _synthetic("mixed", n, clean + 2, clean, np.r_[np.ones(19), np.zeros(n - 19)])
    assert few["verdict"] == rules.NOT_TESTABLE
    both = _synthetic("mixed", n, clean - 2, clean, ones, base_mi_adv=clean + 2,
                      base_success=np.r_[np.ones(19), np.zeros(n - 19)])  # fmt: skip
    assert np.isnan(both["c7_change"]) and both["n_successful_both"] == 19 and both["verdict"] == rules.INCONCLUSIVE
    assert _synthetic("single", n, clean + 2, clean, ones)["verdict"] == ""  # not one of 7c's arms


def test_the_readme_block_renders_from_batching_csv(run):
    cfg, _, _ = run
    from uncertadv.experiments.claims import documents

    readme = cfg.folder / "README.md"
    readme.write_text("# x\n\n<!-- generated: batching batching -->\nSTALE\n<!-- end generated -->\n")
    text = documents._readme(cfg.folder.parent, readme)
    assert "STALE" not in text and all(f"| {arm} |" in text for arm in batching.ARMS)
    assert "no verdict (not one of 7c's arms)" in text
