"""Estimated against measured training memory: full fine-tuning, LoRA and QLoRA, on any device.

The model is built from its config with random weights (memory does not depend on their values),
so nothing is downloaded: a randomly initialised Llama-3.1-8B works as well as a tiny Llama.
Each method runs real training steps (forward, backward, AdamW step) and the peak is measured:
- on a GPU with `torch.cuda.max_memory_allocated()` (compared with the estimate less the CUDA
  context, which the allocator does not see), and by counting the tensors alive at the peak;
- on a CPU by counting the tensors alive at the peak (`ftcourse.memory.measure_training_step`).

    python benchmarks/memory_vs_measured.py --cpu-test        # a tiny Llama on the CPU, seconds
    python benchmarks/memory_vs_measured.py --model llama-3.1-8b --methods lora qlora --seq-len 1024

Exit status 1 when an estimate is further than --tolerance from its measurement.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import warnings

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from ftcourse import memory
from ftcourse.architectures import tiny_llama_config
from ftcourse.runfile import METHODS

# A Llama small enough for a CPU test: GQA, untied embeddings (the base model's are tied).
TINY = tiny_llama_config(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=192,
    max_position_embeddings=128,
    tie_word_embeddings=False,
)


def build(config, method: str, args) -> torch.nn.Module:
    """A model with random weights, as each method trains it (full: fp32 weights under autocast)."""
    dtype = getattr(torch, args.compute_dtype)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.float32 if method == "full" else dtype
        )
    if method == "qlora":  # quantize through from_pretrained, exactly as learners load a model
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            del model
            bnb_config = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=args.double_quant,
            )
            model = AutoModelForCausalLM.from_pretrained(
                tmp, quantization_config=bnb_config, dtype=dtype, device_map=args.device
            )
    if method != "full":
        lora = LoraConfig(
            r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            lora_dropout=args.lora_dropout,
            target_modules=list(args.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    if args.gradient_checkpointing:
        model.config.use_cache = False
        model.activation_checkpointing_enable()
    return model.train()


def run(config, method: str, args) -> dict:
    """Estimate, then measure one method; returns the row the table prints."""
    est = memory.estimate(
        config,
        method,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        gradient_checkpointing=args.gradient_checkpointing,
        compute_dtype=args.compute_dtype,
        weight_dtype="float32" if method == "full" else None,
        double_quant=args.double_quant,
        lora_r=args.lora_r,
        target_modules=tuple(args.target_modules),
        lora_dropout=args.lora_dropout,
        device=args.device,
    )
    row = {"method": method, "estimate": est.total - est.overhead}
    free = torch.cuda.mem_get_info()[0] if args.device == "cuda" else float("inf")
    if est.total - est.overhead > 0.95 * free:
        return {**row, "skipped": f"needs ~{est.total / 1e9:.0f} GB"}
    start = time.perf_counter()
    model = build(config, method, args)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], fused=True)
    ids = torch.randint(config.vocab_size, (args.batch_size, args.seq_len), device=args.device)
    autocast = args.compute_dtype if args.compute_dtype != "float32" else None
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    counted = memory.measure_training_step(model, optimizer, ids, autocast=autocast)
    row.update(counted=counted.total, seconds=time.perf_counter() - start)
    if args.device == "cuda":
        torch.cuda.synchronize()
        row["allocated"] = torch.cuda.max_memory_allocated()
    del model, optimizer
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return row


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-test", action="store_true", help="a tiny random Llama on the CPU")
    p.add_argument("--model", default="llama-3.1-8b", help="bundled config name or model folder")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--double-quant", action="store_true")
    p.add_argument("--compute-dtype", default=None, choices=list(memory.DTYPE_BYTES))
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--target-modules", nargs="+", default=list(memory.ATTENTION))
    p.add_argument("--tolerance", type=float, default=0.10)
    args = p.parse_args(argv)
    args.device = "cuda" if torch.cuda.is_available() and not args.cpu_test else "cpu"
    if args.compute_dtype is None:  # fp32 on a CPU (no native bf16), bf16 or fp16 on a GPU
        gpu_bf16 = args.device == "cuda" and torch.cuda.is_bf16_supported()
        args.compute_dtype = {"cpu": "float32"}.get(
            args.device, "bfloat16" if gpu_bf16 else "float16"
        )
    if args.cpu_test:
        args.seq_len, args.batch_size = 64, 2
    return args


def main(argv: list[str] | None = None) -> int:
    """Print estimate against measurement for each method; 1 if one is off by more than allowed."""
    args = parse(argv)
    # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing`: theirs, and harmless
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    config = TINY if args.cpu_test else memory.as_config(args.model)
    torch.manual_seed(0)
    print(
        f"{args.model if not args.cpu_test else 'tiny Llama'} on {args.device}, "
        f"{args.compute_dtype}, seq {args.seq_len} x batch {args.batch_size}, "
        f"checkpointing {'on' if args.gradient_checkpointing else 'off'} (MB = 10^6 bytes)"
    )
    print(f"{'method':<7}{'estimate':>12}{'counted':>12}{'allocated':>12}{'est/meas':>10}{'s':>6}")
    worst = 0.0
    for method in args.methods:
        row = run(config, method, args)
        if "skipped" in row:
            print(f"{method:<7}{row['estimate'] / 1e6:>12.1f}  skipped: {row['skipped']}")
            continue
        measured = row.get("allocated", row["counted"])
        ratio = row["estimate"] / measured
        worst = max(worst, abs(ratio - 1))
        allocated = f"{row['allocated'] / 1e6:>12.1f}" if "allocated" in row else f"{'-':>12}"
        print(
            f"{method:<7}{row['estimate'] / 1e6:>12.1f}{row['counted'] / 1e6:>12.1f}"
            f"{allocated}{ratio:>10.3f}{row['seconds']:>6.1f}"
        )
    print(f"largest deviation {worst:.1%} (tolerance {args.tolerance:.0%})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
