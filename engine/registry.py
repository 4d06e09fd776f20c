"""The checked-in registry of known models (engine/registry.json); their files live in models_dir()."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .locations import models_dir

REGISTRY_PATH = Path(__file__).resolve().parent / "registry.json"  # package data: ships in the wheel


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

