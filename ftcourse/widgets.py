"""Interactive forms: every widget wraps a plain function, so the lesson works without a widget frontend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def form(fn: Callable[..., Any], **controls: Any):
    """An ipywidgets form that re-runs `fn(**values)` whenever a control changes.

    `controls` maps each argument of `fn` to an ipywidgets control, or to anything
    `ipywidgets.interactive` understands (a list of options, a (min, max, step) tuple, a bool).
    The form's `.result` holds the latest return value, so code and tests can drive it without a
    browser: set `form.children[i].value` and read `form.result`.
    """
    import ipywidgets as w

    # auto_display: show the return value under the controls (without it the form stays blank
    # in a browser unless `fn` prints; tests/browser checks this in JupyterLab)
    box = w.interactive(fn, {"auto_display": True}, **controls)
    box.update()
    return box
