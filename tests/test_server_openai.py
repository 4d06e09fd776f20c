"""The official `openai` client, unmodified, against `sampling-engine serve` (a real server on 127.0.0.1, the
real default model): every request parameter, streaming and not, include_usage, n > 1 streaming, echo +
logprobs, token-list prompts, and errors raised as the client's own exception types with status and param.

Expectations come from the same request run on the in-process engine (same model file, fixed seeds): the
server must return exactly what the Python API returns, less the per-request id and timestamp."""
from __future__ import annotations

import openai
import pytest

from .server_process import server, without_ids  # noqa: F401 (server: a fixture)

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.v1, api_key="not-checked", max_retries=0, timeout=300) as c:
        yield c


def dump(obj) -> dict:
    """The client's parsed object as the JSON it was made from (fields the server did not send stay out)."""
    return obj.model_dump(exclude_unset=True, mode="json")


def per_choice(chunks: list[dict]) -> dict[int, list[dict]]:
    """Each choice's chunks in order (chunks of different choices may interleave differently)."""
    out: dict[int, list[dict]] = {}
    for ch in chunks:
        for c in ch["choices"]:
            out.setdefault(c["index"], []).append({**without_ids(ch), "choices": [c]})
    return out


def engine_stream(engine, **request) -> list[dict]:
    return list(engine.create_completion(**request))


EVERY_PARAMETER = dict(prompt=PROMPT, max_tokens=12, temperature=0.8, top_p=0.9, n=2, best_of=3, logprobs=2,
                       echo=True, stop=["\n", " Paris."], presence_penalty=0.3, frequency_penalty=0.5,
                       logit_bias={"28": -100, "30": 5}, seed=7, user="tester")


def test_every_parameter_not_streamed(client, engine, server):
    r = client.completions.create(model=server.model_id, **EVERY_PARAMETER)
    expected = engine.create_completion(model=server.model_id, **EVERY_PARAMETER)
    assert without_ids(dump(r)) == without_ids(expected)
    assert r.id.startswith("cmpl-") and r.object == "text_completion"
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].logprobs.token_logprobs[0] is None  # echo: the first prompt token has no logprob


def test_defaults_and_a_string_list_prompt(client, engine):
    r = client.completions.create(model=engine.model_id, prompt=["Once upon a time", "In a galaxy"], seed=3)
    expected = engine.create_completion(prompt=["Once upon a time", "In a galaxy"], seed=3)
    assert without_ids(dump(r)) == without_ids(expected)
    assert r.usage.completion_tokens <= 32


def test_streaming_with_include_usage_n2_logprobs(client, engine, server):
    request = dict(prompt=PROMPT, max_tokens=10, n=2, seed=11, logprobs=1, temperature=0.9,
                   stream_options={"include_usage": True})
    chunks = [dump(c) for c in client.completions.create(model=server.model_id, stream=True, **request)]
    expected = engine_stream(engine, model=server.model_id, stream=True, **request)
    assert per_choice(chunks) == per_choice(expected)
    assert all("usage" in c for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == expected[-1]["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    texts = {}
    for c in chunks:
        for ch in c["choices"]:
            texts[ch["index"]] = texts.get(ch["index"], "") + ch["text"]
    whole = engine.create_completion(model=server.model_id, **{k: v for k, v in request.items()
                                                              if k != "stream_options"})
    assert texts == {c["index"]: c["text"] for c in whole["choices"]}  # deltas add up to the whole text


def test_streaming_without_usage_has_no_usage_key(client, engine):
    request = dict(prompt="Once upon a time", max_tokens=8, n=3, seed=5)
    chunks = [dump(c) for c in client.completions.create(model=engine.model_id, stream=True, **request)]
    assert all("usage" not in c for c in chunks)
    assert per_choice(chunks) == per_choice(engine_stream(engine, stream=True, **request))
    finals = [ch for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert sorted(ch["index"] for ch in finals) == [0, 1, 2]


def test_echo_logprobs_scoring(client, engine):
    request = dict(prompt="Paris is the capital of France.", echo=True, logprobs=3, max_tokens=0)
    r = client.completions.create(model=engine.model_id, **request)
    expected = engine.create_completion(**request)
    assert without_ids(dump(r)) == without_ids(expected)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == request["prompt"] and lp.token_logprobs[0] is None
    assert len(lp.tokens) == r.usage.prompt_tokens


def test_token_list_prompts(client, engine):
    ids = engine.model.tokenize("The quick brown fox", add_bos=False)
    for prompt in (ids, [ids, ids[:2]]):
        request = dict(prompt=prompt, max_tokens=6, temperature=0, logprobs=0, echo=True)
        r = client.completions.create(model=engine.model_id, **request)
        assert without_ids(dump(r)) == without_ids(engine.create_completion(**request))
    assert r.choices[0].text.startswith("The quick brown fox")


@pytest.mark.parametrize("kwargs, error, status, param", [
    (dict(temperature=3), openai.BadRequestError, 400, "temperature"),
    (dict(top_p=0), openai.BadRequestError, 400, "top_p"),
    (dict(n=2, best_of=1), openai.BadRequestError, 400, "best_of"),
    (dict(logprobs=6), openai.BadRequestError, 400, "logprobs"),
    (dict(logit_bias={"999999": 1}), openai.BadRequestError, 400, "logit_bias"),
    (dict(stop=["a", "b", "c", "d", "e"]), openai.BadRequestError, 400, "stop"),
    (dict(max_tokens=100000), openai.BadRequestError, 400, "max_tokens"),
    (dict(suffix="the end"), openai.BadRequestError, 400, "suffix"),
    (dict(extra_body={"foo": 1}), openai.BadRequestError, 400, "foo"),
    (dict(model="no-such-model"), openai.NotFoundError, 404, "model"),
    (dict(stream=True, best_of=2), openai.BadRequestError, 400, "best_of"),
    (dict(stream_options={"include_usage": True}), openai.BadRequestError, 400, "stream_options"),
])
def test_errors_are_the_clients_exception_types(client, server, kwargs, error, status, param):
    kwargs = {"model": server.model_id, "prompt": PROMPT, "max_tokens": 4, **kwargs}
    with pytest.raises(error) as info:
        r = client.completions.create(**kwargs)
        if kwargs.get("stream"):
            list(r)
    e = info.value
    assert e.status_code == status
    assert e.param == param, e.body
    assert e.type == "invalid_request_error" and e.message


def test_token_ids_outside_the_vocabulary(client, engine):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=engine.model_id, prompt=[[1, engine.model.n_vocab]], max_tokens=1)
    assert info.value.param == "prompt"


def test_models_list(client, server, engine):
    models = client.models.list().data
    assert [m.id for m in models] == [server.model_id]
    assert models[0].owned_by == "sampling-engine"
    assert dump(models[0])["context_length"] == 2048
    assert client.models.retrieve(server.model_id).id == server.model_id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
