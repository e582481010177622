"""Interactive forms: every widget wraps a plain function, so the lesson works without a widget frontend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# ipywidgets' own sizes (its CSS variables): a control is 300px wide, 80px of it for the label.
CONTROL_PX = 300 - 80
# Room for a description, in `ch` (the width of a "0") per character: most letters and "_" are
# narrower, "m" and "w" wider, so a margin keeps an argument name such as "max_new_tokens" whole.
LABEL_MARGIN_CH = 2


def form(fn: Callable[..., Any], **controls: Any):
    """An ipywidgets form that re-runs `fn(**values)` whenever a control changes.

    `controls` maps each argument of `fn` to an ipywidgets control, or to anything
    `ipywidgets.interactive` understands (a list of options, a (min, max, step) tuple, a bool).
    The form's `.result` holds the latest return value, so code and tests can drive it without a
    browser: set `form.children[i].value` and read `form.result`.
    """
    import ipywidgets as w

    # auto_display: show the return value under the controls (without it the form stays blank
    # in a browser unless `fn` prints; tests/browser checks this in JupyterLab). `interactive`
    # calls `fn` once with the initial values.
    box = w.interactive(fn, {"auto_display": True}, **controls)
    _fit_descriptions(box.kwargs_widgets)
    return box


def _fit_descriptions(controls: list) -> None:
    """Widen the descriptions of `controls` to the longest, so none is cut and the controls align.

    ipywidgets gives a description 80px and cuts a longer one ("needs_fre..."). Each control
    whose description width is unset gets the common width and, unless its layout sets a width,
    keeps its own 220px beside it. A checkbox's description sits on its right: it sets no width,
    and its indent lines the box up with the other controls.
    """
    import ipywidgets as w
    from ipywidgets.widgets.widget_description import DescriptionStyle

    styled = [
        c
        for c in controls
        if isinstance(getattr(c, "style", None), DescriptionStyle) and not c.style.description_width
    ]
    left = [len(c.description) for c in styled if not isinstance(c, w.Checkbox)]
    if not left:
        return
    label = f"{max(left) + LABEL_MARGIN_CH}ch"
    for c in styled:
        c.style.description_width = label
        if not c.layout.width:
            own = f"{CONTROL_PX}px"
            if isinstance(c, w.Checkbox):  # the box, then its description
                own = f"max({own}, {len(c.description) + 4}ch)"
            c.layout.width = f"calc({label} + {own})"
