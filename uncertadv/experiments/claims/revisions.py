"""What the ledger's own history owes a reader: when each setting's rules were committed against the
results they judge, and every change that moved a verdict after its results existed, with the verdict
before and after.

Past revisions (``PAST``) name their verdicts as the committed claims.csv showed them at the commits
given. This issue's revisions (``REVISIONS``) read the verdict before from ``BEFORE``, the ledger's
claims.csv as it stood before them (commit ``BEFORE_COMMIT``), and the verdict after from the rows
just measured, so neither side is typed by hand.
"""

from __future__ import annotations

import dataclasses

from uncertadv.experiments.claims import rules

RULES_COMMIT = "439e739"  # the numbered claims and verdict rules (issue 17)
BEFORE = "claims-before-revisions.csv"
BEFORE_COMMIT = "99364ac"


@dataclasses.dataclass(frozen=True)
class Order:
    """Which came first for one setting: the rule's commit or the commit of the results it judges."""

    setting: str
    rule: str
    results: str
    first: str  # "rule" or "results"
    note: str


ORDERS = (
    Order("mnist", RULES_COMMIT, "cd175e5", "results",
          "scores.csv at cd175e5; test_scores.csv (9e21188), the midpoints, latent grid and holes (25ee1ab) earlier "
          "still; holes_grid.csv (claim 4, 6d0129b) and the adaptive suite's files (1e8b427) after the rule"),
    Order("catsdogs", RULES_COMMIT, "cd175e5", "results",
          "scores.csv at cd175e5; test_scores.csv (claim 9, 6d0129b) and the adaptive suite (8733276) after the rule"),
    Order("catsdogs-small", RULES_COMMIT, "25ee1ab", "results", "scores.csv at 25ee1ab"),
    Order("catsdogs-ablation/*", "28a4777", "d6c9571", "rule",
          "the variants' rules (claim 9 on the clean images) at 28a4777, their scores.csv at d6c9571"),
    Order("catsdogs-ablation/as-coded (12a, 12b)", "e5b2b39", "ecbf1a7", "results",
          "the suite ran at 87a83eb, before the ledger learned to judge a variant's adaptive rows (e5b2b39); "
          "its rows were committed after"),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Past:
    """A change made after its results existed that moved a verdict, as claims.csv recorded it."""

    name: str
    code: str
    results: str
    claim: str
    setting: str
    row: str
    before: str
    after: str


PAST = (
    Past("bootstrap rounds: each Bonferroni tail holds 50 draws", "4239bf1", "cbe7fe3", "11", "catsdogs-small",
         "mim eps 5", rules.DOES_NOT_HOLD, rules.INCONCLUSIVE),
    Past("the fresh attacker judges each EOT draw alone and keeps the majority", "5c8c319", "1e8b427", "12b", "mnist",
         "all", rules.MIXED, rules.HOLDS),
    Past("the fresh attacker judges each EOT draw alone and keeps the majority", "5c8c319", "1e8b427", "12a", "mnist",
         "all", rules.HOLDS, rules.INCONCLUSIVE),
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Revision:
    """A rule changed by issue 28 after its results existed; ``claims``: those whose verdicts it moves."""

    number: int
    name: str
    claims: tuple[str, ...]


REVISIONS = (
    Revision(1, "claim 12 takes its Bonferroni correction, recomputed from adaptive_images.csv", ("12a", "12b")),
    Revision(3, "claim 2 near the data; claims 2, 3, 4 take a bootstrap over 10 x 10 tiles", ("2", "3", "4")),
    Revision(4, "paired rates by an exact McNemar test; fewer than 20 discordant images: inconclusive",
             ("8", "9", "10a", "10b")),
    Revision(5, "claims 6-10 on MNIST labelled an extension; 11, 12a, 12b future work (labels, no verdict moves)",
             ()),
    Revision(6, "combined rows count the rows judged and name the untestable ones (wording, no verdict moves)", ()),
    Revision(7, "claim 7b over head seeds: mean, seed and bootstrap and paper variance, Welch-Satterthwaite; holds "
             "within +-0.05", ("7b",)),
)  # fmt: skip


def changes(before: list[dict], after: list[dict]) -> list[dict]:
    """Every (revision, claim, setting) whose combined verdict moved from ``before`` to ``after`` (claims.csv
    rows), attributed to the revision that owns the claim: ``{"revision", "claim", "setting", "before",
    "after"}``. A setting present on one side only is left out."""
    old = {(r["claim"], r["setting"]): r["verdict"] for r in before if r["row"] == "all"}
    new = {(r["claim"], r["setting"]): r["verdict"] for r in after if r["row"] == "all"}
    owner = {}
    for revision in REVISIONS:
        for claim in revision.claims:
            owner.setdefault(claim, revision.number)
    out = []
    for key in [k for k in new if k in old and old[k] != new[k]]:
        out.append({"revision": owner.get(key[0]), "claim": key[0], "setting": key[1], "before": old[key],
                    "after": new[key]})  # fmt: skip
    return out


def markdown(before: list[dict] | None, after: list[dict]) -> list[str]:
    """CLAIMS.md's section on the order of rules and results, and on every revision; ``before``: the rows
    of the earlier ledger (``BEFORE``), None where it is not at hand."""
    lines = ["## When the rules were fixed, and every revision", "",
             "| setting | rule committed | results committed | first | note |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {o.setting} | {o.rule} | {o.results} | {o.first} | {o.note} |" for o in ORDERS]
    lines += ["", "Changes that moved a verdict after its results existed, before issue 28:", "",
              "| change | code | results | claim | setting | row | before | after |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {p.name} | {p.code} | {p.results} | {p.claim} | {p.setting} | {p.row} | {p.before} | {p.after} |"
              for p in PAST]  # fmt: skip
    lines += ["", "Issue 28's revisions, each labelled in its claim's rule:", ""]
    lines += [f"- Revision {r.number}: {r.name}" for r in REVISIONS]
    if before is None:
        return lines + ["", f"No earlier ledger ({BEFORE}) to compare verdicts with.", ""]
    moved = changes(before, after)
    lines += ["", f"Combined verdicts that moved, against the ledger at {BEFORE_COMMIT} (`{BEFORE}`):", "",
              "| revision | claim | setting | before | after |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {m['revision']} | {m['claim']} | {m['setting']} | {m['before']} | {m['after']} |" for m in moved]
    return lines + [""]
