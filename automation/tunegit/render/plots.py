"""Results as pictures (matplotlib), returned as PNG bytes for the caller to write.

- ``results_png``: one panel per task x scorer, a bar per cell with its 95% interval as
  an error bar, grouped by the plan's first varying factor (the others as colours), the
  base-model controls first in grey; the layout is ``tunegit.core.results.panels`` (pure);
- ``loss_png``: training loss per step, one line per run, epoch boundaries marked; and per
  epoch (the mean of its logged steps), with validation loss where the plan asks for it.

Both return None when matplotlib is missing (it comes with the train extra). The PNGs carry
no timestamp or version: the same figures give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from tunegit.core.logparse import LossCurve
from tunegit.core.results import Bar

BASE_COLOUR = "#999999"
PALETTE = ("#3b6ea5", "#d9822b", "#4f9a5b", "#b5484b", "#7d5ba6", "#8c6d3f", "#c768a8",
           "#5a5a5a", "#a5a53b", "#3ba5a5")
GROUP_GAP = 0.6  # extra space between the bars of two levels of the first factor


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _png(plt: Any, fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def bar_positions(bars: Sequence[Bar]) -> list[float]:
    """x of each bar: consecutive within a group, a gap where the group changes."""
    xs, x = [], 0.0
    for i, bar in enumerate(bars):
        if i and bar.group != bars[i - 1].group:
            x += GROUP_GAP
        xs.append(x)
        x += 1.0
    return xs


def results_png(panels: Mapping[str, Sequence[Bar]], title: str,
                metric: str = "score") -> bytes | None:
    plt = _pyplot()
    if plt is None:
        return None
    n = max(1, len(panels))
    widest = max((len(b) for b in panels.values()), default=1)
    fig, axes = plt.subplots(1, n, figsize=(max(4.5, 0.7 * widest + 2) * n, 4.2),
                             squeeze=False)
    for ax, (name, bars) in zip(axes[0], panels.items(), strict=False):
        _bar_panel(ax, name, bars, metric)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no scores yet", ha="center")
        axes[0][0].set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(plt, fig)


def _bar_panel(ax: Any, name: str, bars: Sequence[Bar], metric: str) -> None:
    hues = list(dict.fromkeys(b.hue for b in bars if not b.control))
    colours = [BASE_COLOUR if b.control else PALETTE[hues.index(b.hue) % len(PALETTE)]
               for b in bars]
    xs = bar_positions(bars)
    scores = [b.score for b in bars]
    low = [b.score - b.interval.low if b.interval else 0.0 for b in bars]
    high = [b.interval.high - b.score if b.interval else 0.0 for b in bars]
    ax.bar(xs, scores, color=colours, yerr=[low, high], capsize=4,
           error_kw={"elinewidth": 1, "ecolor": "#333333"})
    ax.set_xticks(xs, [b.label for b in bars], rotation=30 if len(bars) > 3 else 0,
                  ha="right" if len(bars) > 3 else "center", fontsize=8)
    top = max([1.0, *(b.interval.high for b in bars if b.interval), *scores])
    ax.set_ylim(min(0.0, *(b.interval.low for b in bars if b.interval)), top * 1.08)
    ax.set_title(name, fontsize=9)
    ax.set_ylabel(f"{metric} (95% interval)")
    if len(hues) > 1:
        from matplotlib.patches import Patch

        handles = [Patch(color=PALETTE[i % len(PALETTE)]) for i in range(len(hues))]
        ax.legend(handles, hues, fontsize=7, frameon=False)


def loss_png(curves: Mapping[str, LossCurve], title: str) -> bytes | None:
    """Left: loss per step, one line per run, a dotted line after every run's epoch ends.
    Right: mean training loss per epoch, validation loss dashed."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, (steps_ax, epochs_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (run, curve) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        if curve.steps:
            steps_ax.plot([s for s, _, _ in curve.steps], [loss for _, _, loss in curve.steps],
                          color=colour, linewidth=1, label=run)
        means = curve.epoch_means()
        if means:
            epochs_ax.plot([e for e, _ in means], [v for _, v in means], color=colour,
                           marker="o", label=f"{run} train")
        if curve.validation:
            epochs_ax.plot([e for e, _ in curve.validation], [v for _, v in curve.validation],
                           color=colour, marker="s", linestyle="--",
                           label=f"{run} validation")
    for end in sorted({end for c in curves.values() for end in c.epoch_ends()}):
        steps_ax.axvline(end + 0.5, color="#bbbbbb", linestyle=":", linewidth=1)
    steps_ax.set(xlabel="step (dotted: epoch boundaries)", ylabel="training loss",
                 title="loss per step")
    epochs_ax.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    epochs_ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in (steps_ax, epochs_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
    if not curves:
        steps_ax.text(0.5, 0.5, "no training log yet", ha="center", transform=steps_ax.transAxes)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(plt, fig)
