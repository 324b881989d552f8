"""CLAIMS.md's first screen and its history: the grid and the three sentences come from claims.csv, the
README's "What we found" from the same rows, and every verdict moved by a revision is listed with the
verdict before and after."""

import shutil
from pathlib import Path

from uncertadv import artifacts
from uncertadv.experiments.claims import documents, headline, ledger, revisions, rules

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _r(claim, setting, verdict, row="all"):
    return ledger._row(claim, setting, row, float("nan"), float("nan"), float("nan"), None, verdict, "", "")


def test_the_grid_and_sentences_read_every_verdict_from_the_rows():
    rows = [_r("7a", "catsdogs", rules.HOLDS), _r("7b", "catsdogs", rules.DOES_NOT_HOLD),
            _r("6", "catsdogs", rules.MIXED), _r("7a", headline.AS_CODED, rules.INCONCLUSIVE),
            _r("7c", headline.BATCHING, rules.NOT_TESTABLE),
            _r("7c", headline.BATCHING, rules.NOT_TESTABLE, row="mixed: bim eps 5")]  # fmt: skip
    rows[-2]["reason"] = "fewer than 20 successful images in every row"
    first, second, third = headline.sentences(rows)
    assert "(7a) holds; the paper's AUCs (7b) does not hold; entropy below chance (6) mixed." in first
    assert "7a inconclusive, 7b is not judged yet (its experiment has not run)." in second
    assert third.endswith("MI detection is not testable here (on 0 of its 1 rows).")
    # no row of 7c's own: the experiment has not run, whatever the combined row's reason says
    assert headline.sentences(rows[:-1])[2].endswith("MI detection is not judged yet (its experiment has not run).")
    table = headline.grid(rows)
    assert table[0].count("|") == len(headline.COLUMNS) + 2 and len(table) == 2 + len(rules_claims())
    row_7a = next(line for line in table if line.startswith("| 7a."))
    assert row_7a.split(" | ")[1:4] == ["", "holds", "inconclusive"]  # mnist empty, catsdogs, as-coded


def rules_claims():
    from uncertadv.experiments.claims import registry

    return registry.CLAIMS


def test_a_moved_verdict_is_listed_with_the_revision_that_owns_its_claim():
    before = [_r("8", "mnist", rules.HOLDS), _r("8", "mnist", rules.HOLDS, row="a"), _r("2", "mnist", rules.MIXED),
              _r("5", "mnist", rules.HOLDS), _r("12a", "gone", rules.HOLDS)]  # fmt: skip
    after = [_r("8", "mnist", rules.INCONCLUSIVE), _r("2", "mnist", rules.MIXED), _r("5", "mnist", rules.HOLDS),
             _r("12a", "new", rules.HOLDS)]  # fmt: skip
    assert revisions.changes(before, after) == [
        {"revision": 4, "claim": "8", "setting": "mnist", "before": rules.HOLDS, "after": rules.INCONCLUSIVE}
    ]


def test_claims_md_opens_with_the_grid_and_names_the_order_of_rules_and_results(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    shutil.copy(RESULTS / "claims.csv", root / "claims.csv")
    rows = ledger.read_rows(root / "claims.csv")
    text = ledger.markdown(rows, root)
    assert text.splitlines()[2] == headline.grid(rows)[0]  # the first screen: the grid, then the sentences
    assert headline.sentences(rows)[0] in text
    assert "No earlier ledger" in text and "| mnist | 439e739 | cd175e5 | results |" in text
    moved = [r if r["claim"] != "8" or r["setting"] != "catsdogs" or r["row"] != "all" else
             {**r, "verdict": rules.MIXED} for r in rows]  # fmt: skip
    artifacts.write_csv(root / revisions.BEFORE, {c: [r[c] for r in moved] for c in ledger.COLUMNS})
    text = ledger.markdown(rows, root)
    verdict = next(r["verdict"] for r in rows if (r["claim"], r["setting"], r["row"]) == ("8", "catsdogs", "all"))
    assert f"| 4 | 8 | catsdogs | mixed | {verdict} |" in text


def test_the_readme_findings_block_renders_from_claims_csv(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    shutil.copy(RESULTS / "claims.csv", root / "claims.csv")
    (tmp_path / "README.md").write_text("# x\n\n<!-- generated: findings claims -->\nSTALE\n<!-- end generated -->\n")
    expected = documents.expected(root)[tmp_path / "README.md"]
    for sentence in headline.sentences(ledger.read_rows(root / "claims.csv")):
        assert f"- {sentence}" in expected
    assert "STALE" not in expected and not documents.loose_numbers(expected)
    assert len(expected.splitlines()) <= 15


def test_the_deployed_sentence_says_how_many_of_7cs_rows_it_rests_on():
    rows = [_r("7c", headline.BATCHING, rules.HOLDS), _r("7c", headline.BATCHING, rules.HOLDS, row="mixed: bim eps 5"),
            _r("7c", headline.BATCHING, rules.NOT_TESTABLE, row="mixed: bim eps 10")]  # fmt: skip
    assert headline.sentences(rows)[2].endswith("MI detection holds (on 1 of its 2 rows).")
