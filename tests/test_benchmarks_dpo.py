"""benchmarks/dpo_polite.py: its grid syntax, and DPO on the polite adapter for a few real steps."""

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("dpo_polite")


def test_a_grid_entry_reads_its_settings_and_defaults(bench):
    assert bench.parse("lr=1e-5 beta=0.5 loss=ipo") == {
        "lr": 1e-5,
        "beta": 0.5,
        "loss": "ipo",
        "steps": 80,
    }
    assert bench.parse("steps=3") == {"lr": 5e-5, "beta": 0.1, "loss": "sigmoid", "steps": 3}


def test_dpo_trains_the_adapter_against_a_frozen_copy_of_itself(
    bench, tmp_path, monkeypatch, fixed_answers
):
    import torch
    from trl import DPOTrainer

    from ftcourse.profiles import get_profile
    from ftcourse.tasks import load_task, training_splits

    profile = get_profile("cpu-tiny")
    folder = bench.sft_adapter(profile, 4, str(tmp_path / "sft"))
    records = list(training_splits("polite")[0])[:8]
    from ftcourse.preference import harvest_pairs

    pairs = harvest_pairs(records, ["Do it now."] * len(records))
    trainers = []
    original = DPOTrainer.train

    def keep(self, *args, **kwargs):
        trainers.append(self)
        self.before = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DPOTrainer, "train", keep)
    scored = []

    def pick(i, reference, model):  # even records right; the last answer runs out of tokens
        scored.append(model)
        return (reference, True) if i % 2 == 0 else ("Do it now.", i < 3)

    fixed_answers(pick)
    test = list(load_task("polite", "test"))[:4]
    result = bench.run_one(
        profile, folder, pairs, test, bench.parse("steps=3 lr=1e-3"), str(tmp_path)
    )
    model = trainers[0].model
    assert list(model.peft_config) == ["default", "ref"]
    after = dict(model.named_parameters())
    moved = [n for n, p in trainers[0].before.items() if not torch.equal(p, after[n])]
    assert moved and all(".default." in n for n in moved)  # the reference copy never moves
    # trl stores a 4-bit base's adapter in bf16; dpo_trainer puts it back in the profile's fp32
    assert {p.dtype for n, p in model.named_parameters() if ".default." in n} == {torch.float32}
    assert set(result) >= {"accuracy", "margin", "reward_accuracy", "chosen_logp", "seconds"}
    assert len(scored) == 4 and all(m is model for m in scored), "the model DPO trained is scored"
    assert (result["accuracy"], result["stop"], result["failures"]["impolite"]) == (0.5, 0.75, 0.5)
    assert result["seconds"] > 0


def test_the_mixed_benchmark_reads_its_grid(load_benchmark):
    bench = load_benchmark("dpo_mixed")
    assert bench.parse("lr=5e-4 steps=20 loss=sigmoid+sft") == {
        "lr": 5e-4,
        "steps": 20,
        "beta": 0.1,
        "loss": ["sigmoid", "sft"],
    }
    assert [bench.parse(c)["lr"] for c in bench.DEFAULT_GRID] == [5e-4, 5e-4]
