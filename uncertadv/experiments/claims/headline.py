"""The ledger's first screen: a grid of claims by the settings a reader asks about first, and three
sentences generated from it, used by CLAIMS.md and by the top-level README ("What we found")."""

from __future__ import annotations

from uncertadv.experiments.claims import registry, rules

AS_CODED = "catsdogs-ablation/as-coded"
BATCHING = "catsdogs-ablation/batching"  # claim 7c: as-coded in the batchings a deployed detector meets
COLUMNS = (  # (setting in claims.csv, column title)
    ("mnist", "`mnist`"),
    ("catsdogs", "`catsdogs` (the paper's head, our trunk)"),
    (AS_CODED, "`as-coded`"),
    ("catsdogs-ablation/+head", "`+head`"),
    (BATCHING, "`as-coded`, deployed batchings (7c)"),
    ("catsdogs-small", "`catsdogs-small`"),
)
NOT_RUN = "is not judged yet (its experiment has not run)"


def verdicts(rows: list[dict]) -> dict[tuple[str, str], str]:
    """``{(claim, setting): combined verdict}`` from claims.csv's rows (a lone row stands for itself)."""
    out: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["claim"], r["setting"])
        if r["row"] == "all" or key not in out:
            out[key] = r["verdict"]
    return out


def grid(rows: list[dict]) -> list[str]:
    """A markdown table: one row per claim, one column per setting of COLUMNS; an empty cell where the
    claim has no row in that setting."""
    v = verdicts(rows)
    lines = ["| claim | " + " | ".join(title for _, title in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for claim in registry.CLAIMS:
        cells = [v.get((claim.id, setting), "") for setting, _ in COLUMNS]
        lines.append(f"| {claim.id}. {claim.text} | " + " | ".join(cells) + " |")
    return lines


def _said(verdict: str | None) -> str:
    """A verdict as it reads in a sentence."""
    return {None: NOT_RUN, rules.NOT_TESTABLE: "is not testable here"}.get(verdict, verdict)


def sentences(rows: list[dict]) -> list[str]:
    """The three headline sentences, every verdict read from the rows."""
    v = verdicts(rows)
    cd, ac = (lambda c: _said(v.get((c, "catsdogs")))), (lambda c: _said(v.get((c, AS_CODED))))
    batching = next((r for r in rows if (r["claim"], r["setting"], r["row"]) == ("7c", BATCHING, "all")), None)
    judged = [r for r in rows if r["claim"] == "7c" and r["row"] != "all"]  # none until batching.csv exists
    deployed = _said(batching["verdict"] if batching is not None and judged else None)
    testable = [r for r in judged if r["verdict"] != rules.NOT_TESTABLE]
    if judged and len(testable) < len(judged):  # a cut or a partial run: say how much the verdict rests on
        deployed += f" (on {len(testable)} of its {len(judged)} rows)"
    return [
        f"With the head the paper describes, on our trunk (`catsdogs`), MI detection (7a) {cd('7a')}; the paper's "
        f"AUCs (7b) {cd('7b')}; entropy below chance (6) {cd('6')}.",
        f"With the model the authors' code ran, rebuilt on our trunk (`as-coded`), 7a {ac('7a')}, 7b {ac('7b')}.",
        f"Among clean images, as a deployed detector meets them (`as-coded`, claim 7c), MI detection {deployed}.",
    ]


def findings(rows: list[dict]) -> str:
    """The top-level README's "What we found" block: the three sentences and where to read on."""
    lines = [f"- {s}" for s in sentences(rows)]
    ablation = "results/catsdogs-ablation/README.md"
    lines += ["", "Every verdict, its rule, interval and count: [results/CLAIMS.md](results/CLAIMS.md). The batch "
              f"quirk behind `as-coded`: [{ablation}]({ablation})."]  # fmt: skip
    return "\n".join(lines) + "\n"
