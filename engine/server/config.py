"""What `sampling-engine serve` was told, as the app sees it."""
from __future__ import annotations

from dataclasses import dataclass, field

# Request size limits, on by default (each a `serve` option): a body of 8 MiB holds any prompt a 128k context
# takes; 256 prompts or sequences per request keep one request's queued state (sampler arrays, up to a
# vocabulary's worth of penalty counts per sequence) to a few hundred MB even on a large vocabulary.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PROMPTS = 256
DEFAULT_MAX_SEQUENCES = 256


@dataclass
class ServerConfig:
    api_key: str | None = None          # required as `Authorization: Bearer KEY` when set
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_prompts: int = DEFAULT_MAX_PROMPTS       # prompts in one request
    max_sequences: int = DEFAULT_MAX_SEQUENCES   # prompts x best_of (n unless given) in one request
    log_prompts: bool = False           # prompt text in the request log line
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are given
    sse_ping_s: float = 15.0            # SSE comment lines while a stream is quiet (0: none)
    shutdown_timeout_s: float = 30.0    # on SIGINT/SIGTERM, in-flight requests get this long, then are cancelled
    shutting_down: bool = field(default=False)  # set by the server on a shutdown signal
    shutdown_at: float | None = None            # its time.monotonic()
