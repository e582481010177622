"""Per-profile expectations: measured bars where measured, none (mechanics only) elsewhere."""

from dataclasses import fields

import torch

from ftcourse.expectations import (
    EXPECTATIONS,
    LOGIT_RTOL,
    at_least,
    at_most,
    expectations,
    logits_close,
)
from ftcourse.profiles import PROFILES


def _bars(expect) -> dict:
    out = {}
    for f in fields(expect):
        value = getattr(expect, f.name)
        if isinstance(value, dict):
            out |= {f"{f.name}.{k}": v for k, v in value.items()}
        elif f.name != "measured":
            out[f.name] = value
    return out


def test_cpu_tiny_bars_are_set_and_say_where_they_were_measured():
    expect = expectations(PROFILES["cpu-tiny"])
    assert "make course" in expect.measured
    assert all(v is not None for v in _bars(expect).values()), _bars(expect)


def test_unmeasured_profiles_assert_no_quality_bar():
    """The t4 profile's Instruct model already rewrites politely: no "base fails" assert there."""
    for profile in PROFILES.values():
        if profile.name in EXPECTATIONS:
            continue
        expect = expectations(profile)
        assert all(v is None for v in _bars(expect).values()), profile.name
        assert "mechanics" in expect.measured
    assert expectations(PROFILES["t4"]).base_accuracy_max["polite"] is None


def test_bars_that_are_not_measured_always_pass():
    assert at_least(0.0, None) and at_most(1.0, None)
    assert at_least(0.8, 0.7) and not at_least(0.6, 0.7)
    assert at_most(0.05, 0.1) and not at_most(0.2, 0.1)


def test_logit_tolerance_follows_the_dtype():
    """A reloaded adapter's logits in bf16 differ by more than the fp32 `atol=1e-4` allowed."""
    a = torch.randn(2, 5, 100) * 10
    bf16 = a.to(torch.bfloat16).float()
    assert not torch.allclose(a, bf16, atol=1e-4)
    assert logits_close(a, bf16, "bfloat16") and not logits_close(a, bf16, "float32")
    assert logits_close(a, a.clone(), "float32")
    assert LOGIT_RTOL["float32"] < LOGIT_RTOL["float16"] < LOGIT_RTOL["bfloat16"]
