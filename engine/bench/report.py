"""The Markdown table: tok/s of each contender per workload and the two ratios that matter."""
from __future__ import annotations

from dataclasses import dataclass

CONTENDERS = ("ours", "llama-cpp-python", "bare loop")


@dataclass(frozen=True)
class Row:
    workload: str
    tok_s: dict[str, float]  # by contender

    def ratio(self, other: str) -> float:
        return self.tok_s["ours"] / self.tok_s[other]


def _num(x: float) -> str:
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def markdown_table(rows: list[Row]) -> str:
    lines = ["| workload | ours tok/s | llama-cpp-python tok/s | bare loop tok/s | ours / llama-cpp-python "
             "| ours / bare loop |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        speeds = " | ".join(_num(row.tok_s[c]) for c in CONTENDERS)
        lines.append(f"| {row.workload} | {speeds} | {row.ratio('llama-cpp-python'):.2f}× "
                     f"| {row.ratio('bare loop'):.2f}× |")
    return "\n".join(lines)
