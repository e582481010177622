"""ftcourse.evaluate's statistics: the exact paired test and pass@k, on counts known by hand."""

from __future__ import annotations

import pytest

from ftcourse.evaluate import headroom, mcnemar, pass_at_k


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


# ---------------------------------------------------------------- pass@k and headroom


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (10, 3, 1, 0.3),  # pass@1 is the share of right samples
        (5, 2, 2, 0.7),  # 1 - C(3, 2) / C(5, 2) = 1 - 3/10
        (8, 1, 8, 1.0),  # drawing all samples finds the right one
        (8, 0, 8, 0.0),  # nothing right, nothing found
        (4, 3, 2, 1.0),  # fewer wrong samples than draws: a right one is always drawn
    ],
)
def test_pass_at_k_on_fixed_counts(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)])
def test_pass_at_k_refuses_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="need 0 <= c <= n"):
        pass_at_k(n, c, k)


def test_headroom_counts_right_samples_per_item_and_never_falls_with_k():
    from ftcourse.profiles import get_profile
    from ftcourse.tasks import load_task
    from ftcourse.trainer import load_model

    model, tokenizer = load_model(get_profile("cpu-tiny"), "lora")
    records = list(load_task("polite", "test"))[:3]
    room = headroom(model, tokenizer, "polite", records, samples=4, progress=False)
    again = headroom(model, tokenizer, "polite", records, samples=4, progress=False)
    assert room.right == again.right  # seeded: the same samples
    assert len(room.right) == 3 and all(0 <= c <= 4 for c in room.right)
    assert list(room.pass_at) == [1, 2, 4]
    assert room.pass_at[1] == pytest.approx(sum(room.right) / 12)
    assert room.pass_at[1] <= room.pass_at[2] <= room.pass_at[4]
    assert room.pass_at[4] == sum(c > 0 for c in room.right) / 3
