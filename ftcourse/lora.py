"""LoRA from scratch: the layer, putting it into a model, and counting what it trains.

The names follow peft (`lora_A`, `lora_B`, `r`, `lora_alpha`, `scaling`, `lora_dropout`, `merge`,
`unmerge`, `get_delta_weight`) so the notebook can hold this layer next to peft's, line by line.
This is the teaching version: one adapter per layer, `nn.Linear` only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ftcourse.architectures import meta_model
from ftcourse.errors import CourseError


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update: y = W x + (alpha / r) B A x."""

    def __init__(
        self,
        base_layer: nn.Linear,
        r: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        use_rslora: bool = False,
    ):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise CourseError(f"LoRALinear wraps an nn.Linear, got {type(base_layer).__name__}.")
        if not (isinstance(r, int) and r > 0):
            raise CourseError(f"The rank r must be a positive integer, got {r!r}.")
        self.base_layer = base_layer.requires_grad_(False)
        self.r, self.lora_alpha = r, lora_alpha
        # rsLoRA keeps the update's size steady as r grows: alpha / sqrt(r) instead of alpha / r
        self.scaling = lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        w = base_layer.weight
        self.lora_A = nn.Linear(
            base_layer.in_features, r, bias=False, device=w.device, dtype=w.dtype
        )
        self.lora_B = nn.Linear(
            r, base_layer.out_features, bias=False, device=w.device, dtype=w.dtype
        )
        self.merged = False
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        """A like nn.Linear's default (as peft does), B = 0: the layer starts equal to the base."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def get_delta_weight(self) -> torch.Tensor:
        """The update this adapter adds to W: scaling * B @ A, shaped like W (out x in)."""
        return self.lora_B.weight @ self.lora_A.weight * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Base output plus the low-rank path (skipped once merged: W already holds it)."""
        out = self.base_layer(x)
        if self.merged:
            return out
        return out + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into W, so inference costs exactly what the base model costs."""
        if not self.merged:
            self.base_layer.weight += self.get_delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update back out of W (up to float rounding)."""
        if self.merged:
            self.base_layer.weight -= self.get_delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, lora_alpha={self.lora_alpha}, scaling={self.scaling:g}"


def apply_lora(
    model: nn.Module,
    target_modules: list[str] | tuple[str, ...],
    r: int,
    lora_alpha: float,
    dropout: float = 0.0,
    use_rslora: bool = False,
) -> nn.Module:
    """Freeze every weight of `model`, then wrap each nn.Linear named in `target_modules` in place."""
    model.requires_grad_(False)
    targets = set(target_modules)
    found = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoRALinear(child, r, lora_alpha, dropout, use_rslora))
                found.append(name)
    if not found:
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise CourseError(
            f"None of target_modules={sorted(targets)} is an nn.Linear in this model. "
            f"Its linear layers are named: {', '.join(linear) or 'none'}."
        )
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The LoRALinear modules of a model, by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def lora_params_per_matrix(d_out: int, d_in: int, r: int) -> int:
    """Trainable parameters LoRA adds to one d_out x d_in matrix: A is r x d_in, B is d_out x r."""
    return r * (d_in + d_out)


def _linear_shapes(config) -> tuple[int, tuple[tuple[str, int, int], ...]]:
    """Total parameters and (name, out, in) of every nn.Linear of the model a config describes."""
    model = meta_model(config)
    total = sum(p.numel() for p in model.parameters())  # tied embeddings count once
    shapes = tuple(
        (name, m.out_features, m.in_features)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear)
    )
    return total, shapes


def count_parameters(config, target_modules: list[str] | tuple[str, ...], r: int) -> dict:
    """Parameter counts for LoRA rank `r` on `target_modules` of the model a config describes.

    Returns `total` (base model), `trainable` (LoRA A and B), `trainable_pct` (of the base),
    `peft_all` and `peft_pct` (what peft's print_trainable_parameters reports: base + LoRA),
    `matrices` (how many matrices get an adapter) and `per_module` (trainable per target name).
    """
    if not (isinstance(r, int) and r > 0):
        raise CourseError(f"The rank r must be a positive integer, got {r!r}.")
    total, shapes = _linear_shapes(config)
    per_module = {t: 0 for t in target_modules}
    matrices = 0
    for name, d_out, d_in in shapes:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in per_module:
            per_module[leaf] += lora_params_per_matrix(d_out, d_in, r)
            matrices += 1
    missing = [t for t, n in per_module.items() if n == 0]
    if missing:
        names = sorted({n.rsplit(".", 1)[-1] for n, _, _ in shapes})
        raise CourseError(
            f"target_modules {missing} are not linear layers of this model; "
            f"its linear layers are named: {', '.join(names)}."
        )
    trainable = sum(per_module.values())
    return {
        "total": total,
        "trainable": trainable,
        "trainable_pct": 100 * trainable / total,
        "peft_all": total + trainable,
        "peft_pct": 100 * trainable / (total + trainable),
        "matrices": matrices,
        "per_module": per_module,
    }


def adapter_bytes(
    config, target_modules: list[str] | tuple[str, ...], r: int, dtype="float32"
) -> int:
    """Bytes of the adapter's tensors when saved in `dtype` (the file adds a small header).

    peft keeps adapter weights in float32 by default, even on a bf16 or 4-bit base model.
    """
    dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(dtype, torch.dtype):
        raise CourseError(
            f"dtype must be a torch dtype or its name (e.g. 'bfloat16'), got {dtype!r}."
        )
    return count_parameters(config, target_modules, r)["trainable"] * dtype.itemsize


def relative_error_by_rank(singular_values: torch.Tensor) -> torch.Tensor:
    """Relative Frobenius error of the best rank-k approximation, for k = 0, 1, ..., len(S).

    By the Eckart-Young theorem, keeping the top k singular directions is the best any rank-k
    matrix (so any LoRA update with r = k) can do: error_k = sqrt(sum_{i>k} s_i^2 / sum_i s_i^2).
    """
    energy = singular_values.double().pow(2)
    tail = energy.flip(0).cumsum(0).flip(0)  # tail[k] = sum of s_i^2 for i >= k
    return torch.cat([tail, tail.new_zeros(1)]).div(energy.sum()).sqrt().float()
