"""Notebook 04b's exercises (debugging a fine-tune): the kept checkpoint, the best epoch, early stopping."""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong

# A validation loss per epoch, as a run might log it: it falls, bottoms out, then rises.
EPOCH_LOSSES = [1.92, 1.41, 1.28, 1.31, 1.44]


@checker(
    "04b.1",
    "easy",
    f"the validation losses of five epochs were {EPOCH_LOSSES}. Set `answer` to the epoch (1-5) "
    "whose checkpoint `load_best_model_at_end=True` with metric_for_best_model='eval_loss' keeps.",
)
def _04b_1(answer):
    if answer == len(EPOCH_LOSSES):
        return wrong("That is the last epoch: the best checkpoint is the lowest validation loss.")
    if answer == EPOCH_LOSSES.index(min(EPOCH_LOSSES)):
        return wrong("Epochs count from 1 here: the first epoch's loss is EPOCH_LOSSES[0].")
    if answer != EPOCH_LOSSES.index(min(EPOCH_LOSSES)) + 1:
        return wrong("Look for the lowest validation loss, not the lowest training loss.")
    return CORRECT


def _history(evals: list[float], per_epoch: int = 20) -> list[dict]:
    """A `log_history` with training logs, one eval log per epoch and a final summary."""
    history = []
    for epoch, eval_loss in enumerate(evals, 1):
        step = epoch * per_epoch
        history.append({"loss": 2.0 / epoch, "step": step - per_epoch // 2, "epoch": epoch - 0.5})
        history.append({"eval_loss": eval_loss, "step": step, "epoch": float(epoch)})
    history.append({"train_loss": 0.9, "step": len(evals) * per_epoch, "epoch": float(len(evals))})
    return history


@checker(
    "04b.2",
    "medium",
    "write `answer(history)` returning the epoch (an int) with the lowest validation loss, from a "
    "`trainer.state.log_history` list (it holds training logs, eval logs with 'eval_loss' and "
    "'epoch', and a final summary).",
)
def _04b_2(answer):
    for evals in ([1.9, 1.4, 1.3, 1.35, 1.5], [2.0, 1.5, 1.2, 1.1, 1.0], [0.9, 1.0, 1.1]):
        history = _history(evals)
        expected = evals.index(min(evals)) + 1
        got = answer(history)
        if got == expected and isinstance(got, int):
            continue
        if got == min(evals):
            return wrong("Return the epoch, not the loss itself.")
        if isinstance(got, float) and got == float(expected):
            return wrong(f"Return an int: epoch {expected}, not {got}.")
        return wrong(
            f"for validation losses {evals} you returned {got!r}, expected {expected}: use only the "
            "entries that have 'eval_loss', and read their 'epoch'."
        )
    return CORRECT


def _early_stop(eval_losses: list[float], patience: int) -> int:
    """The epoch at which transformers' EarlyStoppingCallback stops (threshold 0)."""
    best, waited = float("inf"), 0
    for epoch, loss in enumerate(eval_losses, 1):
        if loss < best:
            best, waited = loss, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return len(eval_losses)


@checker(
    "04b.3",
    "hard",
    "write `answer(eval_losses, patience)` returning the epoch (1-based) after which "
    "`EarlyStoppingCallback(early_stopping_patience=patience)` stops training: it counts the "
    "evaluations in a row that do not improve on the best loss so far, and stops when the count "
    "reaches `patience`; if it never does, training runs to the last epoch.",
)
def _04b_3(answer):
    cases = [
        ([1.9, 1.4, 1.3, 1.35, 1.5, 1.6], 2),
        ([1.9, 1.4, 1.3, 1.35, 1.5, 1.6], 1),
        ([1.9, 1.4, 1.45, 1.3, 1.35, 1.4], 2),  # a worse epoch, then a new best: the count restarts
        ([2.0, 1.5, 1.2, 1.1], 2),  # never stops early
        ([1.0, 1.0, 1.0, 1.0], 2),  # equal is not better
    ]
    for losses, patience in cases:
        expected, got = _early_stop(losses, patience), answer(losses, patience)
        if got == expected:
            continue
        case = f"for {losses} with patience {patience} you returned {got!r}, expected {expected}."
        if got == losses.index(min(losses)) + 1:
            return wrong(f"{case} That is the best epoch; training stops `patience` epochs later.")
        if losses == [1.9, 1.4, 1.45, 1.3, 1.35, 1.4]:
            return wrong(f"{case} A new best loss resets the count of epochs without improvement.")
        if losses == [1.0, 1.0, 1.0, 1.0]:
            return wrong(f"{case} A loss equal to the best is no improvement: it counts.")
        return wrong(f"{case} Count epochs without a new best; stop when the count hits patience.")
    return CORRECT


EXERCISES = [_04b_1, _04b_2, _04b_3]
