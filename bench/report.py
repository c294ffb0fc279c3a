"""The results table (operator, floor, operator/floor) and py-spy profile summaries."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    scenario: str
    metric: str
    operator: float | None
    floor: float | None = None
    unit: str = "s"

    @property
    def ratio(self) -> float | None:
        if self.operator is None or self.floor is None or self.floor <= 0:
            return None
        return self.operator / self.floor

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "operator": self.operator,
            "floor": self.floor,
            "ratio": self.ratio,
            "unit": self.unit,
        }


def number(value: float | None, unit: str = "") -> str:  # noqa: PLR0911 - one unit a line
    if value is None:
        return "—"
    if unit == "s" and value < 1:
        return f"{value * 1000:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    if unit == "KiB":
        return f"{value:.0f} KiB"
    if unit == "%":
        return f"{value:.1f} %"
    if float(value).is_integer():
        return f"{int(value)}{(' ' + unit) if unit else ''}"
    return f"{value:.2f}{(' ' + unit) if unit else ''}"


def table(rows: list[Row]) -> str:
    """A Markdown table; also readable on a terminal."""
    lines = [
        "| scenario | metric | operator | floor | operator / floor |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.1f}×" if row.ratio is not None else "—"
        lines.append(
            f"| {row.scenario} | {row.metric} | {number(row.operator, row.unit)} "
            f"| {number(row.floor, row.unit)} | {ratio} |"
        )
    return "\n".join(lines)


def profile_summary(raw: str, top: int = 25) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the share of samples in each function (inclusive, and
    as the innermost frame) and per thread."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread ", "process ")):
            # --threads puts "thread (0x...)" (and with subprocesses "process ...") first.
            label = next((frame for frame in frames if frame.startswith("thread ")), frames[0])
            threads[label] += count
            frames = [frame for frame in frames if not frame.startswith(("thread ", "process "))]
        for name in {_short(frame) for frame in frames}:
            inclusive[name] += count
        if frames:
            leaf[_short(frames[-1])] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * count / total, 1)) for name, count in counter.most_common(top)]

    return {
        "samples": total,
        "inclusive_percent": share(inclusive),
        "self_percent": share(leaf),
        "threads_percent": share(threads),
    }


def _short(frame: str) -> str:
    """`function (path/to/module.py:123)` -> `function (module.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    parts = path.split("/")
    tail = "/".join(parts[-2:]) if parts else path
    return f"{name} ({tail})"
