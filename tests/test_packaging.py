"""The wheel that `pip install .` builds: every module and asset inside, and the CLI runs from it.

An editable install (what `make install` does) hides packaging mistakes, so this builds a real
wheel from a copy of the sources, unpacks it away from the checkout and runs it there."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "uncertadv", src / "uncertadv", ignore=ignore)
    shutil.copytree(ROOT / "assets", src / "assets", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("uncertadv-*.whl")
    return path


def test_wheel_holds_every_module_and_asset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "uncertadv").rglob("*.py")}
    assets = {
        "uncertadv/assets/" + p.name for p in (ROOT / "assets").iterdir() if p.suffix in (".py", ".npz", ".csv", ".md")
    }
    assert "uncertadv/experiments/table1/report.py" in modules and "uncertadv/assets/mnist.npz" in assets
    assert modules - names == set()
    assert assets - names == set()


def test_installed_wheel_runs_the_cli_and_the_api(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a wheel is a zip of the installed tree
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = "import sys; from uncertadv.cli import app; sys.argv = ['uncertadv', 'plot', '--help']; app()"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and "latent" in run.stdout, run.stderr
    code = (
        "import uncertadv as ua; ua.mc_predict; from uncertadv import data; "
        "x, y = data.load_mnist('test'); print(ua.__file__, x.shape)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert str(site) in run.stdout and "(10000, 28, 28, 1)" in run.stdout
