"""Prompt, retrieve or fine-tune? A decision guide as a plain function: facts in, advice with reasons out.

The rules, in short:
- Always start from a prompt: it is the baseline every other approach must beat.
- Facts that change, or that live in your own documents, belong in retrieval (RAG). Fine-tuning
  does not reliably teach new facts, and what it does learn goes stale with the next update.
- Behaviour a prompt cannot hold (a format, a tone, a house style) and tight latency budgets
  (instructions and few-shot examples make every request longer) are what fine-tuning is for,
  given enough examples of the behaviour you want.
- The hardware decides how: LoRA when the 16-bit model fits, QLoRA when only 4-bit fits, and a
  smaller model when neither does. The memory estimate (`ftcourse.memory`) makes that call.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftcourse.errors import CourseError

# Below this many examples, fine-tuning learns the examples rather than the behaviour.
MIN_EXAMPLES = 100
# Where the article's "500-1,000 samples" sits: enough for a format or a tone, reliably.
GOOD_EXAMPLES = 500
# The setting the hardware check uses: a modest training run, gradient checkpointing on.
PLAN = dict(seq_len=1024, batch_size=1, gradient_checkpointing=True)
NAMES = {"lora": "LoRA", "qlora": "QLoRA"}
# Models tried for the hardware check, largest first (bundled configs, so this works offline).
MODELS = ("llama-3.1-8b", "qwen2.5-1.5b-instruct", "smollm2-360m-instruct")


@dataclass(frozen=True)
class Recommendation:
    """What to do (`approach`), how to fine-tune if at all (`method`, `model`), and why."""

    approach: str  # "prompting", "RAG", "fine-tuning" or "RAG + fine-tuning"
    method: str | None  # "lora" or "qlora" when fine-tuning is advised
    model: str | None  # the largest bundled model that fits the hardware for that method
    reasons: tuple[str, ...]

    def report(self) -> str:
        """The advice and its reasons as plain text."""
        how = f" with {NAMES[self.method]} on {self.model}" if self.method else ""
        return "\n".join(
            [f"Recommendation: {self.approach}{how}", *(f"- {r}" for r in self.reasons)]
        )

    def _repr_pretty_(self, p, cycle) -> None:  # how IPython and the widget form display it
        p.text(self.report())


def method_for(gpu_gb: float) -> tuple[str, str, float]:
    """The cheapest way to fine-tune the largest model that fits `gpu_gb`: (method, model, GB needed).

    LoRA on the 16-bit model is preferred (faster, no quantization error); QLoRA when only the 4-bit
    model fits. Without a GPU (0 GB) the answer is for a free Colab T4.
    """
    from ftcourse import memory

    budget = gpu_gb or memory.GPUS["T4 (15 GB)"]
    for model in MODELS:
        for method in ("lora", "qlora"):
            need = memory.estimate(model, method, **PLAN)
            if need.fits(budget):
                return method, model, need.total / memory.GB
    raise CourseError(
        f"Even {MODELS[-1]} in QLoRA needs more than {budget:g} GB. Use the course's cpu-tiny "
        "profile to learn, and a cloud GPU for real models."
    )


def recommend(
    needs_fresh_facts: bool = False,
    needs_consistent_format: bool = False,
    tight_latency: bool = False,
    examples: int = 0,
    gpu_gb: float = 0.0,
) -> Recommendation:
    """Advise prompting, RAG, fine-tuning or a mix, with reasons, from five facts about the task.

    `examples` counts the input/output pairs of the behaviour you want that you have (or can write);
    `gpu_gb` is your GPU's memory (0 for none).
    """
    if examples < 0 or gpu_gb < 0:
        raise CourseError(f"examples and gpu_gb cannot be negative (got {examples}, {gpu_gb}).")
    reasons = ["Start from a good prompt either way: it is the baseline the rest must beat."]
    parts = []
    if needs_fresh_facts:
        parts.append("RAG")
        reasons.append(
            "Facts that change or live in your documents belong in retrieval: fine-tuning does "
            "not reliably teach facts, and what it learns goes stale with the next update."
        )
    wants_tuning = needs_consistent_format or tight_latency
    if needs_consistent_format:
        reasons.append(
            "A format or tone the prompt cannot hold every time is behaviour, which is what "
            "fine-tuning teaches."
        )
    if tight_latency:
        reasons.append(
            "Under a tight latency budget, long instructions, few-shot examples and retrieved "
            "context cost time on every request; a fine-tuned model needs a short prompt."
        )
    method = model = None
    if wants_tuning and examples < MIN_EXAMPLES:
        reasons.append(
            f"With {examples} examples (under {MIN_EXAMPLES}), fine-tuning would memorise them: "
            "use them as few-shot examples in the prompt, and collect more."
        )
    elif wants_tuning:
        parts.append("fine-tuning")
        if examples < GOOD_EXAMPLES:
            reasons.append(
                f"{examples} examples can teach a narrow format; {GOOD_EXAMPLES}+ consistent, "
                "deduplicated ones make it reliable."
            )
        method, model, need = method_for(gpu_gb)
        where = f"your {gpu_gb:g} GB GPU" if gpu_gb else "a free Colab T4 (no GPU here)"
        reasons.append(
            f"On {where}, {NAMES[method]} of {model} needs about {need:.1f} GB "
            f"(sequences of {PLAN['seq_len']}, batch {PLAN['batch_size']}, gradient checkpointing)."
        )
    if not parts:
        parts.append("prompting")
        if not wants_tuning:
            reasons.append("Nothing here needs more than a prompt: no fresh facts, no hard format.")
    return Recommendation(" + ".join(parts), method, model, tuple(reasons))
