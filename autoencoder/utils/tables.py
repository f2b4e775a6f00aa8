"""Markdown tables and mean ± std, as every report of the framework writes them."""

import statistics
from collections.abc import Iterable, Sequence


def mean_std(values: Iterable[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation of the values that are not None (std 0 for a single
    value); None when there is none."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return statistics.mean(present), statistics.stdev(present) if len(present) > 1 else 0.0


def format_mean_std(values: Sequence[float | None], spec: str) -> str:
    """'mean ± std' in `spec`, the mean alone for a single value, '-' for none."""
    stats = mean_std(values)
    if stats is None:
        return "-"
    return format(stats[0], spec) if sum(v is not None for v in values) == 1 else f"{stats[0]:{spec}} ± {stats[1]:{spec}}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table, one line per row, ending in a newline."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
