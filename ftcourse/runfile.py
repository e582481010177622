"""The run file: one training run's settings in YAML, the training methods, and its validation.

    task: polite            # a course task (ftcourse.tasks)
    method: qlora           # one of METHODS
    profile: cpu-tiny       # optional: chosen from the hardware when absent (ftcourse.profiles)
    profile_overrides: {max_steps: 50}

`RunConfig.from_yaml` refuses what would fail later, before anything loads: a file that is not
YAML or not a mapping, an unknown key (with the nearest valid one), a value of the wrong type, an
unknown task, method or profile. `python -m ftcourse.train` runs it (ftcourse.train).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.profiles import ADAPTER_METHODS, METHODS, Profile, check_method

__all__ = [
    "ADAPTER_METHODS",
    "METHODS",
    "RunConfig",
    "check_method",
]  # the methods live in profiles


@dataclass
class RunConfig:
    """One training run, as written in a YAML file for `python -m ftcourse.train`."""

    task: str = "polite"
    method: str = "qlora"
    profile: str | None = None  # None: choose from the hardware / FTCOURSE_PROFILE
    model: str | None = None  # any causal LM (Hub id or folder): a profile derived from it
    output_dir: str = "outputs/adapters/polite"
    train_samples: int | None = None  # None: the whole training split
    eval_samples: int | None = None  # None: the profile's eval_samples; 0 to skip
    profile_overrides: dict = field(
        default_factory=dict
    )  # e.g. {max_steps: 50, learning_rate: 1e-3}
    lora: dict = field(default_factory=dict)  # extra LoraConfig values
    sft: dict = field(default_factory=dict)  # extra SFTConfig values
    renamed_copies: int = 0  # bugfix: add this many copies under made-up names (ftcourse.augment)
    resume_from_checkpoint: str | bool | None = None
    # a folder laid out as data/: <task>/train.jsonl and <task>/validation.jsonl (notebook 02 saves
    # outputs/data); None: the committed training split, cut 90/10
    data_dir: str | None = None

    def resolved_profile(self) -> Profile:
        """The profile this run trains with: chosen, with the task's learning rate, then overridden."""
        from ftcourse.ownmodel import profile_for

        return (
            profile_for(self.profile, model=self.model)
            .for_task(self.task)
            .with_overrides(**self.profile_overrides)
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read a run from YAML, refusing bad YAML, unknown keys, wrong types and unknown names."""
        data = _read_yaml_mapping(Path(path))
        _check_keys(data, {f.name for f in dataclasses.fields(cls)}, path)
        _check_types(data, typing.get_type_hints(cls), path)
        _check_sections(data, path)
        run = cls(**data)
        try:
            _check_names(run)
        except CourseError as exc:
            raise CourseError(f"{path}: {exc}") from None
        return run


def _read_yaml_mapping(path: Path) -> dict:
    """A YAML file's top-level mapping (a UTF-8 byte-order mark is skipped), with clear errors."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CourseError(
            f"{path}: no such file. Check the path (relative to {Path.cwd()}); the course's run "
            "files are in runs/."
        ) from None
    except UnicodeDecodeError as err:
        raise CourseError(
            f"{path}: byte 0x{err.object[err.start]:02x} is not valid UTF-8. Re-save the file as "
            "UTF-8."
        ) from None
    except OSError as exc:
        raise CourseError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise CourseError(
            f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML "
            f"({err.problem or err.context}). Write one `key: value` per line, indent nested values "
            "with spaces, and quote text that holds `: ` or `#`."
        ) from None
    except yaml.YAMLError as err:
        raise CourseError(f"{path}: not valid YAML ({err}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CourseError(
            f"{path}: the file holds {_kind(data)}, not settings. A run file is a mapping of "
            "`key: value` lines, e.g. `task: polite` (see runs/)."
        )
    return data


# How a YAML value's type reads to a learner
_TYPE_NAMES = {
    list: "a list",
    str: "text",
    bool: "true/false",
    int: "a whole number",
    float: "a number",
    dict: "a mapping",
    type(None): "empty",
}


def _kind(value) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _check_keys(
    given: dict, valid: set[str], path, section: str = "", valid_text: str | None = None
) -> None:
    """Refuse keys outside `valid`, naming each (with the nearest valid one) and the valid keys."""
    unknown = sorted(map(str, set(given) - valid))
    if not unknown:
        return
    near = [difflib.get_close_matches(k, valid, n=1) for k in unknown]
    named = ", ".join(
        f"{k!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for k, m in zip(unknown, near)
    )
    keys = "key" if len(unknown) == 1 else "keys"
    where = f" in {section}" if section else ""
    raise CourseError(
        f"{path}: unknown {keys} {named}{where}. Valid keys: "
        f"{valid_text or ', '.join(sorted(valid))}."
    )


def _check_types(data: dict, hints: dict, path) -> None:
    """Refuse a value of the wrong type, e.g. `train_samples: many`."""
    for key, value in data.items():
        allowed = typing.get_args(hints[key]) or (hints[key],)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            want = " or ".join(dict.fromkeys(_TYPE_NAMES.get(a, a.__name__) for a in allowed))
            raise CourseError(f"{path}: {key} is {value!r} ({_kind(value)}); it must be {want}.")


def _check_sections(data: dict, path) -> None:
    """The keys of `profile_overrides`, `lora` and `sft`: Profile, LoraConfig and SFTConfig fields."""
    if data.get("profile_overrides"):
        valid = {f.name for f in dataclasses.fields(Profile)}
        _check_keys(data["profile_overrides"], valid, path, "profile_overrides")
    if data.get("lora"):
        from peft import LoraConfig

        valid = {f.name for f in dataclasses.fields(LoraConfig)}
        _check_keys(data["lora"], valid, path, "lora", "the fields of peft's LoraConfig")
    if data.get("sft"):
        from trl import SFTConfig

        valid = {f.name for f in dataclasses.fields(SFTConfig)}
        _check_keys(data["sft"], valid, path, "sft", "the fields of trl's SFTConfig")


def _check_names(run: RunConfig) -> None:
    """Refuse an unknown task, method or profile name before anything loads."""
    from ftcourse.profiles import get_profile
    from ftcourse.tasks import get_task

    get_task(run.task)
    check_method(run.method)
    if run.profile is not None:
        get_profile(run.profile)
