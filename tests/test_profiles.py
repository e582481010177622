"""Profiles: automatic choice follows the hardware, a forced profile is checked, offline fails fast."""

import time

import pytest

from ftcourse import CourseError
from ftcourse.profiles import PROFILES, Hardware, choose_profile, ensure_available, get_profile

CPU = Hardware(cuda=False, gpu_name="", gpu_memory_gb=0.0, bf16=False, cpu_count=2)
T4 = Hardware(cuda=True, gpu_name="Tesla T4", gpu_memory_gb=15.8, bf16=False, cpu_count=2)
A10 = Hardware(cuda=True, gpu_name="NVIDIA A10G", gpu_memory_gb=24.0, bf16=True, cpu_count=8)
BIG_NO_BF16 = Hardware(
    cuda=True, gpu_name="Tesla V100", gpu_memory_gb=32.0, bf16=False, cpu_count=8
)


@pytest.mark.parametrize(
    "hw, expected", [(CPU, "cpu-tiny"), (T4, "t4"), (A10, "gpu-24gb"), (BIG_NO_BF16, "t4")]
)
def test_automatic_choice_follows_hardware(hw, expected, monkeypatch):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    assert choose_profile(hw=hw).name == expected


def test_env_variable_forces_a_profile(monkeypatch):
    monkeypatch.setenv("FTCOURSE_PROFILE", "t4")
    assert choose_profile(hw=T4).name == "t4"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("FTCOURSE_PROFILE", "h100-dreams")
    with pytest.raises(CourseError) as err:
        choose_profile(hw=CPU)
    for name in PROFILES:
        assert name in str(err.value)


def test_profile_too_big_warns_and_names_the_one_that_fits():
    with pytest.warns(UserWarning, match="'t4' does"):
        choose_profile("gpu-24gb", hw=T4)


def test_profiles_are_data_with_sane_values():
    for p in PROFILES.values():
        assert p.compute_dtype in ("float32", "float16", "bfloat16")
        assert p.batch_size >= 1 and p.grad_accum >= 1 and p.max_length >= 128
        assert p.max_steps > 0 or p.num_train_epochs > 0
    assert get_profile("t4").compute_dtype == "float32", "a T4 has no bf16; fp16 overflows Qwen2"
    assert get_profile("cpu-tiny").compute_dtype == "float32", "most CPUs only emulate bf16"
    assert get_profile("cpu-tiny").is_local and not get_profile("gpu-24gb").is_local
    assert get_profile("cpu-tiny").with_overrides(max_steps=3).max_steps == 3


def test_a_task_can_have_its_own_learning_rate():
    tiny = get_profile("cpu-tiny")
    assert tiny.learning_rate_for("polite") == tiny.learning_rate
    assert tiny.learning_rate_for("bugfix") != tiny.learning_rate  # measured: it needs more
    assert tiny.for_task("bugfix").learning_rate == tiny.learning_rate_for("bugfix")
    assert tiny.for_task("polite") == tiny
    t4 = get_profile("t4")
    assert t4.for_task("bugfix") == t4  # no per-task rates: the article's rate for every task


def test_hub_profile_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(CourseError, match="offline"):
        ensure_available(get_profile("gpu-24gb"))
    assert time.perf_counter() - start < 5, "an offline check must not hang"


def test_missing_local_model_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setattr("ftcourse.profiles.REPO_ROOT", tmp_path)
    with pytest.raises(CourseError, match="make_base_model"):
        ensure_available(get_profile("cpu-tiny"))


def test_fast_switch_scores_fewer_examples(monkeypatch):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    monkeypatch.setenv("FTCOURSE_FAST", "1")
    fast = choose_profile(hw=CPU)
    assert fast.eval_samples == 30 and fast.max_steps == PROFILES["cpu-tiny"].max_steps


def test_a_t4_has_no_bf16_although_torch_says_it_does(monkeypatch, fake_cuda):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    fake_cuda()
    hw = Hardware.detect()
    assert hw.cuda and hw.compute_capability == (7, 5)
    assert not hw.bf16, "bf16 must come from the compute capability, not from emulation"
    assert choose_profile(hw=hw).name == "t4"


def test_an_ampere_gpu_has_bf16_and_gets_the_24gb_profile(monkeypatch, fake_cuda):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    fake_cuda((8, 6), "NVIDIA A10G", 24.0e9)
    assert choose_profile(hw=Hardware.detect()).name == "gpu-24gb"


def test_no_bf16_switch_makes_a_bf16_gpu_act_as_a_t4(monkeypatch, fake_cuda):
    fake_cuda((9, 0), "NVIDIA H200", 140e9)
    monkeypatch.setenv("FTCOURSE_NO_BF16", "1")
    assert not Hardware.detect().bf16


def test_compute_dtype_override_and_its_refusal(monkeypatch):
    monkeypatch.setenv("FTCOURSE_DTYPE", "float16")
    assert choose_profile("cpu-tiny", CPU).compute_dtype == "float16"
    monkeypatch.setenv("FTCOURSE_DTYPE", "bfloat16")
    with pytest.raises(CourseError, match="no bf16"):
        choose_profile("t4", T4)
    monkeypatch.setenv("FTCOURSE_DTYPE", "fp8")
    with pytest.raises(CourseError, match="float32, float16 or bfloat16"):
        choose_profile("cpu-tiny", CPU)


def test_gpu_profiles_need_no_account_and_the_article_model_is_opt_in(monkeypatch):
    monkeypatch.delenv("FTCOURSE_PROFILE", raising=False)
    for name in ("t4", "gpu-24gb"):
        p = get_profile(name)
        assert not p.gated and not p.opt_in and p.needs_cuda and p.architecture
    llama = get_profile("llama-3.1-8b")
    assert llama.gated and llama.opt_in and "hf auth login" in llama.notes
    assert llama.chat_template == "llama3_training" and llama.end_of_turn == "<|eot_id|>"
    big = Hardware(cuda=True, gpu_name="A100", gpu_memory_gb=80, bf16=True, cpu_count=8)
    assert choose_profile(hw=big).name == "gpu-24gb", "an opt-in profile is never chosen for you"


def test_t4_computes_in_fp32_for_a_written_reason():
    t4 = get_profile("t4")
    assert t4.compute_dtype == "float32" and not t4.needs_bf16
    assert "overflow" in t4.notes and "fp16" in t4.notes


def test_every_gpu_profile_fits_its_gpu_by_the_estimate():
    from ftcourse import memory

    for p in PROFILES.values():
        if p.needs_cuda:
            need = memory.estimate_for_profile(
                p, p.architecture, gradient_checkpointing=p.gradient_checkpointing
            )
            assert need.fits(p.min_gpu_gb), (p.name, need.total / 1e9)
            assert p.gpu_gb >= p.min_gpu_gb
