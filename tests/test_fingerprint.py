"""system_fingerprint hashes everything that decides the bytes: each input changes it, two processes with the
same configuration agree on it, and the same fingerprint gives the same bytes for a seeded request."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from engine.model_identity import file_identity
from engine.numerics.fingerprint import engine_inputs, fingerprint
from engine.version import __version__
from engine.registry import load_registry

from .fim_model import write_fim_model

REQUEST = dict(prompt="The capital of France is", max_tokens=12, temperature=0.9, top_p=0.95, seed=77,
               logprobs=2, n=2)
REPO = Path(__file__).resolve().parents[1]


def test_every_input_changes_the_fingerprint(engine):
    inputs = engine_inputs(engine.model, file_identity(engine.model.path), __version__, engine.batch_invariant,
                           engine.numerics)
    assert fingerprint(inputs) == engine.system_fingerprint
    expected_keys = {"model", "engine", "kernels", "llama_cpp", "exact_gemv", "device", "repack", "kv_cache_type",
                     "flash_attn", "tiled_mm", "numerics", "batch_invariant"}
    assert set(inputs) == expected_keys
    seen = {engine.system_fingerprint}
    for key, value in inputs.items():
        if isinstance(value, bool):
            other = not value
        elif isinstance(value, dict):
            other = {**value, "version": str(value.get("version")) + "-other"}
        else:
            other = f"{value}-other"
        changed = fingerprint({**inputs, key: other})
        assert changed not in seen, key
        seen.add(changed)


def test_registry_models_are_identified_by_their_published_sha256(engine):
    entry = load_registry()[1][engine.model_id]
    assert file_identity(entry.path) == entry.sha256


def test_other_files_by_a_cached_content_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = tmp_path / "a.gguf"
    write_fim_model(a)
    first = file_identity(a)
    assert (tmp_path / "cache" / "sampling-engine" / "file-hashes.json").is_file()
    b = tmp_path / "b.gguf"
    shutil.copy(a, b)
    assert file_identity(b) == first  # the content decides, not the name
    with open(b, "ab") as f:
        f.write(b"\0")
    assert file_identity(b) != first


def _other_process() -> dict:
    code = f"""
import json
from engine import Engine
with Engine({load_registry()[0]!r}, n_ctx=512, n_seq_max=2) as e:
    r = e.create_completion(**{REQUEST!r})
    print(json.dumps({{"fingerprint": e.system_fingerprint, "response": r}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ), capture_output=True,
                         text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_processes_with_the_same_configuration_agree_and_give_the_same_bytes(engine):
    """Another process, another context size and slot count (neither decides the bytes): same fingerprint,
    same response (ids and timestamps aside)."""
    other = _other_process()
    assert other["fingerprint"] == engine.system_fingerprint
    ours = engine.create_completion(**REQUEST)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("id", "created")}  # noqa: E731
    assert strip(other["response"]) == json.loads(json.dumps(strip(ours)))
