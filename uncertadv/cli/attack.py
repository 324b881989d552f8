"""``uncertadv attack``: one attack set (clean, noise and adversarial images) into RESULTS/attacks/;
the adaptive methods and the hole search attack a detector too."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
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
    PredictorName,
    Results,
    distributed,
    echo,
    eps_warning,
    own_data,
    quiet_tensorflow,
)


class Method(str, Enum):
    fgm = "fgm"
    bim = "bim"
    mim = "mim"
    pgd = "pgd"
    pgd_adaptive = "pgd-adaptive"
    pgd_adaptive_known = "pgd-adaptive-known"
    holes = "holes"


DETECTOR_AWARE = ("pgd-adaptive", "pgd-adaptive-known", "holes")


class MeasureName(str, Enum):
    predictive_entropy = "predictive_entropy"
    mutual_information = "mutual_information"
    softmax_variance = "softmax_variance"
    expected_entropy = "expected_entropy"


def attack(
    ctx: typer.Context,
    method: Annotated[
        Method,
        typer.Option(
            help="fgm, bim, mim (cleverhans.tf2), pgd (random start); pgd-adaptive and pgd-adaptive-known also "
            "evade a detector (fresh networks, or the detector's own); holes: the latent hole search (MNIST)."
        ),
    ],
    eps: Annotated[
        Optional[float],
        typer.Option(
            help="L-infinity budget in 0-255 pixel units (the paper: 5, 10); not for holes.", show_default=False
        ),
    ] = None,
    predictor: Annotated[
        PredictorName,
        typer.Option(help="Predictor attacked: deterministic (dropout off), mc (MC-mean predictive), ensemble."),
    ] = PredictorName.mc,
    dataset: Annotated[str, typer.Option(help="Data set: mnist or catsdogs.")] = "mnist",
    n: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Images per kind (clean, noise, adversarial), drawn apart (default: 200; with --data, "
            "the largest n up to 200 that fits: 3n, plus 50 calibration images for an adaptive method, "
            "and 1,000 more to fit its detector without --detector).",
            show_default=False,
        ),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help=f"For attacking and evaluating. {SAMPLES_TABLE}")] = 20,
    iterations: Annotated[int, typer.Option(min=1, help="Iterations of bim/mim/pgd.")] = 10,
    step: Annotated[
        Optional[float],
        typer.Option(help="Step per iteration, 0-255 units (default: 0.5 at eps 5, 1.2 at eps 10, else eps/10)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the image draw, the noise and the attacker's networks (the evaluator uses SEED + 1000000)."
        ),
    ] = 0,
    results: Results = None,
    model: ModelOption = None,
    data: DataOption = None,
    pixel_max: PixelMaxOption = 1.0,
    image_size: ImageSizeOption = None,
    from_logits: FromLogitsOption = False,
    classes: ClassesOption = None,
    color_mode: ColorModeOption = None,
    detector: Annotated[
        Optional[Path],
        typer.Option(
            help="Adaptive methods and holes: the detector to evade, from `uncertadv detect fit` or "
            "RESULTS/detectors/ (default: RESULTS/detectors/PREDICTOR_MEASURE.json, fitted at 5% FPR on held-out "
            "clean images if missing). Its networks must be the evaluator's (seed SEED + 1000000).",
            show_default=False,
        ),
    ] = None,
    measure: Annotated[
        Optional[MeasureName],
        typer.Option(
            help="Adaptive methods and holes: the detector's measure (default: mutual_information, or --detector's).",
            show_default=False,
        ),
    ] = None,
    distribute: DistributeOption = None,
    force: Annotated[bool, typer.Option(help="Recompute even if the attack set exists with the same config.")] = False,
) -> None:
    """Craft adversarial examples (and the matching clean and noise sets) into RESULTS/attacks/.

    Against the paper's models (from RESULTS/models/; the default recipe trains any that are
    missing), or with --model and --data against your own (RESULTS defaults to results/own).

    The adaptive methods choose their penalty weight c on held-out images and attack the same
    source images as the pgd set of the same eps (made first if missing)."""
    if method is Method.holes:
        if eps is not None:
            raise ValueError("holes searches the VAE's latent space: it takes no --eps")
    elif eps is None:
        raise ValueError(f"{method.value} needs --eps (0-255 pixel units)")
    else:
        eps_warning(eps)
    if (detector is not None or measure is not None) and method.value not in DETECTOR_AWARE:
        raise ValueError(
            f"{method.value} ignores detectors; --detector and --measure are for {', '.join(DETECTOR_AWARE)}"
        )
    if method.value in DETECTOR_AWARE and predictor is PredictorName.deterministic:
        raise ValueError(f"{method.value} needs sampled networks: use --predictor mc or ensemble")
    if distribute is not None and method.value in DETECTOR_AWARE:
        raise ValueError(f"--distribute splits the gradient attacks (fgm, bim, mim, pgd); {method.value} runs on one "
                         "worker")  # fmt: skip
    quiet_tensorflow()
    distributed(ctx, distribute)
    from uncertadv import data as datasets
    from uncertadv.attacks import AttackConfig
    from uncertadv.experiments import attack_sets, own
    from uncertadv.experiments.layout import DEFAULT_N, Layout, ensure_classifiers, eval_seed, own_layout, set_name

    options = own_data(model, data, pixel_max, image_size, from_logits, classes, color_mode)
    layout = own_layout(results) if options else Layout.of(dataset, results)
    if method is Method.holes and layout.dataset != "mnist":
        raise ValueError("holes searches the MNIST VAE's latent space; it is not defined for other data")
    config = AttackConfig(
        method="pgd" if method.value in DETECTOR_AWARE else method.value,  # the adaptive sets' base
        eps=eps or 0.0,
        predictor=predictor.value,
        samples=samples,
        iterations=iterations,
        step=step,
        seed=seed,
        pixel_max=pixel_max if options else 1.0,
    )
    if options:
        chosen, files = own.classifiers(model, (predictor.value,), from_logits, samples)[predictor.value]
        x, y = own.load(options, chosen, predictor.value, samples, eval_seed(seed))
        data_options = options
        n = own.fit_n(n, len(x), *_held_out(method.value, detector))
    else:
        models, data_options = ensure_classifiers(layout, (predictor.value,))
        chosen, files = models[predictor.value]
        x, y = datasets.load(dataset, "test", **data_options)
        n = DEFAULT_N if n is None else n
    if method.value in DETECTOR_AWARE:
        return _detector_aware(method.value, layout, chosen, files, x, y, config, measure, detector, n,
                               model or layout.classifier(predictor.value), data_options, force)  # fmt: skip
    out = layout.attack_set(set_name(method.value, eps, predictor.value, config, n))
    record = attack_sets.build(
        chosen,
        files,
        x,
        y,
        config,
        n=n,
        layout=layout,
        model=model or layout.classifier(predictor.value),
        data_options=data_options,
        force=force,
    )
    echo(f"{'reused' if record.get('reused') else 'wrote'} attack set {out}")
    l2_255 = record["mean_l2"] * 255 / config.pixel_max
    typer.echo(
        f"{method.value} eps={eps:g} on the {predictor.value} predictor, {n} images: success rate "
        f"{record['success_rate']:.3f} (label changed {record['label_changed_rate']:.3f}); mean L-inf "
        f"{record['mean_linf_255']:.2f} and mean L2 {l2_255:.2f}, both in 0-255 pixel units"
    )


def _held_out(method: str, detector: Optional[Path]) -> tuple[int, str]:
    """Test images an attack holds out beyond its 3n, and why (for ``own.fit_n``'s messages)."""
    if method not in DETECTOR_AWARE or method == "holes":
        return 0, ""
    from uncertadv.experiments.adaptive import protocol

    if detector is not None:
        return protocol.N_CALIBRATION, f" ({protocol.N_CALIBRATION} held out to calibrate the adaptive attack)"
    held = protocol.N_FIT + protocol.N_CALIBRATION
    return held, (f" ({protocol.N_CALIBRATION} held out to calibrate the adaptive attack and {protocol.N_FIT} to fit "
                  "its detector; --detector with a detector fitted elsewhere needs the 50 only)")  # fmt: skip


def _detector_aware(method, layout, models, files, x, y, config, measure, detector_file, n, model, options, force):
    from uncertadv.experiments.adaptive import protocol

    name = measure.value if measure is not None else "mutual_information"
    detector = protocol.detector_for(layout, models, x, y, config, name, detector_file, n, options, force, model)
    if measure is not None and detector.measure != measure.value:
        raise ValueError(f"--measure {measure.value} differs from the measure of {detector_file} ({detector.measure})")
    if method == "holes":
        from uncertadv.experiments.adaptive import hole_search

        record = hole_search.build(layout, detector, x, y, hole_search.HoleConfig(n=n, seed=config.seed),
                                   config.seed, n, force=force)  # fmt: skip
        echo(f"hole search: {hole_search.path(layout, detector.predictor, detector.measure)}")
        typer.echo(f"holes on the {detector.predictor} predictor against its {detector.measure} detector: "
                   f"c = {record['c']:g}, success rate {record['success_rate']:.3f} of {n}")  # fmt: skip
        return
    record = protocol.build(models, files, x, y, config, detector, method, n=n, layout=layout, model=model,
                            data_options=options, force=force)  # fmt: skip
    fitted_here = protocol.protocol_fit(detector, layout, n, config, x, y)
    stem = protocol.set_stem(method, config, detector, fitted_here, n)
    echo(f"{'reused' if record.get('reused') else 'wrote'} attack set {layout.attack_set(stem)}")
    typer.echo(
        f"{method} eps={config.eps:g} on the {config.predictor} predictor against its {detector.measure} detector "
        f"(threshold {detector.threshold:.6g}), {n} images: c = {record['c']:g}, success rate "
        f"{record['success_rate']:.3f}, evasion rate {record['evasion_rate']:.3f}"
    )
