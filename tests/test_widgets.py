"""The widget form from Python: labels wide enough to read, the caller's sizes kept, one call per change.

tests/browser checks in JupyterLab that no label of a course notebook's form is cut short.
"""

from __future__ import annotations

import ipywidgets as w

from ftcourse.widgets import form


def _controls(box) -> dict:
    return {c.description: c for c in box.kwargs_widgets}


def test_every_description_gets_the_width_of_the_longest():
    box = form(
        lambda needs_fresh_facts, examples, gpu_gb, tight_latency: None,
        needs_fresh_facts=[("no", False), ("yes", True)],
        examples=(0, 5000, 50),
        gpu_gb=[("no GPU", 0.0), ("24 GB", 24.0)],
        tight_latency=False,
    )
    controls = _controls(box)
    widths = {c.style.description_width for c in controls.values()}
    # one width for all (the controls line up), past ipywidgets' 80px that cut "needs_fre..."
    assert widths == {f"{len('needs_fresh_facts') + 2}ch"}
    # each control keeps its own 220px beside the label, so a slider does not shrink
    assert controls["examples"].layout.width == "calc(19ch + 220px)"
    # a checkbox's description is on its right: it does not set the width, it gets room for it
    assert controls["tight_latency"].layout.width == "calc(19ch + max(220px, 17ch))"


def test_the_callers_own_widths_are_kept():
    prompt = w.Textarea(description="prompt", layout={"width": "90%"})
    named = w.Dropdown(
        options=["a", "b"], description="adapter", style={"description_width": "4em"}
    )
    box = form(
        lambda adapter, prompt, max_new_tokens: None,
        adapter=named,
        prompt=prompt,
        max_new_tokens=(1, 256, 1),
    )
    assert prompt.layout.width == "90%" and named.style.description_width == "4em"
    assert (
        prompt.style.description_width == _controls(box)["max_new_tokens"].style.description_width
    )


def test_a_form_of_checkboxes_keeps_the_default_indent():
    box = form(lambda fresh, latency: None, fresh=False, latency=True)
    assert all(c.style.description_width == "" for c in box.kwargs_widgets)


def test_the_function_runs_once_per_change():
    calls = []
    box = form(lambda examples: calls.append(examples) or len(calls), examples=(0, 100, 10))
    assert calls == [50]  # ipywidgets starts a (min, max, step) slider at its middle
    box.kwargs_widgets[0].value = 70
    assert calls == [50, 70] and box.result == 2
