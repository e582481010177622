"""The notebooks' memory ledger: the models and trainers a notebook holds, sized for its profile's GPU.

A notebook loads several models one after another (a base, a fine-tune, a merged copy...). The
ledger tracks each with a weak reference, sizes it with the estimate of `ftcourse.memory` as it
would be on the GPU the profile is planned for, and keeps the largest sum of those alive together:
the peak the notebook asserts fits that GPU (for a CPU profile, this machine's RAM).
"""

from __future__ import annotations

import weakref

import torch

from ftcourse.memory import CUDA_OVERHEAD_GB, GB, as_config, estimate_for_profile


def ram_gb() -> float:
    """This machine's total RAM in GB (10^9 bytes)."""
    import psutil

    return psutil.virtual_memory().total / GB


def is_4bit(model) -> bool:
    """Whether a model holds bitsandbytes 4-bit weights."""
    return any(type(p).__name__ == "Params4bit" for p in model.parameters())


def _weight_dtype(model) -> str:
    """The dtype most of a model's weights are in (LoRA adapters may be fp32 on a bf16 base)."""
    counts: dict = {}
    for p in model.parameters():
        if p.is_floating_point():
            counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    return str(max(counts, key=counts.get)).removeprefix("torch.")


class Ledger:
    """The models and trainers a notebook holds, with the GPU memory they would need together.

    Each tracked object is sized as it would be on the GPU the profile is planned for (a stand-in's
    GPU profile, with that profile's real model and settings): a model by its weights in the form it
    is in (4-bit, or its float dtype), a trainer by what training adds (gradients, optimizer state,
    activations and logits at the profile's batch and length). The peak is the largest sum of the
    objects alive together whenever one was added, plus the CUDA context: an estimate, from
    `ftcourse.memory.estimate`, of what a notebook reaches. Forward passes on a handful of prompts add little.

        ledger = Ledger(profile)
        model = ledger.track(load(...), "4-bit base")
        del model; ledger.release()
        assert "4-bit base" not in ledger.alive()
    """

    def __init__(self, profile, memory_gb: float | None = None):
        from ftcourse.profiles import planned_for

        self.profile, self.target = profile, planned_for(profile)
        self.config = as_config(self.target.architecture or self.target.model_path)
        self.on_gpu = self.target.needs_cuda
        # what the peak must fit: the planned GPU, wherever the notebook runs (a stand-in runs on
        # a CPU and is still sized for its GPU); a CPU profile's models live in this machine's RAM
        if memory_gb is None:
            memory_gb = self.target.gpu_gb if self.on_gpu else ram_gb()
        self.memory_gb = memory_gb
        self._entries: dict[str, tuple[weakref.ref, float]] = {}
        self.peak, self.at_peak = 0.0, ()

    def track(self, obj, label: str):
        """Record `obj` (a model or a Trainer) under `label`; return it unchanged."""
        self._entries[label] = (weakref.ref(obj), self.size(obj))
        now = self.total()
        if now > self.peak:
            self.peak, self.at_peak = now, tuple(self.alive())
        return obj

    def size(self, obj) -> float:
        """The bytes `obj` would take on the planned GPU (see the class docstring)."""
        t, dq = self.target, dict(double_quant=True)
        if isinstance(obj, torch.nn.Module):
            if is_4bit(obj):
                return estimate_for_profile(t, self.config, method="qlora", **dq).weights
            dtype = _weight_dtype(obj)
            return estimate_for_profile(t, self.config, method="lora", weight_dtype=dtype).weights
        # a Trainer: what training adds to the model it trains, at the profile's settings
        ckpt = dict(gradient_checkpointing=t.gradient_checkpointing)
        run = estimate_for_profile(t, self.config, **ckpt, **dq)
        return run.total - run.weights - run.overhead

    def alive(self) -> list[str]:
        """Labels of the tracked objects that still exist."""
        return [label for label, (ref, _) in self._entries.items() if ref() is not None]

    def total(self) -> float:
        """Bytes of what is alive now, plus the CUDA context on a GPU profile."""
        held = sum(size for ref, size in self._entries.values() if ref() is not None)
        return held + (CUDA_OVERHEAD_GB * GB if self.on_gpu else 0.0)

    def release(self) -> list[str]:
        """Collect garbage (a Trainer holds reference cycles), empty CUDA's cache; return `alive()`."""
        import gc

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return self.alive()

    def fits(self) -> bool:
        """Whether the estimated peak fits `memory_gb`: the planned GPU's, or a CPU profile's RAM."""
        return self.peak <= self.memory_gb * GB

    def report(self) -> str:
        """One line: the estimated peak, what was alive then, and the memory it must fit."""
        if self.on_gpu:
            where = f"a {self.memory_gb:g} GB GPU ({self.target.name})"
        else:
            where = f"{self.memory_gb:.1f} GB of RAM"
        held = ", ".join(self.at_peak) or "nothing"
        return (
            f"estimated peak {self.peak / GB:.2f} GB of {where} with {self.target.model} "
            f"(an estimate by ftcourse.memory): {held}"
        )
