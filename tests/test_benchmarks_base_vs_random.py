"""benchmarks/base_vs_random.py: a real two-step run of both starting points, and the card block."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load():
    path = ROOT / "benchmarks" / "base_vs_random.py"
    spec = importlib.util.spec_from_file_location("base_vs_random", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_random_twin_has_the_same_shape_and_other_weights(tmp_path):
    from transformers import AutoModelForCausalLM

    bench = load()
    base = AutoModelForCausalLM.from_pretrained(ROOT / "data" / "base-model")
    twin = AutoModelForCausalLM.from_pretrained(
        bench.random_twin(str(ROOT / "data/base-model"), tmp_path)
    )
    assert twin.config.to_dict() | {"_name_or_path": ""} == base.config.to_dict() | {
        "_name_or_path": ""
    }
    shapes = [(n, p.shape) for n, p in base.named_parameters()]
    assert shapes == [(n, p.shape) for n, p in twin.named_parameters()]
    assert not all((a - b).abs().max() == 0 for a, b in zip(base.parameters(), twin.parameters()))


def _adapter_on(model) -> bool:
    """Whether the peft model answers with its adapter (not inside `disable_adapter()`)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    assert layers, "scored without any adapter"
    return not any(layer.disable_adapters for layer in layers)


def test_smoke_run_fills_the_card_block(tmp_path, fixed_answers):
    # fixed answers: with the adapter on, the first test record right; without it, none right
    def pick(i, reference, model):
        return (reference, True) if i == 0 and _adapter_on(model) else ("No.", False)

    fixed_answers(pick)
    bench = load()
    card = tmp_path / "README.md"
    card.write_text("# card\n<!-- finetune:start -->\nold\n<!-- finetune:end -->\nend\n")
    rows = bench.main(["--steps", "2", "--eval-samples", "2", "--update-card", str(card)])
    assert [(r["start"], r["task"]) for r in rows] == [
        (s, t) for s in ("this base model", "same shape, random weights") for t in bench.TASKS
    ]
    scores = [(r["steps"], r["before"], r["after"], r["stop_rate"]) for r in rows]
    assert scores == [(2, 0.0, 0.5, 0.5)] * 4, "after: the adapter's; before: the base model's"
    text = card.read_text()
    assert "old" not in text and "| same shape, random weights | bugfix | 0% | 50% | 50% |" in text
