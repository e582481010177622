"""ftcourse.evaluate.mcnemar: the exact paired test, on counts whose p-values are known by hand."""

from __future__ import annotations

import pytest

from ftcourse.evaluate import mcnemar


def paired(only_a: int, only_b: int, both: int = 0, neither: int = 0):
    """Two scorings of the same items with the given counts of each kind of pair."""
    pairs = [(True, False)] * only_a + [(False, True)] * only_b
    pairs += [(True, True)] * both + [(False, False)] * neither
    return [x for x, _ in pairs], [y for _, y in pairs]


@pytest.mark.parametrize(
    "only_a, only_b, p",
    [
        (5, 0, 2 / 32),  # 2 x (1/2)^5 = 0.0625: five wins of five are not yet beyond noise
        (6, 0, 2 / 64),  # 0.03125: six of six are
        (8, 2, 2 * 56 / 1024),  # 2 x (1 + 10 + 45)/2^10 = 0.109375
        (10, 1, 2 * 12 / 2048),  # 2 x (1 + 11)/2^11 = 0.01171875
        (3, 3, 1.0),  # a tie: the doubled tail passes 1, capped
    ],
)
def test_exact_p_values_on_fixed_counts(only_a, only_b, p):
    a, b = paired(only_a, only_b, both=7, neither=4)
    assert mcnemar(a, b) == pytest.approx(p)
    assert mcnemar(b, a) == pytest.approx(p)  # two-sided: the order of the pair does not matter


def test_only_discordant_pairs_count():
    assert mcnemar(*paired(6, 0)) == mcnemar(*paired(6, 0, both=50, neither=30))


def test_identical_scorings_are_no_evidence():
    assert mcnemar([True, False, True], [True, False, True]) == 1.0
    assert mcnemar([], []) == 1.0


def test_scorings_must_pair_up():
    with pytest.raises(ValueError, match="one verdict per item"):
        mcnemar([True, False], [True])
