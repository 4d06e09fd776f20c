"""llama_patches/llamafile-exact-gemv.patch: with llamafile's tinyBLAS on (stock prompt-processing speed), a
token's logits must not depend on how many tokens shared its llama_decode. Stock tinyBLAS serves batches of 2+
tokens and leaves 1-token batches to ggml's vec_dot, which sums F32/F16/BF16/IQ4_NL rows in another order (the
F16 KV cache makes every model's attention one of them); the patch computes 1-token rows with tinyBLAS's own
arithmetic. Checked on models of the types tinyBLAS serves, bit for bit; the patch's own off switch
(GGML_LLAMAFILE_EXACT_GEMV=0, in a child process) shows that these tests see the difference."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engine.model import Model
from engine.numerics.process import system_info
from engine.typed_models import build_typed_model as quantized_model

PROMPT = "The quick brown fox jumps over the lazy dog near the quiet river bank"
OTHER = "In a galaxy far away, a small ship"

patched = pytest.mark.skipif("LLAMAFILE_EXACT_GEMV" not in system_info(),
                             reason="llama.cpp without llama_patches/ (./dev builds it with them)")


def last_rows(path, splits=(1, 5, 11), n_threads=2):
    """Last-row logits of PROMPT decoded whole, token by token, split k + rest, and beside another sequence."""
    model = Model(path, n_ctx=512, n_seq_max=2, n_threads=n_threads)
    try:
        tokens = model.tokenize(PROMPT)
        other = model.tokenize(OTHER)

        def run(pieces, beside=False):
            model.seq_remove(-1)
            pos, row = 0, None
            for i, piece in enumerate(pieces):
                toks, poss, seqs, flags = list(piece), list(range(pos, pos + len(piece))), [0] * len(piece), \
                    [False] * (len(piece) - 1) + [True]
                if beside and i < len(other):  # a neighbour decoding one token per call
                    toks, poss, seqs, flags = toks + [other[i]], poss + [i], seqs + [1], flags + [True]
                row = np.array(model.decode(toks, poss, seqs, flags)[0])
                pos += len(piece)
            return row

        rows = {"whole": run([tokens]), "token by token": run([[t] for t in tokens]),
                "token by token beside another sequence": run([[t] for t in tokens], beside=True)}
        for k in splits:
            rows[f"split {k}+{len(tokens) - k}"] = run([tokens[:k], tokens[k:]])
        return rows
    finally:
        model.close()


@patched
@pytest.mark.parametrize("weight_type", ["q8_0", "f16", "bf16", "iq4_nl"])
def test_logits_are_bit_identical_however_the_prompt_is_split(weight_type):
    rows = last_rows(quantized_model("smollm2-135m", weight_type))
    for name, row in rows.items():
        assert np.array_equal(row, rows["whole"]), f"{weight_type}: {name} differs from one call"


@patched
def test_the_patch_is_what_makes_them_identical():
    """GGML_LLAMAFILE_EXACT_GEMV=0 turns the patch off (stock llama.cpp): then a 1-token batch differs."""
    path = quantized_model("smollm2-135m", "f16")
    code = ("import json, numpy as np, sys; sys.path.insert(0, '.'); from tests.test_llamafile_patch import last_rows;"
            f"r = last_rows({str(path)!r}); print(json.dumps({{k: float(np.abs(v - r['whole']).max()) for k, v in r.items()}}))")
    env = dict(os.environ, GGML_LLAMAFILE_EXACT_GEMV="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    diffs = json.loads(out.stdout.strip().splitlines()[-1])
    assert diffs["token by token"] > 0, diffs
