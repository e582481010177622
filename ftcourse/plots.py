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
