"""benchmarks/train_speed.py: trl against a plain loop, on a few real steps, and its table."""

import pytest


@pytest.fixture(scope="module")
def speed(load_benchmark):
    return load_benchmark("train_speed")


def test_the_plain_loop_trains_the_same_batches_and_lowers_the_loss(speed, tmp_path):
    from ftcourse.profiles import get_profile

    profile = get_profile("cpu-tiny").for_task("polite")
    trainer = speed._trainer(profile, "lora", "polite", 12, speed.VARIANTS["padded"], str(tmp_path))
    assert not trainer.args.padding_free and trainer.args.max_length == profile.max_length
    clock, wall, losses, tokens = speed.time_plain(trainer)
    assert len(clock.times) == len(losses) == 12 and clock.rate() > 0 and wall > 0
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    assert tokens > 12 * profile.batch_size  # real tokens, not counting padding


def test_one_measurement_and_its_table(speed, tmp_path):
    from ftcourse.profiles import get_profile
    from ftcourse.trainer import ModelLoss

    profile = get_profile("cpu-tiny").for_task("polite")
    model_loss = speed._trainer(
        profile, "lora", "polite", 4, speed.VARIANTS["model-loss"], str(tmp_path)
    )
    assert isinstance(model_loss, ModelLoss) and model_loss.args.padding_free
    assert not isinstance(
        speed._trainer(profile, "lora", "polite", 4, {}, str(tmp_path)), ModelLoss
    )
    row = speed.measure(profile, "lora", "polite", steps=8, variant="model-loss", repeats=1)
    assert row["profile"] == "cpu-tiny" and row["trl_steps_per_s"] > 0
    assert row["pair_ratios"] == [row["trl_steps_per_s"] / row["plain_steps_per_s"]]
    assert row["tokens_per_step"] > profile.batch_size  # real tokens of the plain loop's batches
    text = speed.table([row])
    assert "| lora | model-loss |" in text and "trl / plain" in text


def test_each_trl_run_is_divided_by_the_plain_run_right_after_it(speed, monkeypatch):
    """Alternating pairs of known rates: each ratio is its own pair's, the figure their median."""
    from ftcourse.profiles import get_profile

    rates = iter([4.0, 2.0, 9.0, 3.0, 5.0, 4.0])  # trl, plain, trl, plain, trl, plain

    def clock():
        ticks, rate = speed._Clock(), next(rates)
        ticks.times = [step / rate for step in range(1, speed.WARMUP + 11)]
        return ticks

    built = []

    def trainer(profile, method, task, steps, sft, out):
        built.append(sft)
        return object()

    monkeypatch.setattr(speed, "_trainer", trainer)
    monkeypatch.setattr(speed, "time_trl", lambda trainer: (clock(), 7.0, []))
    monkeypatch.setattr(speed, "time_plain", lambda trainer: (clock(), 5.0, [], 800))
    row = speed.measure(
        get_profile("cpu-tiny"), "lora", "polite", steps=8, variant="model-loss", repeats=3
    )
    assert built == [speed.VARIANTS["model-loss"], speed.VARIANTS[speed.BASELINE]] * 3
    assert row["pair_ratios"] == pytest.approx([2.0, 3.0, 1.25])
    assert row["ratio"] == pytest.approx(2.0)  # the median: their mean is 2.08, best / best 2.25
    assert (row["trl_steps_per_s"], row["plain_steps_per_s"]) == pytest.approx((9.0, 4.0))
    assert (row["tokens_per_step"], row["trl_wall_s"], row["plain_wall_s"]) == (100, 7.0, 5.0)


def test_the_committed_rows_back_the_pages_claims():
    """docs/benchmarks.md and notebook 04 quote docs/train_speed.json: the model's own loss keeps
    trl at 90% or more of the plain loop for every method, and trl's padded loss stays below it."""
    import json

    from ftcourse.paths import REPO_ROOT

    rows = json.loads((REPO_ROOT / "docs" / "train_speed.json").read_text())
    ratio = {(r["method"], r["variant"]): r["ratio"] for r in rows}
    for method in {m for m, _ in ratio}:
        assert ratio[(method, "model-loss")] >= 0.9 > ratio[(method, "padded")], method
