"""Adapter folders: check and load them with clear errors, find or train the course's own, weigh them.

A LoRA adapter is a folder holding `adapter_config.json` (rank, alpha, target modules, the base it was
trained on) and `adapter_model.safetensors` (the A and B matrices). It only means something on top of
the exact base model it was trained on; peft checks little of that, so `check_adapter` does it first.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import fields
from pathlib import Path

import torch

from ftcourse.errors import CourseError
from ftcourse.profiles import base_of, other_base

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# peft saves weights under "base_model.model.<module name>.<lora_A|lora_B|...>.weight"
_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)"
    r"(?:\.weight)?$"
)

# ---------------------------------------------------------------- checking and loading


def check_adapter(model, path: str | Path) -> dict:
    """Check that `path` is a complete LoRA adapter that fits `model`; return its config.

    Raises `CourseError` naming what is wrong (missing folder or file, another hidden size, another
    vocabulary, modules the model lacks) and what to do. `model` may be a plain transformers model
    or a `PeftModel` that already holds other adapters.
    """
    path = Path(path)
    config = read_config(path)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    shapes = _tensor_shapes(path)
    _check_shapes(base, shapes, path, config)
    _check_vocabulary(base, path, config)
    _warn_other_base(base, config, path)
    return config


def read_config(path: Path) -> dict:
    """The config of a saved LoRA adapter folder; a missing, incomplete or damaged one is refused."""
    if not path.is_dir():
        raise CourseError(
            f"No adapter folder at {path}. Train one first (notebook 04, or "
            "`ftcourse.adapters.ensure_adapters([...], profile)`), or fix the path."
        )
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if WEIGHTS_FILE in missing and (path / "adapter_model.bin").is_file():
        missing.remove(WEIGHTS_FILE)  # the older pickle format still loads
    if missing:
        found = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
        raise CourseError(
            f"The adapter folder {path} is incomplete: {' and '.join(missing)} missing "
            f"(found: {found}). A run that stopped before `save_model` / `save_pretrained` leaves "
            "such a folder; save the adapter again or retrain it."
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CourseError(
            f"{path / CONFIG_FILE} is not valid JSON ({err}). The file is damaged: save the "
            "adapter again with `model.save_pretrained(folder)`."
        ) from None
    if config.get("peft_type") != "LORA":
        raise CourseError(
            f"{path} holds a {config.get('peft_type')!r} adapter; the course's tools handle LoRA "
            "adapters only. Load other kinds with peft's `PeftModel.from_pretrained` directly."
        )
    return config


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the saved tensors, read from the file header (no weights are loaded)."""
    from safetensors import safe_open

    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        state = torch.load(path / "adapter_model.bin", map_location="meta", weights_only=True)
        return {k: tuple(v.shape) for k, v in state.items()}
    try:
        with safe_open(str(weights), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a cut-off file
        raise CourseError(
            f"{weights} cannot be read ({err}). The file is damaged or was cut off while "
            "saving: save the adapter again or retrain it."
        ) from None


def _module_dims(base) -> dict[str, tuple[int, int]]:
    """(in, out) of every linear or embedding module, by the name peft uses for it."""
    dims = {}
    for name, module in base.named_modules():
        layer = module.get_base_layer() if hasattr(module, "get_base_layer") else module
        if isinstance(layer, torch.nn.Embedding):  # an embedding maps a token id to a vector
            dims[name] = (layer.num_embeddings, layer.embedding_dim)
        elif hasattr(layer, "in_features") and hasattr(layer, "out_features"):
            dims[name] = (layer.in_features, layer.out_features)
    return dims


def _expected_shape(part: str, r: int, dims: tuple[int, int]) -> tuple[int, int]:
    d_in, d_out = dims
    return (r, d_in) if part in ("lora_A", "lora_embedding_A") else (d_out, r)


def _check_shapes(base, shapes: dict, path: Path, config: dict) -> None:
    dims = _module_dims(base)
    absent, wrong = [], []
    for key, shape in shapes.items():
        match = _LORA_KEY.match(key)
        if not match:
            continue  # modules_to_save and other extras: peft reports those itself
        module, part = match["module"], match["part"]
        if module not in dims:
            absent.append(module)
            continue
        r = shape[0] if part in ("lora_A", "lora_embedding_A") else shape[-1]
        if tuple(shape) != _expected_shape(part, r, dims[module]):
            wrong.append((module, part, tuple(shape), dims[module]))
    made_for = base_of(config) or "not recorded"
    todo = (
        f"The adapter's config names its base model: {made_for}. Load that model before the "
        "adapter, or train a new adapter on this base."
    )
    if wrong:
        raise CourseError(
            f"The adapter in {path} does not fit this model: {_diagnose(base, wrong)} {todo}"
        )
    if absent:
        layers = getattr(base.config, "num_hidden_layers", "?")
        raise CourseError(
            f"The adapter in {path} has weights for {len(absent)} module(s) this model does not "
            f"have, e.g. {absent[0]} (this model has {layers} layers). It was made for another "
            f"architecture. {todo}"
        )


def _diagnose(base, wrong: list) -> str:
    """Say which size differs: the hidden size, the vocabulary, or some other layer width."""
    hidden = getattr(base.config, "hidden_size", None)
    vocab = base.get_input_embeddings().num_embeddings
    reasons = []
    for _module, part, shape, (d_in, d_out) in wrong:
        # the side of the saved matrix that is not the rank tells the width the adapter expects
        theirs = shape[1] if part in ("lora_A", "lora_embedding_A") else shape[0]
        ours = d_in if part in ("lora_A", "lora_embedding_A") else d_out
        if ours == vocab and theirs != ours:
            reasons.append(f"a vocabulary of {theirs:,} tokens (this model has {vocab:,})")
        elif ours == hidden and theirs != ours:
            reasons.append(f"hidden size {theirs:,} (this model has hidden size {hidden:,})")
    module, part, shape, dims = wrong[0]
    found = (
        f" it was made for a base with {' and '.join(dict.fromkeys(reasons))}." if reasons else ""
    )
    return (
        f"{len(wrong)} of its matrices have the wrong shape;{found} First mismatch: "
        f"{module}.{part} is {tuple(shape)} in the adapter, but this model's {module} maps "
        f"{dims[0]} -> {dims[1]}."
    )


def _check_vocabulary(base, path: Path, config: dict) -> None:
    """A tokenizer saved next to the adapter must not know more tokens than the model embeds."""
    if not (path / "tokenizer_config.json").is_file():
        return
    from transformers import AutoTokenizer

    n_tokens = len(AutoTokenizer.from_pretrained(path))
    rows = base.get_input_embeddings().num_embeddings
    if n_tokens > rows:
        raise CourseError(
            f"The tokenizer saved with the adapter in {path} has a vocabulary of {n_tokens:,} "
            f"tokens, but this model embeds only {rows:,}: the adapter was trained on another base "
            f"({base_of(config) or 'not recorded'}). Load that base model "
            "and its tokenizer, or retrain the adapter on this one."
        )


def _warn_other_base(base, config: dict, path: Path) -> None:
    ours = getattr(base, "name_or_path", "")
    theirs = other_base(config, ours)
    if theirs:
        warnings.warn(
            f"The adapter in {path} was trained on {theirs}, and you load it onto {ours}. The "
            "shapes fit, so it loads, but an adapter only does its job on the base it learned on.",
            stacklevel=3,
        )


def load_adapter(base_model, path: str | Path, name: str | None = None, **kwargs):
    """Check an adapter folder, then load it with peft under `name` (default: the folder's name).

    On a plain model this is `PeftModel.from_pretrained` (which changes `base_model` in place); on a
    `PeftModel` it is `model.load_adapter`, which adds the adapter *without* making it active.
    """
    from peft import PeftModel

    check_adapter(base_model, path)
    name = name or Path(path).name
    if isinstance(base_model, PeftModel):
        if name in base_model.peft_config:
            raise CourseError(
                f"This model already has an adapter named {name!r}. Pass another name, or remove "
                f"the old one first with `model.delete_adapter({name!r})`."
            )
        base_model.load_adapter(str(path), adapter_name=name, **kwargs)
        return base_model
    return PeftModel.from_pretrained(base_model, str(path), adapter_name=name, **kwargs)


# ---------------------------------------------------------------- the course's own adapters


def is_complete(path: str | Path) -> bool:
    """Whether a folder holds both files of a saved adapter."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def _why_train(path: Path, profile) -> str | None:
    """The reason an adapter folder cannot be used with this profile's base model, if any."""
    if not is_complete(path):
        return "missing"
    made_for = other_base(json.loads((path / CONFIG_FILE).read_text()), profile.model_path)
    if made_for:
        return f"trained on {made_for}, not on {profile.model}"
    base_weights = Path(profile.model_path) / "model.safetensors"
    if profile.is_local and base_weights.is_file():
        if (path / WEIGHTS_FILE).stat().st_mtime < base_weights.stat().st_mtime:
            return "older than the base model's weights (the base was replaced since)"
    return None


def _overrides(profile) -> dict:
    """The values in which `profile` differs from the named profile it was made from."""
    from ftcourse.profiles import PROFILES

    named = PROFILES[profile.name]
    return {
        f.name: getattr(profile, f.name)
        for f in fields(profile)
        if f.compare and getattr(profile, f.name) != getattr(named, f.name)
    }


def ensure_adapters(tasks: list[str], profile, ledger=None) -> dict[str, Path]:
    """The adapter folders notebook 04 saves (outputs/adapters/<task>), training any that are missing.

    Training uses `ftcourse.train.train` with the profile's budget (so `profile.with_overrides(
    max_steps=...)` trains a quicker, weaker adapter). A folder trained on another base, or older
    than the base model's weights, is trained again. A `ftcourse.ledger.Ledger` counts each
    training run while it lasts.
    """
    from ftcourse.paths import output_dir
    from ftcourse.runfile import RunConfig
    from ftcourse.train import train

    folders = {}
    for task in tasks:
        folder = output_dir("adapters", task)
        reason = _why_train(folder, profile)
        if reason:
            print(f"adapter {task!r}: {reason}; training it now ({profile.max_steps} steps)")
            run = RunConfig(
                task=task,
                method="qlora",
                profile=profile.name,
                output_dir=str(folder),
                eval_samples=0,
                profile_overrides=_overrides(profile),
            )
            result = train(run)
            if ledger is not None:
                ledger.track(result.model, f"training {task}: model")
                ledger.track(result.trainer, f"training {task}: trainer")
            print(f"adapter {task!r}: trained in {result.seconds:.0f} s, saved to {folder}")
            del result
            if ledger is not None:
                ledger.release()
        folders[task] = folder
    return folders


def inference_base(profile):
    """The base model adapters are used on, and its tokenizer: the 4-bit base they were trained on.

    On a GPU profile it stays in 4-bit, which is what saves memory (so does a GPU profile's CPU
    stand-in, to run the same code). On cpu-tiny it is dequantized: the same rounded values in the
    compute dtype, which a CPU multiplies faster than it unpacks nf4.
    """
    from ftcourse.trainer import load_model

    model, tokenizer = load_model(profile, method="qlora")
    if not profile.gpu_path:
        model = model.dequantize()
    return model, tokenizer


# ---------------------------------------------------------------- sizes on disk


def model_folder(profile) -> Path:
    """The folder a profile's base model loads from: its own, or its snapshot in the Hub cache."""
    if profile.is_local:
        return Path(profile.model_path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(profile.model, local_files_only=True))


def weights_bytes(path: str | Path) -> int:
    """Bytes of the weight files (*.safetensors, *.bin) in a model or adapter folder."""
    path = Path(path)
    if not path.is_dir():
        raise CourseError(f"No folder at {path}: nothing to measure.")
    files = [*path.glob("*.safetensors"), *path.glob("*.bin")]
    return sum(f.stat().st_size for f in files if f.name != "training_args.bin")


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks and the Hub count)."""
    units, power = ("B", "kB", "MB", "GB", "TB"), 0
    while abs(n) >= 1000 and power < len(units) - 1:
        n, power = n / 1000, power + 1
    return f"{n:.0f} B" if power == 0 else f"{n:.1f} {units[power]}"
