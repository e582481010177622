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
    from ftcourse.train import ModelLoss

    profile = get_profile("cpu-tiny").for_task("polite")
    model_loss = speed._trainer(
        profile, "lora", "polite", 4, speed.VARIANTS["model-loss"], str(tmp_path)
    )
    assert isinstance(model_loss, ModelLoss) and model_loss.args.padding_free
    assert not isinstance(
        speed._trainer(profile, "lora", "polite", 4, {}, str(tmp_path)), ModelLoss
    )
    row = speed.measure(profile, "lora", "polite", steps=8, variant="model-loss", repeats=2)
    assert row["profile"] == "cpu-tiny" and len(row["pair_ratios"]) == 2
    assert min(row["pair_ratios"]) <= row["ratio"] <= max(row["pair_ratios"])  # their median
    assert row["trl_steps_per_s"] > 0 and row["tokens_per_step"] > 0
    text = speed.table([row])
    assert "| lora | model-loss |" in text and "trl / plain" in text
