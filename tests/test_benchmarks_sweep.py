"""benchmarks/sweep.py: the points it plans, and one real (two-step) point end to end."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("sweep", ROOT / "benchmarks" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep"] = module
    spec.loader.exec_module(module)
    return module


def test_points_vary_one_knob_each(sweep):
    runs = sweep.points(["r", "lr", "alpha_ratio", "methods"], lr=4e-3)
    assert len(runs) == sum(map(len, sweep.SWEEPS.values())) + 2 + len(sweep.FULL_LRS)
    for run in runs:
        changed = {
            k
            for k in ("r", "lr", "alpha_ratio")
            if run[k] != {"r": 16, "lr": 4e-3, "alpha_ratio": 2.0}[k]
        }
        assert changed <= {run["sweep"]} | ({"lr"} if run["method"] == "full" else set())
    assert {r["method"] for r in runs if r["sweep"] == "methods"} == {"qlora", "lora", "full"}
    assert all(r["modules"] == "profile" for r in runs)


def test_modules_points_change_only_the_target_modules(sweep):
    runs = sweep.points(["modules"], lr=4e-3)
    assert [r["modules"] for r in runs] == ["attention", "all-linear"]
    assert all(
        {k: r[k] for k in ("r", "lr", "method")} == {"r": 16, "lr": 4e-3, "method": "qlora"}
        for r in runs
    )


def test_one_real_point_tables_chart_and_docs(sweep, tmp_path, fixed_answers):
    # the trained model's answers are fixed: the first test record right, the second wrong
    fixed_answers(lambda i, reference, model: (reference, True) if i == 0 else ("No.", False))
    point = {"method": "qlora", "r": 4, "alpha_ratio": 2.0, "lr": 4e-3, "sweep": "r"}
    result = sweep.run_point(point, "polite", steps=2, eval_samples=2)
    assert (result["accuracy"], result["stop_rate"], result["eval_samples"]) == (0.5, 0.5, 2)
    assert result["trainable_params"] > 0
    # AdamW: two fp32 moments per trainable weight, plus one step counter per tensor
    assert 0 <= result["optimizer_bytes"] - 8 * result["trainable_params"] <= 4 * 64
    methods = {**result, "sweep": "methods"}
    modules = {**result, "sweep": "modules", "modules": "attention"}
    text = sweep.tables([result, methods, modules])
    assert "| 4 |" in text and "| qlora |" in text and "| attention |" in text
    sweep.chart([result], tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- sweep:start -->\nold\n<!-- sweep:end -->\nafter\n")
    sweep.update_docs(doc, [result], "sweep.png")
    assert "old" not in doc.read_text() and "after" in doc.read_text()


def test_the_committed_sweep_backs_what_notebook_04b_says_of_it():
    """04b quotes docs/sweep.json (committed, re-measured by `make sweep`): its figures, checked."""
    import json

    rows = json.loads((ROOT / "docs" / "sweep.json").read_text())

    def by(knob, sweep_name=None):
        return {r[knob]: r["accuracy"] for r in rows if r["sweep"] == (sweep_name or knob)}

    lrs, ranks, alphas = by("lr"), by("r"), by("alpha_ratio")
    methods = {(r["method"], r["lr"]): r["accuracy"] for r in rows if r["sweep"] == "methods"}
    # the learning rate decides: the profile's rate is best, the article's range far below it
    assert max(lrs, key=lrs.get) == 2e-3 and lrs[2e-3] == 0.55
    assert (lrs[1e-4], lrs[3e-4], lrs[1e-2]) == (0.08, 0.33, 0.12)
    assert max(lrs[1e-4], lrs[3e-4]) + 0.2 < lrs[2e-3]
    # rank and alpha/r: the quoted ranges
    assert (min(ranks.values()), max(ranks.values())) == (0.44, 0.55)
    assert (min(alphas.values()), max(alphas.values())) == (0.47, 0.62)
    # QLoRA matches LoRA; full fine-tuning matches them at its own rate, and fails at 1e-5
    assert (methods[("qlora", 2e-3)], methods[("lora", 2e-3)]) == (0.55, 0.53)
    assert max((a, lr) for (m, lr), a in methods.items() if m == "full") == (0.56, 3e-4)
    assert methods[("full", 1e-5)] == 0.09
