"""`sampling-engine bench`: the quick suite prints the whole table on the real model; --png without matplotlib
says so before any work; rounds alternate which contender goes first."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.bench.report import Row, markdown_table
from engine.bench.timing import alternating_rates

ROWS = ["n=1, 16 tokens", "logprobs 5, 16 tokens", "n=4, 16 tokens each", "echo scoring"]
SCRIPT = Path(sys.executable).parent / "sampling-engine"  # the installed console script


def test_bench_quick_prints_every_row():
    r = subprocess.run([str(SCRIPT), "bench", "--quick"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert re.match(r"backend: CPU.* \| llama-cpp-python \d+\.\d+\.\d+ \| threads \d+ \| GPU layers 0 \|", lines[0])
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| workload")]
    assert len(table) == len(ROWS)
    for row, name in zip(table, ROWS):
        assert row[2:].startswith(name), row
    for row in table:
        speeds = [float(c.replace(",", "").rstrip("×")) for c in row.strip("| ").split(" | ")[1:]]
        assert len(speeds) == 5 and all(s > 0 for s in speeds), row


def test_png_without_matplotlib_says_so_before_loading(tmp_path):
    # A None entry in sys.modules makes `import matplotlib` fail, as if it were not installed.
    code = "import sys; sys.modules['matplotlib'] = None; from engine.commands.main import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, "bench", "--quick", "--png", str(tmp_path / "c.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: png: matplotlib is not installed")
    assert not (tmp_path / "c.png").exists()


def test_table_has_speeds_and_ratios():
    table = markdown_table([Row("n=1", {"ours": 60.0, "llama-cpp-python": 40.0, "bare loop": 64.0})])
    assert table.splitlines()[2] == "| n=1 | 60.0 | 40.0 | 64.0 | 1.50× | 0.94× |"


def test_rounds_rotate_the_first_contender():
    order = []
    contenders = {name: (lambda r, name=name: order.append((r, name)) or 1) for name in "abc"}
    alternating_rates(contenders, rounds=3, warm_up=True)
    assert [name for r, name in order if r == -1] == ["a", "b", "c"]
    assert [[name for r, name in order if r == k][0] for k in range(3)] == ["a", "b", "c"]
    assert [name for r, name in order if r == 1] == ["b", "c", "a"]


def test_chart_is_a_png_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")  # optional: `sampling-engine[chart]`
    from engine.bench.chart import write_chart

    rows = [Row(name, {"ours": 3.0, "llama-cpp-python": 2.0, "bare loop": 3.5}) for name in ROWS]
    write_chart(rows, "backend: CPU", tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
