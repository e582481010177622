"""Chat templates and loss masks: the text the model really sees, and which tokens it learns from.

SFT with `assistant_only_loss=True` trains only on the assistant's tokens. Those are found through
`{% generation %}` markers in the chat template (trl swaps in a marked version of the templates it
knows); every assistant turn must end with the EOS token inside them, or the fine-tuned model never
learns to stop.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ftcourse.errors import CourseError

LOSS_OPEN, LOSS_CLOSE = "⟦", "⟧"  # marks around loss-carrying tokens in plain text


def _apply(tokenizer, messages: list[dict], chat_template: str | None = None, **kwargs):
    """apply_chat_template, with a course error that explains a failing template."""
    try:
        return tokenizer.apply_chat_template(messages, chat_template=chat_template, **kwargs)
    except Exception as err:  # jinja2 errors and template exceptions carry the real cause
        roles = [m.get("role", m.get("from")) for m in messages]
        hint = ""
        if any(r in ("human", "gpt") for r in roles) or any("from" in m for m in messages):
            hint = (
                " These look like ShareGPT turns (human/gpt, from/value): convert them with "
                "ftcourse.data.to_messages first."
            )
        raise CourseError(f"The chat template failed on roles {roles}: {err}.{hint}") from None


def render(
    tokenizer,
    messages: list[dict],
    add_generation_prompt: bool = False,
    chat_template: str | None = None,
) -> str:
    """The conversation as the text the model is trained on (or prompted with)."""
    return _apply(
        tokenizer,
        messages,
        chat_template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def has_generation_markers(template: str | None) -> bool:
    """True when the template marks assistant text with {% generation %} ... {% endgeneration %}."""
    return bool(template) and re.search(r"{%-?\s*generation\s*-?%}", template) is not None


def training_template(tokenizer, chat_template: str | None = None) -> tuple[str, str]:
    """The template `SFTTrainer(assistant_only_loss=True)` trains with, and where it came from.

    A template with generation markers is used as it is. For one without, trl 1.x swaps in its own
    training variant when it recognises the template (Qwen2.5, Llama 3, Gemma, Phi-3, ...: see
    `trl.chat_template_utils.get_training_chat_template`) and raises for any other (Llama 3.1's
    included); this does the same, with an error that says what to do.
    """
    from trl.chat_template_utils import get_training_chat_template

    template = chat_template or tokenizer.chat_template
    if has_generation_markers(template):
        return template, "the template's own generation markers"
    saved, tokenizer.chat_template = tokenizer.chat_template, template
    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError:
        raise CourseError(
            "This chat template has no {% generation %} markers and trl has no training version "
            "of it, so SFTTrainer(assistant_only_loss=True) raises 'The chat template is not "
            "training-compatible'. Use a template with markers (a profile's `chat_template`, e.g. "
            "trl's 'llama3_training' for Llama 3.1), or train on prompt/completion data instead."
        ) from None
    finally:
        tokenizer.chat_template = saved
    return patched or template, "trl's training version of this template"


COMPLETION_FORM = (
    "prompt/completion records: the template has no generation markers and trl ships no training "
    "version of it, so the loss is on what follows the prompt (single-turn data only)"
)


def training_form(tokenizer) -> tuple[str, str]:
    """How SFT finds the answers with this tokenizer's template: ("assistant" or "completion", how).

    "assistant": `assistant_only_loss=True` through generation markers (the template's own, or those
    of the training version trl ships for it). "completion": trl's prompt/completion form, which
    needs no markers: the prompt rendered with the generation prompt, the answer after it.
    """
    try:
        return "assistant", training_template(tokenizer)[1]
    except CourseError:
        return "completion", COMPLETION_FORM


def as_prompt_completion(
    records: list[dict], source: str = "the data", numbers: list[int] | None = None
) -> list[dict]:
    """Single-turn chats as trl's conversational prompt/completion records; multi-turn is refused.

    `numbers`: each record's number in its file, for the error (default: its position).
    """
    out = []
    for k, record in enumerate(records):
        messages = record["messages"]
        answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if answers != [len(messages) - 1]:
            raise CourseError(
                f"{source}, record {numbers[k] if numbers else k}: {len(answers)} assistant turns. This model's chat template "
                "cannot mark answers (no {% generation %} markers, and trl ships no training "
                "version of it), so only single-turn chats train with the loss on the answer: "
                "split each chat into one record per answer (its history as the prompt), or "
                "choose a model whose template trl can train (the README lists them)."
            )
        out.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return out


def end_of_turn(tokenizer) -> str:
    """The special token the template ends an answer with (Llama 3's <|eot_id|>, Gemma's <end_of_turn>)."""
    answer = "Zq7Zq7"  # a marker no template writes
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": answer}]
    text = render(tokenizer, messages)
    after = text[text.rindex(answer) + len(answer) :]
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    found = next((i for i in ids if i in special), None)
    if found is None:
        raise CourseError(
            f"The chat template ends an answer with {after!r}, which holds no special token: a "
            "model trained on it never learns to stop. Use a model whose template closes each "
            "assistant turn with an end-of-turn token."
        )
    return tokenizer.convert_ids_to_tokens(found)


def trl_template(name: str) -> str:
    """A chat template trl ships (trl/chat_templates/<name>.jinja): originals and training versions."""
    from pathlib import Path

    import trl

    path = Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja"
    if not path.is_file():
        raise CourseError(
            f"trl {trl.__version__} ships no chat template named {name!r} ({path}). "
            "Install the trl version in constraints.txt."
        )
    return path.read_text(encoding="utf-8")


def prepare_tokenizer(tokenizer, profile):
    """Set what a profile's tokenizer needs for training and generation; returns the tokenizer.

    A pad token where there is none (EOS, safe with attention masks: Llama 3 ships none), the
    profile's training chat template where trl cannot patch the tokenizer's own, and the profile's
    end-of-turn token as EOS where a base model's EOS is another token (Llama 3.1: answers end with
    <|eot_id|>, the text with <|end_of_text|>). Notebook 04 spells these lines out.
    """
    if tokenizer.pad_token is None:  # before EOS changes: pad stays the end-of-text token
        tokenizer.pad_token = tokenizer.eos_token
    if profile.chat_template:
        tokenizer.chat_template = trl_template(profile.chat_template)
    if profile.end_of_turn:
        tokenizer.eos_token = profile.end_of_turn
    return tokenizer


def loss_mask(
    tokenizer, messages: list[dict], chat_template: str | None = None
) -> tuple[list, list, str]:
    """Token ids, a 0/1 mask of the tokens that carry loss, and how the mask was found.

    Every assistant turn carries loss, as in TRL's assistant_only_loss: through the template's
    generation markers, or through the training template trl swaps in for a template it knows.
    """
    template, how = training_template(tokenizer, chat_template)
    out = _apply(
        tokenizer,
        messages,
        template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    return list(out["input_ids"]), list(out["assistant_masks"]), f"assistant turns, {how}"


@dataclass(repr=False)
class LossMaskView:
    """Tokens with their loss mask; prints with ⟦marks⟧ and shows colours in Jupyter."""

    pieces: list[str]
    mask: list[int]
    special: list[bool]
    how: str

    @property
    def n_loss(self) -> int:
        """How many tokens carry loss."""
        return sum(self.mask)

    def summary(self) -> str:
        """One line: how many tokens carry loss, and how the mask was found."""
        return f"{self.n_loss} of {len(self.mask)} tokens carry loss ({self.how})"

    def __str__(self) -> str:
        out, inside = [], False
        for piece, m in zip(self.pieces, self.mask, strict=True):
            if m != inside:
                out.append(LOSS_OPEN if m else LOSS_CLOSE)
                inside = bool(m)
            out.append(piece)
        out.append(LOSS_CLOSE if inside else "")
        return f"{''.join(out)}\n-- {self.summary()}; {LOSS_OPEN}...{LOSS_CLOSE} marks them"

    def __repr__(self) -> str:  # what a console shows for a bare `view`
        return str(self)

    def _repr_html_(self) -> str:
        spans = []
        for piece, m, sp in zip(self.pieces, self.mask, self.special, strict=True):
            style = "background:#b7f0b1;" if m else "color:#777;"
            style += "font-weight:bold;" if sp else ""
            text = html.escape(piece).replace("\n", "↵\n")
            spans.append(f'<span style="{style}border-right:1px solid #ddd">{text}</span>')
        legend = (
            f"<div><span style='background:#b7f0b1'>green</span>: {self.summary()}; "
            "grey: context only; bold: special tokens</div>"
        )
        return f"<pre style='white-space:pre-wrap'>{''.join(spans)}</pre>{legend}"


def loss_mask_view(
    tokenizer, messages: list[dict], chat_template: str | None = None
) -> LossMaskView:
    """Render `messages` and show which tokens carry loss (print it, or display it in Jupyter)."""
    ids, mask, how = loss_mask(tokenizer, messages, chat_template)
    specials = set(tokenizer.all_special_ids)
    pieces = [tokenizer.decode([i]) for i in ids]
    return LossMaskView(pieces, mask, [i in specials for i in ids], how)


def _spans(mask: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of 1s in the mask."""
    edges = [0, *mask, 0]
    starts = [i for i in range(len(mask)) if edges[i + 1] and not edges[i]]
    ends = [i for i in range(1, len(mask) + 1) if edges[i] and not edges[i + 1]]
    return list(zip(starts, ends, strict=True))


def check_eos(tokenizer, messages: list[dict], chat_template: str | None = None) -> int:
    """Check that every loss-carrying answer ends with EOS; return how many answers were checked."""
    ids, mask, how = loss_mask(tokenizer, messages, chat_template)
    expected = sum(m["role"] == "assistant" for m in messages)
    spans = _spans(mask)
    if expected == 0:
        roles = [m["role"] for m in messages]
        raise CourseError(
            f"No turn has the role 'assistant' (roles: {roles}), so no token carries "
            "loss and the model learns nothing. Map ShareGPT roles with to_messages."
        )
    if len(spans) < expected:
        raise CourseError(
            f"Only {len(spans)} of {expected} assistant turns carry loss ({how}): "
            "check the template's generation markers."
        )
    eos = tokenizer.eos_token_id
    for k, (start, end) in enumerate(spans):
        last = last_token(tokenizer, ids[start:end])
        if last != eos:
            seen = tokenizer.decode([last]) if last is not None else "nothing"
            raise CourseError(
                f"Answer {k} ends with {seen!r}, not the EOS token {tokenizer.eos_token!r}: a model "
                "trained on it never learns to stop. Put eos_token after the assistant's content, "
                "inside the template's generation block."
            )
    return len(spans)


def last_token(tokenizer, ids) -> int | None:
    """The last token id that is not whitespace (Qwen's answers end with "<|im_end|>" and a newline)."""
    ids = [int(i) for i in ids]
    return next((i for i in reversed(ids) if tokenizer.decode([i]).strip()), None)
