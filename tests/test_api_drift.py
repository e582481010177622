"""API drift: every keyword the course passes to the libraries it teaches is still accepted.

A library upgrade that removes or renames a keyword (trl's `tokenizer=` -> `processing_class=`,
`max_seq_length` -> `max_length`, transformers' `torch_dtype` -> `dtype`) fails here, in CI,
instead of in a learner's notebook.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from repo_files import code_cell_sources

ROOT = Path(__file__).resolve().parents[1]
# Keywords that still work but are deprecated: the course must not teach them.
DEPRECATED = {"torch_dtype", "tokenizer", "max_seq_length", "evaluation_strategy", "use_auth_token"}


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


# The course builds trl's SFTTrainer through a subclass (ftcourse.train.sft_trainer_class, called
# CourseSFTTrainer in notebook 04, `trainer_class` in benchmarks/train_speed.py): their keywords
# are SFTTrainer's.
ALIASES = {
    "sft_trainer_class": "SFTTrainer",
    "CourseSFTTrainer": "SFTTrainer",
    "trainer_class": "SFTTrainer",
}


def _called(func: ast.expr) -> str:
    """The name a call is made by: `f(...)`, `x.f(...)`, or `f()(...)` (a class `f` returns)."""
    if isinstance(func, ast.Call):
        func = func.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return ALIASES.get(name, name)


def keywords_passed(
    func_name: str, sources: list[tuple[str, str]] | None = None
) -> dict[str, set[str]]:
    """Map each keyword passed to calls named `func_name` (or `X.func_name`) to where it appears.

    `sources` is a list of (name, python source); by default the whole course's."""
    found: dict[str, set[str]] = {}
    for where, src in _source_files() if sources is None else sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call) and _called(node.func) == func_name:
                for kw in node.keywords:
                    if kw.arg:
                        found.setdefault(kw.arg, set()).add(where)
    return found


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
    for fn in ("from_pretrained", "SFTTrainer", "SFTConfig", "TrainingArguments", "Trainer"):
        for kw, where in keywords_passed(fn, sources).items():
            if kw in DEPRECATED:
                used[f"{fn}({kw}=)"] = sorted(where)
    return used


TARGETS = ["SFTConfig", "SFTTrainer", "LoraConfig", "BitsAndBytesConfig"]


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
