"""Bad model files give a clear ModelFileError before llama.cpp touches them."""
import pytest

from engine.errors import ModelFileError
from engine.gguf_check import GGML_BLOCK_SIZES, check_gguf_file
from engine.model import Model


def test_text_file_renamed_gguf(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("these are not weights\n" * 10)
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        Model(bad)


def test_truncated_gguf(tmp_path, model_path):
    data = model_path.read_bytes()
    cut = tmp_path / "truncated.gguf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        Model(cut)


def test_truncated_inside_header(tmp_path, model_path):
    with open(model_path, "rb") as f:
        head = f.read(1000)
    cut = tmp_path / "header.gguf"
    cut.write_bytes(head)
    with pytest.raises(ModelFileError, match="truncated"):
        Model(cut)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        Model(tmp_path / "nope.gguf")


def test_real_file_passes_check(model_path):
    check_gguf_file(model_path)


def test_block_size_table_matches_gguf_package():
    gguf = pytest.importorskip("gguf")
    for qtype, sizes in gguf.GGML_QUANT_SIZES.items():
        if int(qtype) in GGML_BLOCK_SIZES:
            assert GGML_BLOCK_SIZES[int(qtype)] == tuple(sizes), qtype
    assert {int(k) for k in gguf.GGML_QUANT_SIZES} <= set(GGML_BLOCK_SIZES)
