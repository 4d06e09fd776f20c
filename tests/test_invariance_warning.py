"""One warning at load when batch invariance is off, naming the cause and the fix; none when it holds."""
from __future__ import annotations

import logging

from engine.numerics.verdict import warn_not_batch_invariant


def test_no_warning_when_the_runtime_check_holds(caplog):
    from engine import Engine

    with caplog.at_level(logging.WARNING, logger="sampling_engine"):
        with Engine("smollm2-135m", n_ctx=256, n_seq_max=1) as e:
            assert e.batch_invariant is True
    assert not [r for r in caplog.records if r.name == "sampling_engine"]


def test_the_fast_numerics_warning_names_cause_and_fix(caplog):
    with caplog.at_level(logging.WARNING, logger="sampling_engine"):
        message = warn_not_batch_invariant("m", "fast")
    assert [r.getMessage() for r in caplog.records] == [message]
    assert "batch invariance is OFF" in message and "numerics='fast'" in message
    assert "Fix: use numerics='exact'" in message and "correct in distribution" in message
