"""What `sampling-engine serve` was told, as the app sees it."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class ServerConfig:
    api_key: str | None = None          # required as `Authorization: Bearer KEY` when set
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_prompts: bool = False           # prompt text in the request log line
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are given
    sse_ping_s: float = 15.0            # SSE comment lines while a stream is quiet (0: none)
    shutdown_timeout_s: float = 30.0    # on SIGINT/SIGTERM, in-flight requests get this long, then are cancelled
    shutting_down: bool = field(default=False)  # set by the server on a shutdown signal
