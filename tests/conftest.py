"""Shared fixtures: the real default model, loaded once per test session (never downloaded here)."""
from __future__ import annotations

import pytest

from engine.registry import load_registry


REGISTRY_MODELS = ("smollm2-135m", "gemma3-270m")  # the invariance tests run on both
# The weight types llama.cpp serves with other kernels (llamafile's tinyBLAS among them), requantized from a
# registry model offline (engine/typed_models.py); the core invariance tests run on these too.
TYPED_MODELS = ("smollm2-135m-q8_0", "smollm2-135m-q4_0", "smollm2-135m-q5_0", "smollm2-135m-f16")


def registry_model_path(name: str):
    entry = load_registry()[1][name]
    if not entry.is_present():
        pytest.exit(f"model {name} missing at {entry.path}: run `./dev test` (it fetches it) first", 2)
    return entry.path


def default_model_path():
    return registry_model_path(load_registry()[0])


def typed_model_path(name: str):
    """`<registry name>-<type>`, quantized into the test-model cache on first use (never downloaded)."""
    from engine.typed_models import build_typed_model

    registry_name, weight_type = name.rsplit("-", 1)
    registry_model_path(registry_name)
    return build_typed_model(registry_name, weight_type)


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


@pytest.fixture(scope="session", params=REGISTRY_MODELS + TYPED_MODELS)
def any_engine(request, engine):
    """Each registry model in turn (the default one is the shared `engine`), then each typed test model,
    n_ctx 4096 like `engine`. Limit a test to the registry models with @registry_models_only."""
    if request.param == engine.model_id:
        yield engine
        return
    from engine import Engine

    if request.param in REGISTRY_MODELS:
        registry_model_path(request.param)
        model = request.param
    else:
        model = str(typed_model_path(request.param))
    e = Engine(model, n_ctx=4096, n_seq_max=4, lazy_slots=False)
    yield e
    e.close()


registry_models_only = pytest.mark.parametrize("any_engine", REGISTRY_MODELS, indirect=True)


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
