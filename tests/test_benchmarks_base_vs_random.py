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


def test_smoke_run_fills_the_card_block(tmp_path):
    bench = load()
    card = tmp_path / "README.md"
    card.write_text("# card\n<!-- finetune:start -->\nold\n<!-- finetune:end -->\nend\n")
    rows = bench.main(["--steps", "2", "--eval-samples", "2", "--update-card", str(card)])
    assert [(r["start"], r["task"]) for r in rows] == [
        (s, t) for s in ("this base model", "same shape, random weights") for t in bench.TASKS
    ]
    assert all(r["steps"] == 2 and 0 <= r["after"] <= 1 for r in rows)
    text = card.read_text()
    assert "old" not in text and "| same shape, random weights | bugfix |" in text
