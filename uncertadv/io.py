"""Model files: ``.keras`` models and the JSON manifests that group them.

``--model`` is always a file: a ``.keras`` model, or an ensemble manifest ``.json``. A manifest
either lists whole ``members`` (``.keras`` files relative to it), or names one frozen ``trunk``
and K ``heads``: member k is then head k on the shared trunk, and the MC engine runs the trunk
once for all K members. A VAE manifest names an encoder and a decoder. Models are loaded with
Keras's ``safe_mode`` on (no arbitrary code from a file).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import keras

from uncertadv import artifacts


def save_model(model: keras.Model, path: Path | str, record: dict) -> None:
    """Save ``model`` to a ``.keras`` file and ``record`` to its JSON sidecar, atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model path must end in .keras, got {path.name}")
    with artifacts.atomic_path(path) as tmp:
        model.save(tmp)
    artifacts.write_json(artifacts.sidecar_path(path), record)


def load_model(path: Path | str) -> keras.Model:
    """Load a ``.keras`` model (safe mode); a missing or unreadable file is a one-line ValueError."""
    import uncertadv.models.catsdogs  # noqa: F401  (registers the custom layers that safe mode may load)
    import uncertadv.models.vae  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"cannot load model {path}: not a .keras archive (corrupt or another format)")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged archive
        first = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"cannot load model {path}: {type(err).__name__}: {first}") from None


def member_paths(manifest: Path, members: int) -> list[Path]:
    """``ensemble.json -> [ensemble-member0.keras, ...]``: where a new ensemble's members go."""
    return [manifest.with_name(f"{manifest.stem}-member{k}.keras") for k in range(members)]


def save_manifest(manifest: Path | str, paths: list[Path], record: dict) -> None:
    """An ensemble manifest: ``record`` plus the member files relative to its folder (written last)."""
    manifest = Path(manifest)
    names = [os.path.relpath(p, manifest.parent) for p in paths]
    artifacts.write_json(manifest, {**record, "members": names})


def save_trunk_and_heads(manifest: Path | str, trunk: keras.Model, heads: list[keras.Model], record: dict) -> None:
    """One trunk and K heads beside ``manifest`` (NAME-trunk.keras, NAME-headK.keras), then the manifest."""
    manifest = Path(manifest)
    trunk_path = manifest.with_name(f"{manifest.stem}-trunk.keras")
    head_paths = [manifest.with_name(f"{manifest.stem}-head{k}.keras") for k in range(len(heads))]
    for model, path in ((trunk, trunk_path), *zip(heads, head_paths)):
        save_model(model, path, {**record, "part": path.stem})
    artifacts.write_json(manifest, {**record, "trunk": trunk_path.name, "heads": [p.name for p in head_paths]})


def member_files(path: Path | str) -> list[list[Path]]:
    """The ``.keras`` files of each member behind ``--model``: ``[[file]]`` for one model,
    ``[[member k]]`` for a members manifest, ``[[trunk, head k]]`` for a trunk-and-heads one."""
    path = Path(path)
    if path.suffix == ".keras":
        return [[path]]
    if path.suffix != ".json":
        raise ValueError(f"--model must be a .keras file or an ensemble manifest .json, got {path.name}")
    if not path.is_file():
        raise ValueError(f"no ensemble manifest at {path}")
    record = artifacts.read_json(path)

    def beside(name) -> Path:  # names are relative to the manifest's folder
        if not isinstance(name, str) or Path(name).is_absolute():
            raise ValueError(f"{path} names {name!r}: a manifest names files by paths relative to itself")
        return path.parent / name

    if record.get("trunk") and record.get("heads"):
        return [[beside(record["trunk"]), beside(head)] for head in record["heads"]]
    if not record.get("members"):
        raise ValueError(f"{path} is not an ensemble manifest (no 'members', or 'trunk' and 'heads')")
    return [[beside(name)] for name in record["members"]]


def model_files(path: Path | str) -> list[Path]:
    """Every ``.keras`` file behind ``--model``, each once."""
    return list(dict.fromkeys(f for files in member_files(path) for f in files))


def load_classifier(path: Path | str) -> list[keras.Model]:
    """A ``.keras`` model or an ensemble manifest: always a list of models (one per member).
    The members of a trunk-and-heads manifest share one trunk object."""
    loaded = {f: load_model(f) for f in model_files(path)}
    members = []
    for files in member_files(path):
        if len(files) == 1:
            members.append(loaded[files[0]])
            continue
        trunk, head = loaded[files[0]], loaded[files[1]]
        inputs = keras.Input(trunk.inputs[0].shape[1:], name="image")
        members.append(keras.Model(inputs, head(trunk(inputs)), name=f"{trunk.name}_{head.name}"))
    return members


def vae_paths(manifest: Path) -> tuple[Path, Path]:
    """``vae.json -> (vae-encoder.keras, vae-decoder.keras)``."""
    return manifest.with_name(f"{manifest.stem}-encoder.keras"), manifest.with_name(f"{manifest.stem}-decoder.keras")


def save_vae(vae, manifest: Path | str, record: dict) -> None:
    """Encoder and decoder beside the manifest, then the manifest (so it is written last)."""
    manifest = Path(manifest)
    enc_path, dec_path = vae_paths(manifest)
    for model, path in ((vae.encoder, enc_path), (vae.decoder, dec_path)):
        with artifacts.atomic_path(path) as tmp:
            model.save(tmp)
    artifacts.write_json(manifest, {**record, "encoder": enc_path.name, "decoder": dec_path.name})


def load_vae(manifest: Path | str) -> tuple[keras.Model, keras.Model]:
    """``(encoder, decoder)`` from a VAE manifest written by ``save_vae``."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ValueError(f"no VAE manifest at {manifest}; train one with `uncertadv train vae --out {manifest}`")
    record = artifacts.read_json(manifest)
    if "encoder" not in record or "decoder" not in record:
        raise ValueError(f"{manifest} is not a VAE manifest")
    return load_model(manifest.with_name(record["encoder"])), load_model(manifest.with_name(record["decoder"]))
