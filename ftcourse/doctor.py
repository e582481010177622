"""The environment report: versions, device, bf16, 4-bit support, memory and the chosen profile."""

from __future__ import annotations

import importlib.metadata
import platform
import warnings
from dataclasses import dataclass, field

from ftcourse.ownmodel import profile_for
from ftcourse.profiles import Hardware, Profile, ensure_available

LIBRARIES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries the course teaches."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX); otherwise bf16 is emulated."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bnb_4bit_works(device: str) -> tuple[bool, str]:
    """Quantize a small matrix to nf4 and back on `device`; report whether the error is small."""
    try:
        import bitsandbytes.functional as F
        import torch

        x = torch.randn(64, 64, device=device)
        q, state = F.quantize_4bit(x, quant_type="nf4")
        err = (F.dequantize_4bit(q, state) - x).abs().mean().item()
        return err < 0.2, f"nf4 round-trip error {err:.3f}"
    except Exception as exc:  # any failure here is exactly what the learner needs to see
        return False, f"{type(exc).__name__}: {exc}"


def memory_gb() -> dict[str, float]:
    """Total and available RAM, and GPU memory when CUDA is present, in GB."""
    import psutil
    import torch

    vm = psutil.virtual_memory()
    out = {"ram_total": vm.total / 1e9, "ram_free": vm.available / 1e9}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        out.update(gpu_total=total / 1e9, gpu_free=free / 1e9)
    return out


@dataclass
class Report:
    """What `python -m ftcourse doctor` prints."""

    rows: dict[str, str]
    profile: Profile
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        width = max(map(len, self.rows))
        lines = [f"{k:<{width}}  {v}" for k, v in self.rows.items()]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def report(profile_name: str | None = None) -> Report:
    """Collect the environment report and the profile this machine gets."""
    hw = Hardware.detect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profile = profile_for(profile_name, hw=hw)
    notes = [str(w.message) for w in caught]
    device = "cuda" if hw.cuda else "cpu"
    ok4, how4 = bnb_4bit_works(device)
    mem = memory_gb()
    rows = {"python": platform.python_version(), **library_versions()}
    rows["device"] = f"CUDA: {hw.gpu_name}" if hw.cuda else f"CPU ({hw.cpu_count} cores)"
    rows["bf16"] = _bf16_text(hw)
    rows["4-bit (nf4)"] = f"{'works' if ok4 else 'FAILS'} ({how4})"
    rows["RAM"] = f"{mem['ram_free']:.1f} GB free of {mem['ram_total']:.1f} GB"
    if "gpu_total" in mem:
        rows["GPU memory"] = f"{mem['gpu_free']:.1f} GB free of {mem['gpu_total']:.1f} GB"
    rows["profile"] = f"{profile.name}: {profile.summary}"
    rows["model"] = profile.model_path
    rows["compute"] = f"{profile.compute_dtype}" + (f" ({profile.notes})" if profile.notes else "")
    if profile.compute_dtype == "bfloat16" and not hw.bf16:
        notes.append(
            "this profile computes in bf16 but the device has no bf16: use fp16 (T4) or fp32."
        )
    if not ok4:
        notes.append(
            "bitsandbytes 4-bit does not work here; QLoRA cells will fail. See the README."
        )
    return Report(rows, profile, notes)


def _bf16_text(hw: Hardware) -> str:
    if hw.cuda:
        cc = ".".join(map(str, hw.compute_capability)) if hw.compute_capability else "unknown"
        if hw.bf16:
            return f"yes (compute capability {cc})"
        return (
            f"no (compute capability {cc}; bf16 needs 8.0 or newer, e.g. an A100, L4 or RTX 30xx)"
        )
    if cpu_has_native_bf16():
        return "native on this CPU"
    return "emulated on this CPU (no AVX512-BF16 or AMX; the course computes in fp32 on a CPU)"


def setup_notebook(seed: int = 0, verbose: bool = True) -> Profile:
    """Seed, print the environment report, check the model is reachable and return the profile."""
    from transformers import set_seed

    set_seed(seed)
    rep = report()
    if verbose:
        print(rep)
    return ensure_available(rep.profile)
