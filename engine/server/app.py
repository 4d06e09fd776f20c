"""The ASGI app: OpenAI's Completions API over one Engine, plus models, health, metrics and tokenizer routes.

    from engine import Engine
    from engine.server.app import create_app
    app = create_app(Engine("smollm2-135m"))          # any ASGI server; `sampling-engine serve` runs uvicorn

Routes: POST /v1/completions, GET /v1/models, GET /v1/models/{id}, GET /health, GET /metrics,
GET /tokenizer_info, POST /tokenize, POST /detokenize, GET /openapi.json. With an API key, every route but
/health needs `Authorization: Bearer KEY`. Every error is SPEC.md's JSON shape; nothing a client sends yields
a 500.
"""
from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from . import tokenizer
from .body import read_json_object
from .completions import CompletionsRoute
from .config import ServerConfig
from .errors import ApiError, JsonResponse
from .logs import RequestLogMiddleware, record
from .metrics import CONTENT_TYPE, ServerMetrics
from .openapi import build_openapi


def _model_card(engine, created: int) -> dict:
    n_ctx = engine.model.n_ctx
    return {"id": engine.model_id, "object": "model", "created": created, "owned_by": "sampling-engine",
            "context_length": n_ctx, "max_model_len": n_ctx, "metadata": _guarantees(engine)}


def _guarantees(engine) -> dict:
    """What a client may rely on: whether a seeded request's bytes are independent of its neighbours (the
    engine's runtime check) and the fingerprint that names the configuration."""
    return {"batch_invariant": engine.batch_invariant, "numerics": engine.numerics,
            "system_fingerprint": engine.system_fingerprint}


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: ApiError) -> Response:
        record(request.scope).setdefault("error", exc.code or str(exc.status))
        return exc.response()

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            err = ApiError(404, f"no route {method} {path} (this server implements POST /v1/completions, "
                                f"GET /v1/models, /health, /metrics, /tokenizer_info, /openapi.json, "
                                f"POST /tokenize, /detokenize)",
                           code="not_found", headers=headers)
        elif exc.status_code == 405:
            allowed = headers.get("Allow") or headers.get("allow") or ""
            err = ApiError(405, f"method {method} is not allowed on {path}" + (f" (allowed: {allowed})" if allowed
                                                                               else ""),
                           code="method_not_allowed", headers=headers)
        else:
            err = ApiError(exc.status_code, str(exc.detail), code=None, headers=headers)
        return await api_error(request, err)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        param = ".".join(loc) or None
        return await api_error(request, ApiError(400, f"{param or 'request'}: {first.get('msg', 'invalid value')}",
                                                 param=param, code="invalid_value"))

    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        """The client left while its body was being read: nobody to answer, nothing to log as an error."""
        record(request.scope)["client_gone"] = True
        return Response(status_code=499)

    async def server_error(request: Request, exc: Exception) -> Response:
        return ApiError(500, f"internal error: {type(exc).__name__}", type="server_error",
                        code="internal_error").response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, server_error)


def create_app(engine, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    metrics = ServerMetrics(engine)
    created = int(engine.model.path.stat().st_mtime) if hasattr(engine.model, "path") else int(time.time())
    app = FastAPI(title="sampling-engine", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.config, app.state.metrics = engine, config, metrics
    _install_error_handlers(app)

    # Digests of equal length, compared in constant time: neither the key's bytes nor its length leak through
    # how long a wrong guess takes.
    key = hashlib.sha256(config.api_key.encode("utf-8")).digest() if config.api_key else None

    async def require_key(request: Request) -> None:  # async: FastAPI would run a plain def in a worker thread
        if key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = hashlib.sha256(token.strip().encode("utf-8", "replace")).digest()
        if not hmac.compare_digest(given, key) or scheme.lower() != "bearer":
            raise ApiError(401, "missing or wrong API key: send the header `Authorization: Bearer <key>`",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(require_key)]
    completions = CompletionsRoute(engine, config, metrics)
    openapi = build_openapi(engine, config)

    async def create_completion(request: Request) -> Response:
        return await completions(request)

    async def list_models(request: Request) -> Response:
        record(request.scope)["route"] = "/v1/models"
        return JsonResponse({"object": "list", "data": [_model_card(engine, created)]})

    async def get_model(request: Request, model_id: str) -> Response:
        record(request.scope)["route"] = "/v1/models/{id}"
        if model_id not in engine.aliases:
            raise ApiError(404, f"model {model_id!r} is not loaded (loaded: {engine.model_id!r})", param="model",
                           code="model_not_found")
        return JsonResponse(_model_card(engine, created))

    async def health(request: Request) -> Response:
        record(request.scope)["route"] = "/health"
        if config.shutting_down:
            return JsonResponse({"status": "shutting_down"}, status_code=503)
        return JsonResponse({"status": "ok", "model": engine.model_id, **_guarantees(engine)})

    async def get_metrics(request: Request) -> Response:
        record(request.scope)["route"] = "/metrics"
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def get_tokenizer_info(request: Request) -> Response:
        record(request.scope)["route"] = "/tokenizer_info"
        return JsonResponse(tokenizer.tokenizer_info(engine))

    async def post_tokenize(request: Request) -> Response:
        record(request.scope)["route"] = "/tokenize"
        return JsonResponse(tokenizer.tokenize(engine, await read_json_object(request, config.max_body_bytes)))

    async def get_openapi(request: Request) -> Response:
        record(request.scope)["route"] = "/openapi.json"
        return JsonResponse(openapi)

    async def post_detokenize(request: Request) -> Response:
        record(request.scope)["route"] = "/detokenize"
        return JsonResponse(tokenizer.detokenize(engine, await read_json_object(request, config.max_body_bytes)))

    app.add_api_route("/v1/completions", create_completion, methods=["POST"], dependencies=auth)
    app.add_api_route("/v1/models", list_models, methods=["GET"], dependencies=auth)
    app.add_api_route("/v1/models/{model_id:path}", get_model, methods=["GET"], dependencies=auth)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/metrics", get_metrics, methods=["GET"], dependencies=auth)
    app.add_api_route("/tokenizer_info", get_tokenizer_info, methods=["GET"], dependencies=auth)
    app.add_api_route("/tokenize", post_tokenize, methods=["POST"], dependencies=auth)
    app.add_api_route("/detokenize", post_detokenize, methods=["POST"], dependencies=auth)
    app.add_api_route("/openapi.json", get_openapi, methods=["GET"], dependencies=auth)

    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["Authorization", "Content-Type"],
                           max_age=600)
    app.add_middleware(RequestLogMiddleware, metrics=metrics, log_prompts=config.log_prompts)
    return app
