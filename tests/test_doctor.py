"""The environment report and `python -m ftcourse doctor`."""

import importlib.metadata
import os
import subprocess
import sys

from ftcourse.doctor import bnb_4bit_works, library_versions, report


def test_report_lists_what_a_learner_needs(monkeypatch):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    rep = report()
    for key in (
        "torch",
        "transformers",
        "peft",
        "trl",
        "bitsandbytes",
        "device",
        "bf16",
        "4-bit (nf4)",
        "RAM",
        "profile",
    ):
        assert key in rep.rows, key
    assert rep.profile.name in str(rep)


def test_bitsandbytes_4bit_really_works_on_cpu():
    ok, how = bnb_4bit_works("cpu")
    assert ok, how


def test_versions_are_the_installed_ones(monkeypatch):
    import peft
    import torch
    import trl

    versions = library_versions()
    assert (versions["torch"], versions["peft"], versions["trl"]) == (
        torch.__version__,
        peft.__version__,
        trl.__version__,
    )
    real = importlib.metadata.version

    def only_some(name):
        if name == "bitsandbytes":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", only_some)
    assert library_versions()["bitsandbytes"] == "not installed"


def test_bf16_profile_on_cpu_is_warned(monkeypatch):
    # a CPU machine on every machine: with a real bf16 GPU, gpu-24gb would fit and nothing warn
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("ftcourse.doctor.cpu_has_native_bf16", lambda: False)
    for name in ("FTCOURSE_PROFILE", "FTCOURSE_DTYPE", "FTCOURSE_NO_BF16"):
        monkeypatch.delenv(name, raising=False)
    rep = report("gpu-24gb")
    assert rep.profile.name == "gpu-24gb" and rep.rows["device"].startswith("CPU (")
    assert rep.rows["bf16"].startswith("emulated") and "GPU memory" not in rep.rows
    assert rep.warnings == [
        "Profile 'gpu-24gb' does not fit this hardware (no CUDA GPU, bf16=no); 'cpu-tiny' does.",
        "this profile computes in bf16 but the device has no bf16: use fp16 (T4) or fp32.",
    ]
    assert f"WARNING: {rep.warnings[1]}" in str(rep)


def test_bf16_profile_on_a_bf16_gpu_is_not_warned(monkeypatch, fake_cuda):
    for name in ("FTCOURSE_PROFILE", "FTCOURSE_DTYPE", "FTCOURSE_NO_BF16"):
        monkeypatch.delenv(name, raising=False)
    fake_cuda((9, 0), "NVIDIA H200", 140e9)
    probed = []

    def nf4_works(device):
        probed.append(device)
        return True, "nf4 round-trip error 0.080"

    monkeypatch.setattr("ftcourse.doctor.bnb_4bit_works", nf4_works)
    rep = report("gpu-24gb")
    assert rep.rows["bf16"] == "yes (compute capability 9.0)"
    assert probed == ["cuda"], "4-bit is tried on the GPU the course will use"
    assert rep.rows["device"] == "CUDA: NVIDIA H200"
    assert rep.rows["4-bit (nf4)"] == "works (nf4 round-trip error 0.080)"
    assert rep.rows["GPU memory"] == "126.0 GB free of 140.0 GB"
    assert rep.warnings == [] and "WARNING" not in str(rep)


def test_cli_doctor_runs_and_rejects_unknown_profile():
    ok = subprocess.run(
        [sys.executable, "-m", "ftcourse", "doctor", "--profile", "cpu-tiny"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert ok.returncode == 0, ok.stderr
    assert "cpu-tiny" in ok.stdout and "4-bit" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "ftcourse", "doctor", "--profile", "nope"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Valid profiles" in bad.stderr


def test_doctor_on_a_t4_says_bf16_no_and_picks_the_t4_profile(monkeypatch, fake_cuda):
    for name in ("FTCOURSE_PROFILE", "FTCOURSE_DTYPE", "FTCOURSE_NO_BF16"):
        monkeypatch.delenv(name, raising=False)
    fake_cuda()
    monkeypatch.setattr("ftcourse.profiles.is_offline", lambda: False)
    broken = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    monkeypatch.setattr("ftcourse.doctor.bnb_4bit_works", lambda device: (False, broken))
    rep = report()
    assert rep.rows["bf16"].startswith("no") and "7.5" in rep.rows["bf16"]
    assert rep.profile.name == "t4" and rep.rows["device"] == "CUDA: Tesla T4"
    assert rep.rows["compute"].startswith("float32") and "overflow" in rep.rows["compute"]
    assert rep.rows["GPU memory"] == "14.2 GB free of 15.8 GB"
    # a bitsandbytes build without this GPU's kernels: the row and a warning say 4-bit fails
    assert rep.rows["4-bit (nf4)"] == f"FAILS ({broken})"
    assert rep.warnings == [
        "bitsandbytes 4-bit does not work here; QLoRA cells will fail. See the README."
    ]
