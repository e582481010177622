"""API drift: every keyword the course passes to the libraries it teaches is still accepted.

A library upgrade that removes or renames a keyword (trl's `tokenizer=` -> `processing_class=`,
`max_seq_length` -> `max_length`, transformers' `torch_dtype` -> `dtype`) fails here, in CI,
instead of in a learner's notebook.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

import pytest
from repo_files import code_cell_sources

ROOT = Path(__file__).resolve().parents[1]
# Keywords that still work but are deprecated: the course must not teach them.
DEPRECATED = {
    "torch_dtype",
    "tokenizer",
    "max_seq_length",
    "evaluation_strategy",
    "use_auth_token",
    "gradient_checkpointing",  # transformers 5: `activation_checkpointing`
}


def _source_files() -> list[tuple[str, str]]:
    """(name, python source) for every module, script and notebook code cell in the course."""
    out = []
    for path in [
        *ROOT.glob("ftcourse/**/*.py"),
        *ROOT.glob("scripts/**/*.py"),
        *ROOT.glob("benchmarks/*.py"),
    ]:
        out.append((str(path.relative_to(ROOT)), path.read_text()))
    for path in ROOT.glob("notebooks/**/*.ipynb"):
        out.append((str(path.relative_to(ROOT)), "\n".join(code_cell_sources(path))))
    return out


# The course builds trl's SFTTrainer through a subclass (ftcourse.trainer.sft_trainer_class, called
# CourseSFTTrainer in notebook 04, `trainer_class` in benchmarks/train_speed.py): their keywords
# are SFTTrainer's. The course's config builders pass their keywords on to the config they build.
ALIASES = {
    "sft_trainer_class": "SFTTrainer",
    "CourseSFTTrainer": "SFTTrainer",
    "trainer_class": "SFTTrainer",
    "sft_config": "SFTConfig",
    "dpo_config": "DPOConfig",
    "lora_config": "LoraConfig",
}


def _called(func: ast.expr) -> str:
    """The name a call is made by: `f(...)`, `x.f(...)`, or `f()(...)` (a class `f` returns)."""
    if isinstance(func, ast.Call):
        func = func.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return ALIASES.get(name, name)


@functools.cache
def _parsed(src: str) -> tuple[ast.Module, dict[ast.AST, ast.AST]]:
    """A source's syntax tree and each node's parent (sources are read many times here)."""
    tree = ast.parse(src)
    return tree, {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _scope(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST:
    """The function a node is in, else its module."""
    while node in parents and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node = parents[node]
    return node


@functools.cache
def _assigned(scope: ast.AST) -> dict[str, list[ast.expr]]:
    """The values each plain name is assigned in a function (or module), nested ones included."""
    names: dict[str, list[ast.expr]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            if isinstance(node.targets[0], ast.Name):
                names.setdefault(node.targets[0].id, []).append(node.value)
    return names


def _spread_keys(value: ast.expr, names: dict[str, list[ast.expr]]) -> list[str]:
    """The keys `**value` passes: of a `dict(...)` call, a dict literal, or a name assigned one."""
    if isinstance(value, ast.Name):
        rest = {k: v for k, v in names.items() if k != value.id}  # `x = {**x, ...}` ends here
        return [key for v in names.get(value.id, []) for key in _spread_keys(v, rest)]
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "dict":
        return [kw.arg for kw in value.keywords if kw.arg]
    if isinstance(value, ast.Dict):
        keys = []
        for key, item in zip(value.keys, value.values):
            if key is None:  # `{**other, ...}`
                keys += _spread_keys(item, names)
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys.append(key.value)
        return keys
    return []


def keywords_passed(
    func_name: str, sources: list[tuple[str, str]] | None = None
) -> dict[str, set[str]]:
    """Map each keyword passed to calls named `func_name` (or `X.func_name`) to where it appears.

    Keywords spread from a dict count too: `f(**values)`, where `values = dict(...)` in the same
    function, as the course's config builders pass them. `sources` is a list of (name, python
    source); by default the whole course's."""
    found: dict[str, set[str]] = {}
    for where, src in _source_files() if sources is None else sources:
        tree, parents = _parsed(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called(node.func) == func_name:
                for arg in _keywords_of(node, parents):
                    found.setdefault(arg, set()).add(where)
    return found


def _keywords_of(call: ast.Call, parents: dict[ast.AST, ast.AST]) -> list[str]:
    """The keywords a call passes, written out (`f(a=1)`) or spread from a dict (`f(**values)`)."""
    names = _assigned(_scope(call, parents))
    return [
        arg
        for kw in call.keywords
        for arg in ([kw.arg] if kw.arg else _spread_keys(kw.value, names))
    ]


def from_pretrained_accepts() -> set[str]:
    """Keywords transformers' and peft's from_pretrained take: explicit ones and those popped from kwargs."""
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    names: set[str] = set()
    for fn in (
        PreTrainedModel.from_pretrained,
        PreTrainedTokenizerBase.from_pretrained,
        PeftModel.from_pretrained,
    ):
        names |= set(inspect.signature(fn).parameters)
        names |= set(re.findall(r"kwargs\.pop\(\s*[\"'](\w+)[\"']", inspect.getsource(fn)))
    import transformers.modeling_utils as mu

    names |= set(re.findall(r"kwargs\.pop\(\s*[\"'](\w+)[\"']", inspect.getsource(mu)))
    # extra keywords become config attributes (e.g. pad_token_id), which transformers accepts
    names |= {"pad_token_id", "eos_token_id", "bos_token_id"}
    return names


def accepted(target: str) -> set[str]:
    """The keywords a class or function currently accepts."""
    import peft
    import transformers
    import trl

    obj = {
        "SFTConfig": trl.SFTConfig,
        "SFTTrainer": trl.SFTTrainer,
        "DPOConfig": trl.DPOConfig,
        "LoraConfig": peft.LoraConfig,
        "BitsAndBytesConfig": transformers.BitsAndBytesConfig,
    }[target]
    return set(inspect.signature(obj).parameters) - {"self", "kwargs"}


def unknown_keywords(
    target: str, ok: set[str], sources: list[tuple[str, str]] | None = None
) -> dict[str, list[str]]:
    """The keywords passed to `target` that are not in `ok`, each with where it is passed."""
    passed = keywords_passed(target, sources)
    assert passed, f"the course should pass keywords to {target} somewhere"
    return {k: sorted(v) for k, v in passed.items() if k not in ok}


def deprecated_keywords(sources: list[tuple[str, str]] | None = None) -> dict[str, list[str]]:
    """`fn(kw=)` for every deprecated keyword passed, each with where it is passed."""
    used = {}
    for fn in (
        "from_pretrained",
        "SFTTrainer",
        "SFTConfig",
        "DPOConfig",
        "TrainingArguments",
        "Trainer",
    ):
        for kw, where in keywords_passed(fn, sources).items():
            if kw in DEPRECATED:
                used[f"{fn}({kw}=)"] = sorted(where)
    return used


TARGETS = ["SFTConfig", "SFTTrainer", "DPOConfig", "LoraConfig", "BitsAndBytesConfig"]


@pytest.mark.parametrize("target", TARGETS)
def test_keywords_still_accepted(target):
    unknown = unknown_keywords(target, accepted(target))
    assert not unknown, f"{target} no longer accepts: {unknown}"


def test_from_pretrained_keywords_still_accepted():
    unknown = unknown_keywords("from_pretrained", from_pretrained_accepts())
    assert not unknown, f"from_pretrained no longer accepts: {unknown}"


def test_no_deprecated_keywords():
    used = deprecated_keywords()
    assert not used, f"deprecated keywords taught by the course: {used}"


OLD_TRL = """
from trl import SFTConfig, SFTTrainer
args = SFTConfig(output_dir="out", max_seq_length=512, learning_rate=1e-4)
trainer = SFTTrainer(model=model, args=args, tokenizer=tokenizer, train_dataset=data)
trainer = ft_train.sft_trainer_class()(model=model, args=args, tokenizer=tokenizer)
model = AutoModelForCausalLM.from_pretrained("x", torch_dtype="auto")


def lora_settings():
    values = dict(r=8, lora_rank=8)
    return LoraConfig(**values)


def dpo_settings(out, **overrides):
    values = dict(output_dir=out, gradient_checkpointing=True)
    return DPOConfig(**{**values, "beta": 0.1, **overrides})
"""


def test_drift_detector_reports_a_removed_keyword_in_the_source():
    """Code written for trl 0.x: the keywords trl 1.x removed are reported, where they are."""
    old = [("notebooks/old.ipynb", OLD_TRL)]
    assert unknown_keywords("SFTConfig", accepted("SFTConfig"), old) == {
        "max_seq_length": ["notebooks/old.ipynb"]
    }
    assert unknown_keywords("SFTTrainer", accepted("SFTTrainer"), old) == {
        "tokenizer": ["notebooks/old.ipynb"]
    }
    assert deprecated_keywords(old) == {
        "from_pretrained(torch_dtype=)": ["notebooks/old.ipynb"],
        "SFTConfig(max_seq_length=)": ["notebooks/old.ipynb"],
        "SFTTrainer(tokenizer=)": ["notebooks/old.ipynb"],
        "DPOConfig(gradient_checkpointing=)": ["notebooks/old.ipynb"],
    }
    # keywords spread from a dict are read in their own function, not from another's `values`
    spread = {"output_dir", "gradient_checkpointing", "beta"}
    assert set(keywords_passed("DPOConfig", old)) == spread
    assert unknown_keywords("LoraConfig", accepted("LoraConfig"), old) == {
        "lora_rank": ["notebooks/old.ipynb"]
    }
    fixed = OLD_TRL.replace("max_seq_length", "max_length").replace(
        "tokenizer=", "processing_class="
    )
    assert unknown_keywords("SFTTrainer", accepted("SFTTrainer"), [("new.py", fixed)]) == {}
    assert unknown_keywords("SFTConfig", accepted("SFTConfig"), [("new.py", fixed)]) == {}


@pytest.mark.parametrize("target", TARGETS)
def test_drift_detector_reports_a_keyword_the_library_drops(target):
    """A library release without a keyword the course passes: the course's own calls are named."""
    passed = keywords_passed(target)
    dropped = sorted(passed)[0]
    unknown = unknown_keywords(target, accepted(target) - {dropped})
    assert unknown == {dropped: sorted(passed[dropped])}, unknown
