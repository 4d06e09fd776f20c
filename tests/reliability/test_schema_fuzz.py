"""schemathesis against the server's own /openapi.json: every operation, its coverage phase (boundary values of
every parameter, positive and negative) and its fuzzing phase, with the checks not_a_server_error,
status_code_conformance, response_schema_conformance (every error body in SPEC.md's shape) and
negative_data_rejection (what the schema forbids is refused: the schema is as tight as the server).

It runs schemathesis's own runner (`schemathesis run`), which has the coverage phase; its pytest plugin does not
run under pytest 9. The server is the tight one (conftest), so any case the fuzzer gets accepted is cheap.
"""
from __future__ import annotations

import json
import subprocess
import sys

import httpx

from .conftest import AUTH, TALLY

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,negative_data_rejection"
MAX_EXAMPLES = 40


def test_every_operation_fuzzed_against_the_schema(tight, tmp_path):
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", tight.base_url + "/openapi.json",
           "-H", f"Authorization: {AUTH['authorization']}", "--phases", "coverage,fuzzing", "--checks", CHECKS,
           "--mode", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", "11", "--workers", "1",
           "--request-timeout", "120", "--suppress-health-check", "all", "--generation-database", "none",
           "--output-sanitize", "false", "--no-color", "--report", "json", "--report-json-path",
           str(tmp_path / "report.json")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["operations"]["tested"] == 8 and report["failures"] == [] and report["errors"] == []
    assert report["test_cases"]["generated"] > 300, report["test_cases"]  # coverage alone makes that many
    TALLY["schema_cases"] += report["test_cases"]["generated"]
    tight.assert_healthy()


def test_the_schema_lists_every_route_and_states_the_limits(tight):
    with tight.client() as c:
        doc = c.get("/openapi.json").json()
        n_ctx = c.get("/v1/models").json()["data"][0]["context_length"]
    assert set(doc["paths"]) == {"/v1/completions", "/v1/models", "/v1/models/{model_id}", "/health", "/metrics",
                                 "/tokenizer_info", "/tokenize", "/detokenize"}
    body = doc["paths"]["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    p = body["properties"]
    assert p["n"]["anyOf"][0]["maximum"] == 2 and p["best_of"]["anyOf"][0]["maximum"] == 2  # --max-sequences
    assert p["max_tokens"]["anyOf"][0]["maximum"] == n_ctx == 256  # --n-ctx 64, which llama.cpp raises to 256
    assert p["prompt"]["anyOf"][1]["maxItems"] == 2  # --max-prompts
    assert p["prompt"]["anyOf"][2]["items"]["maximum"] == 49151  # SmolLM2's vocabulary
    assert p["temperature"]["anyOf"][0] == {"type": "number", "minimum": 0, "maximum": 2, "default": 1}
    assert p["top_p"]["anyOf"][0]["exclusiveMinimum"] == 0
    assert httpx.get(tight.base_url + "/openapi.json").status_code == 401  # behind the key like the rest
