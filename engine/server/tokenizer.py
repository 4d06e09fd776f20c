"""Tokenizer endpoints in vLLM's shapes, which lm-evaluation-harness finds by itself (`tokenizer_backend=auto`):
GET /tokenizer_info, POST /tokenize {"prompt", "add_special_tokens"}, POST /detokenize {"tokens"}.

Text is tokenized with special-token parsing on, as completions prompts are, so the EOS string ("<|endoftext|>")
is that one token; detokenizing renders control tokens by name, so the two round-trip.
"""
from __future__ import annotations

from .errors import ApiError


def _token_text(model, token: int) -> str | None:
    if token is None or token < 0:
        return None
    return model.token_name_bytes(token).decode("utf-8", "replace")


def tokenizer_info(engine) -> dict:
    model = engine.model
    return {
        "tokenizer_class": "llama.cpp (GGUF vocabulary)",
        "model": engine.model_id,
        "eos_token": _token_text(model, model.eos),
        "bos_token": _token_text(model, model.bos),
        "pad_token": None,
        "unk_token": None,
        "eos_token_id": model.eos if model.eos >= 0 else None,
        "bos_token_id": model.bos if model.bos >= 0 else None,
        "add_bos_token": bool(model.add_bos),
        "add_eos_token": False,
        "model_max_length": model.n_ctx,
        "vocab_size": model.n_vocab,
    }


def _check_keys(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown parameter(s): {', '.join(unknown)}", param=unknown[0], code="unknown_parameter")


def _check_model(engine, body: dict) -> None:
    model = body.get("model")
    if model is None:
        return
    if not isinstance(model, str):
        raise ApiError(400, f"model must be a string, got {model!r}", param="model", code="invalid_value")
    if model not in engine.aliases:
        raise ApiError(404, f"model {model!r} is not loaded (loaded: {engine.model_id!r})", param="model",
                       code="model_not_found")


def _bool(body: dict, name: str, default: bool) -> bool:
    v = body.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ApiError(400, f"{name} must be a boolean, got {v!r}", param=name, code="invalid_value")
    return v


def tokenize(engine, body: dict) -> dict:
    _check_keys(body, {"model", "prompt", "add_special_tokens", "return_token_strs"})
    _check_model(engine, body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise ApiError(400, f"prompt must be a string, got {type(prompt).__name__}", param="prompt",
                       code="invalid_value")
    add_special = _bool(body, "add_special_tokens", True)
    model = engine.model
    # add_special_tokens: the model's own BOS rule (BOS only if the GGUF asks for it); special-token text parsed.
    tokens = model.tokenize(prompt, add_bos=None if add_special else False, special=True)
    out = {"count": len(tokens), "max_model_len": model.n_ctx, "tokens": tokens, "token_strs": None}
    if _bool(body, "return_token_strs", False):
        out["token_strs"] = [engine.formatter.string(t) for t in tokens]
    return out


def detokenize(engine, body: dict) -> dict:
    _check_keys(body, {"model", "tokens"})
    _check_model(engine, body)
    tokens = body.get("tokens")
    model = engine.model
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise ApiError(400, "tokens must be a list of token ids (integers)", param="tokens", code="invalid_value")
    bad = next((t for t in tokens if not 0 <= t < model.n_vocab), None)
    if bad is not None:
        raise ApiError(400, f"token id {bad} is outside the vocabulary [0, {model.n_vocab - 1}]", param="tokens",
                       code="invalid_value")
    text = b"".join(model.token_name_bytes(t) for t in tokens).decode("utf-8", "replace")
    return {"prompt": text}
