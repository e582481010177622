"""Hardware profiles: one set of values per kind of machine, chosen automatically or by name."""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.paths import REPO_ROOT

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
    gradient_checkpointing: bool = True  # saves activation memory on GPUs, costs ~25% speed
    needs_cuda: bool = False
    needs_bf16: bool = False
    min_gpu_gb: float = 0.0
    gated: bool = False  # the Hub asks you to accept a licence before downloading
    notes: str = field(default="", compare=False)

    @property
    def is_local(self) -> bool:
        """True when the model ships with the course (no download needed)."""
        return not _looks_like_hub_id(self.model)

    @property
    def model_path(self) -> str:
        """The path or Hub id to pass to `from_pretrained`."""
        return str(REPO_ROOT / self.model) if self.is_local else self.model

    @property
    def torch_dtype(self):
        """The compute dtype as a torch dtype."""
        import torch

        return getattr(torch, self.compute_dtype)

    def learning_rate_for(self, task: str) -> float:
        """The learning rate for one task: its own where the profile names one, else the default."""
        return dict(self.task_learning_rates).get(task, self.learning_rate)

    def for_task(self, task: str) -> Profile:
        """This profile with the task's own learning rate as its learning rate."""
        return self.with_overrides(learning_rate=self.learning_rate_for(task))

    def with_overrides(self, **changes) -> Profile:
        """A copy of this profile with some values changed (for experiments and fast demos)."""
        return replace(self, **changes)


def _looks_like_hub_id(model: str) -> bool:
    return not model.startswith(("data/", "./", "/")) and model.count("/") == 1


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            name="cpu-tiny",
            summary="offline default: the course's own ~4M-parameter Llama, fp32 on any CPU",
            model="data/base-model",
            compute_dtype="float32",  # CPUs without native bf16 run it 5-8x slower than fp32
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
            notes="Step budgets are small so the whole course runs in ~10 minutes on 2 cores.",
        ),
        Profile(
            name="t4",
            summary="free Colab T4 (~15 GB, fp16 only): Qwen2.5-1.5B-Instruct in 4-bit",
            model="Qwen/Qwen2.5-1.5B-Instruct",
            compute_dtype="float16",  # T4 (compute capability 7.5) has no bf16
            load_in_4bit=True,
            max_length=1024,
            batch_size=4,
            grad_accum=4,
            max_steps=200,
            num_train_epochs=1,
            learning_rate=2e-4,
            needs_cuda=True,
            min_gpu_gb=12.0,
        ),
        Profile(
            name="gpu-24gb",
            summary="24 GB+ GPU with bf16: the article's Llama-3.1-8B QLoRA recipe",
            model="meta-llama/Llama-3.1-8B",
            compute_dtype="bfloat16",
            load_in_4bit=True,
            max_length=2048,
            batch_size=4,
            grad_accum=4,
            max_steps=-1,
            num_train_epochs=3,
            learning_rate=2e-4,
            needs_cuda=True,
            needs_bf16=True,
            min_gpu_gb=22.0,
            gated=True,
            notes="Accept the licence on the model's Hub page and run `hf auth login` first.",
        ),
    ]
}


@dataclass(frozen=True)
class Hardware:
    """What the training device offers."""

    cuda: bool
    gpu_name: str
    gpu_memory_gb: float
    bf16: bool
    cpu_count: int

    @classmethod
    def detect(cls) -> Hardware:
        """Read the hardware of this machine."""
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return cls(
                cuda=True,
                gpu_name=props.name,
                gpu_memory_gb=props.total_memory / 1e9,
                bf16=torch.cuda.is_bf16_supported(),
                cpu_count=os.cpu_count() or 1,
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
    """The largest profile that fits the hardware."""
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
    """Pick a profile: `name`, else $FTCOURSE_PROFILE, else the one the hardware fits."""
    hw = hw or Hardware.detect()
    name = name or os.environ.get("FTCOURSE_PROFILE") or None
    profile = auto_profile(hw) if name is None else get_profile(name)
    if os.environ.get("FTCOURSE_FAST", "0") not in ("", "0"):
        # live demos: score fewer held-out examples; training budgets stay as they are
        profile = profile.with_overrides(eval_samples=min(profile.eval_samples, 30))
    if name is not None and not fits(profile, hw):
        warnings.warn(
            f"Profile {name!r} does not fit this hardware "
            f"({hw.gpu_name or 'no CUDA GPU'}, bf16={'yes' if hw.bf16 else 'no'}); "
            f"{auto_profile(hw).name!r} does.",
            stacklevel=2,
        )
    return profile


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
    """Fail at once, with what to do, when the profile's model cannot be loaded here."""
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
    )
