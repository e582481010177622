"""ftcourse.decision: the prompt / RAG / fine-tune guide gives the advice its rules promise."""

import pytest

from ftcourse import CourseError, decision
from ftcourse.widgets import form


def test_nothing_special_needs_only_a_prompt():
    r = decision.recommend()
    assert r.approach == "prompting" and r.method is None


def test_fresh_facts_go_to_retrieval_not_fine_tuning():
    r = decision.recommend(needs_fresh_facts=True, examples=5000, gpu_gb=80)
    assert r.approach == "RAG" and r.method is None
    assert any("stale" in reason for reason in r.reasons)


def test_too_few_examples_means_few_shot_prompting():
    r = decision.recommend(needs_consistent_format=True, examples=decision.MIN_EXAMPLES - 1)
    assert r.approach == "prompting" and r.method is None
    assert any("few-shot" in reason for reason in r.reasons)


@pytest.mark.parametrize(
    "gpu_gb, method, model",
    [
        (80, "lora", "llama-3.1-8b"),  # the 16-bit 8B fits: no need to quantize
        (24, "lora", "llama-3.1-8b"),
        (15, "qlora", "llama-3.1-8b"),  # a T4 takes the 8B only in 4-bit
        (0, "qlora", "llama-3.1-8b"),  # no GPU: the advice is for a free Colab T4
        (6, "lora", "qwen2.5-1.5b-instruct"),  # too small for the 8B even in 4-bit
    ],
)
def test_hardware_picks_method_and_model_from_the_memory_estimate(gpu_gb, method, model):
    r = decision.recommend(needs_consistent_format=True, examples=1000, gpu_gb=gpu_gb)
    assert (r.approach, r.method, r.model) == ("fine-tuning", method, model)


def test_facts_and_format_together_need_both():
    r = decision.recommend(needs_fresh_facts=True, needs_consistent_format=True, examples=800)
    assert r.approach == "RAG + fine-tuning" and r.method == "qlora"
    assert "Colab" in r.report()


def test_tight_latency_alone_argues_for_fine_tuning():
    r = decision.recommend(tight_latency=True, examples=2000, gpu_gb=24)
    assert r.approach == "fine-tuning"


def test_bad_input_and_impossible_hardware_raise_course_errors():
    with pytest.raises(CourseError, match="negative"):
        decision.recommend(examples=-1)
    with pytest.raises(CourseError, match="cpu-tiny"):
        decision.method_for(0.5)


def test_the_widget_form_returns_what_the_plain_function_returns():
    box = form(
        decision.recommend,
        needs_fresh_facts=False,
        needs_consistent_format=True,
        tight_latency=False,
        examples=(0, 5000, 50),
        gpu_gb=[("no GPU", 0.0), ("T4 15 GB", 15.0), ("24 GB", 24.0)],
    )
    controls = {c.description: c for c in box.children if hasattr(c, "value")}
    controls["examples"].value = 1000
    controls["gpu_gb"].value = 24.0
    assert box.result == decision.recommend(needs_consistent_format=True, examples=1000, gpu_gb=24)
