"""Shared fixtures: the real default model, loaded once per test session (never downloaded here)."""
from __future__ import annotations

import pytest

from engine.registry import load_registry


def default_model_path():
    default, entries = load_registry()
    entry = entries[default]
    if not entry.is_present():
        pytest.exit(f"default model missing at {entry.path}: run `./dev test` (it fetches it) first", 2)
    return entry.path


@pytest.fixture(scope="session")
def model_path():
    return default_model_path()


@pytest.fixture(scope="session")
def model(model_path):
    from engine.model import Model

    m = Model(model_path, n_ctx=4096)
    yield m
    m.close()
