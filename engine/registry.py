"""The checked-in registry of known models, and where their files live on disk."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
REGISTRY_PATH = REPO_MODELS_DIR / "registry.json"


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    member: str  # path of the file (or file part) inside the package's wheel


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str
    size: int
    vocab: int
    n_ctx_train: int
    sources: tuple[Source, ...]

    @property
    def path(self) -> Path:
        return models_dir() / self.file

    def is_present(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size == self.size


def models_dir() -> Path:
    """Where downloaded model files land; SAMPLING_ENGINE_MODELS_DIR overrides the repo's models/."""
    override = os.environ.get("SAMPLING_ENGINE_MODELS_DIR")
    return Path(override) if override else REPO_MODELS_DIR


def load_registry() -> tuple[str, dict[str, ModelEntry]]:
    """Return (default model name, entries by name)."""
    raw = json.loads(REGISTRY_PATH.read_text())
    entries = {
        name: ModelEntry(
            name=name,
            file=e["file"],
            sha256=e["sha256"],
            size=e["size"],
            vocab=e["vocab"],
            n_ctx_train=e["n_ctx_train"],
            sources=tuple(Source(**s) for s in e["sources"]),
        )
        for name, e in raw["models"].items()
    }
    return raw["default"], entries


def default_model_name() -> str:
    return load_registry()[0]

