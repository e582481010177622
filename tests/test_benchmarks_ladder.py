"""benchmarks/ladder.py: its CPU mode runs end to end, and its parts compute what they claim."""

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import torch

from ftcourse.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "ladder.py"
DOCS = REPO_ROOT / "docs" / "benchmarks.md"
HEADERS = ["method", "seq", "batch", "grad ckpt", "optimizer", "packed", "liger", "peak GB",
           "estimate GB", "error %", "tokens/s", "MFU %", "status"]  # fmt: skip
ROW_KEYS = {"name", "method", "seq_len", "peak_gb", "estimate_gb", "error_pct", "tokens_per_s",
            "mfu_pct", "status", "real_tokens", "gradient_checkpointing", "optimizer", "packed"}  # fmt: skip


def _load_ladder():
    spec = importlib.util.spec_from_file_location("ladder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ladder"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


ladder = _load_ladder()


def _run(*args, timeout=240):
    # A 2-layer toy model gains nothing from threads, and on a busy 2-core machine their
    # synchronisation makes each tiny matmul ~100x slower: one thread keeps the test fast.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ladder")
    proc = _run("--cpu-test", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "ladder.json").read_text())


def test_cpu_mode_writes_json_table_and_chart(cpu_run):
    out, payload = cpu_run
    rows = payload["results"]
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert {r["method"] for r in rows} == {"full", "lora", "qlora"}
    assert all(ROW_KEYS <= r.keys() for r in rows)
    assert all(r["peak_gb"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    assert all(r["mfu_pct"] is None for r in rows)  # no peak FLOPs for a CPU
    savers = [r for r in rows if r["gradient_checkpointing"]]
    assert savers and all(r["packed"] and r["optimizer"] == "adamw_8bit" for r in savers)
    assert {"date", "device", "torch", "transformers", "bitsandbytes"} <= payload[
        "environment"
    ].keys()
    table = (out / "ladder.md").read_text()
    assert "| " + " | ".join(HEADERS) + " |" in table
    assert len(re.findall(r"^\| (full|lora|qlora) \|", table, re.M)) == 6
    assert (out / "ladder.png").stat().st_size > 10_000


def test_estimate_matches_the_counted_memory_of_the_baselines(cpu_run):
    """On a CPU both sides count the same tensors: the estimator's goal (10%) must hold here."""
    baselines = [r for r in cpu_run[1]["results"] if not r["gradient_checkpointing"]]
    assert len(baselines) == 3
    for r in baselines:
        assert abs(r["error_pct"]) < 10, r


def test_savers_save_memory(cpu_run):
    by = {(r["method"], r["gradient_checkpointing"]): r["peak_gb"] for r in cpu_run[1]["results"]}
    for method in ("full", "lora", "qlora"):
        assert by[(method, True)] < by[(method, False)], method


def test_from_json_rerenders_and_fills_the_docs_block(cpu_run, tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(DOCS.read_text())
    json_path = cpu_run[0] / "ladder.json"
    again = tmp_path / "again"
    assert (
        ladder.main(
            ["--from-json", str(json_path), "--out", str(again), "--update-docs", str(docs)]
        )
        == 0
    )
    text = docs.read_text()
    assert text.count(ladder.DOCS_START) == 1 and text.count(ladder.DOCS_END) == 1
    block = text.split(ladder.DOCS_START)[1].split(ladder.DOCS_END)[0]
    assert "not been measured yet" not in block.lower() and "| qlora | 64 |" in block
    assert text.split(ladder.DOCS_END)[1] == DOCS.read_text().split(ladder.DOCS_END)[1]
    assert (again / "ladder.md").read_text() == (cpu_run[0] / "ladder.md").read_text()


def test_docs_state_plainly_whether_gpu_figures_exist():
    block = DOCS.read_text().split(ladder.DOCS_START)[1].split(ladder.DOCS_END)[0]
    measured = "| qlora | 2048 |" in block
    assert measured or "not been measured yet" in block.lower()


def test_documented_commands_parse():
    """Every `python benchmarks/ladder.py ...` line in the docs uses flags the script has."""
    commands = re.findall(r"python benchmarks/ladder\.py([^`\n]*)", DOCS.read_text())
    assert len(commands) >= 3
    for command in commands:
        ladder.parse_args(shlex.split(command.replace("$OUT", "out")))


def test_grid_changes_one_thing_per_variant():
    settings = ladder.grid(["qlora"], [512], 4, ["baseline", "gc", "adam8bit", "packed"], "cuda")
    base, gc, eight, packed = settings
    assert base == ladder.Setting("qlora", 512, 4)
    assert gc.gradient_checkpointing and not gc.packed
    assert eight.optimizer == "paged_adamw_8bit" and not eight.gradient_checkpointing
    assert packed.packed and packed.optimizer == base.optimizer
    assert ladder.variant(base, "adam8bit", "cpu").optimizer == "adamw_8bit"  # paging needs CUDA
    assert not ladder.variant(base, "all", "cpu").liger  # Liger needs CUDA: "all" drops it


def test_packed_and_padded_batches_hold_the_same_real_tokens():
    setting = ladder.Setting("lora", 128, 4)
    padded = ladder.make_batch(setting, 100, "cpu")
    packed = ladder.make_batch(ladder.Setting("lora", 128, 4, packed=True), 100, "cpu")
    lengths = ladder.example_lengths(setting)
    assert max(lengths) == 128 and all(32 <= n <= 128 for n in lengths)
    assert padded["input_ids"].shape == (4, 128)
    assert int(padded["attention_mask"].sum()) == sum(lengths) == packed["input_ids"].shape[1]
    assert (padded["labels"] == -100).sum() == 4 * 128 - sum(lengths)
    assert int((packed["position_ids"] == 0).sum()) == 4  # one restart per example
    assert int((packed["labels"] == -100).sum()) == 4  # no loss across example borders


def test_flops_per_token_and_peak_table():
    """Golden numbers for Llama-3.1-8B: 8,030,261,248 parameters, 525,336,576 of them the input
    embedding (a lookup, no multiply); r=16 LoRA on q/k/v/o adds 13,631,488 (16 x 26,624 x 32)."""
    config = ladder.load_architecture("llama-3.1-8b")
    n = 8_030_261_248 - 128_256 * 4_096
    assert ladder.flops_per_token(ladder.Setting("full", 512, 1), config) == 6 * n
    lora = ladder.flops_per_token(ladder.Setting("lora", 512, 1), config)
    assert lora == 4 * n + 6 * 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024)) * 32
    assert ladder.peak_tflops("NVIDIA H200") == 989
    assert ladder.peak_tflops("Tesla T4") == 65
    assert ladder.peak_tflops("NVIDIA L40S") is None  # not an L4
    assert ladder.peak_tflops("NVIDIA A100-SXM4-80GB") == 312


def test_full_finetuning_estimate_counts_pure_bf16_adamw():
    """Pure bf16: weights, gradients and both AdamW moments 2 bytes each, no fp32 master."""
    run = ladder.Run(ladder.load_architecture("llama-3.1-8b"), "8b", "cuda", torch.bfloat16, 1, 1e9)
    alloc, total = ladder.estimate_gb(ladder.Setting("full", 512, 1, True), run)
    params = 8.03e9
    static = (2 + 2 + 4) * params / 1e9
    assert static < alloc < static + 3  # plus activations and logits of one 512-token sequence
    assert total == pytest.approx(alloc + 0.75)  # the CUDA context, outside torch's allocator


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_mode_on_a_tiny_model(tmp_path):
    proc = _run("--tiny", "--device", "cuda", "--seq-lens", "256", "--steps", "1",
                "--variants", "baseline", "all", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "ladder.json").read_text())["results"]
    assert rows and all(r["status"] == "ok" for r in rows)
    assert any(r["optimizer"] == "paged_adamw_8bit" for r in rows)
    if ladder.peak_tflops(torch.cuda.get_device_name()):
        assert all(r["mfu_pct"] > 0 for r in rows)
