"""ftcourse.ledger: models sized for the planned GPU, and a verdict computed on every machine."""

import pytest
import torch

import ftcourse.ledger
from ftcourse import memory
from ftcourse.ledger import Ledger
from ftcourse.profiles import PROFILES, ensure_available

# peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`; the warning is theirs.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
)


def test_ledger_sizes_models_for_the_planned_gpu_and_sees_what_was_freed():
    from ftcourse.trainer import load_model

    profile = ensure_available(PROFILES["t4-standin"])  # a tiny Qwen standing in for the T4's
    ledger = Ledger(profile)
    four_bit = ledger.track(load_model(profile, "qlora")[0], "4-bit")
    full = ledger.track(load_model(profile, "lora")[0], "fp32")
    real = memory.estimate("qwen3-1.7b", "qlora", compute_dtype="float32", double_quant=True)
    assert ledger.size(four_bit) == real.weights, "sized as the real 1.7B model in 4-bit"
    assert ledger.size(full) == pytest.approx(1_720_574_976 * 4, rel=1e-6), "and in fp32"
    assert ledger.alive() == ["4-bit", "fp32"] and ledger.at_peak == ("4-bit", "fp32")
    peak = ledger.peak
    assert peak == ledger.size(four_bit) + ledger.size(full) + memory.CUDA_OVERHEAD_GB * memory.GB
    del full
    assert ledger.release() == ["4-bit"]
    ledger.track(torch.nn.Linear(2, 2), "tiny")
    assert ledger.peak == peak, "the peak stays the largest sum seen"
    assert ledger.fits() and "15 GB GPU (t4)" in ledger.report()


def test_a_standin_on_a_cpu_gets_the_verdict_for_its_gpu():
    """One bf16 copy of Qwen3-8B (16.4 GB) fits the 24 GB GPU; two do not, even on a CPU."""
    ledger = Ledger(PROFILES["gpu-24gb-standin"])
    a = ledger.track(torch.nn.Linear(4, 4, dtype=torch.bfloat16), "first copy")
    assert 16e9 < ledger.peak < 18e9 and ledger.fits()  # with the CUDA context
    b = ledger.track(torch.nn.Linear(4, 4, dtype=torch.bfloat16), "second copy")
    assert ledger.peak > 30e9 and not ledger.fits(), (a, b)
    assert "24 GB GPU (gpu-24gb)" in ledger.report()


def test_a_cpu_profile_is_judged_against_the_ram_not_waved_through(monkeypatch):
    """A CPU profile's estimate is compared with this machine's RAM: it can fail."""
    model = torch.nn.Linear(4, 4)  # sized as the course's ~4M-parameter model in fp32: ~16 MB
    roomy = Ledger(PROFILES["cpu-tiny"])
    roomy.track(model, "fp32 model")
    assert 15e6 < roomy.peak < 17e6, "the estimate of the base model's fp32 weights"
    assert roomy.fits() and f"{ftcourse.ledger.ram_gb():.1f} GB of RAM" in roomy.report()

    monkeypatch.setattr(ftcourse.ledger, "ram_gb", lambda: 0.01)  # a machine with 10 MB of RAM
    cramped = Ledger(PROFILES["cpu-tiny"])
    cramped.track(model, "fp32 model")
    assert not cramped.fits() and "0.0 GB of RAM" in cramped.report()
