"""GET /openapi.json: the server's OpenAPI 3.1 description, written to match what the routes accept.

Every request parameter is described with its type and its range (SPEC.md's table, this model's vocabulary
and context, this server's request limits), unknown keys are refused (additionalProperties: false), and
every status a route can answer is listed with its body. A fuzzer (tests/reliability) aims with it: data
that fits the schema should succeed unless it breaks a rule JSON Schema cannot say (prompt tokens +
max_tokens within the context, max_tokens 0 only with echo, stream_options only with stream, best_of >= n).
"""
from __future__ import annotations

from ..version import __version__

INT64 = {"type": "integer", "minimum": -(2 ** 63), "maximum": 2 ** 63 - 1}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _number(lo: float, hi: float, default: float, lo_open: bool = False) -> dict:
    low = {"exclusiveMinimum": lo} if lo_open else {"minimum": lo}
    return _nullable({"type": "number", **low, "maximum": hi, "default": default})


def completion_request(model_id: str, n_vocab: int, n_ctx: int, max_prompts: int, max_sequences: int) -> dict:
    token = {"type": "integer", "minimum": 0, "maximum": n_vocab - 1}
    tokens = {"type": "array", "items": token, "minItems": 1, "maxItems": n_ctx}
    text = {"type": "string"}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "model": _nullable({"type": "string", "enum": [model_id]}),
            "prompt": {"anyOf": [
                text,
                {"type": "array", "items": text, "minItems": 1, "maxItems": max_prompts},
                tokens,
                {"type": "array", "items": tokens, "minItems": 1, "maxItems": max_prompts},
                {"type": "null"},
            ], "description": "One prompt (text or token ids) or a list of them; null or \"\" is the BOS token."},
            "suffix": _nullable(text),
            "max_tokens": _nullable({"type": "integer", "minimum": 0, "maximum": n_ctx, "default": 16,
                                     "description": "0 only with echo; prompt tokens + max_tokens <= the "
                                                    "context length"}),
            "temperature": _number(0, 2, 1),
            "top_p": _number(0, 1, 1, lo_open=True),
            "n": _nullable({"type": "integer", "minimum": 1, "maximum": min(128, max_sequences), "default": 1}),
            "best_of": _nullable({"type": "integer", "minimum": 1, "maximum": min(20, max_sequences),
                                  "description": ">= n; > n only without stream"}),
            "logprobs": _nullable({"type": "integer", "minimum": 0, "maximum": 5}),
            "echo": _nullable({"type": "boolean", "default": False}),
            "stop": {"anyOf": [{"type": "string", "minLength": 1},
                               {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                                "maxItems": 4},
                               {"type": "null"}]},
            "presence_penalty": _number(-2, 2, 0),
            "frequency_penalty": _number(-2, 2, 0),
            "logit_bias": _nullable({
                "type": "object",
                "propertyNames": {"pattern": "^[0-9]{1,9}$"},
                "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
                "description": f"token id (0..{n_vocab - 1}, as a string) -> bias",
            }),
            "seed": _nullable(INT64),
            "stream": _nullable({"type": "boolean", "default": False}),
            "stream_options": _nullable({"type": "object", "additionalProperties": False,
                                         "properties": {"include_usage": _nullable({"type": "boolean"})}}),
            "user": _nullable(text),
        },
    }


_LOGPROBS = _nullable({
    "type": "object",
    "required": ["tokens", "token_logprobs", "top_logprobs", "text_offset"],
    "properties": {
        "tokens": {"type": "array", "items": {"type": "string"}},
        "token_logprobs": {"type": "array", "items": {"type": ["number", "null"]}},
        "top_logprobs": {"type": "array", "items": {"type": ["object", "null"],
                                                    "additionalProperties": {"type": "number"}}},
        "text_offset": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    },
})
_USAGE = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
          "properties": {k: {"type": "integer", "minimum": 0}
                         for k in ("prompt_tokens", "completion_tokens", "total_tokens")}}
COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "system_fingerprint", "choices", "usage"],
    "properties": {
        "id": {"type": "string", "pattern": "^cmpl-"},
        "object": {"const": "text_completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "system_fingerprint": {"type": "string", "pattern": "^fp_"},
        "choices": {"type": "array", "items": {
            "type": "object", "required": ["text", "index", "logprobs", "finish_reason"],
            "properties": {"text": {"type": "string"}, "index": {"type": "integer", "minimum": 0},
                           "logprobs": _LOGPROBS, "finish_reason": {"enum": ["stop", "length", None]}}}},
        "usage": _nullable(_USAGE),
    },
}
# A streamed chunk: the same shape, with "usage" only when stream_options.include_usage asked for it.
CHUNK = {**COMPLETION, "required": [k for k in COMPLETION["required"] if k != "usage"]}
ERROR = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"], "additionalProperties": False,
        "properties": {"message": {"type": "string", "minLength": 1, "maxLength": 1000},
                       "type": {"type": "string"}, "param": {"type": ["string", "null"]},
                       "code": {"type": ["string", "null"]}}}},
}
MODEL = {"type": "object", "required": ["id", "object", "created", "owned_by"],
         "properties": {"id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                        "owned_by": {"type": "string"}, "context_length": {"type": "integer"},
                        "max_model_len": {"type": "integer"}, "metadata": {"$ref": "#/components/schemas/Guarantees"}}}
GUARANTEES = {"type": "object", "required": ["batch_invariant", "numerics", "system_fingerprint"],
              "description": "batch_invariant: the engine's runtime check that a seeded request's bytes do not "
                             "depend on what it is batched with; system_fingerprint: everything that decides them",
              "properties": {"batch_invariant": {"type": "boolean"}, "numerics": {"enum": ["exact", "fast"]},
                             "system_fingerprint": {"type": "string", "pattern": "^fp_"}}}

_WHY = {400: "invalid request: the message names the parameter and its allowed range",
        401: "missing or wrong API key", 404: "unknown model", 405: "method not allowed",
        413: "request body over --max-body-bytes", 415: "body is not JSON",
        503: "queue full or shutting down (Retry-After)"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    return {str(s): _json({"$ref": "#/components/schemas/Error"}, _WHY[s]) for s in statuses}


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _operation(summary: str, responses: dict, body: dict | None = None, secured: bool = True,
               parameters: list | None = None) -> dict:
    op = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = _body(body)
    if parameters:
        op["parameters"] = parameters
    op["security"] = [{"bearer": []}] if secured else []
    return op


def build_openapi(engine, config) -> dict:
    model = engine.model
    n_vocab, n_ctx = model.n_vocab, model.n_ctx
    request = completion_request(engine.model_id, n_vocab, n_ctx, config.max_prompts, config.max_sequences)
    tokenize = {"type": "object", "additionalProperties": False, "required": ["prompt"],
                "properties": {"model": _nullable({"type": "string", "enum": [engine.model_id]}),
                               "prompt": {"type": "string"},
                               "add_special_tokens": _nullable({"type": "boolean"}),
                               "return_token_strs": _nullable({"type": "boolean"})}}
    detokenize = {"type": "object", "additionalProperties": False, "required": ["tokens"],
                  "properties": {"model": _nullable({"type": "string", "enum": [engine.model_id]}),
                                 "tokens": {"type": "array",
                                            "items": {"type": "integer", "minimum": 0, "maximum": n_vocab - 1}}}}
    # Before OpenAPI 3.2, an event stream's schema describes each event (its `data` holds a chunk as JSON)
    chunk_or_error = {"anyOf": [{"$ref": "#/components/schemas/CompletionChunk"},
                                {"$ref": "#/components/schemas/Error"}]}
    event = {"type": "object", "required": ["data"], "properties": {"data": {"anyOf": [
        {"const": "[DONE]"},
        {"type": "string", "contentMediaType": "application/json", "contentSchema": chunk_or_error}]}}}
    stream = {"description": "server-sent events: `data: {chunk}` (the Completion shape with text deltas; an error "
                             "object if the stream fails after its first byte), then `data: [DONE]`",
              "schema": event}
    completion_ok = {"description": "the completion (JSON), or its chunks as server-sent events with stream=true",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Completion"}},
                                 "text/event-stream": stream}}
    health = {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": ["ok", "shutting_down"]}, "model": {"type": "string"},
        **GUARANTEES["properties"]}}
    model_list = {"type": "object", "required": ["object", "data"],
                  "properties": {"object": {"const": "list"},
                                 "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}}
    tokens_out = {"type": "object", "required": ["count", "max_model_len", "tokens"],
                  "properties": {"count": {"type": "integer"}, "max_model_len": {"type": "integer"},
                                 "tokens": {"type": "array", "items": {"type": "integer"}},
                                 "token_strs": {"type": ["array", "null"], "items": {"type": "string"}}}}
    text_out = {"type": "object", "required": ["prompt"], "properties": {"prompt": {"type": "string"}}}
    model_param = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "sampling-engine", "version": __version__,
                 "description": "OpenAI's Completions API on a local GGUF model (see SPEC.md). Request limits: "
                                f"body {config.max_body_bytes} bytes, {config.max_prompts} prompts, "
                                f"{config.max_sequences} sequences (prompts x best_of)."},
        "paths": {
            "/v1/completions": {"post": _operation("Create a completion", {
                "200": completion_ok, **_errors(400, 401, 404, 413, 415, 503)}, body=request)},
            "/v1/models": {"get": _operation("The loaded model", {
                "200": _json(model_list, "the loaded model"), **_errors(401)})},
            "/v1/models/{model_id}": {"get": _operation("One model by id or alias", {
                "200": _json({"$ref": "#/components/schemas/Model"}, "the model"), **_errors(401, 404)},
                parameters=model_param)},
            "/health": {"get": _operation("Liveness (no API key)", {
                "200": _json(health, "serving"), "503": _json(health, "shutting down")}, secured=False)},
            "/metrics": {"get": _operation("Prometheus metrics", {
                "200": {"description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}, **_errors(401)})},
            "/tokenizer_info": {"get": _operation("Tokenizer facts (vLLM's shape)", {
                "200": _json({"type": "object"}, "tokenizer facts"), **_errors(401)})},
            "/tokenize": {"post": _operation("Text to token ids", {
                "200": _json(tokens_out, "the tokens"), **_errors(400, 401, 404, 413, 415)}, body=tokenize)},
            "/detokenize": {"post": _operation("Token ids to text", {
                "200": _json(text_out, "the text"), **_errors(400, 401, 404, 413, 415)}, body=detokenize)},
        },
        "components": {
            "schemas": {"Completion": COMPLETION, "CompletionChunk": CHUNK, "Error": ERROR, "Model": MODEL,
                        "Guarantees": GUARANTEES},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
