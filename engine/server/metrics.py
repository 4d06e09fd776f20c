"""GET /metrics: Prometheus text format, one registry per app (never prometheus-client's global one).

The engine's own figures (requests running and queued, tokens generated, slot use) are read from
`engine.stats()` at scrape time; the server counts prompt tokens, requests by outcome, and latencies.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PREFIX = "sampling_engine"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _EngineCollector:
    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        stats = self.engine.stats()
        slots = stats.get("slots", [])
        yield GaugeMetricFamily(f"{PREFIX}_requests_running", "Requests holding KV slots now",
                                value=stats.get("running", 0))
        yield GaugeMetricFamily(f"{PREFIX}_requests_queued", "Requests waiting for a free slot",
                                value=stats.get("queued", 0))
        yield CounterMetricFamily(f"{PREFIX}_generation_tokens", "Tokens sampled by the engine (all candidates)",
                                  value=stats.get("tokens_generated", 0))
        yield CounterMetricFamily(f"{PREFIX}_prefix_cache_queries", "Prompt tokens admitted to KV slots",
                                  value=stats.get("prompt_tokens", 0))
        yield CounterMetricFamily(f"{PREFIX}_prefix_cache_hits",
                                  "Prompt tokens a slot already held (a cached prefix, not evaluated again)",
                                  value=stats.get("prompt_tokens_cached", 0))
        yield GaugeMetricFamily(f"{PREFIX}_slots", "KV slots (sequences) the engine holds",
                                value=len(slots))
        yield GaugeMetricFamily(f"{PREFIX}_slots_busy", "KV slots in use by a request",
                                value=sum(1 for s in slots if s.get("busy")))
        busy = GaugeMetricFamily(f"{PREFIX}_slot_busy", "1 while the slot is in use by a request", labels=["slot"])
        cached = GaugeMetricFamily(f"{PREFIX}_slot_cached_tokens", "KV cells the slot holds (its cached prefix)",
                                   labels=["slot"])
        for s in slots:
            busy.add_metric([str(s.get("seq"))], 1 if s.get("busy") else 0)
            cached.add_metric([str(s.get("seq"))], s.get("cached_tokens", 0))
        yield busy
        yield cached


class ServerMetrics:
    def __init__(self, engine):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_EngineCollector(engine))
        r = self.registry
        self.prompt_tokens = Counter(f"{PREFIX}_prompt_tokens", "Prompt tokens of completed requests", registry=r)
        self.completion_tokens = Counter(f"{PREFIX}_completion_tokens",
                                         "Completion tokens (usage) of completed requests", registry=r)
        self.requests = Counter(f"{PREFIX}_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.finished = Counter(f"{PREFIX}_request_finished", "Completion choices by finish reason",
                                ["finish_reason"], registry=r)
        self.ttft = Histogram(f"{PREFIX}_time_to_first_token_seconds", "Streamed requests: time to the first chunk",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram(f"{PREFIX}_request_latency_seconds", "Completion requests: time to the last byte",
                             buckets=LATENCY_BUCKETS, registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
