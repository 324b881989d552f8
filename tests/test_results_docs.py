"""The committed results cannot drift: every generated markdown re-renders from its CSV/JSON files
(staleness), every file under results/ is a record or covered by one (coverage), and README prose
holds no hand-copied number. Rendering only: no model, attack, training or bootstrap."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

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
    "path, old, new",
    [
        ("mnist/table1.csv", ",0.9", ",0.8"),  # a table cell: table1.md no longer renders from it
        ("claims.csv", ",holds,", ",does not hold,"),  # a verdict: CLAIMS.md and the README blocks
        ("mnist/adaptive.csv", ",0.", ",0.9"),
        ("mnist/models/cnn.json", '"wall_seconds": ', '"wall_seconds": 1'),  # SUMMARY.md and PROVENANCE.md
    ],
)
def test_editing_one_number_in_a_source_makes_its_documents_stale(copy, path, old, new):
    assert not documents.stale(copy)
    source = copy / path
    text = source.read_text()
    assert old in text
    source.write_text(text.replace(old, new, 1))
    try:
        assert documents.stale(copy)
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


def test_coverage_fails_on_a_stray_file_and_on_a_figure_without_its_sidecar(copy):
    generated = set(documents.expected(copy))
    stray = copy / "mnist" / "notes.csv"
    stray.write_text("a,b\n1,2\n")
    sidecar = copy / "mnist" / "roc_bim_eps76.json"
    saved = sidecar.read_text()
    figure = copy / "mnist" / "roc_bim_eps76.png"
    figure.write_bytes(b"png")
    sidecar.unlink()
    try:
        assert set(provenance.uncovered(provenance.results_files(copy), generated)) == {stray, figure}
    finally:
        stray.unlink()
        figure.unlink()
        sidecar.write_text(saved)


def test_a_record_covers_what_it_lists_and_its_sidecar_file(tmp_path):
    record = {"command": "uncertadv x", "versions": {"git_commit": "abc"}, "outputs": ["a.csv"]}
    (tmp_path / "run.json").write_text(json.dumps(record))
    for name in ("a.csv", "run.png", "b.csv", "README.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "plain.json").write_text("{}")  # JSON without provenance is no record
    files = sorted(tmp_path.iterdir())
    assert provenance.uncovered(files, set()) == [tmp_path / "b.csv", tmp_path / "plain.json"]


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


def test_a_readme_block_renders_each_claims_verdict_in_its_setting(copy):
    readme = copy / "mnist" / "README.md"
    text = readme.read_text()
    assert "<!-- generated: claims mnist -->" in text
    rows = {(r["claim"], r["row"]): r["verdict"] for r in ledger.read_rows(copy / "claims.csv")
            if r["setting"] == "mnist"}  # fmt: skip
    block = documents.claims_block(copy, "mnist")
    assert f"| 6. MC entropy AUC is below 0.5 under BIM/MIM | {rows[('6', 'all')]} |" in block


def test_benchmarks_md_is_its_records_markdown(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    record = {"command": "python benchmarks/mc_speed.py", "versions": {}, "markdown": "## MC\n\nfast"}
    (tmp_path / "benchmarks" / "mc_speed.json").write_text(json.dumps(record))
    text = documents.benchmarks_markdown(tmp_path)
    assert text.startswith("# Benchmarks") and "<!-- mc_speed:start -->\n## MC\n\nfast\n<!-- mc_speed:end -->" in text


def test_plot_adaptive_draws_the_evasion_figure_with_its_record_when_the_attack_images_are_missing(tmp_path):
    shutil.copy(RESULTS / "mnist" / "adaptive.csv", tmp_path / "adaptive.csv")
    result = CliRunner().invoke(app, ["plot", "adaptive", "--dataset", "mnist", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "galleries skipped" in result.output
    record = json.loads((tmp_path / "adaptive_evasion.json").read_text())
    assert record["outputs"] == ["adaptive_evasion.png"] and "adaptive.csv" in record["inputs"]
    assert (tmp_path / "adaptive_evasion.png").is_file() and not (tmp_path / "adaptive_gallery.png").exists()
