"""Where model files live: never inside the installed package (site-packages may be read-only, is lost
on reinstall and is shared by every user of the environment)."""
from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout, or site-packages when installed
CHECKOUT_MODELS_DIR = SOURCE_ROOT / "models"


def is_checkout() -> bool:
    """True when running from the source tree (a git clone, or an unpacked sdist with its pyproject)."""
    return (SOURCE_ROOT / ".git").exists() or (SOURCE_ROOT / "pyproject.toml").is_file()


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/sampling-engine, else ~/.cache/sampling-engine."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sampling-engine"


def models_dir() -> Path:
    """$SAMPLING_ENGINE_MODELS_DIR, else a checkout's models/ folder, else the user cache."""
    override = os.environ.get("SAMPLING_ENGINE_MODELS_DIR")
    if override:
        return Path(override).expanduser()
    if is_checkout():
        return CHECKOUT_MODELS_DIR
    return user_cache_dir() / "models"
