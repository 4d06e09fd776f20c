"""How `complete` shows a response: readable text by default, the exact response JSON with --json."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable


def print_json(response: dict, out=sys.stdout) -> None:
    out.write(json.dumps(response, ensure_ascii=False, indent=2) + "\n")


def print_json_lines(chunks: Iterable[dict], out=sys.stdout) -> dict:
    """One chunk per line as it arrives; returns the usage of the last chunk that had one."""
    usage: dict = {}
    for chunk in chunks:
        out.write(json.dumps(chunk, ensure_ascii=False) + "\n")
        out.flush()
        usage = chunk.get("usage") or usage
    return usage


def stream_text(prompt_text: str, chunks: Iterable[dict], out=sys.stdout) -> dict:
    """One choice, written as its text arrives after `prompt_text`; returns the usage chunk's counts."""
    out.write(prompt_text)
    out.flush()
    usage: dict = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            out.write(choice["text"])
            out.flush()
        usage = chunk.get("usage") or usage
    out.write("\n")
    return usage


def print_text(response: dict, prompt_texts: list[str], n_per_prompt: int, out=sys.stdout) -> None:
    """Every choice (headed when there are several) after its prompt, then its tokens when it has logprobs."""
    choices = response["choices"]
    for choice in choices:
        if len(choices) > 1:
            out.write(f"--- choice {choice['index']} ({choice['finish_reason']}) ---\n")
        prompt_text = prompt_texts[choice["index"] // n_per_prompt] if prompt_texts else ""
        out.write(prompt_text + choice["text"] + "\n")
        if choice["logprobs"]:
            _print_logprobs(choice["logprobs"], out)


def _print_logprobs(lp: dict, out) -> None:
    for token, logprob, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        value = "     null" if logprob is None else f"{logprob:9.4f}"
        alternatives = ", ".join(f"{t!r} {v:.3f}" for t, v in (top or {}).items())
        out.write(f"  {token!r:>20} {value}" + (f"   top: {alternatives}" if alternatives else "") + "\n")
