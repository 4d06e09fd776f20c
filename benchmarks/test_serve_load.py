"""A short sweep of benchmarks/serve_load.py (our server vs llama-cpp-python's server vs the bare 8-sequence
loop, concurrency 1 and 4, 16 new tokens): every request succeeds and the table is written. Nothing gates on
an absolute number; the full sweep is `python benchmarks/serve_load.py`.

Run: ./dev bench -k serve_load
"""
import importlib.util
import sys
from pathlib import Path


def _serve_load():
    path = Path(__file__).with_name("serve_load.py")
    spec = importlib.util.spec_from_file_location("serve_load", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_load"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_serve_load_short_sweep(tmp_path):
    serve_load = _serve_load()
    summary = serve_load.main(["--concurrency", "1", "4", "--tokens", "16", "--requests", "4",
                               "--out", str(tmp_path)])
    assert summary["levels"], "nothing was measured"
    for key, level in summary["levels"].items():
        assert level["failures"] == 0, (key, level["errors"])
        assert level["output_tok_s"] > 0
    assert summary["bare_tok_s"] > 0
    table = (tmp_path / "serve_load.md").read_text()
    assert "| ours | 4 |" in table
    print("\n" + table)
