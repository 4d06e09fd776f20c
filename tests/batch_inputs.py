"""Batch input files for the batch tests (local and Ray): seeded requests of every kind, bad bodies, bad lines."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def line(custom_id: str, body: dict, **over) -> str:
    obj = {"custom_id": custom_id, "method": "POST", "url": "/v1/completions", "body": body, **over}
    return json.dumps(obj)


# Seeded bodies: the same bytes alone, batched, in any process.
MIXED_BODIES = [
    {"prompt": "Once upon a time", "max_tokens": 12, "seed": 1},
    {"prompt": "The capital of France is", "max_tokens": 6, "n": 2, "best_of": 3, "seed": 2},
    {"prompt": "def add(a, b):", "max_tokens": 8, "logprobs": 2, "seed": 3, "temperature": 0.7},
    {"prompt": "The quick brown fox jumps over the lazy dog", "max_tokens": 0, "echo": True, "logprobs": 1},
    {"prompt": "List three colors:", "max_tokens": 16, "stop": [".", "\n"], "seed": 5},
    {"prompt": "Repeat after me:", "max_tokens": 10, "frequency_penalty": 0.8, "presence_penalty": 0.4, "seed": 6},
    {"prompt": "Hello", "max_tokens": 6, "logit_bias": {"13": 8, "28": -100}, "seed": 7},
    {"prompt": [504, 3458, 253, 1400], "max_tokens": 6, "seed": 8},
    {"prompt": ["Red is", "Blue is"], "max_tokens": 5, "seed": 9, "top_p": 0.9},
    {"prompt": "Greedy:", "max_tokens": 6, "temperature": 0, "echo": True},
    {"prompt": "too hot", "temperature": 5},  # 400, param temperature
    {"prompt": "who?", "model": "no-such-model"},  # 404, model_not_found
    {"prompt": "x", "max_tokens": 5000},  # 400, context_length_exceeded (n_ctx 4096)
    {"prompt": "x", "bogus": 1},  # 400, unknown parameter
]

BAD_LINES = [
    ("{not json", "invalid_json", None),
    (json.dumps({"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}), "missing_custom_id", None),
    (line("bad-url", {"prompt": "x"}, url="/v1/chat/completions"), "invalid_url", "bad-url"),
    (line("bad-method", {"prompt": "x"}, method="GET"), "invalid_method", "bad-method"),
    (line("streams", {"prompt": "x", "stream": True}), "stream_unsupported", "streams"),
    (json.dumps({"custom_id": "no-body", "method": "POST", "url": "/v1/completions", "body": "x"}), "invalid_body",
     "no-body"),
    ("[1, 2]", "invalid_json", None),
]


def mixed_lines() -> list[str]:
    """The mixed file: seeded requests, refused bodies, bad lines and a blank line, in a fixed order."""
    out = [line(f"req-{i}", b) for i, b in enumerate(MIXED_BODIES)]
    bad = [text for text, _, _ in BAD_LINES]
    return out[:5] + bad[:3] + [""] + out[5:] + bad[3:]


def seeded_lines(n: int, max_tokens: int = 6) -> list[str]:
    prompts = ["Once upon a time", "In a galaxy", "The weather today", "My favourite food", "Numbers: 1, 2,"]
    return [line(f"s{i}", {"prompt": prompts[i % len(prompts)], "max_tokens": max_tokens, "seed": i})
            for i in range(n)]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(x + "\n" for x in lines))
    return path


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "batch", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)
