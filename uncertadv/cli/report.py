"""``uncertadv report``: Table 1, end to end; with --adaptive, the adaptive attacks' table."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from uncertadv.cli._common import (
    SAMPLES_TABLE,
    ClassesOption,
    ColorModeOption,
    DataOption,
    DistributeOption,
    FromLogitsOption,
    ImageSizeOption,
    ModelOption,
    PixelMaxOption,
    Results,
    comma_list,
    distributed,
    echo,
    eps_warning,
    own_data,
    quiet_tensorflow,
    refuse_unused,
)

ABLATION_ONLY = ("backbone", "weights")
ADAPTIVE_ONLY = ("measures", "iterations", "tails", "holes", "restarts", "all_configs")
OWN_DATA = ("model", "data", "pixel_max", "image_size", "from_logits", "classes", "color_mode")


def report(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(help="Data set whose Table 1 to build: mnist or catsdogs.")] = "mnist",
    methods: Annotated[str, typer.Option(help="Comma-separated attacks.")] = "fgm,bim,mim,pgd",
    eps: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated budgets, 0-255 units (default: mnist 5,10,76; catsdogs and your own data 5,10; "
            "with --adaptive: mnist 76,128, others 5,10; the as-coded gate: 5).",
            show_default=False,
        ),
    ] = None,
    predictors: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated predictors (default: all that the model allows; with --adaptive: mc,ensemble).",
            show_default=False,
        ),
    ] = None,
    n: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Images per kind, drawn apart: 3n test images (default: the paper's 200; with "
            "--data, the largest n up to 200 that fits).",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help=SAMPLES_TABLE)] = 20,
    seed: Annotated[int, typer.Option(help="Attacker and index seed (evaluator: SEED + 1000000).")] = 0,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap rounds for the AUC intervals.")] = 1000,
    results: Results = None,
    model: ModelOption = None,
    data: DataOption = None,
    pixel_max: PixelMaxOption = 1.0,
    image_size: ImageSizeOption = None,
    from_logits: FromLogitsOption = False,
    classes: ClassesOption = None,
    color_mode: ColorModeOption = None,
    adaptive: Annotated[
        bool,
        typer.Option(
            help="Instead of Table 1: the adaptive suite, the per-image worst case of a detector-aware attacker "
            "against upper and two-sided detectors at 5% FPR (RESULTS/adaptive.{csv,md,json}; on MNIST also "
            "the latent-grid holes, RESULTS/hole_grid.csv)."
        ),
    ] = False,
    measures: Annotated[
        str, typer.Option(help="With --adaptive: comma-separated measures of the detectors.")
    ] = "predictive_entropy,mutual_information,softmax_variance",
    iterations: Annotated[
        int, typer.Option(min=1, help="With --adaptive: iterations of every attack of the suite (calibration: half).")
    ] = 100,
    tails: Annotated[
        str, typer.Option(help="With --adaptive: comma-separated detector tails (upper, two-sided).")
    ] = "upper,two-sided",
    holes: Annotated[
        bool, typer.Option(help="With --adaptive on MNIST: count the holes on the latent grid too.")
    ] = True,
    restarts: Annotated[
        int, typer.Option(min=0, help="With --adaptive: restarts of each cascade stage where an image still fails.")
    ] = 2,
    all_configs: Annotated[
        bool,
        typer.Option(
            help="With --adaptive: run the cascade even where PGD already evades wherever it succeeds (by default "
            "such a configuration is skipped, and adaptive.md says so)."
        ),
    ] = False,
    render: Annotated[
        bool,
        typer.Option(
            help="Only re-render table1.{csv,md} from the folder's scores.csv and table1.json (no model, no attack)."
        ),
    ] = False,
    variant: Annotated[
        Optional[str],
        typer.Option(
            help="Cats vs dogs only: one variant of the issue-18 ablation (today, as-coded, +head, ...; "
            "RESULTS: results/catsdogs-ablation/VARIANT/; then ablation.{csv,md} from every variant found). With --adaptive and as-coded: the gate, its MI "
            "detector's TPR against the suite's PGD (RESULTS/as-coded/adaptive_gate.{csv,json}), and where it "
            "passes the suite on it, in batches of 5 (RESULTS/as-coded/adaptive.{csv,json}; --tails, --calibration).",
            show_default=False,
        ),
    ] = None,
    ablation: Annotated[
        bool,
        typer.Option(
            help="Cats vs dogs only: every variant of the ablation, then ablation.{csv,md} "
            "(RESULTS: results/catsdogs-ablation)."
        ),
    ] = False,
    backbone: Annotated[
        str, typer.Option(help="With --variant/--ablation: efficientnet-lite0 (offline) or resnet50.")
    ] = "efficientnet-lite0",
    weights: Annotated[
        str,
        typer.Option(help="With --variant/--ablation: 'imagenet', a local weights file (.h5 for resnet50), or none."),
    ] = "imagenet",
    calibration: Annotated[
        str,
        typer.Option(
            help="With --adaptive --variant as-coded: the suite's settings calibrated on the as-coded network "
            "('own') or taken from the features head's calibration at the same eps ('features-head', "
            "results/catsdogs/adaptive; a cut, as the as-coded network costs hours to calibrate)."
        ),
    ] = "own",
    batching: Annotated[
        Optional[str],
        typer.Option(
            help="With --variant as-coded: score the ablation's as-coded images under one batching ARM "
            "(one-kind, one-kind-regrouped, mixed, one-adversarial, single, crafted-mixed, inference; issue 28), "
            "one-kind always beside it (RESULTS: results/catsdogs-ablation/batching/).",
            show_default=False,
        ),
    ] = None,
    batchings: Annotated[
        Optional[str],
        typer.Option(help="With --variant as-coded: 'all' runs every batching arm.", show_default=False),
    ] = None,
    head_seed: Annotated[
        int,
        typer.Option(
            help="With --variant: train the head with seed N (its initialisation, dropout and block order; the "
            "images, attacks' and evaluator's keys stay), into models/head-...-sN.keras, and make the MC BIM and "
            "MIM sets claim 7b reads, into RESULTS/seeds/VARIANT-sN/ (issue 28).",
        ),
    ] = 0,
    distribute: DistributeOption = None,
    force: Annotated[bool, typer.Option(help="Recompute every attack set and score.")] = False,
) -> None:
    """Table 1: train what is missing, attack, score, and write RESULTS/table1.{csv,md,json} and scores.csv.

    With no options this is the full MNIST table; finished attack sets and scores are reused.
    With --model and --data, the same table for your own model and data (RESULTS: results/own).
    With --adaptive, instead: the adaptive suite against upper and two-sided detectors at 5% FPR, PGD
    and the per-image worst case of a detector-aware attacker (RESULTS/adaptive.{csv,md,json}; on MNIST
    also the holes on the VAE's latent grid, RESULTS/hole_grid.csv)."""
    if distribute is not None and (adaptive or ablation or variant):
        raise ValueError("--distribute splits Table 1's scoring and gradient attacks; --adaptive, --ablation and "
                         "--variant run on one worker")  # fmt: skip
    quiet_tensorflow()
    distributed(ctx, distribute)
    from uncertadv import artifacts
    from uncertadv.attacks import METHODS
    from uncertadv.experiments import own
    from uncertadv.experiments.adaptive import protocol, suite
    from uncertadv.experiments.adaptive import report as adaptive_report
    from uncertadv.experiments.layout import DEFAULT_EPS, DEFAULT_N, Layout, own_layout
    from uncertadv.experiments.table1 import report as pipeline
    from uncertadv.predictors import PREDICTORS

    if n is None and (data is None or adaptive):  # with --data, Table 1 takes the largest n that fits its images
        n = DEFAULT_N
    not_own = tuple(o for o in OWN_DATA if o != "image_size")
    if adaptive and variant is not None:  # the as-coded variant's gate (issue 19)
        refuse_unused(ctx, ("methods", "predictors", "measures", "holes", "restarts", "all_configs", "render",
                            "ablation", "force", "head_seed", *not_own), "--adaptive --variant (the as-coded gate and suite)")  # fmt: skip
        _gate(dataset, variant, eps, iterations, n, samples, seed, bootstrap, results, image_size, backbone, weights,
              tails, calibration)  # fmt: skip
        return
    refuse_unused(ctx, ("calibration",), "this mode (only --adaptive --variant as-coded takes it)")
    if batching is not None or batchings is not None:  # issue 28: the batch-composition experiment
        refuse_unused(ctx, ("methods", "predictors", "adaptive", "render", "ablation", "force", "head_seed",
                            *ADAPTIVE_ONLY, *not_own), "--batching/--batchings (the experiment's fixed grid)")  # fmt: skip
        _batching(dataset, variant, batching, batchings, eps, n, samples, seed, bootstrap, results, image_size,
                  backbone, weights)  # fmt: skip
        return
    if variant is not None or ablation:
        ignored = ("methods", "eps", "predictors", "adaptive", "render", *ADAPTIVE_ONLY, *not_own)
        refuse_unused(ctx, ignored, "--variant/--ablation (the ablation's fixed grid)")
        if head_seed and variant is None:
            raise ValueError("--head-seed trains one variant's head: add --variant NAME")
        _ablation(dataset, variant, ablation, n, samples, seed, bootstrap, results, image_size, backbone, weights,
                  force, head_seed)  # fmt: skip
        return
    refuse_unused(ctx, (*ABLATION_ONLY, "head_seed"), "Table 1 and --adaptive (only --variant/--ablation)")
    if render:
        refuse_unused(ctx, ("methods", "eps", "predictors", "n", "samples", "seed", "bootstrap", "force",
                            *ADAPTIVE_ONLY), "--render")  # fmt: skip
    elif adaptive:
        refuse_unused(ctx, ("methods",), "--adaptive (PGD and the detector-aware objectives)")
    else:
        refuse_unused(ctx, ADAPTIVE_ONLY, "Table 1 (only --adaptive)")
    options = own_data(model, data, pixel_max, image_size, from_logits, classes, color_mode)
    layout = own_layout(results) if options else Layout.of(dataset, results)
    if render:
        if adaptive:
            raise ValueError("--render re-renders Table 1; it does not take --adaptive")
        for path in pipeline.render(layout):
            echo(f"wrote {path}")
        typer.echo(layout.table1("md").read_text())
        return
    allowed = own.allowed_predictors(model) if options else PREDICTORS
    defaults = protocol.DEFAULT_EPS if adaptive else DEFAULT_EPS
    try:
        eps_list = tuple(float(e) for e in eps.split(",")) if eps else defaults.get(layout.dataset, (5.0, 10.0))
    except ValueError:
        raise ValueError(f"--eps must be comma-separated numbers, got {eps!r}") from None
    for e in eps_list:
        eps_warning(e)
    common = dict(layout=layout, eps=eps_list, n=n, samples=samples, seed=seed, bootstrap=bootstrap, force=force,
                  model=model, data=options)  # fmt: skip
    if adaptive:
        sampled = tuple(p for p in allowed if p != "deterministic")
        cfg = adaptive_report.AdaptiveConfig(
            predictors=comma_list(predictors, sampled, "predictor") if predictors else sampled,
            measures=comma_list(measures, protocol.MEASURES_ALLOWED, "measure"),
            tails=comma_list(tails, suite.TAILS, "tail"),
            steps=iterations,
            calibration_steps=max(1, iterations // 2),
            holes=holes,
            skip_evaded=not all_configs,
            restarts=restarts,
            **common,
        )
        run, table = adaptive_report.run, "adaptive.md"
    else:
        cfg = pipeline.TableConfig(
            methods=comma_list(methods, METHODS, "method"),
            predictors=comma_list(predictors, PREDICTORS, "predictor") if predictors else allowed,
            **common,
        )
        run, table = pipeline.run, "table1.md"
    _, outputs = run(cfg)
    record = artifacts.read_json(outputs[-1]) if outputs[-1].suffix == ".json" else {}
    if "attack_sets_reused" in record:
        echo(f"attack sets: {record['attack_sets_built']} made, {record['attack_sets_reused']} reused (same config, "
             "models and data contents)")  # fmt: skip
    for path in outputs:
        echo(f"wrote {path}")
    typer.echo((layout.folder / table).read_text())


def _ablation_config(dataset, n, samples, seed, bootstrap, results, image_size, backbone, weights, head_seed=0):
    from pathlib import Path

    from uncertadv.experiments.catsdogs import ablation
    from uncertadv.experiments.layout import results_root

    if dataset != "catsdogs":
        raise ValueError("--variant and --ablation are cats-vs-dogs experiments: add --dataset catsdogs")
    return ablation.AblationConfig(
        folder=Path(results) if results else results_root() / "catsdogs-ablation",
        backbone=backbone,
        weights=None if weights.lower() == "none" else weights,
        image_size=image_size or 224,
        n=n,
        samples=samples,
        seed=seed,
        bootstrap=bootstrap,
        head_seed=head_seed,
    )


def _gate(dataset, variant, eps, iterations, n, samples, seed, bootstrap, results, image_size, backbone,
          weights, tails, calibration) -> None:  # fmt: skip
    """Whether the as-coded variant's MI detector catches the suite's PGD at all (issue 19's gate), and
    where it does, the suite on it."""
    from uncertadv import artifacts
    from uncertadv.experiments.adaptive import as_coded_gate, as_coded_suite, suite

    cfg = _ablation_config(dataset, n, samples, seed, bootstrap, results, image_size, backbone, weights)
    if variant != as_coded_gate.VARIANT:
        raise ValueError(f"the adaptive gate runs on the {as_coded_gate.VARIANT} variant only, got {variant!r}")
    try:
        eps_list = tuple(float(e) for e in eps.split(",")) if eps else as_coded_gate.GateConfig.eps
    except ValueError:
        raise ValueError(f"--eps must be comma-separated numbers, got {eps!r}") from None
    for e in eps_list:
        eps_warning(e)
    if calibration not in ("own", "features-head"):
        raise ValueError(f"--calibration is own or features-head, got {calibration!r}")
    gate_cfg = as_coded_gate.GateConfig(ablation=cfg, eps=eps_list, steps=iterations)
    suite_cfg = suite.SuiteConfig(layout=None, tails=comma_list(tails, suite.TAILS, "tail"), steps=iterations,
                                  calibration_steps=max(1, iterations // 2), n=n, samples=samples, seed=seed)  # fmt: skip
    outputs = as_coded_gate.run(gate_cfg)
    for path in outputs:
        echo(f"wrote {path}")
    table = artifacts.read_csv(outputs[0])
    for i, passes in enumerate(table["passes"]):
        row = {k: v[i] for k, v in table.items()}
        verdict = ("passes: the suite runs on it" if passes == "True"
                   else "fails: the issue skips the suite on it")  # fmt: skip
        tpr = ("n/a (no successful image)" if row["tpr"] == ""
               else f"{float(row['tpr']):.3f} [{float(row['tpr_lo']):.3f}, {float(row['tpr_hi']):.3f}]")  # fmt: skip
        echo(f"eps {row['eps']}: MI detector TPR against PGD {tpr} on {row['n_successful']} successful images; "
             f"gate (lower end > {row['gate']}) {verdict}")  # fmt: skip
    passing = [float(e) for e, p in zip(table["eps"], table["passes"]) if p == "True"]
    if passing:
        for path in as_coded_suite.run(gate_cfg, suite_cfg, calibration, passing):
            echo(f"wrote {path}")
        typer.echo(as_coded_suite.findings(cfg.folder))


def _batching(dataset, variant, arm, every, eps, n, samples, seed, bootstrap, results, image_size, backbone,
              weights) -> None:  # fmt: skip
    """The batch-composition experiment on as-coded (issue 28): one arm or every arm, then batching.{csv,md}."""
    from uncertadv.experiments.catsdogs import batching, batching_report

    if variant != batching.VARIANT:
        raise ValueError(f"--batching/--batchings run on --variant {batching.VARIANT} only")
    if (arm is None) == (every is None):
        raise ValueError("give --batching ARM or --batchings all, one of them")
    if every is not None and every != "all":
        raise ValueError(f"--batchings takes 'all', got {every!r}; for one arm use --batching ARM")
    if arm is not None and arm not in batching.ARMS:
        raise ValueError(f"unknown batching {arm!r}; choose from {', '.join(batching.ARMS)}")
    cfg = _ablation_config(dataset, n, samples, seed, bootstrap, results, image_size, backbone, weights)
    if eps:  # a cut: the settings at these eps only (claim 7c names the rows not run)
        import dataclasses

        try:
            chosen = tuple(float(e) for e in eps.split(","))
        except ValueError:
            raise ValueError(f"--eps must be comma-separated numbers, got {eps!r}") from None
        if not set(chosen) <= {e for _, e in batching.SETTINGS}:
            raise ValueError(f"the batching experiment runs eps 5 and 10, got {eps!r}")
        cfg = dataclasses.replace(cfg, eps=chosen)
    for path in batching_report.run(cfg, batching.ARMS if every else (arm,)):
        echo(f"wrote {path}")


def _ablation(dataset, variant, every, n, samples, seed, bootstrap, results, image_size, backbone, weights,
              force, head_seed=0) -> None:  # fmt: skip
    """The cats-vs-dogs ablation (issue 18): one variant, or all of them and the summary."""
    from uncertadv.experiments.catsdogs import ablation, ablation_report, variants

    cfg = _ablation_config(dataset, n, samples, seed, bootstrap, results, image_size, backbone, weights, head_seed)
    if head_seed:  # another seed feeds claim 7b, which reads MC BIM and MIM: make those sets only
        import dataclasses

        cfg = dataclasses.replace(cfg, methods=("bim", "mim"), predictors=("mc",))
    if variant is not None and every:
        raise ValueError("give --variant NAME or --ablation, not both")
    names = list(variants.ablation()) if every else [variant]
    outputs = ablation.run(cfg, names, force=force)
    if every or not head_seed:  # the summary is a function of the variants' scores.csv: keep it in step
        outputs += ablation_report.write(cfg.folder)
    for path in outputs:
        echo(f"wrote {path}")
