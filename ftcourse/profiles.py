"""Hardware profiles: one set of values per kind of machine, chosen automatically or by name."""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.paths import REPO_ROOT

# full: every weight trains; lora: an adapter on the base in its dtype; qlora: on the 4-bit base
METHODS = ("full", "lora", "qlora")
ADAPTER_METHODS = tuple(m for m in METHODS if m != "full")  # the methods that save an adapter


def check_method(method: str, methods: tuple[str, ...] = METHODS) -> str:
    """Refuse a training method the course does not know (or not among `methods`); return it."""
    if method not in methods:
        raise CourseError(f"Unknown method {method!r}: use one of {', '.join(methods)}.")
    return method


ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = ATTENTION + ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Profile:
    """Everything that changes between a laptop CPU, a free Colab T4 and a 24 GB GPU."""

    name: str
    summary: str
    model: str  # a folder inside the repository, or a Hugging Face Hub id
    compute_dtype: str  # "float32", "float16" or "bfloat16"
    load_in_4bit: bool
    max_length: int
    batch_size: int
    grad_accum: int
    max_steps: int  # per training run; -1 means "use num_train_epochs"
    num_train_epochs: float
    learning_rate: float
    task_learning_rates: tuple[tuple[str, float], ...] = ()  # (task, rate) where a task differs
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ATTENTION
    eval_samples: int = 200  # held-out examples scored per task
    # saves activation memory; recomputes each layer's forward pass in the backward pass (its cost in
    # time is not measured by the course)
    gradient_checkpointing: bool = True
    # Batches without pad tokens: the examples end to end, kept apart by their position ids
    # (measured on the CPU in docs/benchmarks.md, "Training speed"; not measured on a GPU)
    padding_free: bool = False
    needs_cuda: bool = False
    needs_bf16: bool = False
    min_gpu_gb: float = 0.0  # the smallest GPU the profile is chosen for automatically
    gpu_gb: float = 0.0  # the GPU its notebooks are planned to fit (ftcourse.ledger.Ledger checks)
    gated: bool = False  # the Hub asks you to accept a licence before downloading
    opt_in: bool = False  # never chosen automatically: only by name (FTCOURSE_PROFILE)
    architecture: str = ""  # the bundled config (data/architectures) of a Hub model, for estimates
    # The tokenizer's own template, unless it cannot mark the answers for assistant-only loss: then
    # the name of one of trl's training templates (trl/chat_templates/<name>.jinja), used throughout
    chat_template: str | None = None
    end_of_turn: str | None = None  # the token an answer ends with, when it is not the EOS token
    # how SFT finds the answers: "assistant", the template's generation markers (assistant_only_loss);
    # "completion", prompt/completion records for a template that cannot mark them (single-turn only)
    loss_on: str = "assistant"
    standin_for: str | None = None  # a CPU stand-in: the GPU profile whose code paths it runs
    notes: str = field(default="", compare=False)

    @property
    def is_local(self) -> bool:
        """True when the model ships with the course or is built by it (no download needed)."""
        return not _looks_like_hub_id(self.model)

    @property
    def is_standin(self) -> bool:
        """True for a CPU stand-in: a tiny random model of a GPU profile's family."""
        return self.standin_for is not None

    @property
    def gpu_path(self) -> bool:
        """True for a GPU profile and its CPU stand-in: both take the GPU's code paths."""
        return self.needs_cuda or self.is_standin

    @property
    def model_path(self) -> str:
        """The path or Hub id to pass to `from_pretrained`."""
        return str(REPO_ROOT / self.model) if self.is_local else self.model

    @property
    def torch_dtype(self):
        """The compute dtype as a torch dtype."""
        import torch

        return getattr(torch, self.compute_dtype)

    @property
    def device(self) -> str:
        """Where this profile's models run: "cuda" on a CUDA machine, else "cpu"."""
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def logging_steps(self) -> int:
        """How often training logs its loss: every 10 steps, or every step for budgets under 40."""
        return 1 if 0 < self.max_steps < 40 else 10

    @property
    def eval_strategy(self) -> str:
        """When training reports the validation loss: on a step budget "steps", else "epoch"."""
        return "steps" if self.max_steps > 0 else "epoch"

    @property
    def eval_steps(self) -> int | None:
        """The validation loss four times over a step budget (None for an epoch budget)."""
        return max(self.max_steps // 4, 1) if self.max_steps > 0 else None

    @property
    def warmup_steps(self) -> int:
        """Learning-rate warmup: 5% of a step budget (at least 1), or 10 steps for an epoch budget."""
        return max(self.max_steps // 20, 1) if self.max_steps > 0 else 10

    def learning_rate_for(self, task: str) -> float:
        """The learning rate for one task: its own where the profile names one, else the default."""
        return dict(self.task_learning_rates).get(task, self.learning_rate)

    def for_task(self, task: str) -> Profile:
        """This profile with the task's own learning rate as its learning rate."""
        return self.with_overrides(learning_rate=self.learning_rate_for(task))

    def with_overrides(self, **changes) -> Profile:
        """A copy of this profile with some values changed (for experiments and fast demos)."""
        return replace(self, **changes)


def same_model(a: str, b: str) -> bool:
    """Whether two model paths name one model: paths differ between machines, so by folder name."""
    return Path(a).name.lower() == Path(b).name.lower()


def base_of(config: dict) -> str:
    """The base model a saved adapter's (or model's) config names; "" when it names none."""
    return config.get("base_model_name_or_path") or config.get("_name_or_path") or ""


def other_base(config: dict, model_path: str) -> str | None:
    """The base `config` was trained on when it is not the model at `model_path`; else None."""
    made_for = base_of(config)
    if made_for and model_path and not same_model(made_for, model_path):
        return made_for
    return None


def _looks_like_hub_id(model: str) -> bool:
    return not model.startswith(("data/", "build/", "./", "/")) and model.count("/") == 1


# Why the T4 computes in fp32: a T4 (compute capability 7.5) has no bf16, and Qwen models, trained
# in bf16, are reported to overflow in fp16 (Qwen2.x: activations past fp16's 65,504, NaN logits,
# answers of "!!!!", QwenLM/Qwen3 issues #761 and #826; Qwen3 in fp16 is not measured by the course).
# fp32 compute keeps what QLoRA saves (4-bit weights) and costs speed: a T4 peaks at ~8 TFLOP/s in
# fp32 against ~65 in fp16 (an estimate; not measured).
T4_DTYPE_REASON = (
    "fp32 compute on 4-bit weights: a T4 has no bf16, and Qwen models (trained in bf16) are "
    "reported to overflow in fp16 (NaN logits, '!!!!' answers); fp32 is safe and slower"
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            name="cpu-tiny",
            summary="offline default: the course's own ~4M-parameter Llama, fp32 on any CPU",
            model="data/base-model",
            compute_dtype="float32",  # native on every CPU; bf16 only with AVX512-BF16 or AMX
            load_in_4bit=True,
            max_length=256,
            batch_size=8,
            grad_accum=1,
            max_steps=300,
            num_train_epochs=1,
            # measured on 100 held-out requests (docs/benchmarks.md): polite, which mostly copies,
            # keeps its copying at a low rate (82% at 5e-4, 62% at 2e-3); bugfix has ~100 fixes to
            # memorise and needs a higher one (58% at 2e-3, 48% at 1e-3)
            learning_rate=5e-4,
            task_learning_rates=(("bugfix", 2e-3),),
            lora_dropout=0.0,  # dropout's random masks took 20% of each CPU step; 300 steps overfit little
            target_modules=ALL_LINEAR,
            eval_samples=100,
            gradient_checkpointing=False,  # a 4M model's activations are tiny: pure slowdown here
            padding_free=True,
            notes="Step budgets are small: the README gives each notebook's measured time on 2 cores.",
        ),
        Profile(
            name="t4",
            summary="free Colab T4 (~15 GB, no bf16): Qwen3-1.7B in 4-bit, fp32 compute",
            model="Qwen/Qwen3-1.7B",
            compute_dtype="float32",
            load_in_4bit=True,
            max_length=1024,
            batch_size=4,
            grad_accum=4,
            max_steps=200,
            num_train_epochs=1,
            learning_rate=2e-4,
            needs_cuda=True,
            min_gpu_gb=12.0,
            gpu_gb=15.0,
            architecture="qwen3-1.7b",
            notes=T4_DTYPE_REASON,
        ),
        Profile(
            name="gpu-24gb",
            summary="24 GB+ GPU with bf16: Qwen3-8B in 4-bit (ungated: no account needed)",
            model="Qwen/Qwen3-8B",
            compute_dtype="bfloat16",
            load_in_4bit=True,
            max_length=2048,
            # the article's effective batch of 16 as 2 x 8: with Qwen's 152k-token vocabulary the
            # logits of 4 x 2,048 tokens alone take ~15 GB (notebook 01's estimate)
            batch_size=2,
            grad_accum=8,
            max_steps=-1,
            num_train_epochs=3,
            learning_rate=2e-4,
            needs_cuda=True,
            needs_bf16=True,
            min_gpu_gb=22.0,
            gpu_gb=24.0,
            architecture="qwen3-8b",
        ),
        Profile(
            name="llama-3.1-8b",
            summary="opt-in: the article's own Llama-3.1-8B base model, QLoRA in bf16 on 24 GB+",
            model="meta-llama/Llama-3.1-8B",
            compute_dtype="bfloat16",
            load_in_4bit=True,
            max_length=2048,
            batch_size=2,  # the article's effective 16 as 2 x 8: at 4 x 2,048 the estimate is ~22 GB
            grad_accum=8,
            max_steps=-1,
            num_train_epochs=3,
            learning_rate=2e-4,
            needs_cuda=True,
            needs_bf16=True,
            min_gpu_gb=22.0,
            gpu_gb=24.0,
            gated=True,
            opt_in=True,
            architecture="llama-3.1-8b",
            # the base model's tokenizer ships Llama 3.1's chat template, which has no
            # {% generation %} markers and which trl cannot patch (it raises); Llama 3's training
            # template renders the same turns and ends each answer with <|eot_id|>
            chat_template="llama3_training",
            end_of_turn="<|eot_id|>",  # the base model's EOS is <|end_of_text|>
            notes=(
                "Gated: accept the licence on the model's Hub page, then `hf auth login`. "
                "Choose it with FTCOURSE_PROFILE=llama-3.1-8b."
            ),
        ),
    ]
}


def _standin(name: str) -> Profile:
    """A GPU profile's CPU stand-in: its family, template, dtype and adapters on a tiny random model.

    The model is built by `ftcourse.standins` into build/standins/ (no download). The budgets are
    tiny and the learning rate high, so that a few steps move the adapters measurably: a stand-in
    checks the code paths (masks, templates, saving, merging, switching, freeing), not accuracy.
    """
    gpu = PROFILES[name]
    return gpu.with_overrides(
        name=f"{name}-standin",
        summary=f"CPU stand-in for {name}: a tiny random {gpu.architecture}, same code paths",
        model=f"build/standins/{gpu.architecture}",
        max_length=256,
        batch_size=2,
        grad_accum=2,
        max_steps=4,
        num_train_epochs=1,
        learning_rate=1e-2,
        eval_samples=4,
        needs_cuda=False,
        needs_bf16=False,
        min_gpu_gb=0.0,
        gated=False,
        opt_in=True,
        standin_for=name,
        notes=f"Runs in CI; stands in for {gpu.model}.",
    )


PROFILES |= {p.name: p for p in map(_standin, ("t4", "gpu-24gb", "llama-3.1-8b"))}


def planned_for(profile: Profile) -> Profile:
    """The profile whose GPU a profile's memory is planned for: a stand-in's GPU profile, else itself."""
    return PROFILES[profile.standin_for] if profile.standin_for else profile


@dataclass(frozen=True)
class Hardware:
    """What the training device offers."""

    cuda: bool
    gpu_name: str
    gpu_memory_gb: float
    bf16: bool  # native bf16 (compute capability 8.0+ on NVIDIA), not emulation
    cpu_count: int
    compute_capability: tuple[int, int] | None = None

    @classmethod
    def detect(cls) -> Hardware:
        """Read the hardware of this machine."""
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            # FTCOURSE_NO_BF16=1 makes a bf16 GPU act as a T4 does (the device check's T4 path)
            refuse = os.environ.get("FTCOURSE_NO_BF16", "0") not in ("", "0")
            capability = torch.cuda.get_device_capability(0)
            return cls(
                cuda=True,
                gpu_name=props.name,
                gpu_memory_gb=props.total_memory / 1e9,
                # `torch.cuda.is_bf16_supported()` counts emulation and says yes on a T4 (7.5):
                # there bf16 runs, slowly. What matters is hardware bf16, from Ampere (8.0) on.
                bf16=capability >= (8, 0) and not refuse,
                cpu_count=os.cpu_count() or 1,
                compute_capability=tuple(capability),
            )
        return cls(False, "", 0.0, False, os.cpu_count() or 1)


def fits(profile: Profile, hw: Hardware) -> bool:
    """Whether a profile can run on this hardware."""
    if profile.needs_cuda and not hw.cuda:
        return False
    if profile.needs_bf16 and not hw.bf16:
        return False
    return hw.gpu_memory_gb >= profile.min_gpu_gb or not profile.needs_cuda


def auto_profile(hw: Hardware) -> Profile:
    """The largest profile that fits the hardware (opt-in profiles and stand-ins only by name)."""
    for name in ("gpu-24gb", "t4", "cpu-tiny"):
        if fits(PROFILES[name], hw):
            return PROFILES[name]
    return PROFILES["cpu-tiny"]


def get_profile(name: str) -> Profile:
    """Look a profile up by name, with an error that lists the valid ones."""
    if name not in PROFILES:
        valid = ", ".join(PROFILES)
        raise CourseError(
            f"Unknown profile {name!r}. Valid profiles: {valid}. "
            "Set FTCOURSE_PROFILE to one of them, or unset it for automatic choice."
        )
    return PROFILES[name]


def choose_profile(name: str | None = None, hw: Hardware | None = None) -> Profile:
    """Pick a profile: `name`, else $FTCOURSE_PROFILE, else the one the hardware fits.

    For a model of your own (--model, $FTCOURSE_MODEL) see `ftcourse.ownmodel.profile_for`.
    """
    hw = hw or Hardware.detect()
    name = name or os.environ.get("FTCOURSE_PROFILE") or None
    return with_env_settings(auto_profile(hw) if name is None else get_profile(name), hw, name)


def with_env_settings(profile: Profile, hw: Hardware, name: str | None = None) -> Profile:
    """The profile with $FTCOURSE_FAST and $FTCOURSE_DTYPE applied (and a warning if it won't fit)."""
    if os.environ.get("FTCOURSE_FAST", "0") not in ("", "0"):
        # live demos: score fewer held-out examples; training budgets stay as they are
        profile = profile.with_overrides(eval_samples=min(profile.eval_samples, 30))
    dtype = os.environ.get("FTCOURSE_DTYPE")
    if dtype:  # e.g. FTCOURSE_DTYPE=float16 on a T4: faster than the profile's fp32, at your risk
        if dtype not in ("float32", "float16", "bfloat16"):
            raise CourseError(f"FTCOURSE_DTYPE={dtype!r}: use float32, float16 or bfloat16.")
        if dtype == "bfloat16" and hw.cuda and not hw.bf16:
            raise CourseError(
                "FTCOURSE_DTYPE=bfloat16, but this GPU has no bf16 (compute capability "
                f"{hw.compute_capability}): use float16 or float32."
            )
        profile = profile.with_overrides(compute_dtype=dtype)
    if name is not None and not fits(profile, hw):
        warnings.warn(
            f"Profile {name!r} does not fit this hardware ({_hardware_text(hw)}); "
            f"{auto_profile(hw).name!r} does.",
            stacklevel=3,
        )
    return profile


def _hardware_text(hw: Hardware) -> str:
    return f"{hw.gpu_name or 'no CUDA GPU'}, bf16={'yes' if hw.bf16 else 'no'}"


def ensure_fits(profile: Profile, hw: Hardware | None = None) -> Profile:
    """Refuse, with what to do, a profile this machine cannot run (e.g. a GPU profile on a CPU)."""
    hw = hw or Hardware.detect()
    if fits(profile, hw):
        return profile
    extras = ["bf16 (compute capability 8.0 or newer)"] if profile.needs_bf16 else []
    extras += [f"{profile.min_gpu_gb:g} GB of memory"] if profile.min_gpu_gb else []
    needs = "a CUDA GPU" + (f" with {' and '.join(extras)}" if extras else "")
    standin = f"{profile.name}-standin"
    also = f", or {standin!r} to run its code paths on a CPU" if standin in PROFILES else ""
    raise CourseError(
        f"Profile {profile.name!r} does not fit this machine ({_hardware_text(hw)}): it needs "
        f"{needs}. Use {auto_profile(hw).name!r}, the automatic choice here (name no profile "
        f"and unset FTCOURSE_PROFILE){also}."
    )


def is_offline() -> bool:
    """True when the Hub cannot be reached (HF_HUB_OFFLINE=1, or no network within 2 s)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
    except OSError:
        return True
    return False


def in_hub_cache(model_id: str) -> bool:
    """True when a Hub model's config is already in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "config.json"), str)


def ensure_available(profile: Profile) -> Profile:
    """Fail at once, with what to do, when the profile's model cannot be loaded here.

    A stand-in's model is built here on first use (`ftcourse.standins`), offline.
    """
    if profile.standin_for:  # a GPU profile's stand-in (a model's own stand-in names its folder)
        from ftcourse.standins import ensure_standin

        ensure_standin(profile.architecture)
        return profile
    if profile.is_local:
        if not (Path(profile.model_path) / "config.json").is_file():
            raise CourseError(
                f"The course's base model is missing from {profile.model_path}. "
                "Run `python scripts/make_base_model.py` or re-clone the repository."
            )
        return profile
    if in_hub_cache(profile.model) or not is_offline():
        return profile
    raise CourseError(
        f"Profile {profile.name!r} needs {profile.model} from the Hugging Face Hub, but this "
        "machine is offline (HF_HUB_OFFLINE=1 or no network) and the model is not cached. "
        "Use FTCOURSE_PROFILE=cpu-tiny to run offline, or download the model once while online."
        + (f" It is gated: {profile.notes}" if profile.gated else "")
    )
