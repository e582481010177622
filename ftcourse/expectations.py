"""What each profile's notebooks may assert: the measured bars, and None where nothing was measured.

A notebook's claim about a model ("the base fails", "the fine-tune reaches 70%", "merged costs what
the base costs") holds on the model it was measured on. The bars live here, one set per profile,
with where they were measured. Where a profile has never been run (the GPU profiles, until a GPU
run is committed) a bar is None: the notebook prints the value it measured and asserts only the
mechanics (the loss masks, the template, saving and reloading, merging, switching, freeing memory).

    expect = expectations(profile)
    if expect.tuned_accuracy_min["polite"] is not None:
        assert tuned >= expect.tuned_accuracy_min["polite"]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ftcourse.tasks import SCORED


def _per_task(value=None) -> dict:
    return {task: value for task in SCORED}


CAPSTONE_TASKS = ("polite", "stdlib_params")  # notebook 06's style task and knowledge task


def _capstone() -> dict:
    return dict.fromkeys(CAPSTONE_TASKS)


@dataclass(frozen=True)
class Expectations:
    """The bars one profile's notebooks assert; None means "not measured on this profile"."""

    measured: str  # where and how the bars were measured, or why there are none
    # 04: the base model before training (held-out accuracy at most)
    base_accuracy_max: dict[str, float | None] = field(default_factory=_per_task)
    # 04: after training, on the held-out split (accuracy, answers ending at EOS, answers in form)
    tuned_accuracy_min: dict[str, float | None] = field(default_factory=_per_task)
    tuned_stop_rate_min: dict[str, float | None] = field(default_factory=_per_task)
    tuned_form_min: dict[str, float | None] = field(default_factory=_per_task)
    heldout_loss_falls: bool | None = None  # 04: the held-out answer loss is lower after training
    training_loss_halves: bool | None = None  # 04: the last logged loss is under half the first
    base_copies: bool | None = None  # 04b: the copy probe finds the base model can copy
    names_probe_drop_min: float | None = None  # 04b: notebook 04's bugfix, renamed training names
    renamed_probe_drop_max: float | None = None  # 04b: the same drop, trained on renamed copies
    renamed_heldout_min: float | None = None  # 04b: held-out bugfix after the renamed recipe
    epoch_gain_flattens: bool | None = (
        None  # 04b: validation loss falls 5x less in epochs 3-5 than 1-3
    )
    lora_forgets_less: bool | None = None  # 04b: LoRA's held-out perplexity rises less than full's
    stops_at_eos: bool | None = None  # 05: the polite adapter's streamed answer ends at EOS
    own_form_min: float | None = None  # 05: each adapter's answers in its task's form
    other_form_max: float | None = None  # 05: the base's and the other adapter's, at most
    own_accuracy_beats_others: bool | None = None  # 05: each adapter is best at its own task
    sums_lose_a_behaviour: bool | None = None  # 05: neither sum of adapters keeps both tasks
    merge_order_matters: bool | None = None  # 05: 4-bit or original-base merges change the model
    adapter_share_max: float | None = None  # 05: adapter file / base model files, at most
    merged_latency_tolerance: float | None = None  # 05: |merged / base - 1| at most
    lora_accuracy_margin: float | None = None  # 06: polite, LoRA's accuracy above zero-shot's
    knowledge_recall_min: float | None = None  # 06: the document store's recall@1, held out
    knowledge_rag_tuned_min: float | None = None  # 06: stdlib_params, retrieval + LoRA, at least
    knowledge_closed_tuned_max: float | None = None  # 06: stdlib_params, the LoRA alone, at most
    # 06: each task's most accurate strategy, and whether its lead over the runner-up is beyond noise
    capstone_winner: dict[str, str | None] = field(default_factory=_capstone)
    capstone_lead_real: dict[str, bool | None] = field(default_factory=_capstone)
    own_data_gain_min: float | None = None  # 07: held-out renames, fine-tuned minus base
    export_answers_identical: bool | None = None  # 07: merged and GGUF answer as base + adapter
    # 08: headroom, DPO on a mixed polite set, GRPO on bugfix (benchmarks/dpo_mixed.py, grpo_bugfix.py)
    sampling_at_1_hurts: bool | None = None  # at temperature 1: polite pass@8, bugfix pass@1 low
    bugfix_headroom_min: float | None = None  # bugfix pass@8 minus greedy, at GRPO's temperature
    mixed_bad_min: float | None = None  # SFT on the mixed set: held-out bad answers, at least
    dpo_cuts_bad_answers: bool | None = None  # DPO + SFT term: fewer bad answers, higher accuracy
    displaced_accuracy_max: float | None = None  # plain DPO at the SFT rate: held-out, at most
    filtering_beats_dpo: bool | None = None  # filtered SFT's accuracy above DPO's, beyond noise
    grpo_gain_min: float | None = None  # GRPO on bugfix: held-out accuracy gained, at least
    grpo_p_max: float | None = None  # and its McNemar p-value, at most


EXPECTATIONS: dict[str, Expectations] = {
    "cpu-tiny": Expectations(
        measured=(
            "cpu-tiny, by `make course` on a 2-core CPU (2026-12-01): polite 0% -> 83%, "
            "bugfix 0% -> 55% (notebook 04); names probe 80% -> 45%, with renamed copies 98% -> 82% "
            "and 85% held-out; perplexity on held-out Python +18% (LoRA) and +21% (full) "
            "(notebook 04b); notebook 06 (2026-12-07): recall@1 99%, polite LoRA 81% and "
            "retrieval + LoRA 41% (0% without LoRA), stdlib_params retrieval + LoRA 91%, LoRA "
            "alone 16%, retrieval alone 0% (32 items each); notebook 08 (2026-12-07): bad answers "
            "69% -> 18% with DPO, bugfix 53.6% -> 57.6% with GRPO (250 items each); bars sit "
            "below the measures"
        ),
        base_accuracy_max=_per_task(0.10),
        tuned_accuracy_min={"polite": 0.7, "bugfix": 0.45},
        tuned_stop_rate_min={"polite": 0.8, "bugfix": 0.5},
        tuned_form_min={"polite": 0.8, "bugfix": 0.5},
        heldout_loss_falls=True,
        training_loss_halves=True,
        base_copies=True,
        names_probe_drop_min=0.15,
        renamed_probe_drop_max=0.2,
        renamed_heldout_min=0.8,
        epoch_gain_flattens=True,
        lora_forgets_less=True,
        stops_at_eos=True,
        own_form_min=0.75,
        other_form_max=0.25,
        own_accuracy_beats_others=True,
        sums_lose_a_behaviour=True,
        merge_order_matters=True,
        adapter_share_max=0.1,
        merged_latency_tolerance=0.5,  # CPU timing: with every core busy (make test), 5.9 against 4.2 ms
        lora_accuracy_margin=0.3,
        knowledge_recall_min=0.9,
        knowledge_rag_tuned_min=0.7,
        knowledge_closed_tuned_max=0.35,
        capstone_winner={"polite": "LoRA fine-tune", "stdlib_params": "retrieval + LoRA"},
        capstone_lead_real={"polite": True, "stdlib_params": True},
        own_data_gain_min=0.2,  # measured 0% -> 35% (100 held-out renames, 300 steps)
        export_answers_identical=True,
        # 2026-12-07 (60 items): at temperature 1 polite pass@8 72% vs greedy 87%, bugfix pass@1
        # 11% vs 52%; bugfix pass@8 at 0.5 60% vs 52%;
        # bad answers 69% (mixed) -> 18% (DPO), accuracy 23% -> 39%, p 7e-31 and 2e-6;
        # plain DPO at 5e-4: 3%; filtered 48% vs DPO 39%, p 0.007; GRPO bugfix 53.6% -> 57.6%,
        # p 0.021 (deterministic: the same in every run measured)
        sampling_at_1_hurts=True,
        bugfix_headroom_min=0.05,
        mixed_bad_min=0.5,
        dpo_cuts_bad_answers=True,
        displaced_accuracy_max=0.1,
        filtering_beats_dpo=True,
        grpo_gain_min=0.03,
        grpo_p_max=0.05,
    ),
}
NOT_MEASURED = Expectations(
    measured="not measured: no run of this profile is committed, so only the mechanics are asserted"
)
STANDIN = Expectations(
    measured="a CPU stand-in (random weights): only the mechanics are asserted, never accuracy"
)

# How far two runs of the same model may differ in their logits, by compute dtype: float32 rounds
# at ~1e-7 relative, bfloat16 at ~4e-3 and float16 at ~5e-4 (8 and 11 bits of mantissa), and GPU
# kernels may sum in another order from run to run. Relative to the logits' largest magnitude.
LOGIT_RTOL = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 4e-2}


def expectations(profile) -> Expectations:
    """The bars for a profile: its own where measured, else none (mechanics only)."""
    if profile.is_standin:
        return STANDIN
    return EXPECTATIONS.get(profile.name, NOT_MEASURED)


def logits_close(a, b, dtype: str) -> bool:
    """Whether two logit tensors agree within what `dtype` arithmetic allows (`LOGIT_RTOL`)."""
    scale = max(a.abs().max().item(), b.abs().max().item(), 1.0)
    return (a.float() - b.float()).abs().max().item() <= LOGIT_RTOL[dtype] * scale


def at_least(value: float, bar: float | None) -> bool:
    """`value >= bar`, or True where the bar was not measured (None)."""
    return bar is None or value >= bar


def at_most(value: float, bar: float | None) -> bool:
    """`value <= bar`, or True where the bar was not measured (None)."""
    return bar is None or value <= bar
