"""Results as a picture: mean score by factor level, one panel per factor (matplotlib).

Writes a PNG; the figures come from ``tunegit.core.results`` (pure), which is all it reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunegit.core.expand import Expansion
from tunegit.core.results import Score, by_factor


def plot_png(path: str, exp: Expansion, scores: Sequence[Score], title: str) -> bool:
    """Mean score by factor level, one panel per factor. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    tables = by_factor(exp, scores)
    n = max(1, len(tables))
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.6), squeeze=False)
    for ax, (factor, table) in zip(axes[0], tables.items(), strict=False):
        levels = list(table)
        means = [sum(v) / len(v) for v in table.values()]
        ax.bar(levels, means, color=["#999999" if lv == "base" else "#3b6ea5" for lv in levels])
        ax.set_ylim(0, 1)
        ax.set_xlabel(factor)
        ax.set_ylabel("mean score")
        for x, m in enumerate(means):
            ax.text(x, m + 0.02, f"{m:.2f}", ha="center", fontsize=8)
    if not tables:
        axes[0][0].text(0.5, 0.5, "no scores yet", ha="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True
