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


def keywords_passed(func_name: str) -> dict[str, set[str]]:
    """Map each keyword passed to calls named `func_name` (or `X.func_name`) to where it appears."""
    found: dict[str, set[str]] = {}
    for where, src in _source_files():
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, ast.Call):
                continue
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            if name == func_name:
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


@pytest.mark.parametrize("target", ["SFTConfig", "SFTTrainer", "LoraConfig", "BitsAndBytesConfig"])
def test_keywords_still_accepted(target):
    passed = keywords_passed(target)
    unknown = {k: sorted(v) for k, v in passed.items() if k not in accepted(target)}
    assert not unknown, f"{target} no longer accepts: {unknown}"


def test_from_pretrained_keywords_still_accepted():
    passed = keywords_passed("from_pretrained")
    assert passed, "the course should call from_pretrained somewhere"
    ok = from_pretrained_accepts()
    unknown = {k: sorted(v) for k, v in passed.items() if k not in ok}
    assert not unknown, f"from_pretrained no longer accepts: {unknown}"


def test_no_deprecated_keywords():
    used = {}
    for fn in ("from_pretrained", "SFTTrainer", "SFTConfig", "TrainingArguments", "Trainer"):
        for kw, where in keywords_passed(fn).items():
            if kw in DEPRECATED:
                used[f"{fn}({kw}=)"] = sorted(where)
    assert not used, f"deprecated keywords taught by the course: {used}"


def test_drift_detector_catches_a_removed_keyword():
    # the check itself must be able to fail: trl removed `max_seq_length` from SFTConfig
    assert "max_seq_length" not in accepted("SFTConfig")
    assert "max_length" in accepted("SFTConfig")
    assert "processing_class" in accepted("SFTTrainer") and "tokenizer" not in accepted(
        "SFTTrainer"
    )
