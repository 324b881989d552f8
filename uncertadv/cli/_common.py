"""Shared pieces of the command line: one-line errors, quiet TensorFlow, shared options."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_BAD_INPUT = 2
# --samples: what T each measure needs, and why two defaults (issue 29)
MEASURES_NEED = ("Predictive entropy is defined at any T; expected entropy, mutual information, softmax variance and "
                 "variation ratio need two distinct networks (T >= 2 with dropout, or an ensemble) and are n/a "
                 "otherwise.")  # fmt: skip
SAMPLES_TABLE = (
    f"MC samples T per network (20: the paper's Table 1; score and plot use 50, as for the figures). {MEASURES_NEED}"
)
SAMPLES_FIGURES = f"MC samples T per network (50, as for the figures; report, attack and detect fit use the paper's 20). {MEASURES_NEED}"
DEBUG_ENV = "UNCERTADV_DEBUG"


def _flags_show_no_type() -> None:
    """Typer 0.29 prints a flag's type in --help (``--version <bool>``); a flag takes no value, so show none."""
    option = typer.core.TyperOption
    if getattr(option.display_type_rich, "flags_hidden", False):
        return
    shown = option.display_type_rich

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich.flags_hidden = True
    option.display_type_rich = display_type_rich


_flags_show_no_type()


class OneLineErrors(typer.core.TyperGroup):
    """Turns usage errors and expected failures into one line on stderr."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        import warnings

        warnings.showwarning = _show_warning
        _WARNED.clear()  # each command says each warning once (a process may run several, as tests do)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer._click.exceptions.ClickException as err:
            _fail(err.format_message())
        except typer.Abort:
            _fail("aborted", code=1)
        except (ValueError, OSError, KeyError) as err:
            if os.environ.get(DEBUG_ENV):
                raise
            _fail(_one_line(err))
        if isinstance(code, int) and code != 0:
            sys.exit(code)
        return code


_WARNED: set[str] = set()  # one command says each warning once, however many calls raise it


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one line on stderr, like the errors, each once (UNCERTADV_DEBUG=1: with their source)."""
    import re

    text = str(message).strip().splitlines()[0]
    text = re.sub(r"pixel_max=(\S+) \((--pixel-max \1)\)", r"\2", text)  # on the command line, the flag's name
    key = text.split(" lies in ", 1)[-1]  # one range warning, whichever name (file, array) each call gives x
    if key in _WARNED:
        return
    _WARNED.add(key)
    where = f" ({filename}:{lineno})" if os.environ.get(DEBUG_ENV) else ""
    print(f"warning: {text}{where}", file=sys.stderr)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = text[0] if text else type(err).__name__
    if isinstance(err, FileNotFoundError) and err.filename:
        message = f"no such file: {err.filename}"
    return message


def _fail(message: str, code: int = EXIT_BAD_INPUT):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up chatter hidden, and its Python logger at ERROR.

    The oneDNN, CUDA-probe and CPU-feature lines are written by C++ while TensorFlow loads
    and probes its devices, before its logging settings apply, so no environment variable
    silences them: stderr's file descriptor is pointed at /dev/null for the import and the
    device probe only. Everything later, C++ fatal errors included, reaches the terminal.
    UNCERTADV_DEBUG=1 keeps everything."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING after start-up
    if os.environ.get(DEBUG_ENV):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probing logs here, not mid-run
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    tf.get_logger().setLevel("ERROR")


def echo(message: str) -> None:
    """A status line on stderr; on a worker other than the chief, marked as such (its "wrote" names the chief's file)."""
    from uncertadv import distribute

    typer.echo(
        message if distribute.writes() else f"[{distribute.worker_name()}; the chief writes] {message}", err=True
    )


class PredictorName(str, Enum):
    """The predictor kinds (see ``uncertadv.predictors``)."""

    deterministic = "deterministic"
    mc = "mc"
    ensemble = "ensemble"


Results = Annotated[
    Optional[Path],
    typer.Option(
        help="Results folder (default: results/DATASET; $UNCERTADV_RESULTS replaces 'results').", show_default=False
    ),
]


class DistributeName(str, Enum):
    multi_worker = "multi-worker"


DistributeOption = Annotated[
    Optional[DistributeName],
    typer.Option(
        help="multi-worker: run on the workers that TF_CONFIG names (MultiWorkerMirroredStrategy). Start the same "
        "command on each, in one shared results folder: each batch's images are split across them, the T networks "
        "are the same on all, and only the chief writes.",
        show_default=False,
    ),
]


def distributed(ctx: typer.Context, choice: DistributeName | None) -> None:
    """Run the rest of the command on the workers ``choice`` names (nothing for None). Call it first: the
    strategy must exist before TensorFlow runs any op."""
    if choice is None:
        return
    from uncertadv import distribute

    ctx.with_resource(distribute.active(distribute.multi_worker()))


ModelOption = Annotated[
    Optional[Path],
    typer.Option("--model", help="Your own model: a .keras file or an ensemble manifest (.json); needs --data."),
]
DataOption = Annotated[
    Optional[str],
    typer.Option(
        "--data",
        help="Your own data: an .npz with x (and y), a folder of class subfolders of images, or tfds:NAME[:SPLIT].",
    ),
]
PixelMaxOption = Annotated[
    float,
    typer.Option(
        help="The model's input scale: 1.0, or 255 for models that take 0-255. uint8 data is scaled into it; "
        "float data outside it is refused."
    ),
]
ClassesOption = Annotated[
    Optional[str],
    typer.Option(
        help="With an image folder: its subfolders in label order, comma-separated (default: integer names are "
        "their labels, others sorted).",
        show_default=False,
    ),
]


class MeasureChoice(str, Enum):
    """The five measures (``uncertadv.measures.MEASURES``), so that --help lists them."""

    predictive_entropy = "predictive_entropy"
    expected_entropy = "expected_entropy"
    mutual_information = "mutual_information"
    softmax_variance = "softmax_variance"
    variation_ratio = "variation_ratio"


class ColorMode(str, Enum):
    rgb = "rgb"
    grayscale = "grayscale"


ColorModeOption = Annotated[
    Optional[ColorMode],
    typer.Option(
        help="With an image folder or tfds: rgb or grayscale (default: what the model takes).", show_default=False
    ),
]
ImageSizeOption = Annotated[Optional[int], typer.Option(min=1, help="Resize folder and tfds images to this size.")]
FromLogitsOption = Annotated[
    bool, typer.Option(help="With --model: it outputs logits (a softmax output is found by itself).")
]


def own_data(
    model: Optional[Path],
    data: Optional[str],
    pixel_max: float,
    image_size: Optional[int],
    from_logits: bool = False,
    classes: Optional[str] = None,
    color_mode: Optional[ColorMode] = None,
) -> dict | None:
    """The recorded options of --data, or None for the paper's data sets; --model and --data go together."""
    if (model is None) != (data is None):
        raise ValueError("--model and --data go together: your own model on your own data")
    if model is None:
        if classes or color_mode:
            raise ValueError("--classes and --color-mode describe --data (your own data)")
        return None
    return data_options(str(data), pixel_max, image_size, from_logits, classes, color_mode)


def data_options(
    spec: str, pixel_max: float, image_size=None, from_logits=False, classes=None, color_mode=None
) -> dict:
    """The recorded options of --data (``own_data.load_for_model`` reads them)."""
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    return {"spec": spec, "pixel_max": float(pixel_max), "image_size": image_size, "from_logits": from_logits,
            "classes": names, "color_mode": color_mode.value if color_mode else None}  # fmt: skip


def eps_warning(eps: float) -> None:
    """Refuse a budget outside [0, 255]; warn about one below 1 (0-255 units, not [0, 1])."""
    from uncertadv.inputs import check_eps

    try:
        warning = check_eps(eps)
    except ValueError as err:
        raise ValueError(str(err).replace("eps ", "--eps ", 1)) from None
    if warning:
        echo(f"warning: {warning}")
        import warnings

        warnings.filterwarnings("ignore", message="eps is in 0-255 units", category=UserWarning)  # said once


def comma_list(text: str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each checked against ``allowed``."""
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"unknown {name} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return values


def refuse_unused(ctx: typer.Context, unused: tuple[str, ...], mode: str) -> None:
    """A one-line error if the user gave any of ``unused`` (parameter names): an option that a mode
    ignores would otherwise run something other than what was asked, without a word."""
    from typer._click.core import ParameterSource  # typer vendors click

    unknown = [name for name in unused if name not in ctx.params]
    if unknown:  # a misspelt name would silently switch its refusal off
        raise RuntimeError(f"refuse_unused: no such option {unknown}")
    given = [name for name in unused if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{mode} does not take {flags}")
