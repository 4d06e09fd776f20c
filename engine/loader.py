"""Resolve a model argument (registry name or path to a .gguf file) to a loaded Model."""
from __future__ import annotations

from pathlib import Path

from .errors import CompletionError
from .fetch import fetch
from .model import Model
from .registry import default_model_name, load_registry


def resolve_model_path(model: str | None, quiet: bool = False) -> tuple[str, Path]:
    """Return (model id, file path), fetching a registry model on first use."""
    name = model or default_model_name()
    _, entries = load_registry()
    entry = entries.get(name)
    if entry is not None:
        return name, fetch(entry, quiet=quiet)
    path = Path(name).expanduser()
    if path.suffix == ".gguf" or path.exists():
        return path.stem, path
    known = ", ".join(sorted(entries))
    raise CompletionError(f"unknown model {name!r}: use a registry name ({known}) or a path to a .gguf file",
                          param="model", code="model_not_found", status=404)


def load_model(model: str | None = None, quiet: bool = False, **options) -> tuple[str, Model]:
    model_id, path = resolve_model_path(model, quiet=quiet)
    return model_id, Model(path, **options)
