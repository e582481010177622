"""How much memory fine-tuning needs: an estimate from a model's config, and a measurement to check it.

The estimate adds up what is alive at the peak of a training step, component by component:

- weights: the base model (fp32 4 B, bf16/fp16 2 B, or nf4 for QLoRA's quantized linear layers);
- lora: the adapter's A and B matrices (peft keeps them in fp32 even on a 16-bit or 4-bit base);
- gradients: one per *trainable* parameter;
- optimizer: AdamW's two moments (and, for mixed-precision full fine-tuning, an fp32 master copy);
- activations: what autograd saves in the forward pass for the backward pass;
- logits: the loss's fp32 view of the output over the whole vocabulary, at every position;
- overhead: the CUDA context (none on a CPU).

The peak comes when the backward pass starts: every saved activation is still alive. Gradients are
counted as if already there, as they are from the second micro-batch of gradient accumulation on;
with `zero_grad(set_to_none=True)` and no accumulation the real peak is lower by up to their size.
`measure_training_step` runs real steps and sorts the tensors alive at the peak the same way.

Sources, named where each formula is used:
[ZeRO] Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
    Models", section 3.1 (mixed-precision Adam: 2 + 2 + 12 = 16 bytes per parameter).
[QLoRA] Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs", section 3 (NF4 in
    blocks of 64 with an fp32 absmax each; double quantization).
[8-bit Adam] Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization".
[Korthikanti] Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
    Models", section 4.1 (activations per layer: s*b*h*(34 + 5*a*s/h) bytes for GPT in 16-bit).

GB means 10^9 bytes. A T4 shows PyTorch about 15.8 GB (14.7 GiB); the verdicts allow it 15.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, fields

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ftcourse.errors import CourseError
from ftcourse.profiles import ATTENTION, check_method

GB = 1e9
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Bytes of optimizer state per trainable parameter, by the name HF's `optim=` argument uses.
# [8-bit Adam]: two 8-bit states plus one fp32 absmax per block of 256 values each.
OPTIMIZER_BYTES = {
    "adamw_torch_fused": 8.0,  # exp_avg and exp_avg_sq in fp32; Trainer's default since torch 2.8
    "adamw_torch": 8.0,  # the same states; its step also allocates temporaries (not counted here)
    "adamw_8bit": 2 * (1 + 4 / 256),
    "paged_adamw_32bit": 8.0,  # same bytes; paged memory can spill to CPU RAM when the GPU is full
    "paged_adamw_8bit": 2 * (1 + 4 / 256),
}
# GPU memory in GB as the verdicts use it. A T4 has 16 GB on paper; Colab shows ~15 GB.
GPUS = {"T4 (15 GB)": 15.0, "24 GB": 24.0, "80 GB": 80.0}
CUDA_OVERHEAD_GB = 0.75  # CUDA context and kernels: 0.5-1 GB, outside torch's allocator
NF4_BLOCK, DQ_BLOCK = 64, 256  # [QLoRA] weights per absmax; absmaxes per second-level constant
# Per position and vocabulary entry: the loss upcasts logits to fp32 and keeps their log-softmax
# (4 B) for the backward pass, where two fp32 gradients (of the log-softmax, then of the logits)
# are briefly alive together. The lm_head's own output is freed once the loss is computed.
LOGITS_BYTES = 4 + 4 + 4


@dataclass(frozen=True)
class Breakdown:
    """Training memory by component, in bytes (an estimate, or a measurement of real tensors)."""

    weights: float = 0.0
    lora: float = 0.0
    gradients: float = 0.0
    optimizer: float = 0.0
    activations: float = 0.0
    logits: float = 0.0
    overhead: float = 0.0

    @property
    def total(self) -> float:
        """All components together, in bytes."""
        return sum(self.as_bytes().values())

    def as_bytes(self) -> dict[str, float]:
        """Component name -> bytes."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def as_gb(self) -> dict[str, float]:
        """Component name -> GB (10^9 bytes), plus the total."""
        return {**{k: v / GB for k, v in self.as_bytes().items()}, "total": self.total / GB}

    def fits(self, gpu_gb: float | str) -> bool:
        """Whether the total fits a GPU of `gpu_gb` GB (a number, or a name in `GPUS`)."""
        if isinstance(gpu_gb, str):
            if gpu_gb not in GPUS:
                raise CourseError(
                    f"Unknown GPU {gpu_gb!r}: give its memory in GB or one of {list(GPUS)}."
                )
            gpu_gb = GPUS[gpu_gb]
        return self.total <= gpu_gb * GB

    def report(self) -> str:
        """A small table in GB, with the verdict for each GPU in `GPUS`."""
        rows = [f"{k:<12}{v:>9.3f} GB" for k, v in self.as_gb().items()]
        verdicts = [f"fits {name}: {'yes' if self.fits(name) else 'no'}" for name in GPUS]
        return "\n".join(rows[:-1] + ["-" * 24, rows[-1], *verdicts])

    def _repr_pretty_(self, p, cycle) -> None:  # how IPython and the widget form display it
        p.text(self.report())


# ---------------------------------------------------------------- the model's shape


@dataclass(frozen=True)
class Shape:
    """The numbers of a decoder-only transformer that memory depends on."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int


def as_config(model):
    """A transformers config from a config, a bundled short name / Hub id, or a model folder."""
    if not isinstance(model, str):
        return model
    from pathlib import Path

    if (Path(model) / "config.json").is_file():
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(model)
    from ftcourse.architectures import load_architecture

    return load_architecture(model)


def shape_of(config) -> Shape:
    """Read a Llama-style config (Llama, Mistral, Qwen2, SmolLM2: SwiGLU MLP, grouped-query attention)."""
    try:
        heads = config.num_attention_heads
        return Shape(
            hidden=config.hidden_size,
            intermediate=config.intermediate_size,
            layers=config.num_hidden_layers,
            heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            vocab=config.vocab_size,
        )
    except AttributeError as err:
        raise CourseError(
            f"The memory estimate covers Llama-style decoders; this config lacks {err.name!r}."
        ) from err


def quantized_weight_sizes(config) -> tuple[int, ...]:
    """Sizes of the weights bitsandbytes turns into nf4: every nn.Linear except those transformers
    skips (`get_keys_to_not_convert`: the lm_head, tied weights, the last module). Embeddings, norms
    and biases stay in 16-bit (or fp32). The model is built on the meta device: no memory, no download.
    """
    from transformers.quantizers.base import get_keys_to_not_convert

    from ftcourse.architectures import meta_model

    model = meta_model(config)
    skip = get_keys_to_not_convert(model)
    return tuple(
        m.weight.numel()
        for name, m in model.named_modules()
        if type(m) is torch.nn.Linear
        and not any(name == s or name.startswith(s + ".") for s in skip)
    )


def nf4_bytes(numel: int, double_quant: bool = False) -> float:
    """Bytes of one weight matrix in nf4, with its quantization constants [QLoRA, section 3].

    Two 4-bit codes per byte, plus one absmax per block of 64 weights: fp32 (32/64 = 0.5 bit per
    weight), or with double quantization an 8-bit absmax plus one fp32 constant per 256 blocks
    (8/64 + 32/(64*256) = 0.127 bit per weight). The 16-value nf4 code book (and, with double
    quantization, a 256-value one and an offset) add a few hundred bytes per matrix.
    """
    blocks = math.ceil(numel / NF4_BLOCK)
    if double_quant:
        constants = blocks * 1 + math.ceil(blocks / DQ_BLOCK) * 4 + 256 * 4 + 4
    else:
        constants = blocks * 4
    return math.ceil(numel / 2) + constants + 16 * 4


# ---------------------------------------------------------------- activations


@dataclass(frozen=True)
class _Run:
    """How a step runs, as far as saved activations care."""

    act: int  # bytes of an activation in the compute dtype
    resid: int  # bytes of the residual stream: the weights' dtype (fp32 weights under autocast)
    full: bool  # every weight trains (else only LoRA adapters on `targets`)
    targets: frozenset[str]
    r: int
    dropout: float
    mask: int  # bytes per element of a dropout mask: bool on CUDA, fp32 (the adapter's) on CPU
    adapter_copies: bool  # adapters (fp32) see their own cast copy of a 16-bit input
    eager: bool  # eager attention keeps the s x s scores; SDPA/flash attention does not


def _norm(s: Shape, run: _Run, grad_in: bool) -> float:
    """RMSNorm: x in fp32 and 1/rms for the input's gradient; x/rms when its weight trains."""
    saved = 4 * s.hidden + 4 if grad_in or run.full else 0
    return saved + (run.resid * s.hidden if run.full else 0)


def _linears(
    width: int,
    names: tuple[str, ...],
    run: _Run,
    input_saved: bool,
    input_grad: bool = True,
    wide_input: bool = False,
) -> float:
    """Bytes saved for the input of the linear layers `names` that all read one input of `width`.

    A trained weight needs its input for its gradient (full fine-tuning saves it once, or, when
    autocast casts a `wide_input` from the fp32 residual stream, one 16-bit copy per layer). A LoRA
    adapter's A matrix needs the input too: the shared one, or its own dropout / dtype-cast copy;
    its B matrix needs A's r outputs. A frozen weight with no adapter saves nothing. Dropout keeps
    its mask only when gradients flow back through it to the input.
    """
    if run.full and wide_input and run.resid > run.act:
        return len(names) * width * run.act
    adapted = [n for n in names if n in run.targets] if not run.full else []
    shared = run.full
    saved = 0.0
    for _ in adapted:
        if run.dropout > 0:  # the dropped copy (mask + values) is what A sees
            saved += width * ((run.mask if input_grad else 0) + run.act)
        elif run.adapter_copies:
            saved += width * run.act
        else:
            shared = True
        saved += run.r * run.act
    return saved + (width * run.act if shared and not input_saved else 0)


def _layer(s: Shape, run: _Run, seq_len: int, grad_in: bool) -> float:
    """Bytes one decoder layer saves per token, adapting [Korthikanti] to Llama.

    Korthikanti's GPT layer saves 34*h bytes per token in 16-bit plus 5*a*s for the attention
    scores. A Llama layer differs: RMSNorm upcasts to fp32; the SwiGLU MLP keeps four tensors of
    the intermediate width (gate, silu(gate), up, their product); grouped-query attention has
    smaller keys and values; no dropout; and SDPA/flash attention recomputes the s x s scores in
    the backward pass instead of keeping them. Which tensors are saved depends on what trains.
    """
    a, h, i = run.act, s.hidden, s.intermediate
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    saved = _norm(s, run, grad_in)
    saved += _linears(h, ("q_proj", "k_proj", "v_proj"), run, False, grad_in, wide_input=True)
    attn_grad = grad_in or run.full or bool(run.targets & {"q_proj", "k_proj", "v_proj"})
    if attn_grad:
        if run.eager:  # keys/values repeated to every head, the fp32 softmax (and its 16-bit cast)
            saved += a * 3 * q + s.heads * seq_len * (4 + (a if a != 4 else 0))
        else:  # SDPA saves q, k, v, its output (o_proj's input) and a log-sum-exp per head
            saved += a * (2 * q + 2 * kv) + 4 * s.heads
    # eager attention hands o_proj a fresh contiguous copy of its output
    saved += _linears(q, ("o_proj",), run, attn_grad and not run.eager, input_grad=attn_grad)
    mlp_in_grad = attn_grad or "o_proj" in run.targets
    saved += _norm(s, run, mlp_in_grad)
    saved += _linears(h, ("gate_proj", "up_proj"), run, False, mlp_in_grad, wide_input=True)
    if mlp_in_grad or run.full or run.targets & {"gate_proj", "up_proj"}:
        saved += 3 * a * i  # gate output (for silu), silu(gate) and up (for their product)
        saved += _linears(i, ("down_proj",), run, False)
    elif "down_proj" in run.targets:
        saved += _linears(i, ("down_proj",), run, False, input_grad=False)
    return saved


def activation_bytes(
    s: Shape,
    run: _Run,
    seq_len: int,
    batch_size: int,
    gradient_checkpointing: bool,
    logits: float = 0.0,
) -> float:
    """Activations at the step's peak (logits apart), in bytes.

    Without checkpointing every layer keeps its saved tensors until the backward pass reaches it,
    so all of them are alive when the backward pass starts at the loss. With gradient
    checkpointing only each layer's input (h values per token) is kept, and the backward pass
    recomputes one layer at a time. It does so after the loss's `logits` bytes are freed, so the
    recomputed layer adds to the peak only where it is larger than they were (with a vocabulary
    of 32k or more, it never is).
    """
    tokens = seq_len * batch_size
    first = _layer(s, run, seq_len, grad_in=run.full)  # LoRA: the embeddings' output needs no grad
    other = _layer(s, run, seq_len, grad_in=True)
    if gradient_checkpointing:
        kept = s.layers * run.resid * s.hidden
        # in fp32 the input RMSNorm saves *is* the layer input, already counted in `kept`; while
        # the recomputed layer runs backward, gradients of ~2 intermediate-width tensors join it
        own_input = 4 * s.hidden if run.resid == 4 else 0
        working = tokens * (max(first, other) - own_input + 2 * run.act * s.intermediate)
    else:
        kept, working = first + (s.layers - 1) * other, 0
    kept += _norm(s, run, True) + (run.act * s.hidden if run.full else 0)  # final norm, lm_head
    kept += 8 * (2 if run.full else 1)  # int64 labels for the loss (and ids for the embedding)
    rope = 2 * seq_len * s.head_dim * run.act  # cos and sin, shared by every layer
    return tokens * kept + rope + max(0.0, working - logits)


# ---------------------------------------------------------------- the estimate


def _autocast_copies(config, s: Shape, gradient_checkpointing: bool) -> int:
    """Weights autocast copies to 16-bit and the backward pass keeps: every linear layer's and
    the lm_head's; with checkpointing the layers' copies are remade one layer at a time."""
    layers = sum(quantized_weight_sizes(config))  # the same nn.Linear weights bitsandbytes takes
    return (layers // s.layers if gradient_checkpointing else layers) + s.vocab * s.hidden


def _check(method: str, optimizer: str, *dtypes: str) -> None:
    check_method(method)
    if optimizer not in OPTIMIZER_BYTES:
        raise CourseError(f"optimizer must be one of {list(OPTIMIZER_BYTES)}, got {optimizer!r}.")
    for dtype in dtypes:
        if dtype not in DTYPE_BYTES:
            raise CourseError(f"dtype must be one of {list(DTYPE_BYTES)}, got {dtype!r}.")


def estimate(
    model,
    method: str = "qlora",
    *,
    seq_len: int = 512,
    batch_size: int = 1,
    gradient_checkpointing: bool = False,
    compute_dtype: str = "bfloat16",
    weight_dtype: str | None = None,
    double_quant: bool = False,
    optimizer: str = "adamw_torch_fused",
    lora_r: int = 16,
    target_modules: tuple[str, ...] = ATTENTION,
    lora_dropout: float = 0.05,
    attention: str = "sdpa",
    device: str = "cuda",
) -> Breakdown:
    """Estimate the memory of one training step of `model` (a config, bundled name or model folder).

    `method` is "full", "lora" or "qlora". Weights are stored in `weight_dtype` (default: the
    compute dtype); QLoRA stores the linear layers in nf4 and the rest in `weight_dtype`.
    """
    from ftcourse.lora import count_parameters

    weight_dtype = weight_dtype or compute_dtype
    _check(method, optimizer, compute_dtype, weight_dtype)
    if seq_len < 1 or batch_size < 1:
        raise CourseError(f"seq_len and batch_size must be >= 1, got {seq_len} and {batch_size}.")
    config = as_config(model)
    s = shape_of(config)
    counts = count_parameters(config, tuple(target_modules), lora_r)
    n_total, n_lora = counts["total"], counts["trainable"]
    wbytes, act = DTYPE_BYTES[weight_dtype], DTYPE_BYTES[compute_dtype]

    if method == "full":
        weights = n_total * wbytes
        if wbytes > act:  # fp32 weights under autocast: the 16-bit copies the matmuls use
            weights += _autocast_copies(config, s, gradient_checkpointing) * act
        trainable, grad_bytes, lora = n_total, wbytes, 0.0
        # [ZeRO]: mixed precision keeps an fp32 master copy of 16-bit weights in the optimizer
        master = 4 if wbytes < 4 else 0
    else:
        trainable, grad_bytes, master = n_lora, 4, 0
        lora = n_lora * 4.0  # peft upcasts adapters to fp32 (autocast_adapter_dtype=True)
        if method == "qlora":
            sizes = quantized_weight_sizes(config)
            weights = sum(nf4_bytes(n, double_quant) for n in sizes)
            weights += (n_total - sum(sizes)) * wbytes  # embeddings, norms, lm_head, biases
        else:
            weights = n_total * wbytes

    run = _Run(
        act=act,
        resid=wbytes if method == "full" else act,
        full=method == "full",
        targets=frozenset(target_modules),
        r=lora_r,
        dropout=lora_dropout,
        mask=1 if device == "cuda" else 4,
        adapter_copies=act != 4,
        eager=attention == "eager",
    )
    logits = seq_len * batch_size * s.vocab * LOGITS_BYTES
    activations = activation_bytes(s, run, seq_len, batch_size, gradient_checkpointing, logits)
    if run.adapter_copies and method != "full" and not gradient_checkpointing:
        activations += n_lora * act  # autocast's 16-bit copies of the adapters, kept for backward
    return Breakdown(
        weights=float(weights),
        lora=lora,
        gradients=float(trainable * grad_bytes),
        optimizer=trainable * (OPTIMIZER_BYTES[optimizer] + master),
        activations=activations,
        logits=float(logits),
        overhead=CUDA_OVERHEAD_GB * GB if device == "cuda" else 0.0,
    )


def estimate_for_profile(profile, model=None, **overrides) -> Breakdown:
    """The estimate for a course profile's own settings (model, dtype, 4-bit, length, batch)."""
    kwargs = dict(
        method="qlora" if profile.load_in_4bit else "lora",
        seq_len=profile.max_length,
        batch_size=profile.batch_size,
        compute_dtype=profile.compute_dtype,
        lora_r=profile.lora_r,
        target_modules=profile.target_modules,
        lora_dropout=profile.lora_dropout,
        device="cuda" if profile.needs_cuda else "cpu",
    )
    return estimate(model or profile.model_path, **{**kwargs, **overrides})


def _largest(fits, hi: int) -> int:
    """The largest n in [1, hi] with fits(n) true, for a monotonic `fits`; 0 when none."""
    if not fits(1):
        return 0
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def largest_batch(model, gpu_gb: float | str, max_batch: int = 1024, **kwargs) -> int:
    """The largest batch size whose estimate fits `gpu_gb` (0 if not even one sequence fits)."""
    config = as_config(model)
    return _largest(lambda b: estimate(config, batch_size=b, **kwargs).fits(gpu_gb), max_batch)


def largest_seq_len(model, gpu_gb: float | str, max_len: int | None = None, **kwargs) -> int:
    """The longest sequence (up to the model's context) whose estimate fits `gpu_gb` (0 if none)."""
    config = as_config(model)
    max_len = max_len or config.max_position_embeddings
    return _largest(lambda n: estimate(config, seq_len=n, **kwargs).fits(gpu_gb), max_len)


# ---------------------------------------------------------------- measurement


class LiveTensors(TorchDispatchMode):
    """Follows every storage the ops create while active, and remembers which were alive at the
    peak: `torch.cuda.max_memory_allocated`, but for real tensors on any device, by name.

    The dispatch mode sees each op's outputs; a weakref on each new storage says when it is freed.
    `alive` maps the storages that exist before (weights, gradients...) to their bytes.
    """

    def __init__(self, alive: dict[int, int], vocab: int = 0):
        super().__init__()
        self.vocab = vocab
        self.live = {
            key: (nbytes, False) for key, nbytes in alive.items()
        }  # -> (bytes, vocab-wide)
        self.now = sum(alive.values())
        self.peak, self.at_peak = self.now, dict(self.live)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._add(t)
        return out

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if key in self.live or nbytes == 0:
            return  # a view, an in-place result, or an empty tensor: nothing new allocated
        self.live[key] = (nbytes, t.dim() > 0 and t.shape[-1] == self.vocab)
        weakref.finalize(storage, self._free, key)
        self.now += nbytes
        if self.now > self.peak:
            self.peak, self.at_peak = self.now, dict(self.live)

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, (0, False))[0]


def _storages(tensors) -> dict[int, int]:
    """Storage address -> bytes, each storage once (views and tied weights share one)."""
    return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}


def _with_quant_state(p: torch.Tensor):
    """A parameter and, for a bitsandbytes 4-bit weight, its quantization constants."""
    yield p
    state = getattr(p, "quant_state", None)
    while state is not None:
        yield from (v for v in vars(state).values() if torch.is_tensor(v))
        state = getattr(state, "state2", None)


def measure_training_step(
    model, optimizer, input_ids: torch.Tensor, autocast: str | None = None
) -> Breakdown:
    """Run real training steps and break down the memory of the tensors alive at the peak.

    A first step creates the optimizer state and the gradients. The measured step then runs like
    the second micro-batch of gradient accumulation (gradients already held): forward, backward
    and `optimizer.step()`. Storages are counted once each, by their real size (4-bit weights with
    their quantization constants), and sorted at the peak into weights, LoRA weights (whatever
    trains when not everything does), gradients, optimizer state, logits (tensors as wide as the
    vocabulary) and activations: everything else, i.e. what autograd saved for the backward pass
    plus the temporaries of that moment. `autocast` ("bfloat16" or "float16") runs the forward
    pass under `torch.autocast`, as Trainer does with `bf16=True` or `fp16=True`.
    """

    def step():
        dtype = getattr(torch, autocast) if autocast else None
        with torch.autocast(input_ids.device.type, dtype=dtype, enabled=autocast is not None):
            loss = model(input_ids=input_ids, labels=input_ids).loss  # outputs dropped, as Trainer
        loss.backward()
        optimizer.step()

    step()
    params = list(model.parameters())
    full = all(p.requires_grad for p in params)
    frozen = [p for p in params if full or not p.requires_grad]
    parts = {
        "weights": _storages(t for p in frozen for t in _with_quant_state(p)),
        "lora": _storages(p for p in params if p.requires_grad and not full),
        "gradients": _storages(p.grad for p in params if p.grad is not None),
        "optimizer": _storages(
            v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)
        ),
    }
    alive = {k: v for part in parts.values() for k, v in part.items()}
    alive |= _storages([input_ids])
    with LiveTensors(alive, vocab=model.config.get_text_config().vocab_size) as live:
        step()
    new = {k: v for k, v in live.at_peak.items() if k not in alive}
    parts["logits"] = {k: nbytes for k, (nbytes, wide) in new.items() if wide}
    parts["activations"] = {k: nbytes for k, (nbytes, wide) in new.items() if not wide}
    at_peak = {k: nbytes for k, (nbytes, _) in live.at_peak.items()}
    return Breakdown(
        **{name: float(sum(at_peak.get(k, 0) for k in part)) for name, part in parts.items()}
    )
