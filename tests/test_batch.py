"""engine.batch.run_batch and `sampling-engine batch`: OpenAI's Batch format, every error kind, input order, duplicate
custom_ids refused, and the same bytes from run_batch, the command and the HTTP server."""
from __future__ import annotations

import json

import httpx
import pytest

from engine.batch import run_batch
from engine.errors import CompletionError

from .batch_inputs import BAD_LINES, MIXED_BODIES, line, mixed_lines, run_cli, seeded_lines, write
from .conftest import assert_no_sequences
from .server_process import inprocess  # noqa: F401 (fixture)

N_CTX = "4096"  # the session engine's


def _by_id(outs):
    return {o["custom_id"]: o for o in outs}


def test_every_error_kind_and_the_output_shape(engine):
    outs = list(run_batch(engine, mixed_lines()))
    assert len(outs) == 21  # 22 lines, one blank
    # every line answered once, in input order (custom_id None for lines that name none)
    want = [f"req-{i}" for i in range(5)] + [None, None, "bad-url"] + [f"req-{i}" for i in range(5, 14)] + \
           ["bad-method", "streams", "no-body", None]
    assert [o["custom_id"] for o in outs] == want
    for o in outs:
        assert set(o) == {"id", "custom_id", "response", "error"} and o["id"].startswith("batch_req_")
    by_id = _by_id(o for o in outs if o["custom_id"])
    for i in range(10):
        r = by_id[f"req-{i}"]
        assert r["error"] is None and r["response"]["status_code"] == 200
        assert r["response"]["request_id"].startswith("req_")
        assert r["response"]["body"]["object"] == "text_completion"
    refused = {k: by_id[k]["response"] for k in ("req-10", "req-11", "req-12", "req-13")}
    assert [(r["status_code"], r["body"]["error"]["param"], r["body"]["error"]["code"]) for r in refused.values()] \
        == [(400, "temperature", "invalid_value"), (404, "model", "model_not_found"),
            (400, "max_tokens", "context_length_exceeded"), (400, "bogus", "unknown_parameter")]
    assert all(r["body"]["error"]["type"] == "invalid_request_error" for r in refused.values())
    # bad lines: response null, error {code, message, line} with the line number in the file (blank line counted)
    line_errors = [(o["error"]["code"], o["error"]["line"], o["custom_id"]) for o in outs if o["response"] is None]
    assert line_errors == [("invalid_json", 6, None), ("missing_custom_id", 7, None), ("invalid_url", 8, "bad-url"),
                           ("invalid_method", 19, "bad-method"), ("stream_unsupported", 20, "streams"),
                           ("invalid_body", 21, "no-body"), ("invalid_json", 22, None)]
    assert {c for _, c, _ in BAD_LINES} == {c for c, _, _ in line_errors}
    assert all(o["error"]["message"] for o in outs if o["response"] is None)
    assert_no_sequences(engine)


def test_order_is_kept_when_later_lines_finish_first(engine):
    # the first line runs 48 tokens, the rest 1: they finish long before it, yet come out after it
    lines = [line("slow", {"prompt": "Once upon a time", "max_tokens": 48, "seed": 1,
                           "logit_bias": {str(t): -100 for t in (0, 1, 2)}})]
    lines += [line(f"fast-{i}", {"prompt": f"{i}", "max_tokens": 1, "seed": i}) for i in range(6)]
    gen = run_batch(engine, lines, window=8)
    first = next(gen)
    # by the time the slow head is done, every fast line behind it has finished too (they were in flight)
    finished_first = [o["custom_id"] for o in gen]
    assert first["custom_id"] == "slow" and first["response"]["body"]["usage"]["completion_tokens"] == 48
    assert finished_first == [f"fast-{i}" for i in range(6)]


def test_dicts_or_text_lines_give_the_same_answers_as_create_completion(engine):
    bodies = MIXED_BODIES[:3]
    as_dicts = [json.loads(line(f"d{i}", b)) for i, b in enumerate(bodies)]
    outs = list(run_batch(engine, as_dicts, stable_ids=True))
    again = list(run_batch(engine, [line(f"d{i}", b) for i, b in enumerate(bodies)], stable_ids=True))
    assert outs == again
    for b, o in zip(bodies, outs):
        alone = engine.create_completion(**b)
        got = o["response"]["body"]
        assert {k: v for k, v in got.items() if k not in ("id", "created")} == \
               {k: v for k, v in alone.items() if k not in ("id", "created")}
        assert got["created"] == 0 and got["id"].startswith("cmpl-")


def test_stable_ids_come_from_custom_id(engine):
    a = list(run_batch(engine, [line("same", {"prompt": "x", "max_tokens": 1, "seed": 1})], stable_ids=True))
    b = list(run_batch(engine, [line("same", {"prompt": "y", "max_tokens": 1, "seed": 2})], stable_ids=True))
    c = list(run_batch(engine, [line("same", {"prompt": "x", "max_tokens": 1, "seed": 1})]))
    assert a[0]["id"] == b[0]["id"] != c[0]["id"]
    assert a[0]["response"]["request_id"] == b[0]["response"]["request_id"]


def test_duplicate_custom_ids_are_refused_before_any_work(engine):
    before = engine.stats()["tokens_generated"]
    lines = seeded_lines(3) + [line("s1", {"prompt": "again", "max_tokens": 2})]
    with pytest.raises(CompletionError) as e:
        list(run_batch(engine, lines))
    assert e.value.param == "custom_id" and "'s1'" in e.value.message
    assert engine.stats()["tokens_generated"] == before
    # an iterator cannot be read ahead: it stops at the duplicate, and nothing is left in the engine
    with pytest.raises(CompletionError):
        list(run_batch(engine, iter(lines)))
    assert_no_sequences(engine)


def test_a_consumer_that_stops_early_leaves_nothing_in_the_engine(engine):
    gen = run_batch(engine, seeded_lines(12, max_tokens=24))
    next(gen)
    gen.close()
    assert_no_sequences(engine)


# ---- the command ----------------------------------------------------------------------------------------

def test_command_equals_run_batch_and_the_http_server(engine, inprocess, tmp_path):  # noqa: F811
    src = write(tmp_path / "in.jsonl", mixed_lines())
    out = tmp_path / "out.jsonl"
    r = run_cli(str(src), str(out), "--stable-ids", "--quiet", "--n-ctx", N_CTX, "--slots", "4")
    assert r.returncode == 0, r.stderr
    assert "21 lines: 10 ok, 4 4xx, 7 line errors" in r.stderr
    from engine.batch.lines import encode

    expected = b"".join(encode(o) for o in run_batch(engine, mixed_lines(), stable_ids=True))
    assert out.read_bytes() == expected
    # the HTTP server, one request at a time: the same bodies and statuses
    with httpx.Client(base_url=inprocess, timeout=300) as http:
        for o in map(json.loads, out.read_text().splitlines()):
            if o["response"] is None:
                continue
            i = int(o["custom_id"].split("-")[1])
            r = http.post("/v1/completions", json=MIXED_BODIES[i])
            assert r.status_code == o["response"]["status_code"]
            body, got = r.json(), o["response"]["body"]
            if r.status_code == 200:
                body = {k: v for k, v in body.items() if k not in ("id", "created")}
                got = {k: v for k, v in got.items() if k not in ("id", "created")}
            assert body == got


def test_command_refuses_duplicates_and_a_non_empty_output(tmp_path):
    src = write(tmp_path / "in.jsonl", seeded_lines(3) + ["not json"] + [line("s2", {"prompt": "x"})])
    out = tmp_path / "out.jsonl"
    r = run_cli(str(src), str(out), "--quiet")
    assert r.returncode == 2 and "custom_id 's2' appears twice (lines 3 and 5)" in r.stderr
    assert not out.exists() or out.read_bytes() == b""
    write(src, seeded_lines(2))
    out.write_text("something\n")
    r = run_cli(str(src), str(out), "--quiet")
    assert r.returncode == 2 and "--resume" in r.stderr and "--overwrite" in r.stderr
    assert out.read_text() == "something\n"
    r = run_cli(str(src), str(out), "--quiet", "--resume")  # not one of our outputs: refused, kept
    assert r.returncode == 2 and out.read_text() == "something\n"


def test_ray_options_without_ray_say_how_to_install(tmp_path, monkeypatch, capsys):
    import sys

    from engine.commands.main import main

    src = write(tmp_path / "in.jsonl", seeded_lines(1))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["batch", str(src), str(tmp_path / "o.jsonl"), "--ray"]) == 2
    assert "pip install 'sampling-engine[ray]'" in capsys.readouterr().err
    assert main(["batch", str(src), str(tmp_path / "o.jsonl"), "--ray-output-dir"]) == 2
    assert "--ray-output-dir needs --ray" in capsys.readouterr().err
