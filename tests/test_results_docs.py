"""The committed results cannot drift: every generated markdown re-renders from its CSV/JSON files
(staleness), every file under results/ is a record or covered by one (coverage), and README prose
holds no hand-copied number. Rendering only: no model, attack, training or bootstrap."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from uncertadv import artifacts
from uncertadv.cli import app
from uncertadv.experiments.claims import documents, ledger, provenance

RESULTS = Path(__file__).resolve().parent.parent / "results"


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """results/ without its figures, outside git (so the coverage walk lists every file)."""
    root = tmp_path_factory.mktemp("copy") / "results"
    shutil.copytree(RESULTS, root, ignore=shutil.ignore_patterns("*.png", "*.keras", "*.npz", "scores"))
    documents.render(root)  # current, whatever the checkout: these tests check the mechanism
    return root


def test_every_generated_file_renders_from_the_committed_files():
    stale = documents.stale(RESULTS)
    assert not stale, f"stale (run `uncertadv render`): {[str(p.relative_to(RESULTS)) for p in stale]}"


def test_every_results_file_is_a_record_or_covered_by_one():
    files = provenance.results_files(RESULTS)
    assert len(files) > 200  # the walk found the committed files
    missing = provenance.uncovered(files, set(documents.expected(RESULTS)))
    assert not missing, f"no record covers: {[str(p.relative_to(RESULTS)) for p in missing]}"


@pytest.mark.parametrize(
    "path, old, new, stale",
    [
        ("mnist/table1.csv", ",0.9", ",0.8", ["mnist/table1.md"]),  # a table cell
        # a verdict: CLAIMS.md and the README blocks of that setting
        ("claims.csv", ",mnist,all,,,,,holds,", ",mnist,all,,,,,does not hold,", ["CLAIMS.md", "mnist/README.md"]),
        ("mnist/adaptive.csv", ",0.", ",0.9", ["mnist/adaptive.md"]),
        ("mnist/models/cnn.json", '"wall_seconds": ', '"wall_seconds": 1', ["mnist/SUMMARY.md", "PROVENANCE.md"]),
    ],
)
def test_editing_one_number_in_a_source_makes_exactly_its_documents_stale(copy, path, old, new, stale):
    assert not documents.stale(copy)
    source = copy / path
    text = source.read_text()
    assert old in text
    source.write_text(text.replace(old, new, 1))
    try:
        assert sorted(str(p.relative_to(copy)) for p in documents.stale(copy)) == sorted(stale)
    finally:
        source.write_text(text)


def test_editing_one_number_in_a_generated_file_makes_it_stale(copy):
    md = copy / "mnist" / "table1.md"
    text = md.read_text()
    md.write_text(text.replace("0.9", "0.8", 1))
    try:
        assert documents.stale(copy) == [md]
        result = CliRunner().invoke(app, ["render", "--results", str(copy), "--check"])
        assert result.exit_code == 1 and "stale" in result.output
        result = CliRunner().invoke(app, ["render", "--results", str(copy)])
        assert result.exit_code == 0, result.output
        assert md.read_text() == text  # rendered back from table1.csv
    finally:
        md.write_text(text)


def test_coverage_fails_on_a_stray_file_and_on_a_figure_without_its_record(copy):
    generated = set(documents.expected(copy))
    assert provenance.uncovered(provenance.results_files(copy), generated) == []
    stray = copy / "mnist" / "notes.csv"
    stray.write_text("a,b\n1,2\n")
    figure = copy / "mnist" / "extra_figure.png"
    figure.write_bytes(b"png")
    try:
        assert set(provenance.uncovered(provenance.results_files(copy), generated)) == {stray, figure}
    finally:
        stray.unlink()
        figure.unlink()


def test_a_record_covers_what_it_lists_and_a_sidecar_only_its_own_artefact(tmp_path):
    listing = {"command": "uncertadv x", "versions": {"git_commit": "abc"}, "outputs": ["a.csv"]}
    sidecar = {"command": "uncertadv y", "versions": {"git_commit": "abc"}}
    (tmp_path / "run.json").write_text(json.dumps(listing))
    (tmp_path / "fig.json").write_text(json.dumps(sidecar))
    for name in ("a.csv", "run.png", "b.csv", "fig.png", "fig.txt", "README.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "plain.json").write_text("{}")  # JSON without provenance is no record
    files = sorted(tmp_path.iterdir())
    missing = provenance.uncovered(files, set())
    assert missing == [tmp_path / n for n in ("b.csv", "fig.txt", "plain.json", "run.png")]


def test_every_recorded_sha256_matches_the_committed_file():
    """A figure or scores.csv replaced without its record fails here."""
    checked = 0
    for path in provenance.results_files(RESULTS, untracked=False):
        record = provenance.read_record(path)
        if record is None or "sha256" not in record:
            continue
        if record.get("outputs"):
            target = path.with_name(record["outputs"][0])
        else:  # a same-stem artefact; a model's record (its .keras is not committed) has nothing here to check
            target = next((path.with_suffix(s) for s in (".csv", ".png") if path.with_suffix(s).is_file()), None)
            if target is None and path.with_suffix(".keras").name in record.get("outputs", [path.stem + ".keras"]):
                continue
        assert target is not None, f"{path} records a sha256 of no committed file"
        assert artifacts.file_sha256(target) == record["sha256"], f"{target} is not the file {path.name} records"
        checked += 1
    assert checked > 10  # the figures and scores.csv files


def test_readme_prose_holds_no_hand_copied_number():
    for readme in sorted(RESULTS.rglob("README.md")):
        loose = documents.loose_numbers(readme.read_text())
        assert not loose, f"{readme.relative_to(RESULTS)}: numbers in prose {loose}; render them or drop them"


def test_loose_numbers_finds_decimals_percentages_and_counts_outside_code_and_generated_blocks():
    text = (
        "MI AUC 0.313, 75 % evade, 29 of 200 digits, eps 76 and 3 epochs.\n"
        "`--eps 0.3` and ```\nuncertadv attack --eps 0.5\n```\n"
        "<!-- generated: claims mnist -->\n| 7a | 0.66 |\n<!-- end generated -->\n"
    )
    assert documents.loose_numbers(text) == ["0.313", "75 %", "29 of 200"]


def test_a_readme_block_holds_each_claims_verdict_in_its_setting(copy):
    text = (copy / "mnist" / "README.md").read_text()  # rendered by the fixture
    rows = {(r["claim"], r["row"]): r["verdict"] for r in ledger.read_rows(copy / "claims.csv")
            if r["setting"] == "mnist"}  # fmt: skip
    block = text.split("<!-- generated: claims mnist -->\n")[1].split("<!-- end generated -->")[0]
    assert f"| 6. MC entropy AUC is below 0.5 under BIM/MIM | {rows[('6', 'all')]} |" in block.splitlines()
    assert len(block.splitlines()) == 2 + len({c for c, _ in rows})  # header, rule, one line per claim


def test_benchmarks_md_is_its_records_markdown(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    record = {"command": "python benchmarks/mc_speed.py", "versions": {}, "markdown": "## MC\n\nfast"}
    (tmp_path / "benchmarks" / "mc_speed.json").write_text(json.dumps(record))
    text = documents.benchmarks_markdown(tmp_path)
    assert text.startswith("# Benchmarks") and "<!-- mc_speed:start -->\n## MC\n\nfast\n<!-- mc_speed:end -->" in text


def test_plot_adaptive_draws_the_evasion_figure_with_its_record_when_the_attack_images_are_missing(tmp_path):
    """The suite's figures from its CSVs alone (constructed here); the gallery needs the attack images, which a
    checkout lacks, so it is skipped and said so. A folder of the 10-step protocol gets a one-line error."""
    base = {"eps": 76.0, "predictor": "mc", "measure": "mutual_information", "tail": "upper", "n": 10,
            "success_rate": 0.9}  # fmt: skip
    rows = [{**base, "attack": "pgd", "attacker": "", "evasion_rate": 0.5, "evasion_rate_lo": 0.2,
             "evasion_rate_hi": 0.8},
            {**base, "attack": "worst-case", "attacker": "known", "evasion_rate": 0.8, "evasion_rate_lo": 0.5,
             "evasion_rate_hi": 0.95}]  # fmt: skip
    artifacts.write_csv(tmp_path / "adaptive.csv", {k: [r[k] for r in rows] for k in rows[0]})
    curve = {"eps": [76.0] * 3, "predictor": ["mc"] * 3, "measure": ["mutual_information"] * 3, "tail": ["upper"] * 3,
             "attacker": ["known"] * 3, "objective": ["hinge"] * 3, "iterate": [0, 5, 10], "n_attacked": [4] * 3,
             "n_evading": [0, 2, 3]}  # fmt: skip
    artifacts.write_csv(tmp_path / "adaptive_curves.csv", curve)
    artifacts.write_json(tmp_path / "adaptive.json", {"config": {"tails": ["upper"]}})
    result = CliRunner().invoke(app, ["plot", "adaptive", "--dataset", "mnist", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "gallery skipped" in result.output
    record = json.loads((tmp_path / "adaptive_evasion.json").read_text())
    assert record["outputs"] == ["adaptive_evasion.png"] and "adaptive.csv" in record["inputs"]
    assert (tmp_path / "adaptive_curves.png").is_file() and not (tmp_path / "adaptive_gallery.png").exists()
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(RESULTS / "mnist-adaptive-100" / "adaptive.csv", legacy / "adaptive.csv")
    shutil.copy(RESULTS / "mnist-adaptive-100" / "adaptive.json", legacy / "adaptive.json")
    result = CliRunner().invoke(app, ["plot", "adaptive", "--dataset", "mnist", "--results", str(legacy)])
    assert result.exit_code == 2 and "10-step protocol" in result.stderr, result.output
