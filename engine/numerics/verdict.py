"""One warning at load when a seeded request's bytes would depend on its neighbours, naming cause and fix."""
from __future__ import annotations

import logging

from .build import build_info

log = logging.getLogger("sampling_engine")


def warn_not_batch_invariant(model_id: str, numerics: str) -> str:
    """Log (once per engine) why batch invariance is off here and how to get it back; returns the message."""
    build = build_info()
    if numerics != "exact":
        cause = f"numerics={numerics!r} takes llama.cpp's stock fast paths"
        fix = "use numerics='exact' (the default)"
    elif not build["exact_build"]:
        cause = ("this llama.cpp build has llamafile's tinyBLAS without the project's exact 1-token patch "
                 "(a stock `pip install llama-cpp-python`)")
        fix = ("install the project's build: from a checkout, `./dev` builds llama-cpp-python with llama_patches/ "
               "(docs/install.md); `sampling-engine doctor` shows what you have")
    else:
        cause = f"the runtime check failed on backend {build['backend']} (GPU backends are not verified)"
        fix = "run on the CPU build, or see docs/gpu.md; `sampling-engine doctor --json` for a bug report"
    message = (f"{model_id}: batch invariance is OFF: {cause}. Seeded results stay correct in distribution, but "
               f"a request's bytes may depend on what it is batched with. Fix: {fix}.")
    log.warning(message)
    return message
