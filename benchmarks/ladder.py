"""The memory and speed ladder: Llama-3.1-8B fine-tuning settings measured against the estimate.

The model is built from the bundled Llama-3.1-8B config with random weights (no download: weights
change neither memory nor speed). Each *setting* is one training configuration: full fine-tuning
(pure bf16 + AdamW, only where the estimate says it fits), LoRA on a bf16 base, or QLoRA on an nf4
base; with or without gradient checkpointing, 8-bit paged AdamW, packed (padding-free) batches and
Liger kernels; at 512 and 2048 tokens. Per setting it measures peak GPU memory, tokens per second
and model FLOPs utilisation (MFU), and the estimator's error for the same setting.

    python benchmarks/ladder.py --out build/benchmarks              # the full ladder on a GPU
    python benchmarks/ladder.py --cpu-test --out /tmp/ladder        # a toy Llama on CPU, seconds
    python benchmarks/ladder.py --from-json build/benchmarks/ladder.json --update-docs docs/benchmarks.md
    python benchmarks/ladder.py --recommend                         # estimates for T4/24 GB/80 GB

A measured step runs like a middle micro-batch of gradient accumulation (as
`ftcourse.memory.measure_training_step` does): gradients stay allocated, so the peak holds the
weights, gradients, optimizer state and all saved activations at once, which is what the estimate
adds up. Writes `ladder.json` (raw results), `ladder.md` (the table) and `ladder.png` (the chart).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import platform
import random
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ftcourse import memory
from ftcourse.architectures import load_architecture
from ftcourse.docblocks import markdown_table
from ftcourse.errors import CourseError
from ftcourse.profiles import PROFILES

# The article's recipe: the llama-3.1-8b profile's LoRA values (r=16, alpha=32, dropout 0.05, q/k/v/o).
RECIPE = PROFILES["llama-3.1-8b"]
# The article's QLoRA first: a run cut short by --time-budget still has it.
METHODS = ("qlora", "lora", "full")
# Each variant changes the baseline (padded batches, AdamW, no checkpointing) in one way; "all"
# turns every saver on at once.
VARIANTS = ("baseline", "gc", "adam8bit", "packed", "liger", "all")
# Dense bf16 tensor-core peak in TFLOP/s, from the vendors' datasheets (SXM parts; a T4 has no
# bf16, so its fp16 peak). Matched as a whole word in torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "T4": 65.0}
DOCS_START, DOCS_END = "<!-- ladder:start -->", "<!-- ladder:end -->"


# ---------------------------------------------------------------- settings and results


@dataclass(frozen=True)
class Setting:
    """One training configuration of the ladder."""

    method: str  # "full", "lora" or "qlora"
    seq_len: int  # the longest example; padded batches are this wide
    batch_size: int  # examples per micro-batch
    gradient_checkpointing: bool = False
    optimizer: str = "adamw_torch_fused"  # a name from memory.OPTIMIZER_BYTES (HF's `optim=`)
    packed: bool = False  # examples concatenated into one row (padding-free) instead of padded
    liger: bool = False  # Liger's Triton kernels (RMSNorm, SwiGLU, RoPE, fused linear + loss)

    @property
    def name(self) -> str:
        """A short label such as 'qlora 2048 +gc +paged_adamw_8bit'."""
        extras = [
            "+gc" * self.gradient_checkpointing,
            f"+{self.optimizer}" if self.optimizer != "adamw_torch_fused" else "",
            "+packed" * self.packed,
            "+liger" * self.liger,
        ]
        return " ".join([self.method, str(self.seq_len), *filter(None, extras)])


@dataclass
class Result:
    """What one setting measured (None where it did not run), next to the estimate."""

    setting: Setting
    status: str = "ok"  # "ok", "skipped: why", "out of memory" or "error: what"
    real_tokens: int = 0  # tokens per step, padding not counted
    peak_gb: float | None = None  # measured peak of allocated memory
    estimate_gb: float | None = None  # the estimate of the same, without the CUDA context
    step_s: float | None = None
    tokens_per_s: float | None = None
    mfu_pct: float | None = None

    @property
    def error_pct(self) -> float | None:
        """How far the estimate is from the measurement, in % of the measurement."""
        if self.peak_gb is None or self.estimate_gb is None:
            return None
        return 100 * (self.estimate_gb - self.peak_gb) / self.peak_gb

    def row(self) -> dict:
        """A flat dict for JSON and tables."""
        measured = {k: v for k, v in vars(self).items() if k != "setting"}
        return {
            "name": self.setting.name,
            **vars(self.setting),
            **measured,
            "error_pct": self.error_pct,
        }


@dataclass
class Run:
    """Where and how the ladder runs."""

    config: object  # a transformers LlamaConfig
    model_name: str
    device: str  # "cuda" or "cpu"
    dtype: torch.dtype
    steps: int  # timed steps per setting
    time_budget_s: float
    started: float = field(default_factory=time.perf_counter)


# ---------------------------------------------------------------- the grid


def variant(base: Setting, name: str, device: str) -> Setting:
    """The baseline changed the way the variant `name` says."""
    eight_bit = "paged_adamw_8bit" if device == "cuda" else "adamw_8bit"  # paging needs CUDA
    changes = {
        "baseline": {},
        "gc": {"gradient_checkpointing": True},
        "adam8bit": {"optimizer": eight_bit},
        "packed": {"packed": True},
        "liger": {"liger": True},
        "all": dict(gradient_checkpointing=True, optimizer=eight_bit, packed=True, liger=True),
    }
    if name not in changes:
        raise CourseError(f"Unknown variant {name!r}: use some of {', '.join(VARIANTS)}.")
    if name == "all" and not liger_usable(device):
        changes["all"]["liger"] = False  # "all" means every saver that can run here
    return dataclasses.replace(base, **changes[name])


def grid(methods, seq_lens, batch_size: int, variants, device: str) -> list[Setting]:
    """Every method x length x variant, without duplicates, in a stable order."""
    settings = []
    for method, seq_len, name in itertools.product(methods, seq_lens, variants):
        if method not in METHODS:
            raise CourseError(f"Unknown method {method!r}: use some of {', '.join(METHODS)}.")
        s = variant(Setting(method, seq_len, batch_size), name, device)
        if s not in settings:
            settings.append(s)
    return settings


def liger_usable(device: str) -> bool:
    """Liger's kernels are Triton kernels: they need the package and a CUDA GPU."""
    return device == "cuda" and importlib.util.find_spec("liger_kernel") is not None


# ---------------------------------------------------------------- the model


def tiny_config():
    """Llama-3.1-8B's architecture (GQA, SwiGLU, llama3 RoPE, untied head) at toy size, for CPU."""
    config = load_architecture("llama-3.1-8b")
    config.update(
        dict(
            hidden_size=64,
            intermediate_size=224,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,  # derived from hidden_size only at init: set it with the new size
            vocab_size=512,
        )
    )
    return config


def quantize_nf4(model: nn.Module, compute_dtype: torch.dtype, device: str) -> None:
    """Swap each nn.Linear that transformers would quantize for a bitsandbytes nf4 Linear4bit with
    double quantization, what `from_pretrained(quantization_config=bnb_config(...))` loads.
    (`from_config` takes no quantization config, and saving 16 GB of random weights first would
    only cost time.)
    """
    import bitsandbytes as bnb
    from transformers.quantizers.base import get_keys_to_not_convert

    skip = get_keys_to_not_convert(model)  # the lm_head, as in memory.quantized_weight_sizes
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            path = f"{parent_name}.{name}" if parent_name else name
            if type(child) is not nn.Linear or any(
                path == s or path.startswith(s + ".") for s in skip
            ):
                continue
            q = bnb.nn.Linear4bit(
                child.in_features, child.out_features, bias=child.bias is not None,
                compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                device="meta",
            )  # fmt: skip
            q.weight = bnb.nn.Params4bit(
                child.weight.data, requires_grad=False, compress_statistics=True, quant_type="nf4"
            )
            setattr(parent, name, q.to(device))  # moving a Params4bit quantizes it
    model.is_loaded_in_4bit = True  # peft wraps Linear4bit layers only on models marked so


def apply_liger(model: nn.Module) -> None:
    """Liger's kernels on this model instance: RMSNorm, SwiGLU, RoPE, and a fused lm_head + loss
    that never holds the full logits. (It also patches transformers' Llama classes, which is why
    the ladder runs every Liger setting after all the others.)
    """
    from liger_kernel.transformers import apply_liger_kernel_to_llama

    apply_liger_kernel_to_llama(
        rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
        fused_linear_cross_entropy=True, model=model,
    )  # fmt: skip


def build_model(run: Run, method: str, liger: bool) -> nn.Module:
    """The model for `method`, random weights, straight on the device in the compute dtype."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from ftcourse.trainer import lora_config

    torch.manual_seed(0)
    with torch.device(run.device):
        model = AutoModelForCausalLM.from_config(
            run.config, dtype=run.dtype, attn_implementation="sdpa"
        )
    model.config.use_cache = False  # training keeps no KV cache
    if method == "qlora":
        quantize_nf4(model, run.dtype, run.device)
    if liger:
        apply_liger(model)
    if method != "full":
        model = get_peft_model(model, lora_config(RECIPE))  # adapters in fp32, as peft keeps them
    return model.train()


def set_checkpointing(model: nn.Module, on: bool) -> None:
    """Gradient (activation) checkpointing on or off, non-reentrant."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    # transformers 5.2x renamed "gradient_" to "activation_"; GPU images may carry an older 5.x
    kind = "activation" if hasattr(base, "activation_checkpointing_enable") else "gradient"
    if on:
        getattr(base, f"{kind}_checkpointing_enable")({"use_reentrant": False})
    elif getattr(base, f"is_{kind}_checkpointing"):
        getattr(base, f"{kind}_checkpointing_disable")()


def make_optimizer(name: str, params, lr: float = 2e-4) -> torch.optim.Optimizer:
    """The optimizer HF's `optim=name` would build."""
    import bitsandbytes as bnb

    makers = {
        "adamw_torch_fused": lambda: torch.optim.AdamW(params, lr=lr, fused=True),
        "adamw_torch": lambda: torch.optim.AdamW(params, lr=lr),
        "adamw_8bit": lambda: bnb.optim.AdamW8bit(params, lr=lr),
        "paged_adamw_8bit": lambda: bnb.optim.PagedAdamW8bit(params, lr=lr),
        "paged_adamw_32bit": lambda: bnb.optim.PagedAdamW32bit(params, lr=lr),
    }
    if name not in makers:
        raise CourseError(f"Unknown optimizer {name!r}: use one of {', '.join(makers)}.")
    return makers[name]()


# ---------------------------------------------------------------- batches


def example_lengths(setting: Setting, seed: int = 0) -> list[int]:
    """Ragged example lengths, as real data has: between a quarter of seq_len and seq_len, with
    the longest exactly seq_len (so padded batches are seq_len wide)."""
    rng = random.Random(seed)
    lengths = [
        rng.randint(setting.seq_len // 4, setting.seq_len) for _ in range(setting.batch_size)
    ]
    return [setting.seq_len, *lengths[1:]]


def make_batch(setting: Setting, vocab: int, device: str) -> dict[str, torch.Tensor]:
    """Random token ids shaped the way the setting batches them.

    Padded: one row per example, right-padded to the longest, with an attention mask and -100
    labels on the padding. Packed: all examples in one row, `position_ids` restarting at each
    example (transformers then keeps attention inside each example) and no loss across borders.
    """
    lengths = example_lengths(setting)
    gen = torch.Generator().manual_seed(0)
    if setting.packed:
        ids = torch.randint(vocab, (1, sum(lengths)), generator=gen)
        positions = torch.cat([torch.arange(n) for n in lengths])[None]
        labels = ids.clone()
        labels[positions == 0] = -100  # a first token has nothing before it to predict from
        batch = {"input_ids": ids, "position_ids": positions, "labels": labels}
    else:
        ids = torch.randint(vocab, (len(lengths), setting.seq_len), generator=gen)
        mask = (torch.arange(setting.seq_len)[None] < torch.tensor(lengths)[:, None]).long()
        batch = {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": ids.masked_fill(mask == 0, -100),
        }
    return {k: v.to(device) for k, v in batch.items()}


# ---------------------------------------------------------------- estimates and FLOPs


def estimate_gb(setting: Setting, run: Run) -> tuple[float, float]:
    """`ftcourse.memory.estimate` for this setting: (allocated GB without the CUDA context, total).

    Full fine-tuning here is pure 16-bit, what `from_pretrained(dtype=torch.bfloat16)` and a
    Trainer give: no fp32 master copy, and torch's AdamW keeps its two moments in the weights'
    dtype. The estimator counts ZeRO's mixed precision (fp32 master and moments), so its optimizer
    component is replaced by what this run keeps. Liger's fused loss never holds the logits.
    """
    tokens = sum(example_lengths(setting))
    seq_len, batch = (tokens, 1) if setting.packed else (setting.seq_len, setting.batch_size)
    dtype = str(run.dtype).removeprefix("torch.")
    b = memory.estimate(
        run.config, setting.method, seq_len=seq_len, batch_size=batch,
        gradient_checkpointing=setting.gradient_checkpointing, compute_dtype=dtype,
        double_quant=True, optimizer=setting.optimizer, lora_r=RECIPE.lora_r,
        target_modules=RECIPE.target_modules, lora_dropout=RECIPE.lora_dropout, device=run.device,
    )  # fmt: skip
    size = memory.DTYPE_BYTES[dtype]
    if setting.method == "full" and size < 4:
        params = b.gradients / size  # one 16-bit gradient per weight
        if setting.optimizer.startswith("adamw_torch"):  # two moments in the weights' dtype
            b = dataclasses.replace(b, optimizer=params * 2 * size)
        else:  # bitsandbytes keeps its states in 8 or 32 bits whatever the weights' dtype
            b = dataclasses.replace(b, optimizer=params * memory.OPTIMIZER_BYTES[setting.optimizer])
    if setting.liger:
        b = dataclasses.replace(b, logits=0.0)
    return (b.total - b.overhead) / memory.GB, b.total / memory.GB


def flops_per_token(setting: Setting, config) -> float:
    """Model FLOPs per trained token (attention's s x s products left out, as in 6N).

    Full fine-tuning: 2N forward + 4N backward (gradients of activations and of weights) = 6N.
    LoRA/QLoRA: 2N forward + 2N backward through the frozen weights (no weight gradients) + 6
    per adapter parameter. N counts the weights that multiply: all but the embedding lookup
    (which is the lm_head too when tied). Recomputation by checkpointing is not model FLOPs.
    """
    from ftcourse.lora import count_parameters

    counts = count_parameters(config, RECIPE.target_modules, RECIPE.lora_r)
    tied = getattr(config, "tie_word_embeddings", False)
    n = counts["total"] - (0 if tied else config.vocab_size * config.hidden_size)
    return 6.0 * n if setting.method == "full" else 4.0 * n + 6.0 * counts["trainable"]


def peak_tflops(device_name: str) -> float | None:
    """The GPU's dense bf16 peak from PEAK_TFLOPS, or None for a GPU (or CPU) not in it."""
    for key, tflops in PEAK_TFLOPS.items():
        if re.search(rf"\b{key}\b", device_name):
            return tflops
    return None


# ---------------------------------------------------------------- measuring


def train_step(model, optimizer, batch, dtype: torch.dtype) -> None:
    """Forward, backward and optimizer step, under autocast as Trainer runs it; gradients are
    zeroed in place, so they stay allocated like a middle micro-batch of gradient accumulation."""
    device = batch["input_ids"].device.type
    with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)


def paged_bytes(optimizer) -> int:
    """Optimizer state in CUDA unified memory (bitsandbytes' paged optimizers): torch's allocator
    never sees it, so it is added to torch.cuda.max_memory_allocated by hand."""
    return sum(
        t.nbytes
        for state in optimizer.state.values()
        for t in state.values()
        if torch.is_tensor(t) and getattr(t, "is_paged", False)
    )


def measured_peak(step, model, optimizer, batch) -> int:
    """Peak bytes of one step: the CUDA allocator's counter, or on a CPU every tensor counted by
    `ftcourse.memory.LiveTensors` (the one-step measurement notebook 01 uses)."""
    if batch["input_ids"].is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() + paged_bytes(optimizer)
    params = list(model.parameters())
    alive = memory._storages(t for p in params for t in memory._with_quant_state(p))
    alive |= memory._storages(p.grad for p in params if p.grad is not None)
    states = (v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    alive |= memory._storages(states) | memory._storages(batch.values())
    with memory.LiveTensors(alive) as live:
        step()
    return live.peak


def seconds_per_step(step, steps: int, cuda: bool) -> float:
    """Mean wall time of `steps` steps."""
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def skip_reason(setting: Setting, run: Run, total_gb: float) -> str | None:
    """Why a setting should not run here, or None."""
    if setting.liger and run.device != "cuda":
        return "skipped: Liger kernels need CUDA"
    if setting.liger and not liger_usable(run.device):
        return "skipped: liger_kernel not installed"
    if run.device == "cuda":
        capacity = torch.cuda.mem_get_info()[1] / memory.GB
        if total_gb > 0.95 * capacity:
            return f"skipped: estimate {total_gb:.0f} GB > 95% of {capacity:.0f} GB"
    if time.perf_counter() - run.started > run.time_budget_s:
        return "skipped: time budget spent"
    return None


def measure(model, setting: Setting, run: Run) -> Result:
    """Run one setting on a built model: a step to create the optimizer state and gradients, a
    measured step for the peak, then `run.steps` timed steps."""
    result = Result(setting, real_tokens=sum(example_lengths(setting)))
    set_checkpointing(model, setting.gradient_checkpointing)
    optimizer = make_optimizer(
        setting.optimizer, [p for p in model.parameters() if p.requires_grad]
    )
    batch = make_batch(setting, run.config.vocab_size, run.device)

    def step():
        train_step(model, optimizer, batch, run.dtype)

    try:
        step()
        result.peak_gb = measured_peak(step, model, optimizer, batch) / memory.GB
        result.step_s = seconds_per_step(step, run.steps, run.device == "cuda")
    except torch.OutOfMemoryError:
        result.status = "out of memory"
    finally:
        for p in model.parameters():
            p.grad = None
        optimizer = batch = None  # the step's closure holds them too
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if result.step_s:
        result.tokens_per_s = result.real_tokens / result.step_s
        peak = peak_tflops(torch.cuda.get_device_name()) if run.device == "cuda" else None
        if peak:
            flops = flops_per_token(setting, run.config) * result.tokens_per_s
            result.mfu_pct = 100 * flops / (peak * 1e12)
    return result


def free_memory() -> None:
    """Give a dropped model's memory back (a model holds reference cycles: gc, not refcounts)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_ladder(settings: list[Setting], run: Run, on_result=None) -> list[Result]:
    """Measure every setting, building each method's model once (Liger settings last: Liger
    patches transformers' classes for good). A failing setting is recorded, not fatal."""
    results = []
    order = sorted(settings, key=lambda s: (s.liger, METHODS.index(s.method)))
    for _, group in itertools.groupby(order, key=lambda s: (s.liger, s.method)):
        model = None
        for setting in group:
            result, model = run_setting(setting, run, model)
            results.append(result)
            print(f"  {setting.name:<48} {summary(results[-1])}", flush=True)
            if on_result:
                on_result(results)
        del model
        free_memory()
    return results


def run_setting(setting: Setting, run: Run, model) -> tuple[Result, nn.Module | None]:
    """One setting: skipped, or measured on `model` (built for it when still None).
    Returns the result and the model, for the next setting of the same method."""
    alloc_gb, total_gb = estimate_gb(setting, run)
    reason = skip_reason(setting, run, total_gb)
    result = Result(setting, status=reason or "ok", real_tokens=sum(example_lengths(setting)))
    if reason is None:
        try:
            if model is None:
                print(f"building the {setting.method} model...", flush=True)
                model = build_model(run, setting.method, setting.liger)
            result = measure(model, setting, run)
        except torch.OutOfMemoryError:
            result.status = "out of memory"
        except Exception as exc:  # a benchmark grid goes on; the exit code reports it
            traceback.print_exc()
            result.status = f"error: {type(exc).__name__}: {exc}".splitlines()[0][:200]
    result.estimate_gb = alloc_gb
    return result, model


def summary(r: Result) -> str:
    """One line for the console."""
    if r.status != "ok":
        return r.status
    return (
        f"peak {r.peak_gb:.3f} GB, estimate {r.estimate_gb:.3f} GB ({r.error_pct:+.1f}%), "
        f"{r.tokens_per_s:,.0f} tokens/s"
    )


# ---------------------------------------------------------------- reporting

COLUMNS = [  # (header, row key, format)
    ("method", "method", "{}"),
    ("seq", "seq_len", "{}"),
    ("batch", "batch_size", "{}"),
    ("grad ckpt", "gradient_checkpointing", "{}"),
    ("optimizer", "optimizer", "{}"),
    ("packed", "packed", "{}"),
    ("liger", "liger", "{}"),
    ("peak GB", "peak_gb", "{:.3g}"),
    ("estimate GB", "estimate_gb", "{:.3g}"),
    ("error %", "error_pct", "{:+.1f}"),
    ("tokens/s", "tokens_per_s", "{:,.0f}"),
    ("MFU %", "mfu_pct", "{:.1f}"),
    ("status", "status", "{}"),
]


def environment(run_device: str) -> dict:
    """Date, hardware and versions, for the record."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cuda = run_device == "cuda"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "CPU",
        "device_memory_gb": round(torch.cuda.mem_get_info()[1] / memory.GB, 1) if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        **{
            p: version(p) for p in ("torch", "transformers", "peft", "bitsandbytes", "liger-kernel")
        },
        "command": "python " + " ".join(sys.argv),
    }


def markdown(rows: list[dict], env: dict, model_name: str) -> str:
    """The results table with a header saying when, where and with what it ran."""
    versions = ", ".join(f"{p} {env[p]}" for p in ("torch", "transformers", "peft", "bitsandbytes"))
    where = env["device"]
    if env.get("cuda"):
        where += f" ({env['device_memory_gb']} GB), CUDA {env['cuda']}"
    head = [
        f"Measured {env['date']} on {where}, Python {env['python']}, {versions}, "
        f"liger-kernel {env['liger-kernel']}.",
        f"Model: {model_name} architecture, random weights. Command: `{env['command']}`",
        "",
    ]
    header = [h for h, _, _ in COLUMNS]
    body = [[_cell(row.get(key), fmt) for _, key, fmt in COLUMNS] for row in rows]
    return "\n".join(head) + "\n" + markdown_table(header, body, right_from=len(header)) + "\n"


def _cell(value, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value)


def chart(rows: list[dict], path: Path, title: str) -> None:
    """Left: measured peak memory per setting, estimate marked. Right: tokens per second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ftcourse.plots import style

    style()
    ok = [r for r in rows if r["status"] == "ok"]
    names = [r["name"] for r in ok]
    y = range(len(ok))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.35 * len(ok) + 1.8), sharey=True)
    left.barh(y, [r["peak_gb"] for r in ok], color="tab:blue", label="measured peak")
    left.scatter([r["estimate_gb"] for r in ok], y, marker="|", s=200, c="k", label="estimate")
    left.set(xlabel="peak memory (GB)", yticks=list(y), yticklabels=names, title="memory")
    left.invert_yaxis()
    left.legend(loc="lower right")
    right.barh(y, [r["tokens_per_s"] for r in ok], color="tab:green")
    right.set(xlabel="tokens per second (padding not counted)", title="speed")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(
    results_or_rows, env: dict, out: Path, model_name: str, with_chart: bool = True
) -> None:
    """ladder.json (raw), ladder.md (table) and ladder.png (chart) into `out`."""
    rows = [r.row() if isinstance(r, Result) else r for r in results_or_rows]
    out.mkdir(parents=True, exist_ok=True)
    payload = {"model": model_name, "environment": env, "results": rows}
    (out / "ladder.json").write_text(json.dumps(payload, indent=1) + "\n")
    (out / "ladder.md").write_text(markdown(rows, env, model_name))
    if with_chart and any(r["status"] == "ok" for r in rows):
        chart(rows, out / "ladder.png", f"{model_name} on {env['device']} ({env['date']})")


def update_docs(docs: Path, table: str) -> None:
    """Replace what stands between the ladder markers in `docs` with `table`."""
    from ftcourse.docblocks import replace_block

    replace_block(docs, "ladder", table)


# ---------------------------------------------------------------- recommendations (estimates)


# (method, gradient checkpointing) per column of the recommendation table
RECOMMEND_COLUMNS = {
    "full FT": ("full", True),
    "LoRA, 16-bit base": ("lora", True),
    "QLoRA, nf4": ("qlora", True),
    "QLoRA, no checkpointing": ("qlora", False),
}


def recommend(model_name: str = "llama-3.1-8b", seq_lens=(512, 2048)) -> str:
    """A markdown table from the estimator alone: per GPU in `memory.GPUS` and sequence length,
    the largest micro-batch that fits each method with paged 8-bit AdamW (0: not even one
    sequence fits). Full fine-tuning is the estimator's mixed precision (fp32 master weights).
    A T4 has no bf16, so it computes in fp16."""
    config = load_architecture(model_name)
    header, rows = ["GPU", "tokens", *RECOMMEND_COLUMNS], []
    for gpu, seq_len in itertools.product(memory.GPUS, seq_lens):
        dtype = "float16" if gpu.startswith("T4") else "bfloat16"
        common = dict(seq_len=seq_len, compute_dtype=dtype, optimizer="paged_adamw_8bit",
                      lora_r=RECIPE.lora_r, target_modules=RECIPE.target_modules, double_quant=True)  # fmt: skip
        cells = [
            memory.largest_batch(config, gpu, method=m, gradient_checkpointing=gc, **common)
            for m, gc in RECOMMEND_COLUMNS.values()
        ]
        rows.append([gpu, str(seq_len), *map(str, cells)])
    return markdown_table(header, rows, right_from=len(header)) + "\n"


# ---------------------------------------------------------------- command line


# What each mode runs unless told otherwise: the full ladder, or the CPU smoke test (every code
# path, 6 settings of a 2-layer model, in seconds).
DEFAULTS = {
    "ladder": dict(seq_lens=[512, 2048], batch_size=4, variants=list(VARIANTS), steps=3),
    "cpu-test": dict(seq_lens=[64], batch_size=2, variants=["baseline", "all"], steps=1),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the defaults of the mode (`--cpu-test` or the ladder) filled in."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("build/benchmarks"), help="output folder")
    p.add_argument(
        "--model", default="llama-3.1-8b", help="a bundled config (ftcourse.architectures)"
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seq-lens", nargs="+", type=int, help="default 512 2048")
    p.add_argument("--batch-size", type=int, help="examples per step, default 4")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, help="default: all of them")
    p.add_argument("--steps", type=int, help="timed steps per setting, default 3")
    p.add_argument("--time-budget", type=float, default=float("inf"), help="seconds; then skip")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--tiny", action="store_true", help="a 2-layer toy Llama instead of --model")
    p.add_argument(
        "--cpu-test", action="store_true",
        help="the tiny model on CPU, 6 settings, 1 timed step: checks the script still works",
    )  # fmt: skip
    p.add_argument("--from-json", type=Path, help="re-render a ladder.json instead of running")
    p.add_argument("--update-docs", type=Path, help="put the table into this markdown file")
    p.add_argument("--recommend", action="store_true", help="print the estimate table and exit")
    args = p.parse_args(argv)
    if args.cpu_test:
        args.tiny, args.device = True, "cpu"
    for key, value in DEFAULTS["cpu-test" if args.cpu_test else "ladder"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def make_run(args: argparse.Namespace) -> Run:
    """The device, dtype and config the arguments ask for."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CourseError("--device cuda, but torch sees no CUDA GPU (try --cpu-test).")
    if device == "cpu" and not args.tiny:
        raise CourseError(f"{args.model} on a CPU would take hours: use --cpu-test or --tiny.")
    if device == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32  # most CPUs emulate bf16, 5-8x slower
    config = tiny_config() if args.tiny else load_architecture(args.model)
    name = f"tiny {args.model}" if args.tiny else args.model
    return Run(config, name, device, dtype, args.steps, args.time_budget)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.recommend:
            print(recommend(args.model, args.seq_lens))
            return 0
        if args.from_json:
            payload = json.loads(args.from_json.read_text())
            rows, env, name = payload["results"], payload["environment"], payload["model"]
            write_outputs(rows, env, args.out, name)
        else:
            run = make_run(args)
            env = environment(run.device)
            settings = grid(args.methods, args.seq_lens, args.batch_size, args.variants, run.device)
            name = run.model_name
            # the table after every setting (a run cut short keeps what it measured), chart at the end
            results = run_ladder(
                settings, run, lambda done: write_outputs(done, env, args.out, name, False)
            )
            rows = [r.row() for r in results]
            write_outputs(rows, env, args.out, name)
        if args.update_docs:
            update_docs(args.update_docs, markdown(rows, env, name))
    except CourseError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/ladder.json, ladder.md and ladder.png")
    return 1 if any(r["status"].startswith("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
