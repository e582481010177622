"""The environment report and `python -m ftcourse doctor`."""

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


def test_versions_are_real():
    versions = library_versions()
    assert versions["trl"][0].isdigit() and versions["peft"][0].isdigit()


def test_bf16_profile_on_cpu_is_warned(monkeypatch):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    rep = report("gpu-24gb")
    text = str(rep)
    assert "does not fit" in text and "bf16" in text


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
    assert bad.returncode == 1 and "Valid profiles" in bad.stderr


def test_doctor_on_a_t4_says_bf16_no_and_picks_the_t4_profile(monkeypatch, fake_cuda):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    fake_cuda()
    monkeypatch.setattr("ftcourse.doctor.bnb_4bit_works", lambda device: (True, device))
    monkeypatch.setattr("ftcourse.profiles.is_offline", lambda: False)
    rep = report()
    assert rep.rows["bf16"].startswith("no") and "7.5" in rep.rows["bf16"]
    assert rep.profile.name == "t4" and rep.rows["device"] == "CUDA: Tesla T4"
    assert rep.rows["compute"].startswith("float32") and "overflow" in rep.rows["compute"]
    assert "GPU memory" in rep.rows
