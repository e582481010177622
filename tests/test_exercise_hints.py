"""Every exercise checker: the reference answer passes, and each typical mistake gets its own hint.

For each exercise, `test_NN_K_reference` checks the answer of notebooks/solutions
(built the way the solution builds it), and `test_NN_K_mistake[...]` gives one plausible wrong
answer per hint branch and asserts that the verdict is "wrong" and that the hint names that mistake.

"""

import copy
import types

import pytest
import torch

from ftcourse import memory
from ftcourse.data import load_records, to_messages
from ftcourse.decision import Recommendation, recommend
from ftcourse.exercises import check
from ftcourse.exercises.nb01 import EFFECTIVE_BATCH
from ftcourse.exercises.nb02 import MIN_SHOUT_LETTERS, NEAR_THRESHOLD
from ftcourse.exercises.nb04b import EPOCH_LOSSES
from ftcourse.lora import lora_layers, lora_params_per_matrix
from ftcourse.ownmodel import notebook_profile
from ftcourse.paths import DATA_DIR
from ftcourse.profiles import PROFILES, Hardware, auto_profile
from ftcourse.prompting import few_shot, prompt_tokens, retrieval
from ftcourse.quality import Removed, drop_near_duplicates

# peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`; the warning is theirs.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")


@pytest.fixture(scope="module", autouse=True)
def cpu_tiny_notebooks():
    """The checkers read the notebook's profile: cpu-tiny on every machine, so that the fixed
    answers below (measured on cpu-tiny) are the right ones, with or without a GPU."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTCOURSE_PROFILE", "cpu-tiny")
        mp.delenv("FTCOURSE_FAST", raising=False)
        mp.delenv("FTCOURSE_DTYPE", raising=False)
        yield


def _wrong(fb, *words):
    assert fb.status == "wrong" and not fb, fb
    for word in words:
        assert word in fb.message, fb.message


# ---------------------------------------------------------------- 00


T4 = Hardware(cuda=True, gpu_name="Tesla T4", gpu_memory_gb=15.8, bf16=False, cpu_count=2)


def test_00_1_reference():
    assert check("00.1", auto_profile(T4).name)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("cpu-tiny", id="no-gpu-profile"),
        pytest.param("T4", id="capitalised-name"),
    ],
)
def test_00_1_mistake(answer):  # "gpu-24gb" (needs bf16) is tested in test_exercises.py
    _wrong(check("00.1", answer), "profile table", "bf16")


@pytest.fixture(scope="module")
def base_config():
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(notebook_profile().model_path)


def test_00_2_reference(base_config):
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(base_config)
    assert check("00.2", model.get_input_embeddings().weight.numel())


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda c: c.vocab_size, id="vocab-size-only"),
        pytest.param(lambda c: c.hidden_size * c.intermediate_size, id="another-matrix"),
    ],
)
def test_00_2_mistake(base_config, answer):
    _wrong(check("00.2", answer(base_config)), "vocab_size x hidden_size")


def test_00_3_reference():
    assert check("00.3", PROFILES["cpu-tiny"].with_overrides(max_steps=10, batch_size=4))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda: PROFILES["cpu-tiny"], "with_overrides", id="the-profile-itself"),
        pytest.param(
            lambda: PROFILES["cpu-tiny"].with_overrides(max_steps=4, batch_size=10),
            "max_steps=4, batch_size=10: expected 10 and 4",
            id="values-swapped",
        ),
        pytest.param(
            lambda: PROFILES["t4"].with_overrides(max_steps=10, batch_size=4),
            "Only max_steps and batch_size should differ",
            id="another-profile",
        ),
        pytest.param(
            lambda: PROFILES["cpu-tiny"].with_overrides(max_steps=10, batch_size=4, grad_accum=2),
            "Only max_steps and batch_size should differ",
            id="one-override-too-many",
        ),
    ],
)
def test_00_3_mistake(answer, hint):
    _wrong(check("00.3", answer()), hint)


# ---------------------------------------------------------------- 01

FACTS = dict(needs_fresh_facts=True, needs_consistent_format=True, examples=1200, gpu_gb=24)


def test_01_1_reference():
    assert check("01.1", recommend(**FACTS))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda: "RAG + fine-tuning", "recommend", id="a-string"),
        pytest.param(
            lambda: recommend(**FACTS | dict(needs_fresh_facts=False)), "RAG", id="no-fresh-facts"
        ),
        pytest.param(
            lambda: recommend(**FACTS | dict(needs_consistent_format=False)),
            "needs_consistent_format=True",
            id="no-format",
        ),
        pytest.param(
            lambda: recommend(**FACTS | dict(examples=50)), "examples=1200", id="too-few-examples"
        ),
        pytest.param(lambda: recommend(**FACTS | dict(gpu_gb=15)), "gpu_gb", id="a-t4-plan"),
        pytest.param(lambda: recommend(**FACTS | dict(gpu_gb=0)), "(24 here)", id="no-gpu_gb"),
        pytest.param(
            lambda: Recommendation("fine-tuning + RAG", "lora", "llama-3.1-8b", ()),
            "The approach is 'fine-tuning + RAG'",
            id="typed-by-hand",
        ),
    ],
)
def test_01_1_mistake(answer, hint):
    _wrong(check("01.1", answer()), hint)


def test_01_1_tight_latency_for_a_format_is_wrong():
    swapped = FACTS | dict(needs_consistent_format=False, tight_latency=True)
    assert not check("01.1", recommend(**swapped))


def _largest_t4(checkpointing=True, **overrides):
    """01.2's batch (QLoRA of Llama-3.1-8B, 2,048 tokens, on a T4), with one setting changed."""
    kwargs = dict(method="qlora", seq_len=2048, gradient_checkpointing=checkpointing) | overrides
    return memory.largest_batch("llama-3.1-8b", kwargs.pop("gpu", "T4 (15 GB)"), **kwargs)


def _both(**overrides):
    """(with, without checkpointing), both with the same slip."""
    return _largest_t4(True, **overrides), _largest_t4(False, **overrides)


def test_01_2_reference():
    answer, without = _both()
    assert check("01.2", answer, without)


@pytest.mark.parametrize(
    ("answers", "hint"),
    [
        pytest.param(lambda: _both()[::-1], "swapped", id="swapped"),
        pytest.param(lambda: _both(seq_len=512), "at 512 tokens", id="default-seq-len"),
        pytest.param(
            lambda: (_largest_t4(), _largest_t4(False, seq_len=512)),
            "at 512 tokens",
            id="default-seq-len-without",
        ),
        pytest.param(
            lambda: (_largest_t4(seq_len=1024), _largest_t4(False)),
            "at 1,024 tokens",
            id="seq-len-1024",
        ),
        pytest.param(lambda: _both(method="lora"), "for LoRA: pass method='qlora'", id="lora"),
        pytest.param(
            lambda: (_largest_t4() + 1, _largest_t4(False)),
            "not the largest batch with gradient",
            id="a-guess",
        ),
        pytest.param(
            lambda: (_largest_t4(), 99),
            "not the largest batch without gradient",
            id="a-guess-without",
        ),
        pytest.param(lambda: _both(gpu="24 GB"), "24 GB", id="a-24gb-gpu"),
    ],
)
def test_01_2_mistake(answers, hint):
    _wrong(check("01.2", *answers()), hint)


def _largest(model, gpu_gb, seq_len, method, **kwargs):
    settings = dict(max_batch=EFFECTIVE_BATCH, gradient_checkpointing=True) | kwargs
    return memory.largest_batch(model, gpu_gb, method=method, seq_len=seq_len, **settings)


def plan(model, gpu_gb, seq_len, effective_batch=16):
    """The reference solution of 01.3."""
    for method in ("lora", "qlora"):
        largest = memory.largest_batch(
            model,
            gpu_gb,
            max_batch=effective_batch,
            method=method,
            seq_len=seq_len,
            gradient_checkpointing=True,
        )
        if largest:
            batch = 2 ** (largest.bit_length() - 1)  # the largest power of two <= largest
            return method, batch, effective_batch // batch
    return None


def _plan_with(fits, rounded=True, methods=("lora", "qlora"), **kwargs):
    """A plan like the reference, with one thing changed."""

    def answer(model, gpu_gb, seq_len):
        for method in methods:
            largest = _largest(model, gpu_gb, seq_len, method, **kwargs)
            if fits(largest):
                batch = 2 ** (largest.bit_length() - 1) if rounded else largest
                return method, batch, EFFECTIVE_BATCH // batch
        return None

    return answer


def _qlora_always(model, gpu_gb, seq_len):
    return plan(model, gpu_gb, seq_len) and _plan_with(bool, methods=["qlora"])(
        model, gpu_gb, seq_len
    )


def _without_checkpointing(model, gpu_gb, seq_len):
    for method in ("lora", "qlora"):
        if memory.estimate(model, method, seq_len=seq_len).fits(gpu_gb):
            return plan(model, gpu_gb, seq_len)
    return None


def test_01_3_reference():
    assert check("01.3", plan)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda *case: plan(*case) and plan(*case)[:2], "tuple of three", id="a-pair"),
        pytest.param(
            lambda *case: plan(*case) or ("qlora", 1, EFFECTIVE_BATCH),
            "Not even one sequence fits with QLoRA: return None",
            id="never-none",
        ),
        pytest.param(
            _without_checkpointing,
            "gradient checkpointing on: is it on?",
            id="none-without-checkpointing",
        ),
        pytest.param(_qlora_always, "LoRA fits: prefer it", id="qlora-always"),
        pytest.param(
            _plan_with(lambda n: n is not None),
            "Not even one sequence fits with LoRA: fall back to QLoRA",
            id="zero-counts-as-fitting",
        ),
        pytest.param(_plan_with(bool, rounded=False), "power of two", id="not-rounded"),
        pytest.param(
            lambda *case: plan(*case) and (*plan(*case)[:2], 4),
            "batch_size x accumulation must make 16",
            id="accumulation-always-4",
        ),
        pytest.param(
            _plan_with(bool, gradient_checkpointing=False),
            "Use `memory.largest_batch(..., gradient_checkpointing=True)`",
            id="batches-without-checkpointing",
        ),
        pytest.param(
            _plan_with(bool, methods=["lora"]),
            "QLoRA",
            id="no-qlora-fallback",
        ),
        pytest.param(
            _plan_with(bool, max_batch=1024),
            f"max_batch={EFFECTIVE_BATCH}",
            id="batch-not-capped",
        ),
    ],
)
def test_01_3_mistake(answer, hint):
    _wrong(check("01.3", answer), hint)


# ---------------------------------------------------------------- 02

SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "You answer questions about Python in one sentence."},
        {"from": "human", "value": "What is a set?"},
        {"from": "gpt", "value": "An unordered collection of unique, hashable items."},
        {"from": "human", "value": "And a frozenset?"},
        {"from": "gpt", "value": "A set that cannot be changed once it is made."},
    ]
}


def test_02_1_reference():
    assert check("02.1", SHAREGPT)


@pytest.mark.parametrize(
    ("answer", "hints"),
    [
        pytest.param(
            {"messages": to_messages(SHAREGPT)},
            ("messages record", "conversations"),
            id="messages-format",
        ),
        pytest.param(
            {"instruction": "What is a set?", "input": "", "output": "A collection."},
            ("alpaca record",),
            id="alpaca-format",
        ),
        pytest.param(SHAREGPT["conversations"], ("That is a list",), id="turns-without-the-key"),
        pytest.param(
            {"conversations": SHAREGPT["conversations"][1:]},
            ("the system prompt comes first",),
            id="no-system",
        ),
        pytest.param(
            {"conversations": SHAREGPT["conversations"][:3]}, ("two questions",), id="one-question"
        ),
        pytest.param(
            {
                "conversations": [
                    {**t, "from": "assistant"} if t["from"] == "gpt" else t
                    for t in SHAREGPT["conversations"]
                ]
            },
            ("validate", "'assistant'"),
            id="assistant-role",
        ),
    ],
)
def test_02_1_mistake(answer, hints):
    _wrong(check("02.1", answer), *hints)


@pytest.fixture(scope="module")
def near_duplicates():
    clean = load_records(DATA_DIR / "polite" / "train.jsonl")
    kept, removed = drop_near_duplicates(clean, threshold=NEAR_THRESHOLD)
    default = drop_near_duplicates(clean)[1]
    return types.SimpleNamespace(kept=len(kept), removed=len(removed), default=len(default))


NEAR_DUPLICATES_REMOVED = 562  # of the 1,200 clean polite training records, at threshold 0.6


def test_02_2_reference(near_duplicates):
    assert check("02.2", NEAR_DUPLICATES_REMOVED)
    assert near_duplicates.removed == NEAR_DUPLICATES_REMOVED
    assert (near_duplicates.kept, near_duplicates.default) == (638, 0)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda n: n.kept, "records are kept", id="kept-count"),
        pytest.param(lambda n: n.default, "default threshold 0.8", id="default-threshold"),
        pytest.param(lambda n: n.removed + 1, "drop_near_duplicates(clean", id="a-guess"),
    ],
)
def test_02_2_mistake(near_duplicates, answer, hint):
    assert near_duplicates.default != near_duplicates.removed  # the branches are distinct
    _wrong(check("02.2", answer(near_duplicates)), hint)


def drop_shouting(records, min_letters=10):
    """The reference solution of 02.3."""
    report = []
    for i, record in enumerate(records):
        letters = [c for c in to_messages(record)[-1]["content"] if c.isalpha()]
        caps = sum(c.isupper() for c in letters)
        if len(letters) >= min_letters and caps > len(letters) / 2:
            reason = f"{caps} of {len(letters)} letters are capitals"
            report.append(Removed(i, "drop_shouting", reason))
    gone = {r.index for r in report}
    return [r for i, r in enumerate(records) if i not in gone], report


def _shouting(answer: str, half: bool = False, short: bool = False) -> bool:
    letters = [c for c in answer if c.isalpha()]
    caps = sum(c.isupper() for c in letters)
    enough = short or len(letters) >= MIN_SHOUT_LETTERS
    return enough and (caps >= len(letters) / 2 if half else caps > len(letters) / 2)


def _check_of(rule, name="drop_shouting", reason="mostly capitals", as_removed=True):
    def check_fn(records):
        flagged = [i for i, r in enumerate(records) if rule(to_messages(r)[-1]["content"])]
        report = [Removed(i, name, reason) if as_removed else i for i in flagged]
        return [r for i, r in enumerate(records) if i not in flagged], report

    return check_fn


def test_02_3_reference():
    assert check("02.3", drop_shouting)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda records: drop_shouting(records)[1], "Return a pair", id="report-only"),
        pytest.param(
            _check_of(_shouting, as_removed=False), "as `Removed(index,", id="bare-indices"
        ),
        pytest.param(
            _check_of(_shouting, name="shouting"), "check='drop_shouting'", id="check-name"
        ),
        pytest.param(_check_of(_shouting, reason=""), "a reason", id="no-reason"),
        pytest.param(
            _check_of(lambda a: _shouting(a, half=True)), "more than half", id="half-counts"
        ),
        pytest.param(_check_of(lambda a: _shouting(a, short=True)), "'OK.'", id="no-length-rule"),
        pytest.param(lambda records: ([], []), "You kept", id="nothing-removed"),
        pytest.param(
            lambda records: (records, drop_shouting(records)[1]), "did not remove", id="keeps-all"
        ),
        pytest.param(
            _check_of(lambda a: "COULD YOU PLEASE" in a),
            "the manifest's shouted ones",
            id="fitted-to-the-examples",
        ),
    ],
)
def test_02_3_mistake(answer, hint):
    _wrong(check("02.3", answer), hint)


# ---------------------------------------------------------------- 03


def test_03_1_reference():
    assert check("03.1", lora_params_per_matrix(4096, 14336, 4))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(4096 * 14336, "size of the matrix itself", id="the-matrix"),
        pytest.param(4 * 14336, "r x (d_in + d_out)", id="a-only"),
        pytest.param(4 * 4096 * 14336, "r x (d_in + d_out)", id="times-r"),
    ],
)
def test_03_1_mistake(answer, hint):
    _wrong(check("03.1", answer), hint)


def test_03_2_reference():
    assert check("03.2", 2 * 8**0.5)  # 16/8·sqrt(8) = alpha/sqrt(32)·sqrt(32)


def test_03_2_is_what_update_size_measures():
    """The size of dW·x (notebook 03, section 9) at r=8, alpha=16 equals rsLoRA's at r=32, alpha=2·sqrt(8)."""
    from torch import nn

    from ftcourse.lora import LoRALinear

    def size(layer):
        torch.manual_seed(0)
        nn.init.normal_(layer.lora_B.weight, std=0.02)
        x = torch.randn(64, 256)
        return ((x @ layer.get_delta_weight().T).norm(dim=1) / x.norm(dim=1)).mean().item()

    ratios = []
    for seed in range(5):  # A is random: each seed is one measurement, as a learner would make it
        torch.manual_seed(seed)
        plain = size(LoRALinear(nn.Linear(256, 256), r=8, lora_alpha=16))
        torch.manual_seed(seed)
        alpha = 2 * 8**0.5
        rslora = size(LoRALinear(nn.Linear(256, 256), r=32, lora_alpha=alpha, use_rslora=True))
        ratios.append(rslora / plain)
    assert abs(sorted(ratios)[2] - 1) < 0.05, ratios  # the median: the formula is right
    assert all(abs(ratio - 1) < 0.15 for ratio in ratios), ratios  # within the checker's tolerance


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(16, "neither the scaling nor", id="alpha-kept"),
        pytest.param(64, "alpha/sqrt(r), not alpha/r", id="alpha-2r"),
        pytest.param(2 * 32**0.5, "not the scaling alone", id="same-scaling"),
        pytest.param(16 / 32**0.5, "not like r", id="linear-in-r"),
        pytest.param(1.0, "make the two sizes equal", id="other"),
        pytest.param("5.66", "a number", id="a-string"),
    ],
)
def test_03_2_mistake(answer, hint):
    _wrong(check("03.2", answer), hint)


def _merge(model, fold=True, unwrap=True):
    for name, layer in lora_layers(model).items():
        if fold:
            layer.merge()
        if unwrap:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, layer.base_layer)
    return model


def test_03_3_reference():
    assert check("03.3", _merge)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda model: _merge(model) and None, "not NoneType", id="no-return"),
        pytest.param(
            lambda model: _merge(model, unwrap=False), "LoRALinear layers remain", id="merge-only"
        ),
        pytest.param(
            lambda model: _merge(model, fold=False), "get_delta_weight()", id="unwrap-only"
        ),
    ],
)
def test_03_3_mistake(answer, hint):
    _wrong(check("03.3", answer), hint)


# ---------------------------------------------------------------- 04


def test_04_1_reference():
    assert check("04.1", 4 * 4 * 2)


@pytest.mark.parametrize(
    "answer",
    [pytest.param(4 * 4, id="one-gpu"), pytest.param(4 * 4 // 2, id="split-over-gpus")],
)
def test_04_1_mistake(answer):
    _wrong(check("04.1", answer), "on every process")


def _lora_config(**overrides):
    from peft import LoraConfig

    settings = dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return LoraConfig(**settings | overrides)


@pytest.fixture(scope="module")
def course_config():
    from transformers import AutoConfig

    from ftcourse.paths import BASE_MODEL_DIR

    return AutoConfig.from_pretrained(BASE_MODEL_DIR)


def test_04_2_reference():
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from ftcourse.paths import BASE_MODEL_DIR

    answer = _lora_config()
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(BASE_MODEL_DIR), answer)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert check("04.2", answer, trainable)


def _as_if_no_gqa(c):
    """LoRA's parameters on q and v if v_proj were as wide as q_proj (no grouped-query attention)."""
    return c.num_hidden_layers * 2 * 8 * (c.hidden_size + c.hidden_size)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(
            lambda c: (_lora_config(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]), 1),
            "adapted q and v only",
            id="all-attention",
        ),
        pytest.param(
            lambda c: (_lora_config(r=16, lora_alpha=32), 1),
            "r=16, lora_alpha=32: expected 8 and 16",
            id="course-default-rank",
        ),
        pytest.param(
            lambda c: (_lora_config(), _as_if_no_gqa(c)), "grouped-query", id="v-as-wide-as-q"
        ),
        pytest.param(
            lambda c: (_lora_config(), 2 * lora_params_per_matrix(c.hidden_size, c.hidden_size, 8)),
            "Per layer",
            id="one-layer-only",
        ),
        pytest.param(
            lambda c: (_lora_config(target_modules="all-linear"), 1),
            "all-linear",
            id="all-linear",
        ),
    ],
)
def test_04_2_mistake(course_config, answer, hint):
    _wrong(check("04.2", *answer(course_config)), hint)


def _run_history(final_eval_loss, learning_rate):
    """A 100-step run's log history: training logs with their rate, four evaluations, a summary."""
    history = []
    for i, eval_loss in enumerate([3.07, 2.0, 1.5, final_eval_loss], 1):
        rate = learning_rate * (1 - (i - 1) / 4)  # the cosine's peak, logged first, then lower
        history += [{"loss": 2.0, "learning_rate": rate, "step": 25 * i - 15}]
        history += [{"eval_loss": eval_loss, "step": 25 * i}]
    return history + [{"train_loss": 1.5, "step": 100}]


def test_04_3_reference():
    from ftcourse.exercises.nb04 import HANDED_OVER

    answer = HANDED_OVER.with_overrides(learning_rate=100 * HANDED_OVER.learning_rate)
    assert check("04.3", answer, _run_history(0.62, answer.learning_rate))


def _04_3_answer(**changes):
    from ftcourse.exercises.nb04 import HANDED_OVER

    return HANDED_OVER.with_overrides(**changes)


@pytest.mark.parametrize(
    ("changes", "final", "logged_rate", "hint"),
    [
        pytest.param(None, 0.62, 5e-4, "must be a profile", id="a-rate-not-a-profile"),
        pytest.param({"learning_rate": 5e-4}, None, 5e-4, "no validation loss", id="no-eval"),
        pytest.param({"learning_rate": 5e-4}, 3.05, 5e-6, "not a run of `answer`", id="old-run"),
        pytest.param(
            {"learning_rate": 5e-4, "lora_r": 8}, 0.6, 5e-4, "change one setting", id="two-changes"
        ),
        pytest.param({"max_steps": 1000}, 0.9, 5e-6, "keep the 100 steps", id="more-steps"),
        pytest.param({}, 3.05, 5e-6, "that is the failure", id="as-handed-over"),
        pytest.param({"lora_r": 64}, 2.9, 5e-6, "Compare the handed-over", id="another-setting"),
        pytest.param({"learning_rate": 1e-6}, 3.07, 1e-6, "no higher", id="lower-rate"),
        pytest.param({"learning_rate": 5e-2}, 4.0, 5e-2, "overshoots", id="far-too-high"),
        pytest.param({"learning_rate": 5e-5}, 1.8, 5e-5, "not enough", id="ten-times-only"),
    ],
)
def test_04_3_mistake(changes, final, logged_rate, hint):
    answer = logged_rate if changes is None else _04_3_answer(**changes)
    history = _run_history(final or 0.0, logged_rate)
    if final is None:
        history = [h for h in history if "eval_loss" not in h]
    _wrong(check("04.3", answer, history), hint)


# ---------------------------------------------------------------- 04b


def test_04b_1_reference():
    assert check("04b.1", EPOCH_LOSSES.index(min(EPOCH_LOSSES)) + 1)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(len(EPOCH_LOSSES), "last epoch", id="the-last-epoch"),
        pytest.param(EPOCH_LOSSES.index(min(EPOCH_LOSSES)), "count from 1", id="zero-based"),
        pytest.param(1, "lowest validation loss", id="another-epoch"),
    ],
)
def test_04b_1_mistake(answer, hint):
    _wrong(check("04b.1", answer), hint)


def _fixed_template():
    from ftcourse.exercises.nb04b import eos_outside_template

    return eos_outside_template().replace(
        "{{ message['content'] }}{% endgeneration %}{{ eos_token }}",
        "{{ message['content'] + eos_token }}{% endgeneration %}",
    )


def test_04b_2_reference():
    from ftcourse.exercises.nb04b import EOS_AFTER_MIN, EOS_BEFORE_MAX

    assert check("04b.2", _fixed_template(), EOS_BEFORE_MAX - 0.1, EOS_AFTER_MIN + 0.1)


def _no_markers(t):
    return t.replace("{%- generation %}", "").replace("{% endgeneration %}", "")


def _handed_over(t):
    from ftcourse.exercises.nb04b import eos_outside_template

    return eos_outside_template()


def _no_eos(t):
    return t.replace("{{ message['content'] + eos_token }}", "{{ message['content'] }}")


@pytest.mark.parametrize(
    ("answer", "before", "after", "hint"),
    [
        pytest.param(lambda t: 42, 0.1, 0.99, "Jinja string", id="not-a-template"),
        pytest.param(_no_markers, 0.1, 0.99, "no {% generation %} markers", id="no-markers"),
        pytest.param(_no_eos, 0.1, 0.99, "writes no EOS", id="no-eos"),
        pytest.param(_handed_over, 0.1, 0.99, "still carries no loss", id="handed-over-template"),
        pytest.param(lambda t: t, 0.99, 0.99, "the failure did not show", id="before-not-measured"),
        pytest.param(lambda t: t, 0.1, 0.2, "train with your template", id="after-untrained"),
    ],
)
def test_04b_2_mistake(answer, before, after, hint):
    _wrong(check("04b.2", answer(_fixed_template()), before, after), hint)


def _early_stop(losses, patience, strict=True, reset=True):
    best, waited = float("inf"), 0
    for epoch, loss in enumerate(losses, 1):
        if loss < best or (not strict and loss <= best):
            best, waited = loss, 0
        else:
            waited = waited + 1 if reset else epoch - losses.index(min(losses[:epoch])) - 1
            if waited >= patience:
                return epoch
    return len(losses)


def _never_resets(losses, patience):
    """Counts every epoch without a new best, but a new best does not reset the count."""
    best, waited = float("inf"), 0
    for epoch, loss in enumerate(losses, 1):
        if loss < best:
            best = loss
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return len(losses)


def test_04b_3_reference():
    assert check("04b.3", _early_stop)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(
            lambda losses, patience: losses.index(min(losses)) + 1, "best epoch", id="best-epoch"
        ),
        pytest.param(
            lambda losses, patience: _early_stop(losses, patience, strict=False),
            "equal to the best is no improvement",
            id="equal-counts-as-better",
        ),
        pytest.param(lambda losses, patience: len(losses), "Count epochs", id="never-stops"),
        pytest.param(_never_resets, "resets the count", id="count-never-resets"),
    ],
)
def test_04b_3_mistake(answer, hint):
    _wrong(check("04b.3", answer), hint)


# ---------------------------------------------------------------- 05


def test_05_1_reference():
    assert check("05.1", "both")  # the first remaining name in sorted order, with a warning


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param("polite", "cannot stay active", id="the-deleted-one"),
        pytest.param("bugfix", "sorted order", id="the-first-loaded"),
        pytest.param("base", "does not fall back to the base model", id="the-base"),
    ],
)
def test_05_1_mistake(answer, hint):
    _wrong(check("05.1", answer), hint)


MISTRAL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def _adapter_mb(dtype=torch.float32, mb=1e6, no_gqa=False):
    from ftcourse.architectures import load_architecture
    from ftcourse.lora import adapter_bytes

    config = load_architecture("mistral-7b-v0.3")
    if no_gqa:
        config = copy.deepcopy(config)
        config.num_key_value_heads = config.num_attention_heads
    return adapter_bytes(config, MISTRAL_TARGETS, 16, dtype) / mb


def test_05_2_reference():
    assert check("05.2", _adapter_mb())


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda: _adapter_mb(torch.bfloat16), "values of 4 bytes", id="bf16"),
        pytest.param(lambda: _adapter_mb(no_gqa=True), "grouped-query", id="k-v-as-wide-as-q"),
        pytest.param(lambda: _adapter_mb(mb=2**20), "MB is off", id="mebibytes"),
    ],
)
def test_05_2_mistake(answer, hint):
    assert abs(answer() / _adapter_mb() - 1) > 0.01  # outside the checker's tolerance
    _wrong(check("05.2", answer()), hint)


def _svd_combination(deltas, weights, r, weighted=True, keep=slice(None)):
    """The reference solution of 05.3 (`keep` picks which singular directions, for mistakes)."""
    total = sum((w if weighted else 1.0) * d for w, d in zip(weights, deltas))
    U, S, Vh = torch.linalg.svd(total, full_matrices=False)
    U, S, Vh = U[:, keep], S[keep], Vh[keep]
    return Vh[:r], U[:, :r] * S[:r]


def test_05_3_reference():
    assert check("05.3", _svd_combination)


def test_05_3_reference_is_what_peft_builds():
    """add_weighted_adapter(combination_type="svd") stores the same B @ A as the reference."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    from ftcourse.architectures import tiny_llama_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(num_hidden_layers=1))
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], init_lora_weights=False)
    model = get_peft_model(model, config, adapter_name="one")
    model.add_adapter("two", config)
    model.add_weighted_adapter(
        ["one", "two"], [1.0, 0.6], "svd", combination_type="svd", svd_rank=3
    )
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    deltas = [layer.get_delta_weight(name) for name in ("one", "two")]
    A, B = _svd_combination(deltas, [1.0, 0.6], 3)
    assert torch.allclose(layer.get_delta_weight("svd"), B @ A, atol=1e-5)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(
            lambda deltas, weights, r: _svd_combination(deltas, weights, r)[0],
            "Return a pair (A, B)",
            id="a-only",
        ),
        pytest.param(
            lambda deltas, weights, r: _svd_combination(deltas, weights, r)[::-1],
            "expected A r x d_in",
            id="swapped",
        ),
        pytest.param(
            lambda deltas, weights, r: _svd_combination(deltas, weights, 10),
            "expected A r x d_in",
            id="not-truncated",
        ),
        pytest.param(
            lambda deltas, weights, r: _svd_combination(deltas, weights, r, weighted=False),
            "multiply each update by its weight",
            id="unweighted",
        ),
        pytest.param(
            lambda deltas, weights, r: _svd_combination(deltas, weights, r, keep=slice(1, None)),
            "largest singular values",
            id="not-the-largest",
        ),
    ],
)
def test_05_3_mistake(answer, hint):
    _wrong(check("05.3", answer), hint)


# ---------------------------------------------------------------- 06


@pytest.fixture(scope="module")
def nb06():
    """What notebook 06's solutions set up: the profile's tokenizer, window and the polite splits."""
    from transformers import AutoConfig, AutoTokenizer

    from ftcourse.tasks import get_task, load_task

    profile = notebook_profile()
    context = AutoConfig.from_pretrained(profile.model_path).max_position_embeddings
    nb = types.SimpleNamespace(
        tokenizer=AutoTokenizer.from_pretrained(profile.model_path),
        train=list(load_task("polite", "train")),
        test=list(load_task("polite", "test")),
        window=min(context, profile.max_length),
        room=get_task("polite").max_new_tokens,
    )
    nb.tokens = lambda k: prompt_tokens(nb.tokenizer, few_shot(nb.test[0], nb.train, k))
    return nb


# Measured on cpu-tiny (window 256, room for a 64-token answer): the few-shot prompt of test
# record 0 takes 48, 92, 148, 200, 246, 326 tokens with 0..5 examples; 2 leave room (212 <= 256).
PROMPT_TOKENS = [48, 92, 148, 200, 246, 326]
FITS = 2


def test_06_fixed_answers_are_this_tokenizers(nb06):
    assert (nb06.window, nb06.room) == (256, 64)
    assert [nb06.tokens(k) for k in range(6)] == PROMPT_TOKENS


def test_06_1_reference():
    assert check("06.1", PROMPT_TOKENS[3])
    for other in (PROMPT_TOKENS[3] - 1, PROMPT_TOKENS[3] + 1, PROMPT_TOKENS[4]):
        _wrong(check("06.1", other), "count it with `prompt_tokens`")


def _text_tokens(nb):
    text = "".join(m["content"] for m in few_shot(nb.test[0], nb.train, 3))
    return len(nb.tokenizer(text, add_special_tokens=False)["input_ids"])


def _no_generation_prompt(nb):
    prompt = few_shot(nb.test[0], nb.train, 3)
    return len(nb.tokenizer.apply_chat_template(prompt, return_dict=True)["input_ids"])


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(_text_tokens, "the chat template adds role tags", id="texts-alone"),
        pytest.param(
            lambda nb: prompt_tokens(nb.tokenizer, few_shot(nb.test[0], nb.train)),
            "That is 2 examples; pass k=3",
            id="default-k",
        ),
        pytest.param(
            _no_generation_prompt, "count it with `prompt_tokens`", id="no-generation-prompt"
        ),
    ],
)
def test_06_1_mistake(nb06, answer, hint):
    _wrong(check("06.1", answer(nb06)), hint)


def test_06_2_reference():
    assert check("06.2", FITS)
    _wrong(check("06.2", FITS + 1), "one too many")
    for other in (0, FITS - 1, FITS + 2):
        _wrong(check("06.2", other), "keep the last k that fitted")


def _fits_without_room(nb):
    k = 0
    while k < len(nb.train) and nb.tokens(k + 1) <= nb.window:
        k += 1
    return k


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(lambda nb: FITS + 1, "one too many", id="one-too-many"),
        pytest.param(_fits_without_room, "+ 64 <= window", id="no-room-for-the-answer"),
    ],
)
def test_06_2_mistake(nb06, answer, hint):
    got = answer(nb06)
    assert got != FITS
    _wrong(check("06.2", got), hint)


def budgeted(record, retriever, tokenizer, k, budget, fallback=True, keep=None):
    """The reference solution of 06.3 (`fallback`, `keep`: to make a mistake with it)."""
    for j in range(k, 0, -1):
        prompt = keep(record, retriever, j, k) if keep else retrieval(record, retriever, j)
        if prompt_tokens(tokenizer, prompt) <= budget:
            return prompt
    return retrieval(record, retriever, 0) if fallback else None


def _least_similar(record, retriever, j, k):
    """The j least similar of the k nearest examples: the most similar dropped first."""
    return few_shot(record, retriever.nearest(record, k)[::-1][:j], j)


def test_06_3_reference():
    assert check("06.3", budgeted)


@pytest.mark.parametrize(
    ("answer", "hints"),
    [
        pytest.param(
            lambda record, retriever, tokenizer, k, budget: retrieval(record, retriever, k),
            ("budget of 120 tokens you returned 3 example(s), expected 1",),
            id="budget-ignored",
        ),
        pytest.param(
            lambda *args: budgeted(*args, fallback=False),
            ("budget of 90 tokens", "expected 0", "retrieval(record, retriever, j)"),
            id="none-instead-of-the-request",
        ),
        pytest.param(
            lambda *args: budgeted(*args, keep=_least_similar),
            ("budget of 120 tokens",),
            id="most-similar-dropped-first",
        ),
    ],
)
def test_06_3_mistake(answer, hints):
    _wrong(check("06.3", answer), *hints)


@pytest.mark.parametrize(
    ("answer", "misleading"),
    [
        pytest.param(
            lambda *args: budgeted(*args, keep=_least_similar),
            "returned 1 example(s), expected 1",
            id="same-count-wrong-examples",
        ),
        pytest.param(
            lambda *args: budgeted(*args, fallback=False) or [],
            "-1 example(s)",
            id="empty-list",
        ),
    ],
)
def test_06_3_hint_is_not_self_contradictory(answer, misleading):
    fb = check("06.3", answer)
    assert fb.status == "wrong" and misleading not in fb.message, fb.message


def test_06_4_reference():
    from ftcourse.docstore import DocStore, load_docs, load_questions, recall_at_k

    store, questions = DocStore(load_docs()), load_questions("test")
    assert recall_at_k(store, questions, 1) < 1.0 == recall_at_k(store, questions, 2)
    assert check("06.4", 2)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        pytest.param(1, "recall@1 misses 1 question(s)", id="one-short"),
        pytest.param(3, "keep the first k", id="too-many"),
        pytest.param(1.0, "not a recall", id="a-recall"),
    ],
)
def test_06_4_mistake(answer, hint):
    _wrong(check("06.4", answer), hint)


# ---------------------------------------------------------------- 07


def _sharegpt(sep: str):
    def convert(record):
        prompt = record["instruction"] + (sep + record["input"] if record["input"] else "")
        return {
            "conversations": [
                {"from": "human", "value": prompt},
                {"from": "gpt", "value": record["output"]},
            ]
        }

    return convert


def test_07_1_mistakes():
    _wrong(check("07.1", lambda r: [r]), 'a dict with one key, "conversations"')
    _wrong(check("07.1", _sharegpt("\n")), "a blank line, then the input")
    bad_role = lambda r: {"conversations": [{"from": "user", "value": "x"}]}  # noqa: E731
    _wrong(check("07.1", bad_role), "Not valid ShareGPT")
    assert check("07.1", _sharegpt("\n\n"))


def test_07_2_mistakes():
    import re

    def substring(record, answer):
        old, new = re.findall(r"`([^`]+)`", record["instruction"])[:2]
        return answer.strip() == record["input"].replace(old, new).strip()

    _wrong(check("07.2", substring), "Replace whole words only")
    _wrong(check("07.2", lambda r, a: a == r["output"]), "It read 'output'")


def test_07_3_mistakes():
    import re

    def substring(train, test):
        text = " ".join(r[f] for r in train for f in ("instruction", "input", "output"))
        names = {n for r in test for n in re.findall(r"`([^`]+)`", r["instruction"])[:2]}
        return sorted(n for n in names if n in text)

    _wrong(check("07.3", substring), "You matched parts of words")
    _wrong(check("07.3", lambda train, test: []), "Got []")
    _wrong(check("07.3", lambda train, test: "zige"), "sorted list")
