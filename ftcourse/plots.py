"""Plotting helpers: the course's figure style and the charts more than one notebook draws.

Helpers for a single lesson live here too, so notebooks stay about the lesson, not about matplotlib.
"""

from __future__ import annotations


def style() -> None:
    """Apply the course's matplotlib defaults (called explicitly, never at import)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.figsize": (7, 4),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


# ---------------------------------------------------------------- 02 · Data


def token_length_hist(before: list[int], after: list[int], bounds=None, unit: str = "answer"):
    """Token lengths before and after cleaning, log-scaled counts, with the kept range shaded."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    bins = range(0, max(before) + 10, 5)
    ax.hist(before, bins=bins, color="tab:red", alpha=0.5, label=f"before ({len(before)})")
    ax.hist(after, bins=bins, color="tab:blue", alpha=0.7, label=f"after ({len(after)})")
    if bounds:
        ax.axvspan(*bounds, color="tab:green", alpha=0.1, label="kept range (median / 4 to x 4)")
    ax.set(xlabel=f"tokens per {unit}", ylabel="records (log scale)", yscale="log")
    ax.set_title("Token lengths before and after the checklist")
    ax.legend()
    return fig
