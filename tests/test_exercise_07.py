"""Exercise 07.4: repair a file whose outputs slipped by one record, measured by two training runs.

The checker's branches get small fabricated losses here; notebook 07's solutions train the two runs
for real.
"""

import pytest

from ftcourse.data import load_records, validate
from ftcourse.exercises import check
from ftcourse.exercises.nb07 import (
    LOSS_MAX,
    RATIO_MIN,
    SLIP_FROM,
    _renamed,
    renames,
    slipped,
    slipped_file,
)

MEASURED = {"slipped": 1.8, "repaired": 0.6}  # fabricated: the two runs' best validation losses


def drop_slipped(records):
    """The reference: keep the records whose output is their own rename."""
    return [r for r in records if r["output"].strip() == _renamed(r).strip()]


def rebuild(records):
    """Also right: every output rebuilt from its input."""
    return [{**r, "output": _renamed(r)} for r in records]


def _wrong(fb, *words):
    assert fb.status == "wrong" and not fb, fb
    for word in words:
        assert word in fb.message, fb.message


def test_the_file_is_valid_and_slips_where_it_says(tmp_path):
    records = load_records(slipped_file(tmp_path))
    assert validate(records) == "alpaca"  # nothing refuses it
    right = [r["output"] == _renamed(r) for r in records]
    assert right == [i < SLIP_FROM for i in range(len(records))] and len(records) == 300


def test_slipping_moves_each_output_up_one_record():
    records = renames(5, seed=0)
    moved = slipped(records, 2)
    assert [r["output"] for r in moved] == [r["output"] for r in records[:2] + records[3:]]
    assert [r["input"] for r in moved] == [r["input"] for r in records[:4]]


@pytest.mark.parametrize("repair", [drop_slipped, rebuild])
def test_07_4_reference(repair):
    assert check("07.4", repair, MEASURED)


def test_07_4_mistakes():
    _wrong(check("07.4", lambda rs: len(rs), MEASURED), "list of records")
    _wrong(check("07.4", lambda rs: rs, MEASURED), "another record's code")
    _wrong(check("07.4", lambda rs: rs[:SLIP_FROM], MEASURED), "another record's code")
    _wrong(check("07.4", lambda rs: drop_slipped(rs)[:10], MEASURED), "10 of the 25 intact")
    _wrong(check("07.4", drop_slipped, [1.8, 0.6]), '{"slipped": ..., "repaired": ...}')
    high = {"slipped": 3.0, "repaired": LOSS_MAX + 0.1}
    _wrong(check("07.4", drop_slipped, high), "did the cell train on what `repair` returned")
    close = {"slipped": 0.6 * RATIO_MIN - 0.05, "repaired": 0.6}
    _wrong(check("07.4", drop_slipped, close), "did each run train on its own file")


def test_07_4_is_not_attempted_until_repair_is_written(capsys):
    assert check("07.4", None, None).status == "not attempted"
    assert "repair(records)" in capsys.readouterr().out
