"""Shared fixtures: the real default model, loaded once per test session (never downloaded here)."""
from __future__ import annotations

import pytest

from engine.registry import load_registry


REGISTRY_MODELS = ("smollm2-135m", "gemma3-270m")  # the invariance tests run on both


def registry_model_path(name: str):
    entry = load_registry()[1][name]
    if not entry.is_present():
        pytest.exit(f"model {name} missing at {entry.path}: run `./dev test` (it fetches it) first", 2)
    return entry.path


def default_model_path():
    return registry_model_path(load_registry()[0])


@pytest.fixture(scope="session")
def model_path():
    return default_model_path()


@pytest.fixture(scope="session")
def engine(model_path):
    from engine import Engine

    # by registry name (model_path checked it is present); 4 slots up front: tests also use sequences 0..3
    e = Engine(load_registry()[0], n_ctx=4096, n_seq_max=4, lazy_slots=False)
    yield e
    e.close()


@pytest.fixture(scope="session", params=REGISTRY_MODELS)
def any_engine(request, engine):
    """Each registry model in turn (the default one is the shared `engine`), n_ctx 4096 like `engine`."""
    if request.param == engine.model_id:
        yield engine
        return
    from engine import Engine

    registry_model_path(request.param)
    e = Engine(request.param, n_ctx=4096, n_seq_max=4, lazy_slots=False)
    yield e
    e.close()


@pytest.fixture(scope="session")
def model(engine):
    return engine.model


@pytest.fixture
def complete(engine):
    """engine.create_completion that also checks no KV-cache sequence is left behind afterwards."""
    def run(**request):
        result = engine.create_completion(**request)
        if request.get("stream"):
            result = list(result)
        assert_no_sequences(engine)
        return result
    return run


def assert_no_sequences(engine, timeout: float = 30.0):
    """Nothing of a finished request stays busy in the KV cache: once the engine is idle (a cancelled request
    leaves at the loop's next step), every slot is free and holds exactly the cells of the prefix it records."""
    assert engine.wait_idle(timeout), "the engine is still busy"
    slots = engine.stats()["slots"]
    assert not [s for s in slots if s["busy"]], f"KV-cache sequences left behind: {slots}"
    for s in slots:
        assert engine.model.seq_pos_max(s["seq"]) == s["cached_tokens"] - 1
