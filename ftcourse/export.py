"""Exporting an adapter for serving: merged into its base as safetensors, and as a GGUF file for llama.cpp.

    python -m ftcourse export outputs/adapters/polite --merged outputs/export/polite \\
        --gguf outputs/export/polite.gguf --gguf-type q8_0

The merge follows notebook 05's safe order: the adapter goes into the weights it was trained
against, in full precision. A QLoRA adapter learned on the 4-bit base, so that base is loaded in
4-bit and *dequantized* first (the same rounded values, in the compute dtype), never merged into
the 4-bit weights, which would round much of the update away. The merged folder is a plain
transformers model (`AutoModelForCausalLM.from_pretrained(folder)`), with the tokenizer and the
chat template it was trained with.

The GGUF writer is a small converter for the Llama architecture (the course's own base model and
the Llama stand-ins) with a byte-level BPE tokenizer; llama.cpp's `convert_hf_to_gguf.py` converts
every other architecture from the merged folder. Writing GGUF needs the `export` extra
(`pip install -e ".[export]"`: gguf, and llama-cpp-python to run the file).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ftcourse.errors import CourseError

GGUF_TYPES = ("f32", "f16", "q8_0")
EXTRA = 'pip install -e ".[export]"'
CONVERTER = "llama.cpp's convert_hf_to_gguf.py"
CONVERTIBLE = ("llama",)  # the model types `write_gguf` converts


@dataclass
class Written:
    """One file an export wrote, with its size in bytes."""

    path: Path
    size: int


# ---------------------------------------------------------------- checks before any work


def read_adapter(adapter_dir: str | Path) -> dict:
    """The config of a saved LoRA adapter folder; a missing or incomplete folder is a `CourseError`."""
    from ftcourse.adapters import read_config

    return read_config(Path(adapter_dir))


def require_gguf():
    """Import the `gguf` package, or say which extra installs it."""
    try:
        import gguf
    except ImportError:
        raise CourseError(
            f"Writing GGUF needs the `gguf` package, part of the course's export extra: {EXTRA}"
        ) from None
    return gguf


def require_llama_cpp():
    """Import `llama_cpp` (llama-cpp-python), or say which extra installs it."""
    try:
        import llama_cpp
    except ImportError:
        raise CourseError(
            "Running a GGUF file needs llama-cpp-python, part of the course's export extra: "
            f"{EXTRA} (it compiles llama.cpp: several minutes)"
        ) from None
    return llama_cpp


def check_gguf_type(gguf_type: str) -> str:
    """Refuse a GGUF weight type the converter does not write; return it."""
    if gguf_type not in GGUF_TYPES:
        raise CourseError(f"Unknown GGUF type {gguf_type!r}: use one of {', '.join(GGUF_TYPES)}.")
    return gguf_type


def check_convertible(config: dict) -> str:
    """The model type of a transformers `config.json` the GGUF converter handles, else a `CourseError`."""
    model_type = config.get("model_type", "unknown")
    if model_type not in CONVERTIBLE:
        raise CourseError(
            f"The course's GGUF converter handles Llama models only, and this one is {model_type!r} "
            f"({', '.join(config.get('architectures') or [])}): export without --gguf, then run "
            f"{CONVERTER} on the merged folder."
        )
    rope = _rope(config)
    if rope.get("rope_type", "default") != "default":
        raise CourseError(
            f"This Llama model scales its rotary embeddings ({rope['rope_type']!r}), which the "
            f"course's GGUF converter does not write: export without --gguf, then run {CONVERTER} "
            "on the merged folder."
        )
    return model_type


def _rope(config: dict) -> dict:
    """Rotary-embedding settings: `rope_parameters` (transformers 5) or the older flat keys."""
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    return rope


def check_writable_file(path: str | Path) -> Path:
    """Check that a file can be written at `path` (its folder is made if needed); return it."""
    path = Path(path)
    if path.is_dir():
        raise CourseError(f"{path} is a folder: give the GGUF file's name, e.g. {path}/model.gguf.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.probe-"):
            pass
    except OSError as exc:
        raise CourseError(
            f"cannot write {path} ({exc.strerror or exc}). Choose a folder you can write to."
        ) from None
    return path


def base_profile(config: dict, profile_name: str | None = None):
    """The profile to load an adapter's base with: named, else the one whose model the adapter names.

    Several profiles may name one model folder (`t4` and its stand-in both end in
    qwen2.5-1.5b-instruct): the same path wins, then the same kind (a local folder or a Hub id).
    """
    from ftcourse.profiles import PROFILES, base_of, choose_profile, same_model

    if profile_name:
        return choose_profile(profile_name)
    base = base_of(config)
    chosen = choose_profile()
    if not base:
        return chosen
    candidates = [chosen, *PROFILES.values()]
    for fits in (
        lambda p: p.model_path == base,
        lambda p: same_model(p.model_path, base) and p.is_local == Path(base).is_dir(),
        lambda p: same_model(p.model_path, base),
    ):
        match = next((p for p in candidates if fits(p)), None)
        if match is not None:
            return match if match is chosen else choose_profile(match.name)
    return chosen.with_overrides(model=base)


# ---------------------------------------------------------------- merging


def merged_model(adapter_dir: str | Path, profile, method: str = "qlora"):
    """The adapter merged into full-precision base weights, and its tokenizer (notebook 05's order).

    For a QLoRA adapter that is the 4-bit base it was trained on, dequantized (`inference_base`
    keeps a GPU profile's base in 4-bit, so it is dequantized here); for a LoRA adapter, the
    original base in the compute dtype.
    """
    from ftcourse.adapters import inference_base, load_adapter
    from ftcourse.ledger import is_4bit
    from ftcourse.runfile import ADAPTER_METHODS, check_method
    from ftcourse.trainer import load_model

    check_method(method, ADAPTER_METHODS)  # what the adapter was trained with: its base weights
    if method == "qlora":
        base, tokenizer = inference_base(profile)
        base = base.dequantize() if is_4bit(base) else base
    else:
        base, tokenizer = load_model(profile, method="lora")
    model = load_adapter(base, adapter_dir).eval()
    return model.merge_and_unload(), _saved_tokenizer(adapter_dir, tokenizer)


def _saved_tokenizer(adapter_dir: str | Path, fallback):
    """The tokenizer saved with the adapter (the one it was trained with), else `fallback`."""
    if not (Path(adapter_dir) / "tokenizer_config.json").is_file():
        return fallback
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(adapter_dir)


def file_sizes(folder: str | Path) -> list[Written]:
    """Every file in a folder, with its size, by name."""
    return [Written(p, p.stat().st_size) for p in sorted(Path(folder).iterdir()) if p.is_file()]


# ---------------------------------------------------------------- GGUF


def inference_template(template: str) -> str:
    """A chat template without trl's `{% generation %}` markers, which only transformers knows.

    Each marker becomes an always-true `if` with the same whitespace control, so the template
    renders exactly the same text.
    """
    template = re.sub(r"\{%(-?)\s*generation\s*(-?)%\}", r"{%\1 if true \2%}", template)
    return re.sub(r"\{%(-?)\s*endgeneration\s*(-?)%\}", r"{%\1 endif \2%}", template)


def permute_rows(weight, n_head: int):
    """Reorder q/k rows from HF's rotate-half layout to llama.cpp's interleaved pairs (per head)."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _state_dict(model_dir: Path) -> dict:
    """The merged model's tensors as float32 numpy arrays (bf16 has no numpy type)."""
    from safetensors import safe_open

    tensors = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            tensors |= {k: f.get_tensor(k).float().numpy() for k in f.keys()}
    return tensors


def _gguf_tensor(gguf, data, gguf_type: str):
    """A tensor in the file's type: 1-D tensors (norms) stay f32, as llama.cpp's converter keeps them."""
    qtype = gguf.GGMLQuantizationType
    if data.ndim == 1 or gguf_type == "f32":
        return data.astype("float32"), None
    if gguf_type == "f16":
        return data.astype("float16"), None
    if data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype.Q8_0][0]:
        return data.astype("float16"), None  # a row that is not a whole number of blocks
    return gguf.quants.quantize(data, qtype.Q8_0), qtype.Q8_0


def gguf_tensors(gguf, config: dict, tensors: dict, gguf_type: str):
    """(llama.cpp name, data, raw type) for each tensor; q and k rows permuted, tied output skipped."""
    n_layers = config["num_hidden_layers"]
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    for hf_name, data in tensors.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise CourseError(f"The GGUF converter has no llama.cpp name for tensor {hf_name!r}.")
        if hf_name.endswith("q_proj.weight"):
            data = permute_rows(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute_rows(data, n_kv or n_head)
        yield (name, *_gguf_tensor(gguf, data, gguf_type))


def _add_hparams(writer, config: dict, gguf_type: str, gguf) -> None:
    """The Llama hyperparameters llama.cpp reads: sizes, heads, context, rope and norm settings."""
    n_head = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_head)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope(config)["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    file_types = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "q8_0": "MOSTLY_Q8_0"}
    writer.add_file_type(gguf.LlamaFileType[file_types[gguf_type]])
    if gguf_type == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def pre_tokenizer(tokenizer_json: dict) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer: only GPT-2's plain byte-level split."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    if tokenizer_json["model"]["type"] != "BPE" or pre.get("type") != "ByteLevel":
        raise CourseError(
            f"The course's GGUF converter handles byte-level BPE tokenizers (GPT-2's) only, and "
            f"this one is {tokenizer_json['model']['type']} with a {pre.get('type')!r} "
            f"pre-tokenizer: run {CONVERTER} on the merged folder instead."
        )
    if not pre.get("use_regex", True) or pre.get("add_prefix_space"):
        raise CourseError(
            "This byte-level tokenizer splits text differently from GPT-2's (no regex split or a "
            f"prefix space): run {CONVERTER} on the merged folder instead."
        )
    return "gpt-2"


def vocabulary(tokenizer, vocab_size: int, gguf) -> tuple[list[str], list[int]]:
    """Tokens by id and their types (special tokens are control tokens); unused rows padded."""
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    kinds = gguf.TokenType
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(kinds.UNUSED)
            continue
        tokens.append(by_id[i])
        special = i in added and added[i].special
        types.append(
            kinds.CONTROL if special else kinds.USER_DEFINED if i in added else kinds.NORMAL
        )
    return tokens, types


def _add_tokenizer(writer, tokenizer, config: dict, gguf) -> None:
    """The tokenizer as llama.cpp's "gpt2" model: tokens, types, merges, special ids, chat template."""
    tokenizer_json = json.loads(tokenizer.backend_tokenizer.to_str())
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(tokenizer_json))
    tokens, types = vocabulary(tokenizer, config["vocab_size"], gguf)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    merges = tokenizer_json["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    for token_id, add in (
        (tokenizer.bos_token_id, writer.add_bos_token_id),
        (tokenizer.eos_token_id, writer.add_eos_token_id),
        (tokenizer.pad_token_id, writer.add_pad_token_id),
    ):
        if token_id is not None:
            add(token_id)
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    marked = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(marked[:1] == [tokenizer.bos_token_id] != plain[:1])
    writer.add_add_eos_token(marked[-1:] == [tokenizer.eos_token_id] != plain[-1:])
    if tokenizer.chat_template:
        writer.add_chat_template(inference_template(tokenizer.chat_template))


def write_gguf(
    model_dir: str | Path, gguf_file: str | Path, gguf_type: str = "f32", name: str | None = None
) -> Path:
    """Convert a saved Llama model folder (e.g. a merged one) to a GGUF file, never half-written."""
    from transformers import AutoTokenizer

    gguf = require_gguf()
    model_dir, gguf_file = Path(model_dir), check_writable_file(gguf_file)
    config = json.loads((model_dir / "config.json").read_text())
    check_convertible(config)
    check_gguf_type(gguf_type)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    partial = gguf_file.with_name(f".{gguf_file.name}.partial")
    writer = gguf.GGUFWriter(partial, "llama")
    try:
        writer.add_name(name or model_dir.name)
        _add_hparams(writer, config, gguf_type, gguf)
        _add_tokenizer(writer, tokenizer, config, gguf)
        for name, data, raw_dtype in gguf_tensors(gguf, config, _state_dict(model_dir), gguf_type):
            writer.add_tensor(name, data, raw_dtype=raw_dtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    writer.close()
    return partial.replace(gguf_file)


# ---------------------------------------------------------------- running a GGUF file


def load_gguf(gguf_file: str | Path, n_threads: int | None = None):
    """A GGUF file in llama.cpp (llama-cpp-python's `Llama`), with the context it was trained for.

    Call its `close()` when done: a `Llama` left to the interpreter's exit can fail in `__del__`.
    """
    llama_cpp = require_llama_cpp()
    if not Path(gguf_file).is_file():
        raise CourseError(
            f"No GGUF file at {gguf_file}: write one with `python -m ftcourse export`."
        )
    try:  # n_ctx=0: the context length the file records (the model's max_position_embeddings)
        return llama_cpp.Llama(str(gguf_file), n_ctx=0, n_threads=n_threads, verbose=False)
    except ValueError as exc:  # llama.cpp says why on stderr only with verbose=True
        raise CourseError(
            f"llama.cpp cannot load {gguf_file} ({exc}). Write it again with `python -m ftcourse "
            "export`; `llama_cpp.Llama(path, verbose=True)` prints llama.cpp's reason."
        ) from None


def llama_answers(
    llm, tokenizer, conversations: list[list[dict]], max_new_tokens: int, counts: list | None = None
) -> list[str]:
    """Greedy answers from llama.cpp, each prompt rendered by the tokenizer's chat template.

    Pass a list as `counts` to get the number of tokens each answer took (its EOS not counted).
    """
    answers = []
    for conversation in conversations:
        prompt = tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, enable_thinking=False, tokenize=False
        )
        out = llm.create_completion(
            prompt, max_tokens=max_new_tokens, temperature=0.0, top_k=1, repeat_penalty=1.0
        )
        answers.append(out["choices"][0]["text"].strip())
        if counts is not None:
            counts.append(out["usage"]["completion_tokens"])
    return answers


# ---------------------------------------------------------------- the whole export


def export(
    adapter_dir: str | Path,
    merged_dir: str | Path,
    gguf_file: str | Path | None = None,
    gguf_type: str = "f32",
    method: str = "qlora",
    profile_name: str | None = None,
) -> list[Written]:
    """Merge an adapter into its base, save it to `merged_dir`, optionally as GGUF too; the files written.

    Everything that can be checked is checked before the model loads: the adapter folder, the
    optional `gguf` package, the GGUF type and architecture, and that both destinations can be written.
    """
    from ftcourse.inference import save_merged
    from ftcourse.paths import prepare_output_dir

    config = read_adapter(adapter_dir)
    profile = base_profile(config, profile_name)
    if gguf_file is not None:
        require_gguf()
        check_gguf_type(gguf_type)
        check_convertible(_base_config(profile))
        check_writable_file(gguf_file)
    prepare_output_dir(merged_dir)
    model, tokenizer = merged_model(adapter_dir, profile, method)
    save_merged(model, tokenizer, merged_dir)
    written = file_sizes(merged_dir)
    if gguf_file is not None:
        path = write_gguf(merged_dir, gguf_file, gguf_type, name=Path(adapter_dir).name)
        written.append(Written(path, path.stat().st_size))
    return written


def _base_config(profile) -> dict:
    """The base model's config.json as a dict (from its folder or the Hub cache)."""
    from ftcourse.adapters import model_folder
    from ftcourse.profiles import ensure_available

    return json.loads((model_folder(ensure_available(profile)) / "config.json").read_text())
