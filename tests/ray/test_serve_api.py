"""The single-process server's behavioural tests, run unchanged against `serve --ray --replicas 2` (Serve's
proxy, the ingress, the prefix router, two engine replicas): the official openai client, SSE streaming, every
error shape, routes, tokenizer routes, metrics (summed over the replicas), concurrent streams, lm-eval's
requests (and lm-eval itself when installed).

Each test is the very function tests/test_server_*.py defines; only the `server` fixture differs."""
from __future__ import annotations

import pytest

from ..server_process import http  # noqa: F401 (a fixture, on the server below)
from ..test_server_concurrency import (  # noqa: F401 (collected here against the Ray server)
    test_a_slow_reader_does_not_stall_other_streams,
    test_eight_concurrent_streams_get_what_each_gets_alone,
)
from ..test_server_http import (  # noqa: F401
    test_bad_bodies_are_400s_in_spec_shape,
    test_health_models_and_cors_off,
    test_json_without_content_type_is_accepted,
    test_metrics_count_requests_tokens_and_slots,
    test_streamed_errors_before_the_first_byte_are_json,
    test_tokenizer_routes_round_trip,
    test_unknown_routes_and_wrong_methods,
)
from ..test_server_lm_eval import (  # noqa: F401
    ref_model,
    test_generate_until_requests,
    test_greedy_flags_for_greedy_and_non_greedy_continuations,
    test_lm_eval_end_to_end,
    test_loglikelihood_requests_match_independent_logprobs,
    test_tokenizer_discovery_like_lm_eval,
)
from ..test_server_openai import (  # noqa: F401
    client,
    test_defaults_and_a_string_list_prompt,
    test_echo_logprobs_scoring,
    test_errors_are_the_clients_exception_types,
    test_every_parameter_not_streamed,
    test_models_list,
    test_streaming_with_include_usage_n2_logprobs,
    test_streaming_without_usage_has_no_usage_key,
    test_token_ids_outside_the_vocabulary,
    test_token_list_prompts,
)
from .serve_process import ray_server  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def server(ray_server):  # noqa: F811
    return ray_server
