"""Prefix-aware request routing for the engine replicas, on Ray Serve's request-router extension point.

Each engine replica keeps the KV cells of its recent prompts in its slots (engine/slots.py reuses the longest
cached prefix), so a request whose prompt starts like a recent one on replica R costs R less prefill than it
costs any other replica. The rule follows llama.cpp's slot choice and Ray Serve LLM's PrefixCacheAffinityRouter:

- loads close (ongoing requests differ by at most `imbalanced_threshold`): the replica whose recent prompts
  share the longest prefix with this one, if that prefix is at least `match_rate_threshold` of the prompt;
- otherwise (or no useful match): power of two choices on load, Serve's default.

What a replica holds is estimated here, not asked: the last `history` prompts routed to it (a replica's slots
hold about that many). The router runs in the caller of the engine deployment's handle (the ingress replica),
where the request body is known; each ingress replica keeps its own history.

A request may name its replica with the header `x-sampling-engine-replica: ID` (the ID every response carries
in that header): an operator reads one replica's /metrics that way. An ID that is not running is ignored.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict, deque

from ray.serve.request_router import PendingRequest, ReplicaID, RunningReplica

# Serve's default policy, which this one falls back to; Ray 2.60 does not export it publicly (Ray Serve LLM's
# PrefixCacheAffinityRouter imports it from here too).
from ray.serve._private.request_router import PowerOfTwoChoicesRequestRouter

from .asgi_bridge import REPLICA_HEADER

KEY_CHARS = 8192  # prompts are compared on their first characters (a prefix longer than this is rare and long)


def prompt_key(pending: PendingRequest | None) -> str | None:
    """The prompt of a POST /v1/completions request carried over the handle as (scope, body), as a string to
    compare prefixes on (a token-list prompt becomes its ids); None for any other request. Parsed once per
    request (routing may take several tries)."""
    if pending is None:
        return None
    try:
        return pending._sampling_engine_key
    except AttributeError:
        pass
    key = _parse_key(pending)
    try:
        pending._sampling_engine_key = key
    except AttributeError:  # pragma: no cover (a PendingRequest with __slots__)
        pass
    return key


def _parse_key(pending: PendingRequest) -> str | None:
    if len(pending.args) < 2:
        return None
    scope, body = pending.args[0], pending.args[1]
    if not isinstance(scope, dict) or scope.get("path") != "/v1/completions" or not isinstance(body, bytes):
        return None
    try:
        prompt = json.loads(body).get("prompt")
    except (ValueError, AttributeError, RecursionError):
        return None
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch of prompts: the first one decides (lm-eval sends one context per request)
    if isinstance(prompt, list):
        prompt = ",".join(str(t) for t in prompt[: KEY_CHARS // 4]) + ","
    return prompt[:KEY_CHARS] if isinstance(prompt, str) and prompt else None


def pinned_replica(pending: PendingRequest | None) -> str | None:
    if pending is None or not pending.args or not isinstance(pending.args[0], dict):
        return None
    for k, v in pending.args[0].get("headers", []):
        if k.lower() == REPLICA_HEADER:
            return v.decode("ascii", "replace").strip()
    return None


def shared_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix((a, b)))


class PrefixAwareRouter(PowerOfTwoChoicesRequestRouter):
    def initialize_state(self, prefix_routing: bool = True, imbalanced_threshold: int = 4,
                         match_rate_threshold: float = 0.1, history: int = 16, **kwargs) -> None:
        super().initialize_state(**kwargs)
        self._prefix_routing = prefix_routing
        self._imbalanced_threshold = imbalanced_threshold
        self._match_rate_threshold = match_rate_threshold
        self._history: dict[ReplicaID, deque] = defaultdict(lambda: deque(maxlen=history))

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        pin = pinned_replica(pending_request)
        if pin:
            named = [r for r in candidate_replicas if r.replica_id.unique_id == pin]
            if named:
                return [named]
        fallback = await super().choose_replicas(candidate_replicas, pending_request)
        key = prompt_key(pending_request) if self._prefix_routing else None
        if key is None or len(candidate_replicas) < 2:
            return fallback
        best = await self._best_match(key, candidate_replicas)
        return [best, *fallback] if best else fallback

    async def _best_match(self, key: str, candidates: list[RunningReplica]) -> list[RunningReplica]:
        matches = {r.replica_id: max((shared_prefix(key, k) for k in self._history.get(r.replica_id, ())),
                                     default=0) for r in candidates}
        top = max(matches.values())
        if top < self._match_rate_threshold * len(key):
            return []
        loads = await self._loads(candidates)
        known = [q for q in loads.values() if q is not None]
        if known and max(known) - min(known) > self._imbalanced_threshold:
            return []
        return [r for r in candidates if matches[r.replica_id] == top]

    async def _loads(self, candidates: list[RunningReplica]) -> dict:
        """Ongoing requests per replica, from the queue-length cache or, where it has none, a probe."""
        loads, unknown = {}, []
        for r in candidates:
            q = self._replica_queue_len_cache.get(r.replica_id) if self._use_replica_queue_len_cache else None
            loads[r.replica_id] = q
            if q is None:
                unknown.append(r)
        if unknown:
            for r, q in await self._probe_queue_lens(unknown, 0):
                loads[r.replica_id] = q
        return loads

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result) -> None:
        key = prompt_key(pending_request)
        if key is not None:
            self._history[replica_id].append(key)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self._history.pop(replica_id, None)

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        for gone in set(self._history) - {r.replica_id for r in replicas}:
            self._history.pop(gone, None)
