"""An optional PNG of the table (grouped bars of tok/s), drawn only when matplotlib is installed: it is not a
dependency (`pip install sampling-engine[chart]` adds it)."""
from __future__ import annotations

from pathlib import Path

from .report import CONTENDERS, Row


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_chart(rows: list[Row], title: str, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    width = 0.27
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for k, contender in enumerate(CONTENDERS):
        xs = [i + (k - 1) * width for i in range(len(rows))]
        bars = ax.bar(xs, [r.tok_s[contender] for r in rows], width, label=contender)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(rows)), [r.workload.split(",")[0] for r in rows])
    ax.set_ylabel("tokens / s")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
