"""The command line, run as a user would run it."""
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=300)


def test_complete_streams_text_and_reports_speed():
    r = _run("complete", "The capital of France is", "--max-tokens", "8")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The capital of France is")
    assert len(r.stdout) > len("The capital of France is")
    assert "8 tokens" in r.stderr and "tok/s" in r.stderr


def test_models_lists_registry():
    r = _run("models")
    assert r.returncode == 0
    assert "smollm2-135m" in r.stdout and "present" in r.stdout and "gemma3-270m" in r.stdout


def test_bad_model_path_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    r = _run("complete", "x", "--model", str(bad))
    assert r.returncode == 1
    assert "not a GGUF file" in r.stderr
    assert "Traceback" not in r.stderr
