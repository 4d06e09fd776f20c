"""Every llama_decode of an Engine runs on its loop thread.

llama.cpp's CPU backend (OpenMP) keeps a thread team per calling thread. A decode on any other thread (the
load-time invariance check once ran on the caller's) leaves a second team alive, and on a machine with few
cores both teams throttle their spin-waiting: every later decode step was 1.6x slower (SmolLM2 Q8_0, 2 cores,
9.4 vs 15.5 ms per token)."""
from __future__ import annotations


def test_load_check_and_requests_decode_only_on_the_loop_thread():
    from engine import Engine

    with Engine("smollm2-135m", n_ctx=256, n_seq_max=2) as e:
        e.create_completion(prompt="The ocean is", max_tokens=3, n=2, seed=1)
        list(e.create_completion(prompt="The sky is", max_tokens=3, stream=True))
        assert e.batch_invariant is True  # the load-time check ran
        assert e.model.decode_threads == {e.loop.thread_ident}
