"""Notebook 08's exercises: the reference answers pass, and each typical mistake gets its own hint.

08.3 trains in the notebook; here its checker gets fabricated runs and scores, and the notebook's
DPO_SETTINGS is checked to be the one the checker compares against.
"""

import ast
import json
import math
from types import SimpleNamespace

import pytest

from ftcourse.exercises import check
from ftcourse.exercises.nb08 import (
    BETA,
    DPO_SETTINGS,
    GROUP,
    PAIR,
    RIGHT,
    SAMPLES,
    silent_share,
)
from ftcourse.paths import REPO_ROOT


def _wrong(fb, *words):
    assert fb.status == "wrong" and not fb, fb
    for word in words:
        assert word in fb.message, fb.message


# ---------------------------------------------------------------- 08.1


def _loss(margin):
    return -math.log(1 / (1 + math.exp(-margin)))


def test_08_1_reference():
    p = PAIR
    margin = BETA * ((p["chosen"] - p["ref_chosen"]) - (p["rejected"] - p["ref_rejected"]))
    assert math.isclose(margin, 0.7)
    assert check("08.1", _loss(margin))


@pytest.mark.parametrize(
    "answer, hint",
    [
        (0.7, "reward margin"),
        (_loss(0.1 * 18), "left the reference out"),
        (_loss(7.0), "left beta out"),
        (_loss(-0.7), "sign"),
        (1 / (1 + math.exp(-0.7)), "sigmoid(margin)"),
        (_loss(0.7) / math.log(2), "bits"),
        (1.0, "implicit rewards"),
        ("0.4", "must be a number"),
    ],
)
def test_08_1_mistakes(answer, hint):
    _wrong(check("08.1", answer), hint)


# ---------------------------------------------------------------- 08.2


def test_08_2_reference():
    def answer(right, samples, group):
        total = math.comb(samples, group)
        shares = [(math.comb(c, group) + math.comb(samples - c, group)) / total for c in right]
        return sum(shares) / len(shares)

    assert check("08.2", answer)
    # two of ten prompts always silent (0 and 8 of 8 right, twice each): at least 0.4
    assert 0.4 < silent_share(RIGHT, SAMPLES, GROUP) < 1


def test_08_2_mistakes():
    per_item = lambda r, s, k: [math.comb(c, k) / math.comb(s, k) for c in r]  # noqa: E731
    _wrong(check("08.2", per_item), "one number")
    all_wrong = lambda r, s, k: sum(math.comb(s - c, k) for c in r) / math.comb(s, k) / len(r)  # noqa: E731
    _wrong(check("08.2", all_wrong), "all wrong *and* all right")
    binomial = lambda r, s, k: sum((c / s) ** k + (1 - c / s) ** k for c in r) / len(r)  # noqa: E731
    _wrong(check("08.2", binomial), "without replacement")
    _wrong(check("08.2", lambda r, s, k: 0.5), "the mean over prompts")


# ---------------------------------------------------------------- 08.3


def _history(rate):
    return [{"learning_rate": rate * f, "step": i} for i, f in enumerate([0.5, 1.0, 0.6], 1)]


def _scored(accuracy, bad_items, n=250):
    result = SimpleNamespace(accuracy=accuracy)
    return result, [i < bad_items for i in range(n)]


MIXED = _scored(0.232, 173)  # SFT on mixed, as measured: 23.2% held-out, 69.2% bad answers


def test_08_3_reference():
    answer = {**DPO_SETTINGS, "learning_rate": 1e-4}
    assert check("08.3", answer, _history(1e-4), _scored(0.236, 146), MIXED)  # as measured


@pytest.mark.parametrize(
    "answer, history, after, hint",
    [
        ([1e-4], _history(1e-4), _scored(0.24, 140), "must be a dict"),
        (
            {**DPO_SETTINGS, "learning_rate": 1e-4, "beta": 0.2},
            _history(1e-4),
            _scored(0.24, 140),
            "exactly one setting",
        ),
        (dict(DPO_SETTINGS), _history(5e-4), _scored(0.03, 48), "exactly one setting"),
        (
            {**DPO_SETTINGS, "loss_type": ["sigmoid", "sft"]},
            _history(5e-4),
            _scored(0.39, 46),
            "section 4's remedy",
        ),
        ({**DPO_SETTINGS, "max_steps": 5}, _history(5e-4), _scored(0.2, 140), "keep the 20"),
        ({**DPO_SETTINGS, "learning_rate": 1e-4}, _history(5e-4), _scored(0.2, 140), "not a run"),
        ({**DPO_SETTINGS, "beta": 0.5}, _history(5e-4), _scored(0.064, 156), "larger beta"),
        (
            {**DPO_SETTINGS, "learning_rate": 1e-3},
            _history(1e-3),
            _scored(0.01, 30),
            "displaced again",
        ),
        (
            {**DPO_SETTINGS, "learning_rate": 1e-6},
            _history(1e-6),
            _scored(0.232, 172),
            "moved too little",
        ),
        (
            {**DPO_SETTINGS, "learning_rate": 1e-4},
            _history(1e-4),
            _scored(0.24, 40, n=100),
            "same held-out items",
        ),
    ],
)
def test_08_3_mistakes(answer, history, after, hint):
    _wrong(check("08.3", answer, history, after, MIXED), hint)


def test_the_notebook_trains_the_settings_the_checker_compares_against():
    notebook = json.loads((REPO_ROOT / "notebooks" / "08_after_sft.ipynb").read_text())
    source = next(
        "".join(c["source"])
        for c in notebook["cells"]
        if "DPO_SETTINGS = dict(" in "".join(c["source"])
    )
    call = next(
        node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and node.targets[0].id == "DPO_SETTINGS"
    )
    assert {k.arg: ast.literal_eval(k.value) for k in call.keywords} == DPO_SETTINGS
