"""Pretrain the course's own small base model on the Python standard library.

Offline, no Hub model can be downloaded, so the course makes its own: a byte-level BPE tokenizer
and a small Llama (grouped-query attention, like Llama-3) trained on the stdlib's source files.
The run is seeded and resumable: it checkpoints to --work-dir and picks up from there when re-run.

The real recipe has three stages (about 70 minutes on 2 CPU cores, minutes on a GPU;
`make base-model`):

    python scripts/make_base_model.py --out build/base-model-stage1             # ~40 min: Python
    python scripts/make_base_model.py --init-from build/base-model-stage1 --steps 1200 --lr 1e-3 \\
        --warmup 50 --repeat-share 0.75 --out build/base-model-stage2    # ~19 min: copying, editing
    python scripts/make_base_model.py --init-from build/base-model-stage2 --steps 600 --lr 1e-3 \\
        --warmup 30 --repeat-share 0.5 --out data/base-model             # ~10 min: made-up words

Stage 1 alone reaches a good perplexity but cannot copy from its context (measured in the model
card), and the course's tasks need copying; stage 2 mixes repeated spans into every batch until it
can, and its corpus adds sentence-editing chats (see `edit_chats`). Stage 3 continues on the same
exercises with made-up words (see `with_nonce_words`): a held-out request's verb is a word the
fine-tune never saw, and copying it, changing the case of its first piece, is what polite needs.
The committed model was made in steps as the corpus grew (its card lists the commands): stage 1
before the editing chats (corpus version 2), stage 2 before the made-up words (version 4) and
written to data/base-model, then copied to build/base-model-stage2 for stage 3. A fresh run uses
the current corpus in every stage.
A tiny smoke run:

    python scripts/make_base_model.py --steps 5 --max-files 20 --layers 1 --hidden 64 \\
        --vocab-size 320 --seq-len 32 --batch-size 2 --out /tmp/tiny --work-dir /tmp/tiny-work
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import platform
import random
import re
import shlex
import sys
import sysconfig
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Spinning OpenMP threads starve each other when other jobs share the 2 cores (measured 4x slower);
# passive waiting must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from ftcourse.data import ROLES
from ftcourse.evaluate import copy_probe

BOS, EOS, PAD = "<|begin|>", "<|end|>", "<|pad|>"
SPECIAL_TOKENS = [BOS, EOS, PAD, *(f"<|{role}|>" for role in ROLES)]

# Each turn is role marker + newline + content. The assistant's content and its EOS sit inside the
# generation markers, so TRL's assistant_only_loss trains the model to answer *and* to stop.
CHAT_TEMPLATE = """{{- bos_token }}
{%- for message in messages %}
    {%- if message['role'] not in ['system', 'user', 'assistant'] %}
        {{- raise_exception('Unknown role: ' + message['role']) }}
    {%- elif message['role'] == 'assistant' %}
        {{- '<|assistant|>\\n' }}
        {%- generation %}{{ message['content'] + eos_token }}{% endgeneration %}
    {%- else %}
        {{- '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|assistant|>\\n' }}
{%- endif %}
"""

# Test suites, the IDE and third-party packages are not "the standard library"; pydoc_data and the
# codec tables are generated data that would teach the model to recite tables.
EXCLUDED_DIRS = {
    "test",
    "tests",
    "idlelib",
    "site-packages",
    "pydoc_data",
    "encodings",
    "__pycache__",
}
MAX_FILE_BYTES = 200_000
HELDOUT_EVERY = 50  # ~2% of files, chosen by a hash of the path so the split never shifts
EVAL_WINDOWS = 256  # held-out windows for the final and random-init losses
# 2: rename exercises in the docstring chats; 3: sentence-editing chats; 5: made-up words
CORPUS_VERSION = 5
SYSTEM_PROMPT = "You are a helpful Python assistant."
SAMPLE_PROMPTS = ["def is_prime(n):\n", "import os\n\n\ndef ", "The following function returns"]
SAMPLE_CHAT = [{"role": "user", "content": "Write the Python function `add(a, b)`."}]


@dataclass
class Recipe:
    """Everything that defines a run; saved in checkpoints so a resume can check it matches."""

    seed: int = 1234
    steps: int = 2600
    batch_size: int = 8
    seq_len: int = 256
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.1
    vocab_size: int = 4096
    layers: int = 4
    hidden: int = 256
    heads: int = 8
    kv_heads: int = 2
    max_files: int = 0  # 0 = all files
    repeat_share: float = 0.0  # share of each batch made of repeated spans (see get_batch)
    init_from: str = ""  # continue from an exported model (a second stage) instead of random init


# ---------------------------------------------------------------- corpus


def stdlib_files(max_files: int = 0) -> list[Path]:
    """Sorted stdlib .py files (minus tests, idlelib, generated tables), optionally the first N."""
    files = []
    for folder, dirs, names in os.walk(sysconfig.get_paths()["stdlib"]):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]  # prune: never walk site-packages
        paths = (Path(folder, n) for n in names if n.endswith(".py"))
        files += [p for p in paths if p.stat().st_size <= MAX_FILE_BYTES]
    files.sort()
    return files[:max_files] if max_files else files


def is_heldout(path: Path) -> bool:
    """Deterministic ~2% file-level hold-out: a hash of the stdlib-relative path, not its order."""
    rel = path.relative_to(sysconfig.get_paths()["stdlib"]).as_posix()
    return int(hashlib.sha256(rel.encode()).hexdigest(), 16) % HELDOUT_EVERY == 0


def split_files(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Train and held-out files; a tiny file list still gets one held-out file."""
    heldout = [p for p in files if is_heldout(p)] or files[-1:]
    return [p for p in files if p not in heldout], heldout


def write_heldout_source(out: Path) -> None:
    """Write the held-out stdlib files, concatenated with a header each: general Python source that
    the base model never trained on (notebook 04b measures forgetting on it)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    version = ".".join(map(str, sys.version_info[:2]))
    parts = [
        f"# ===== Lib/{p.relative_to(root).as_posix()} (CPython {version}, PSF License) =====\n"
        + read_source(p)
        for p in split_files(stdlib_files())[1]
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {len(parts)} held-out files, {out.stat().st_size:,} bytes, to {out}")


def read_source(path: Path) -> str:
    """A source file's text; undecodable bytes are replaced rather than dropping the file."""
    return path.read_text(encoding="utf-8", errors="replace")


def docstring_chats(source: str) -> list[list[dict[str, str]]]:
    """Chat examples mined from docstrings, cycling through three kinds of exercise.

    They teach the base model the role markers and to end an assistant turn with EOS, so LoRA
    fine-tuning starts from a model that already knows the chat format:

    - docstring -> function (the answer repeats the name and arguments given in the question);
    - function without its docstring -> its summary;
    - rename a short function to a made-up name -> the renamed function. Copying text from the
      question with one edit is the skill the course's tasks build on; made-up names (two random
      words from the file's docstrings) mean it cannot be done by memorising stdlib code.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)  # ast.get_source_segment re-splits: quadratic
    words = sorted(set(re.findall(r"\b[a-z]{3,9}\b", " ".join(_docstrings(tree)))))
    rng = random.Random(len(source))  # deterministic per file
    chats = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node)
        code = textwrap.dedent("".join(lines[node.lineno - 1 : node.end_lineno])).rstrip()
        if not doc or len(code) > 1500:
            continue
        summary = doc.strip().split("\n\n")[0]
        doc_node = node.body[0]
        body = (
            lines[node.lineno - 1 : doc_node.lineno - 1]
            + lines[doc_node.end_lineno : node.end_lineno]
        )
        bare = textwrap.dedent("".join(body)).rstrip()  # the code without its docstring
        kind = len(chats) % 3
        if kind == 2 and len(bare) <= 600 and len(words) >= 2 and not node.name.startswith("__"):
            new_name = "_".join(rng.sample(words, 2))
            renamed = re.sub(rf"\b{re.escape(node.name)}\b", new_name, bare)
            question, answer = f"Rename `{node.name}` to `{new_name}`:\n\n{bare}", renamed
        elif kind == 1:
            question, answer = f"What does this function do?\n\n{bare}", summary
        else:
            question = (
                f"Write the Python function `{node.name}({ast.unparse(node.args)})`: {summary}"
            )
            answer = code
        system = [{"role": "system", "content": SYSTEM_PROMPT}] if len(chats) % 4 == 2 else []
        chats.append(
            system
            + [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        )
    return chats


EDIT_ROUNDS = 6  # short exercises, so several per sentence
NONCE_ROUNDS = 12  # the same exercises on sentences with made-up words (see with_nonce_words)
EDIT_OPENERS = ["Then", "First,", "Now", "Next,", "Later,", "Finally,", "Also", "Always", "Again,"]
EDIT_ENDINGS = ["today", "at once", "for me", "again", "later", "as usual", "this time"]
EDIT_QUESTIONS = ["Can we", "Should I", "Do we", "Will you", "Shall we", "Must I"]
# Not ftcourse.augment.SYLLABLES, though alike: this list made the committed model's corpus, and
# that one the measured renamed-copies recipe; sharing one would change one or the other.
SYLLABLES = "ka lo mi ren tu sa vo ri den ba zu fel mar ti no qua shi gor el an".split()


def made_up_name(rng: random.Random) -> str:
    """A capitalised two- or three-syllable name that no corpus contains (e.g. "Renvo")."""
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()


def nonce_word(rng: random.Random, pieces: list[str]) -> str:
    """A made-up word glued from two or three word pieces of the tokenizer (e.g. "ostrelane")."""
    return "".join(rng.choice(pieces) for _ in range(rng.choice((2, 3))))


def word_pieces(tokenizer: PreTrainedTokenizerFast) -> list[str]:
    """The tokenizer's lower-case letter pieces that continue a word (no leading space), 2-5 long."""
    return sorted(t for t in tokenizer.get_vocab() if re.fullmatch(r"[a-z]{2,5}", t))


def with_nonce_words(sentence: str, rng: random.Random, pieces: list[str]) -> str:
    """The sentence with a made-up first word and some made-up longer words further on."""
    rest = sentence[:-1].split(" ")[1:]  # the first word is replaced whatever it was
    rest = [nonce_word(rng, pieces) if len(w) > 3 and rng.random() < 0.3 else w for w in rest]
    return " ".join([nonce_word(rng, pieces).capitalize(), *rest]) + sentence[-1]


def edit_chats(
    summaries: list[str],
    seed: int = 0,
    words: list[str] | None = None,
    pieces: list[str] | None = None,
) -> list[list[dict[str, str]]]:
    """Sentence-editing exercises on docstring summaries ("Return the size of the queue.").

    Each answer copies the sentence with one small edit: a word put in front (so the sentence's
    first word changes case), a leading name added or removed, an ending added, or the sentence
    turned into a question. Copying words from the question, including a capitalised word that
    the answer needs in lower case, is the skill chat tasks build on; the names are made up, so
    it cannot be done by memorising. Half of the sentences get a random first word from `words`:
    docstrings start with a few verbs ("Return", "Get"), and the case change must work for any word.
    With `pieces`, every sentence gets made-up words instead (see `with_nonce_words`): a word never
    seen before has to be copied piece by piece, and its first piece changed case by itself.
    """
    rng = random.Random(seed)
    chats = []
    for sentence in summaries:
        if pieces:
            sentence = with_nonce_words(sentence, rng, pieces)
        elif words and rng.random() < 0.5:
            sentence = rng.choice(words).capitalize() + " " + sentence.split(" ", 1)[1]
        body, low = sentence[:-1], sentence[0].lower() + sentence[1:]
        name, kind = made_up_name(rng), rng.randrange(5)
        if kind == 0:
            word = rng.choice(EDIT_OPENERS)
            question, answer = f'Begin this sentence with "{word}":', f"{word} {low}"
        elif kind == 1:
            question, answer = f"Address this sentence to {name}:", f"{name}, {low}"
        elif kind == 2:
            question, answer = "Remove the name from this sentence:", sentence
            sentence = f"{name}, {low}"
        elif kind == 3:
            word = rng.choice(EDIT_ENDINGS)
            question, answer = f'End this sentence with "{word}":', f"{body} {word}."
        else:
            word, lead = rng.choice(EDIT_QUESTIONS), rng.random() < 0.5
            question = f'Turn this into a question that starts with "{word}":'
            answer = f"{word} {low[:-1]}?"
            if lead:  # a leading name stays in front of the question
                sentence, answer = (
                    f"{name}, {low}",
                    f"{name}, {word[0].lower()}{word[1:]} {low[:-1]}?",
                )
        chats.append(
            [
                {"role": "user", "content": f"{question}\n\n{sentence}"},
                {"role": "assistant", "content": answer},
            ]
        )
    return chats


def summary_sentences(source: str) -> list[str]:
    """Short plain-English first sentences of a file's docstrings, e.g. "Return the size."."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for doc in _docstrings(tree):
        first = " ".join(doc.strip().split("\n\n")[0].split())
        first = first.split(". ")[0].rstrip(".") + "."
        if re.fullmatch(r"[A-Z][a-z]+( [A-Za-z][a-z'-]*,?){3,16}\.", first):
            found.append(first)
    return found


def _docstrings(tree: ast.AST) -> list[str]:
    """Every docstring in a parsed module."""
    kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    return [d for n in ast.walk(tree) if isinstance(n, kinds) and (d := ast.get_docstring(n))]


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2 style, so any text round-trips) wrapped for AutoTokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=SPECIAL_TOKENS[3:],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,  # else decode(encode(x)) != x around punctuation
    )


def encode_stream(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> torch.Tensor:
    """All documents concatenated into one token stream of ids."""
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        ids.extend(enc)
    return torch.tensor(ids, dtype=torch.int32)


def wrap(text: str) -> str:
    """A plain document between BOS and EOS, so the model learns where documents start and stop."""
    return f"{BOS}{text}{EOS}"


def build_corpus(recipe: Recipe, work_dir: Path) -> tuple[PreTrainedTokenizerFast, dict]:
    """Tokenizer and token streams, cached in the work dir so a resumed run skips this step."""
    cache = work_dir / "corpus"
    key = {"max_files": recipe.max_files, "vocab_size": recipe.vocab_size, "python": sys.version}
    key["corpus"] = CORPUS_VERSION  # bump when the corpus recipe changes
    if (cache / "key.json").exists() and json.loads((cache / "key.json").read_text()) == key:
        return AutoTokenizer.from_pretrained(cache), torch.load(cache / "streams.pt")
    train_files, heldout_files = split_files(stdlib_files(recipe.max_files))
    sources = [read_source(p) for p in train_files]
    tokenizer = train_tokenizer(sources, recipe.vocab_size)
    chats = [c for s in sources for c in docstring_chats(s)]
    sentences = [x for s in sources for x in summary_sentences(s)]
    words = sorted({w for x in sentences for w in re.findall(r"\b[a-z]{4,12}\b", x)})
    for k in range(EDIT_ROUNDS):  # each round edits every sentence again, another way
        chats += edit_chats(sentences, seed=recipe.seed + k, words=words)
    pieces = word_pieces(tokenizer)
    for k in range(NONCE_ROUNDS):
        chats += edit_chats(sentences, seed=recipe.seed + EDIT_ROUNDS + k, pieces=pieces)
    chat_texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]
    streams = {
        "train": encode_stream(tokenizer, [wrap(s) for s in sources] + chat_texts),
        "heldout": encode_stream(tokenizer, [wrap(read_source(p)) for p in heldout_files]),
        "stats": {
            "train_files": len(train_files),
            "heldout_files": len(heldout_files),
            "chat_examples": len(chats),
            "train_bytes": sum(len(s.encode()) for s in sources),
        },
    }
    cache.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(cache)
    torch.save(streams, cache / "streams.pt")
    (cache / "key.json").write_text(json.dumps(key))
    return tokenizer, streams


# ---------------------------------------------------------------- model and training


def make_model(recipe: Recipe, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A small Llama: GQA, SwiGLU MLP, RoPE, tied embeddings; sizes are multiples of 64 for bnb."""
    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden,
        intermediate_size=3 * recipe.hidden,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.kv_heads,
        max_position_embeddings=recipe.seq_len,
        rope_theta=10_000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def get_batch(stream: torch.Tensor, recipe: Recipe, step: int) -> torch.Tensor:
    """Random windows of the stream; seeded by step, so a resumed run sees the same batches.

    A `repeat_share` of the rows carry a short span three times at random places in their text
    (half of the spans are stdlib text, half random tokens). Predicting a later copy needs attention
    that looks up what followed the same token earlier ("induction heads"), the copying that the
    course's tasks rely on; plain stdlib text teaches it only slowly. The copies sit inside normal
    text, so the model learns to copy and then carry on, not to loop.
    """
    gen = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
    starts = torch.randint(len(stream) - recipe.seq_len, (recipe.batch_size,), generator=gen)
    rows = [stream[s : s + recipe.seq_len].long() for s in starts.tolist()]
    n_repeat = round(recipe.repeat_share * recipe.batch_size)
    for i in range(n_repeat):
        length = int(torch.randint(8, min(65, recipe.seq_len // 3 + 1), (1,), generator=gen))
        if i % 2:  # random tokens: copying is the only way to predict them
            span = torch.randint(len(SPECIAL_TOKENS), recipe.vocab_size, (length,), generator=gen)
        else:
            span = rows[i][:length].clone()
        # three non-overlapping slots: split the free room into four random gaps
        room = recipe.seq_len - 3 * length
        cuts = sorted(torch.randint(0, room + 1, (3,), generator=gen).tolist())
        row = rows[i].clone()
        for k, cut in enumerate(cuts):
            start = cut + k * length
            row[start : start + length] = span
        rows[i] = row
    return torch.stack(rows)


def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio of the peak."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return recipe.lr * (recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * cosine)


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on GPU; plain fp32 on CPU, which has no fast bf16 here (5-8x slower)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def heldout_loss(
    model: LlamaForCausalLM, stream: torch.Tensor, seq_len: int, max_windows: int
) -> float:
    """Mean next-token loss over consecutive, non-overlapping windows of the held-out stream."""
    model.eval()
    device = next(model.parameters()).device
    n = min(max_windows, len(stream) // seq_len)
    windows = stream[: n * seq_len].view(n, seq_len).long()
    total = 0.0
    for chunk in windows.split(16):
        with autocast(device):
            loss = model(chunk.to(device), labels=chunk.to(device)).loss.float().item()
        total += loss * len(chunk)  # every window counts the same, even in the last chunk
    model.train()
    return total / n


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically, so a run killed mid-save still has its previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    recipe: Recipe, model: LlamaForCausalLM, streams: dict, work_dir: Path, ckpt_every: int
) -> dict:
    """AdamW pretraining loop with checkpoint/resume; returns the run's measured stats."""
    device = next(model.parameters()).device
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe.lr,
        betas=(0.9, 0.95),
    )
    ckpt_path = work_dir / "checkpoint.pt"
    state = {"step": 0, "elapsed_s": 0.0, "losses": []}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        if ckpt["recipe"] == asdict(recipe):
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            state = ckpt["state"]
            print(f"resuming from step {state['step']}")
        else:
            print("checkpoint was made with a different recipe: starting afresh")
    train_stream, tokens_per_step = streams["train"], recipe.batch_size * recipe.seq_len
    bar = tqdm(range(state["step"], recipe.steps), initial=state["step"], total=recipe.steps)
    start = time.perf_counter() - state["elapsed_s"]
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe)
        batch = get_batch(train_stream, recipe, step).to(device)
        with autocast(device):
            loss = model(batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"], state["elapsed_s"] = step + 1, time.perf_counter() - start
        state["losses"].append(round(loss.item(), 4))
        tok_s = state["step"] * tokens_per_step / state["elapsed_s"]
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tok_s:,.0f}")
        if state["step"] % ckpt_every == 0 or state["step"] == recipe.steps:
            eval_loss = heldout_loss(model, streams["heldout"], recipe.seq_len, 32)
            tqdm.write(
                f"step {state['step']}: train loss {loss.item():.3f}, held-out {eval_loss:.3f}"
            )
            ckpt = {"recipe": asdict(recipe), "model": model.state_dict(), "state": state}
            save_checkpoint(ckpt_path, ckpt | {"optimizer": optimizer.state_dict()})
            start = time.perf_counter() - state["elapsed_s"]  # eval/save time is not training time
    state["tokens_seen"] = state["step"] * tokens_per_step
    return state


# ---------------------------------------------------------------- export and model card


def sample_generations(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> list[tuple[str, str]]:
    """Greedy continuations of a few prompts, including one chat prompt, for the model card."""
    model.eval()
    device = next(model.parameters()).device
    chat = tokenizer.apply_chat_template(SAMPLE_CHAT, tokenize=False, add_generation_prompt=True)
    samples = []
    for prompt in [*SAMPLE_PROMPTS, chat]:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
        room = max(1, model.config.max_position_embeddings - ids.shape[1])  # stay within RoPE range
        out = model.generate(ids, max_new_tokens=min(60, room), do_sample=False)
        samples.append(
            (prompt, tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=False))
        )
    return samples


def hardware() -> str:
    """A one-line description of where the run happened."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name()} (bf16 autocast)"
    cpuinfo = Path("/proc/cpuinfo")  # Linux only; elsewhere the architecture has to do
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    names = [x for x in text.splitlines() if x.startswith("model name")]
    cpu = names[0].split(":", 1)[1].strip() if names else platform.machine()
    return f"CPU: {cpu}, {torch.get_num_threads()} threads, fp32"


def model_card(recipe: Recipe, model: LlamaForCausalLM, tokenizer, streams: dict, run: dict) -> str:
    """The README.md of the exported model, filled in from the run's measured values."""
    cfg, stats = model.config, streams["stats"]
    n_params = sum(p.numel() for p in model.parameters())
    samples = "\n\n".join(
        f"Prompt:\n```text\n{p}\n```\nGreedy continuation:\n```text\n{c}\n```"
        for p, c in run["samples"]
    )
    rand, final = run["random_init_loss"], run["final_loss"]
    history, earlier = run["history"], run["earlier"]
    start_row = (
        f"| start of this stage | {earlier['loss']:.3f} | {math.exp(earlier['loss']):,.1f} |\n"
        if "loss" in earlier
        else ""
    )
    stage = (
        f"- This is stage {len(history['commands'])}: it continued from `{recipe.init_from}`, which had "
        f"seen {earlier['tokens_seen']:,} tokens in {earlier['elapsed_s'] / 60:.1f} min.\n"
        if recipe.init_from
        else ""
    )
    repeats = (
        f"- {recipe.repeat_share:.0%} of each batch were repeated spans (half stdlib text, half "
        "random tokens) to teach copying; see `get_batch` in the script.\n"
        if recipe.repeat_share
        else ""
    )
    commands = "\n".join(history["commands"])
    seen, n_train = run["tokens_seen"], len(streams["train"])
    probes = "\n".join(
        f"| {name} | {p.first:.2f} | {p.second:.2f} |" for name, p in run["copy_probe"].items()
    )
    special = ", ".join(f"`{t}` = {tokenizer.convert_tokens_to_ids(t)}" for t in SPECIAL_TOKENS)
    return f"""# ftcourse base model

A small Llama-architecture causal language model, pretrained from scratch by
`scripts/make_base_model.py` so the course can fine-tune a real pretrained model offline.
It knows Python syntax and a little English; it is a teaching model, not a useful assistant.

## Architecture

- `LlamaForCausalLM`: {cfg.num_hidden_layers} layers, hidden size {cfg.hidden_size},
  MLP (SwiGLU) size {cfg.intermediate_size}, {cfg.num_attention_heads} attention heads,
  {cfg.num_key_value_heads} key/value heads (grouped-query attention, as in Llama-3), RoPE,
  RMSNorm, tied input/output embeddings, context length {cfg.max_position_embeddings}.
- Parameters: **{n_params:,}** (stored in fp32 safetensors).
- Tokenizer: byte-level BPE, {len(tokenizer):,} tokens, trained on the same corpus.
  Special tokens: {special}.
  No token is added automatically on encode; the chat template adds `{BOS}` and ends every
  assistant turn with `{EOS}` (inside `{{% generation %}}` markers for TRL's `assistant_only_loss`).

## Corpus and licence

The source files of the Python {platform.python_version()} standard library, found via
`sysconfig.get_paths()["stdlib"]` (excluding `test/`, `tests/`, `idlelib/`, `site-packages/`,
`pydoc_data/`, `encodings/` and files over {MAX_FILE_BYTES:,} bytes):
{stats["train_files"]} training files ({stats["train_bytes"]:,} bytes), plus
{stats["chat_examples"]:,} chat examples mined from their docstrings (docstring -> function,
function -> docstring, renaming a function, and editing a docstring's first sentence: a word put in
front, a made-up name added or removed, an ending added, a question made; the same edits again with made-up words in the sentence). {stats["heldout_files"]} files (~2%, chosen by a hash of the path) are
held out.
The Python standard library is licensed under the Python Software Foundation License (PSF-2.0);
this model is a derivative of it and is shared under the same terms.

## Training

{stage}- {run["step"]:,} steps of {recipe.batch_size} x {recipe.seq_len} tokens: {seen:,} tokens seen
  ({seen / n_train:.2f} passes over {n_train:,} training tokens); **{history["tokens_seen"]:,} tokens
  in all**, in **{history["elapsed_s"] / 60:.1f} min** of training.
{repeats}- AdamW (betas 0.9/0.95, weight decay {recipe.weight_decay}), peak learning rate {recipe.lr},
  {recipe.warmup} warmup steps, cosine decay to {recipe.min_lr_ratio:g}x, gradient clipping 1.0,
  seed {recipe.seed}.
- Wall time: **{run["elapsed_s"] / 60:.1f} min** of training on {hardware()}
  ({seen / run["elapsed_s"]:,.0f} tokens/s).

## Held-out evaluation

| model | held-out loss | perplexity |
|---|---|---|
| random init | {rand:.3f} | {math.exp(rand):,.1f} |
{start_row}| this model | {final:.3f} | {math.exp(final):,.1f} |

Measured on {run["heldout_tokens"]:,} tokens of the held-out files.

## Can it copy?

The course's tasks copy names and code from the question into the answer, which needs induction
heads. `ftcourse.evaluate.copy_probe` measures the loss on 40 random tokens, then on the same 40
tokens repeated; a model that copies finds the repeat far easier.

| model | loss, first time | loss, repeated |
|---|---|---|
{probes}

## Sample generations (greedy)

{samples}

## As a starting point for fine-tuning

<!-- finetune:start -->
Not measured for this export yet: run
`python benchmarks/base_vs_random.py --update-card data/base-model/README.md`.
<!-- finetune:end -->

## Reproduce

The commands that made this model, stage by stage (`make base-model` runs today's recipe in one go):

```bash
{commands}
```

Load it with `AutoModelForCausalLM.from_pretrained("data/base-model")` and
`AutoTokenizer.from_pretrained("data/base-model")`; no custom code is needed.
"""


def export(recipe: Recipe, model, tokenizer, streams: dict, run: dict, out: Path) -> None:
    """Save model, tokenizer, generation config and model card in one loadable folder."""
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.to("cpu", torch.float32).save_pretrained(out)
    tokenizer.model_max_length = model.config.max_position_embeddings  # RoPE trained this far
    for key in ("is_local", "local_files_only"):  # loading bookkeeping, not tokenizer settings
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(model_card(recipe, model, tokenizer, streams, run))
    (out / "training.json").write_text(json.dumps(run["history"], indent=1) + "\n")


def parse_args(argv: list[str] | None = None) -> tuple[Recipe, argparse.Namespace]:
    """CLI flags for every recipe field; the defaults are the real recipe."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("data/base-model"))
    parser.add_argument("--work-dir", type=Path, default=Path("build/base-model-work"))
    parser.add_argument("--ckpt-every", type=int, default=100)
    parser.add_argument(
        "--write-heldout",
        type=Path,
        metavar="FILE",
        help="only write the held-out stdlib files (never trained on) to FILE, then stop",
    )
    for name, value in asdict(Recipe()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    recipe = Recipe(**{k: getattr(args, k) for k in asdict(Recipe())})
    return recipe, args


def main(argv: list[str] | None = None) -> None:
    """Build the corpus and tokenizer, pretrain (resuming if possible), export with a model card."""
    recipe, args = parse_args(argv)
    if args.write_heldout:
        write_heldout_source(args.write_heldout)
        return
    if recipe.init_from and not (Path(recipe.init_from) / "training.json").exists():
        raise SystemExit(  # checked before the corpus is built, not after minutes of work
            f"--init-from {recipe.init_from}: no model exported by this script there. Run stage 1 "
            f"first: python scripts/make_base_model.py --out {recipe.init_from}"
        )
    args.work_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer, streams = build_corpus(recipe, args.work_dir)
    print(f"corpus: {streams['stats']}, train tokens {len(streams['train']):,}")
    model = make_model(recipe, tokenizer).to(device)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    # The same seed gives the same initial weights: the baseline the training has to beat.
    random_init = heldout_loss(model, streams["heldout"], recipe.seq_len, EVAL_WINDOWS)
    probes = {"random init": copy_probe(model)}
    earlier = {"commands": [], "tokens_seen": 0, "elapsed_s": 0.0}
    if recipe.init_from:  # a second stage: start from an exported model with the same tokenizer
        if AutoTokenizer.from_pretrained(recipe.init_from).get_vocab() != tokenizer.get_vocab():
            raise SystemExit(f"{recipe.init_from} was made with another tokenizer")
        start = LlamaForCausalLM.from_pretrained(recipe.init_from, dtype=torch.float32)
        model.load_state_dict(start.state_dict())
        earlier = json.loads((Path(recipe.init_from) / "training.json").read_text())
        earlier["loss"] = heldout_loss(model, streams["heldout"], recipe.seq_len, EVAL_WINDOWS)
        probes["start of this stage"] = copy_probe(model)
        print(f"starting from {recipe.init_from}: held-out loss {earlier['loss']:.3f}")
    run = train(recipe, model, streams, args.work_dir, args.ckpt_every)
    run["earlier"] = earlier
    run["random_init_loss"] = random_init
    run["final_loss"] = heldout_loss(model, streams["heldout"], recipe.seq_len, EVAL_WINDOWS)
    run["heldout_tokens"] = (
        min(EVAL_WINDOWS, len(streams["heldout"]) // recipe.seq_len) * recipe.seq_len
    )
    run["samples"] = sample_generations(model, tokenizer)
    model.eval()
    run["copy_probe"] = probes | {"this model": copy_probe(model)}
    flags = sys.argv[1:] if argv is None else argv
    run["command"] = shlex.join(["python", "scripts/make_base_model.py", *flags])
    run["history"] = {
        "commands": [*earlier["commands"], run["command"]],
        "tokens_seen": earlier["tokens_seen"] + run["tokens_seen"],
        "elapsed_s": earlier["elapsed_s"] + run["elapsed_s"],
    }
    export(recipe, model, tokenizer, streams, run, args.out)
    ppl, random_ppl = math.exp(run["final_loss"]), math.exp(run["random_init_loss"])
    print(f"held-out ppl {ppl:.1f} (random init {random_ppl:.1f})")
    print(f"copy probe: {run['copy_probe']['this model']}")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
