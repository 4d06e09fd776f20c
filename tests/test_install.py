"""A new user's install: the wheel, built offline and installed (not editable) into a fresh venv, completes a
prompt from outside the checkout with model files and kernel cache in the user cache, writes nothing into
site-packages, installs no top-level `models`, and says once that the kernels are compiling.

The fresh venv reuses the dev venv's dependencies (llama-cpp-python took minutes to compile) through a .pth
line that appends the dev venv's site-packages to sys.path: nothing is downloaded or compiled again.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from engine.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # about a minute: the kernels compile cold in the new cache


def _sh(*cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\n{(r.stdout + r.stderr)[-4000:]}"
    return r


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    for name in ("engine", "kernels"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    offline = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    build = _sh(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", tmp / "dist",
                src, env=offline)
    assert not re.search(r"deprecat", build.stdout + build.stderr, re.IGNORECASE), "the build warned"
    (wheel,) = (tmp / "dist").glob("sampling_engine-*.whl")
    venv = tmp / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, env=offline)
    site = Path(_sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "_dev_venv_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, site, tmp


def test_wheel_installs_engine_and_kernels_only(venv):
    _, site, _ = venv
    assert {p.name for p in site.iterdir()} == {"engine", "kernels", "sampling_engine-0.1.0.dist-info",
                                                "_dev_venv_deps.pth"}
    assert (site / "engine" / "registry.json").is_file()


def test_completion_outside_the_checkout_uses_the_user_cache(venv):
    venv_dir, site, tmp = venv
    work, xdg = tmp / "elsewhere", tmp / "xdg"
    work.mkdir()
    models = xdg / "sampling-engine" / "models"
    models.mkdir(parents=True)
    entry = load_registry()[1]["smollm2-135m"]
    (models / entry.file).symlink_to(entry.path)  # "fetched" already: nothing downloads
    env = {k: v for k, v in os.environ.items()
           if k not in ("SAMPLING_ENGINE_MODELS_DIR", "NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["XDG_CACHE_HOME"] = str(xdg)
    before = _files(site)
    cli = venv_dir / "bin" / "sampling-engine"

    where = _sh(venv_dir / "bin" / "python", "-c", "import engine, kernels; print(engine.__file__, kernels.__file__)",
                cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where)
    listing = _sh(cli, "models", cwd=work, env=env).stdout
    assert re.search(rf"smollm2-135m +present .* {re.escape(str(models / entry.file))} \(default\)", listing)

    cold = _sh(cli, "complete", "The capital of France is", "--max-tokens", "4", "--temperature", "0",
               cwd=work, env=env)
    warm = _sh(cli, "complete", "The capital of France is", "--max-tokens", "4", "--temperature", "0",
               cwd=work, env=env)
    assert cold.stdout == warm.stdout and cold.stdout.startswith("The capital of France is ")
    assert "compiling sampling kernels, first run only" in cold.stderr
    assert "compiling" not in warm.stderr
    print("\ncold:", cold.stderr.strip().splitlines()[-1], "\nwarm:", warm.stderr.strip().splitlines()[-1])

    assert _files(site) == before, "site-packages gained files"
    assert list((xdg / "sampling-engine" / "numba").iterdir()), "no kernel cache in the user cache"
    assert sorted(p.name for p in (xdg / "sampling-engine").iterdir()) == ["models", "numba"]


def test_import_models_fails_in_that_venv(venv):
    venv_dir, _, tmp = venv
    r = subprocess.run([venv_dir / "bin" / "python", "-c", "import models"], cwd=tmp, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "ModuleNotFoundError: No module named 'models'" in r.stderr
