"""Chat templates and loss masks: the text the model really sees, and which tokens it learns from.

SFT with `assistant_only_loss=True` trains only on the assistant's tokens. Those are found through
`{% generation %}` markers in the chat template; every assistant turn must end with the EOS token
inside them, or the fine-tuned model never learns to stop.
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


def loss_mask(
    tokenizer, messages: list[dict], chat_template: str | None = None
) -> tuple[list, list, str]:
    """Token ids, a 0/1 mask of the tokens that carry loss, and how the mask was found.

    With generation markers, every assistant turn carries loss (TRL's assistant_only_loss). Without
    them, only the final answer does: the tokens after the prompt, as TRL's prompt-completion does.
    """
    template = chat_template or tokenizer.chat_template
    if has_generation_markers(template):
        out = _apply(
            tokenizer,
            messages,
            chat_template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        return list(out["input_ids"]), list(out["assistant_masks"]), "assistant turns"
    full = _apply(tokenizer, messages, chat_template, tokenize=True, return_dict=True)["input_ids"]
    prompt = _apply(
        tokenizer,
        messages[:-1],
        chat_template,
        tokenize=True,
        return_dict=True,
        add_generation_prompt=True,
    )["input_ids"]
    if list(full[: len(prompt)]) != list(prompt):
        raise CourseError(
            "The prompt's tokens are not a prefix of the full conversation's, so "
            "the answer cannot be located. Check the chat template."
        )
    mask = [0] * len(prompt) + [1] * (len(full) - len(prompt))
    return list(full), mask, "final answer only (the template has no {% generation %} markers)"


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
    expected = sum(m["role"] == "assistant" for m in messages) if how == "assistant turns" else 1
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
        last = next((i for i in reversed(ids[start:end]) if tokenizer.decode([i]).strip()), None)
        if last != eos:
            seen = tokenizer.decode([last]) if last is not None else "nothing"
            raise CourseError(
                f"Answer {k} ends with {seen!r}, not the EOS token {tokenizer.eos_token!r}: a model "
                "trained on it never learns to stop. Put eos_token after the assistant's content, "
                "inside the template's generation block."
            )
    return len(spans)
