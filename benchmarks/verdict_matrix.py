"""Engine.batch_invariant's check (Model.check_batch_invariance) on every registry and typed test model.

    python benchmarks/verdict_matrix.py exact|fast
    LLAMA_CPP_LIB_PATH=<folder of other libllama/libggml> python benchmarks/verdict_matrix.py exact

One JSON line: the numerics, whether the loaded llama.cpp has llamafile (and the project's exact-gemv patch,
enabled), and the verdict per model. One thread: the kernels' per-element arithmetic does not depend on it,
and a busy machine makes 2-thread barriers slow. The libraries and the numerics are per process.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.model import Model  # noqa: E402
from engine.numerics.process import system_info  # noqa: E402
from engine.registry import load_registry  # noqa: E402
from engine.typed_models import build_typed_model  # noqa: E402

numerics = sys.argv[1] if len(sys.argv) > 1 else "exact"
paths = [e.path for e in load_registry()[1].values()]
paths += [build_typed_model("smollm2-135m", t) for t in ("q8_0", "q4_0", "q5_0", "f16")]
verdicts = {}
for p in paths:  # the numerics are claimed by the first model, before ggml reads its switches
    with Model(p, n_ctx=256, n_seq_max=1, n_threads=1, numerics=numerics) as m:
        verdicts[Path(p).name] = m.check_batch_invariance()
info = system_info()
print(json.dumps(dict(numerics=numerics, llamafile="LLAMAFILE = 1" in info,
                      exact_gemv="LLAMAFILE_EXACT_GEMV = 1" in info, verdicts=verdicts)))
