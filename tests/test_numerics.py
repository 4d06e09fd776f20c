"""Engine(numerics=...) and the runtime verdict Engine.batch_invariant.

"exact" (the default) is checked on every model type by test_invariance.py. Here: bad values, the one-value-
per-process rule, that the check leaves the engine's KV cache as it was, and the verdict's False branch on a
real condition that breaks invariance: numerics="fast" on gemma-3 (Q4_K/Q6_K tensors, whose 8+-row batches
take ggml's tiled matmul, and repacked weights), in a process of its own since ggml reads its switches once.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from engine import Engine

from .conftest import registry_model_path


def test_an_unknown_numerics_names_the_parameter_and_the_allowed_values(engine):
    with pytest.raises(ValueError, match=r"numerics must be one of 'exact', 'fast', got 'precise'"):
        Engine(engine.model_id, numerics="precise")


def test_a_second_numerics_in_one_process_is_refused(engine):
    """The session's engine claimed "exact": ggml has read its switches, so "fast" cannot be honoured here."""
    assert engine.numerics == "exact"
    with pytest.raises(ValueError, match=r"numerics='fast': this process already set up llama.cpp with "
                                         r"numerics='exact'"):
        Engine(engine.model_id, numerics="fast")


def test_the_check_leaves_the_engines_kv_cache_as_it_was(engine):
    """It runs in a context of its own: run again between two requests (on the loop thread, which owns the
    model), it finds the same verdict, and the second request still reuses the first one's cached prefix."""
    req = dict(prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=1)
    engine.reset_prefix_cache()
    first = engine.create_completion(**req)
    slots = engine.stats()["slots"]
    assert max(s["cached_tokens"] for s in slots) > 0
    assert engine.loop.call(engine.model.check_batch_invariance) is True
    assert engine.stats()["slots"] == slots
    for s in slots:
        assert engine.model.seq_pos_max(s["seq"]) == s["cached_tokens"] - 1
    again = engine.create_completion(**req)
    assert again["choices"] == first["choices"]


FAST_SCRIPT = textwrap.dedent("""
    import json, sys
    from engine import Engine
    with Engine(sys.argv[1], n_ctx=512, numerics="fast", prefix_cache=False) as e:  # a cached prefix would split
        req = dict(prompt="The ocean is", max_tokens=8, temperature=1.0, seed=3, logprobs=2)
        a, b = e.create_completion(**req), e.create_completion(**req)
        print(json.dumps(dict(stats=e.stats(), same=a["choices"] == b["choices"], repacked=e.model.repack_weights,
                              fingerprint=e.system_fingerprint)))
""")


def test_fast_numerics_on_gemma3_is_reported_not_batch_invariant():
    """gemma-3's Q4_K/Q6_K tensors go to ggml's tiled matmul for 8+ rows and to per-row dot products for
    fewer: with the stock fast paths the check's one-call logits differ from its token-by-token ones.
    Results stay seeded: one request twice gives the same choices."""
    registry_model_path("gemma3-270m")
    env = {k: v for k, v in os.environ.items() if k not in ("GGML_CPU_TILED_MM", "GGML_LLAMAFILE_EXACT_GEMV")}
    out = subprocess.run([sys.executable, "-c", FAST_SCRIPT, "gemma3-270m"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["stats"]["numerics"] == "fast"
    assert result["stats"]["batch_invariant"] is False
    assert result["same"] is True
    assert result["repacked"] is True


def test_the_numerics_option_reaches_the_engine_and_refuses_other_values(capsys):
    from engine.commands.engine_options import engine_kwargs
    from engine.commands.main import build_parser

    parser = build_parser()
    assert engine_kwargs(parser.parse_args(["complete", "Hi"]))["numerics"] == "exact"
    kw = engine_kwargs(parser.parse_args(["complete", "Hi", "--numerics", "fast"]))
    assert (kw["numerics"], kw["repack_weights"]) == ("fast", None)  # None: repacked as "fast" decides
    assert parser.parse_args(["serve", "--numerics", "fast"]).numerics == "fast"
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["complete", "Hi", "--numerics", "precise"])
    assert exit_.value.code == 2
    assert "--numerics: invalid choice: 'precise'" in capsys.readouterr().err
