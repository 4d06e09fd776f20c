"""The command line, run as a user would run it: every request parameter reaches the request, --json prints
the API's exact response, bad values exit 2 naming the parameter, llama.cpp failures are one line."""
import json
import subprocess
import sys

import pytest

from engine.commands.main import build_parser
from engine.commands.request_options import request_from_args
from engine.errors import CompletionError
from engine.params import PARAMETERS, parse_params

N_CTX = "4096"


def _run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300,
                          input=stdin)


def _request(*args):
    return request_from_args(build_parser().parse_args(["complete", *args]))


@pytest.fixture(scope="module")
def api():
    """The same engine the CLI builds for `--n-ctx 4096` (default model, default options)."""
    from engine import Engine

    with Engine(None, n_ctx=int(N_CTX)) as e:
        yield e


def _without_ids(response):
    return {k: v for k, v in response.items() if k not in ("id", "created")}


# ---- options -> request (no model) --------------------------------------------------------------------

EVERY_OPTION = ["Hello", "--prompt", "Bye", "--max-tokens", "5", "--temperature", "0.9", "--top-p", "0.8",
                "--n", "2", "--best-of", "3", "--logprobs", "2", "--frequency-penalty", "0.5",
                "--presence-penalty", "-0.25", "--seed", "11", "--stop", "\n", "--stop", " the",
                "--logit-bias", "15=-100", "--logit-bias", "300=2.5", "--echo", "--suffix", "END", "--stream",
                "--include-usage", "--user", "me"]


EVERY_REQUEST = {
    "prompt": ["Hello", "Bye"], "max_tokens": 5, "temperature": 0.9, "top_p": 0.8, "n": 2, "best_of": 3,
    "logprobs": 2, "frequency_penalty": 0.5, "presence_penalty": -0.25, "seed": 11, "stop": ["\n", " the"],
    "logit_bias": {"15": -100, "300": 2.5}, "echo": True, "suffix": "END", "stream": True,
    "stream_options": {"include_usage": True}, "user": "me"}


def test_every_option_reaches_the_request():
    assert _request(*EVERY_OPTION) == EVERY_REQUEST


def test_options_cover_every_parameter_but_model():
    # `model` is --model (what to load) or a field of --request.
    assert set(_request(*EVERY_OPTION)) == PARAMETERS - {"model"}


def test_left_out_options_are_left_out_and_null_is_null():
    assert _request("Hi") == {"prompt": "Hi"}
    assert _request("--max-tokens", "null", "--seed", "x") == {"max_tokens": None, "seed": "x"}


def test_options_override_the_request_file(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"prompt": "A", "max_tokens": 3, "model": "smollm2-135m"}))
    assert _request("--request", str(f), "--max-tokens", "4") == {"prompt": "A", "max_tokens": 4,
                                                                   "model": "smollm2-135m"}


# ---- the CLI against the API (real model) -------------------------------------------------------------

def test_complete_streams_text_and_reports_speed():
    r = _run("complete", "The capital of France is", "--max-tokens", "8", "--temperature", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The capital of France is")
    assert len(r.stdout) > len("The capital of France is\n")
    assert "8 tokens" in r.stderr and "tok/s" in r.stderr


def test_json_is_the_api_response_for_every_parameter(api):
    args = [a for a in EVERY_OPTION if a not in ("--suffix", "END", "--stream", "--include-usage")]
    r = _run("complete", *args, "--json", "--n-ctx", N_CTX)
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    request = {k: v for k, v in EVERY_REQUEST.items() if k not in ("suffix", "stream", "stream_options")}
    expected = api.create_completion(**request)
    assert _without_ids(cli) == _without_ids(expected)
    assert len(cli["choices"]) == 4 and cli["choices"][0]["logprobs"]["top_logprobs"][1]  # n=2 x 2 prompts


def test_streamed_json_lines_are_the_api_chunks(api):
    args = ["Once upon a time", "--max-tokens", "6", "--n", "2", "--logprobs", "1", "--seed", "5", "--stream",
            "--include-usage"]
    r = _run("complete", *args, "--json", "--n-ctx", N_CTX)
    assert r.returncode == 0, r.stderr
    cli = [json.loads(line) for line in r.stdout.splitlines()]
    expected = list(api.create_completion(**_request(*args)))
    assert [_without_ids(c) for c in cli] == [_without_ids(c) for c in expected]
    assert cli[-1]["usage"]["completion_tokens"] == 12


def test_request_from_stdin_with_model_and_token_prompt(api):
    request = {"model": api.model_id, "prompt": [[1, 2, 3]], "max_tokens": 3, "temperature": 0, "logprobs": 0}
    r = _run("complete", "--request", "-", "--json", "--n-ctx", N_CTX, stdin=json.dumps(request))
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)
    assert _without_ids(cli) == _without_ids(api.create_completion(**request))
    assert cli["model"] == api.model_id and len(cli["choices"][0]["logprobs"]["tokens"]) == 3


def test_text_output_shows_every_choice(api):
    r = _run("complete", "Count: 1, 2,", "--n", "2", "--max-tokens", "4", "--seed", "3", "--logprobs", "1")
    assert r.returncode == 0, r.stderr
    assert "--- choice 0 (" in r.stdout and "--- choice 1 (" in r.stdout
    assert r.stdout.count("Count: 1, 2,") == 2 and "top:" in r.stdout


# ---- errors ---------------------------------------------------------------------------------------------

def _api_message(request, n_vocab=49152):
    with pytest.raises(CompletionError) as e:
        parse_params(request, n_vocab)
    return e.value


@pytest.mark.parametrize("args, request_", [
    (["--temperature", "3"], {"temperature": 3}),
    (["--n", "abc"], {"n": "abc"}),
    (["--top-p", "0"], {"top_p": 0}),
    (["--logprobs", "6"], {"logprobs": 6}),
    (["--best-of", "1", "--n", "2"], {"best_of": 1, "n": 2}),
    (["--include-usage"], {"stream_options": {"include_usage": True}}),
    (["--stop", "a", "--stop", "b", "--stop", "c", "--stop", "d", "--stop", "e"], {"stop": list("abcde")}),
])
def test_bad_values_exit_2_with_the_api_message(args, request_):
    r = _run("complete", "x", *args)
    e = _api_message(dict(request_, prompt="x"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {e.param}: {e.message}"


def test_bad_logit_bias_syntax_names_the_parameter():
    r = _run("complete", "x", "--logit-bias", "5")
    assert r.returncode == 2 and r.stderr.startswith("error: logit_bias: ") and "Traceback" not in r.stderr


def test_out_of_vocabulary_token_is_checked_by_the_model(api):
    r = _run("complete", "x", "--logit-bias", "999999=1")
    e = _api_message({"prompt": "x", "logit_bias": {"999999": 1}}, api.model.n_vocab)
    assert r.returncode == 2 and r.stderr.strip().endswith(f"error: {e.param}: {e.message}")


def test_suffix_on_a_model_without_fim_tokens_is_the_api_error(api):
    r = _run("complete", "x", "--suffix", "y")
    with pytest.raises(CompletionError) as e:
        api.create_completion(prompt="x", suffix="y")
    assert r.returncode == 2 and r.stderr.strip().endswith(f"error: suffix: {e.value.message}")


def test_bad_request_file():
    r = _run("complete", "--request", "-", stdin="[1, 2]")
    assert r.returncode == 2 and r.stderr.strip() == "error: request: the request must be a JSON object"
    r = _run("complete", "--request", "-", stdin="{nope")
    assert r.returncode == 2 and r.stderr.startswith("error: request: stdin is not valid JSON")


@pytest.mark.parametrize("error, code", [
    (RuntimeError("llama.cpp could not create a context of 4 x 999999 tokens"), 1),  # llama.cpp failed
    (ValueError("step_tokens (512) must exceed the number of slots (1000)"), 2),  # an impossible option
])
def test_engine_failures_are_one_line(monkeypatch, capsys, error, code):
    import engine.api
    from engine.commands.main import main

    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(engine.api, "Engine", fail)
    assert main(["complete", "hi"]) == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_bad_model_path_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    r = _run("complete", "x", "--model", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith("error: model: ") and "not a GGUF file" in r.stderr
    assert "Traceback" not in r.stderr


def test_models_lists_registry():
    r = _run("models")
    assert r.returncode == 0
    assert "smollm2-135m" in r.stdout and "present" in r.stdout and "gemma3-270m" in r.stdout


def test_engine_options_reach_the_engine():
    from engine.commands.engine_options import engine_kwargs

    args = build_parser().parse_args(["complete", "Hi", "--kv-cache-type", "q8_0", "--repack-weights",
                                      "--slots", "2", "--n-ctx", "512"])
    kw = engine_kwargs(args)
    assert (kw["kv_cache_type"], kw["repack_weights"], kw["n_seq_max"], kw["n_ctx"]) == ("q8_0", True, 2, 512)
    assert engine_kwargs(build_parser().parse_args(["complete", "Hi"]))["kv_cache_type"] == "f16"
    # the old spelling still works (hidden from --help)
    assert engine_kwargs(build_parser().parse_args(["complete", "Hi", "--n-seq-max", "3"]))["n_seq_max"] == 3
