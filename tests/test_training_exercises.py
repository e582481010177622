"""The exercises that train (04.3, 04b.2): a real short run feeds its checker, and the EOS measure.

The hint branches are tested with fabricated histories and measurements in test_exercise_hints.py;
here the real objects go through: a trainer's log history, the course model and its template.
"""

import math

import pytest
import torch

from ftcourse.exercises import check
from ftcourse.exercises.nb04 import HANDED_OVER, train_recipe
from ftcourse.exercises.nb04b import eos_after_answer, eos_outside_template
from ftcourse.tasks import load_task

# peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`; the warning is theirs.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")


def test_a_real_run_history_reaches_the_04_3_checker(tmp_path):
    """Eight steps at the profile's rate: the history carries what the checker reads (the
    validation loss, the logged rate), so the verdict is about the settings, not the format."""
    answer = HANDED_OVER.with_overrides(learning_rate=5e-4, max_steps=8)
    _, _, history = train_recipe(answer, tmp_path)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    assert len(evals) == 4 and all(map(math.isfinite, evals)), history
    fb = check("04.3", answer, history)
    assert fb.status == "wrong" and "change one setting" in fb.message, fb.message


def test_eos_after_answer_is_the_templates_eos_probability():
    """The prompt plus the answer, tokenized apart, are the tokens the template renders: the EOS
    probability equals exp(-loss) at the template's EOS position."""
    from ftcourse.trainer import load_model

    model, tokenizer = load_model(HANDED_OVER, "qlora")
    record = load_task("polite", "test")[0]
    measured = eos_after_answer(model, tokenizer, [record])
    ids = tokenizer.apply_chat_template(record["messages"], return_dict=True)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids[:-1]])).logits[0, -1].float()
    assert measured == pytest.approx(logits.softmax(-1)[ids[-1]].item(), rel=1e-4)


def test_the_handed_over_template_differs_only_in_where_the_eos_sits():
    from ftcourse.paths import BASE_MODEL_DIR

    own = (BASE_MODEL_DIR / "chat_template.jinja").read_text()
    edited = eos_outside_template()
    assert edited != own
    moved_back = edited.replace(
        "{{ message['content'] }}{% endgeneration %}{{ eos_token }}",
        "{{ message['content'] + eos_token }}{% endgeneration %}",
    )
    assert moved_back == own
