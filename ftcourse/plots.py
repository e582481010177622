"""Plotting helpers: the course's figure style and the charts more than one notebook draws.

Helpers for a single lesson live here too, so notebooks stay about the lesson, not about matplotlib.
"""

from __future__ import annotations


def style() -> None:
    """Apply the course's matplotlib defaults (called explicitly, never at import)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.figsize": (7, 4),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


# ---------------------------------------------------------------- 03 · LoRA maths


def low_rank_spectrum(singular_values: dict, errors: dict, mark_rank: int | None = None):
    """Left: singular values (relative to the largest). Right: best rank-k error against k."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, s in singular_values.items():
        s = s.detach().cpu()
        left.semilogy(range(1, len(s) + 1), s / s[0], label=label)
    left.set(xlabel="index i", ylabel="s_i / s_1 (log scale)", title="Singular values")
    for label, err in errors.items():
        right.plot(range(len(err)), err.detach().cpu(), label=label)
    if mark_rank is not None:
        right.axvline(mark_rank, ls=":", c="grey", label=f"r = {mark_rank}")
    right.set(xlabel="rank k", ylabel="relative error ||ΔW - ΔW_k|| / ||ΔW||", ylim=(0, 1.02))
    right.set_title("Best rank-k approximation")
    left.legend()
    right.legend()
    fig.tight_layout()
    return fig


def _plain_log_ticks(ax, ranks: list[int]) -> None:
    """Log-log axes labelled with the ranks themselves and plain numbers, no minor-tick clutter."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.minorticks_off()
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def adapter_sizes(sizes: dict, band: tuple[float, float] = (10, 100), highlight=None):
    """Adapter size (MB) against rank: `sizes` maps (model, target set) to (ranks, MB).

    One colour per model, one line style per target set; `band` shades a size range and
    `highlight` = (rank, MB, text) marks one point.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.axhspan(*band, color="tab:green", alpha=0.08, label=f"{band[0]:g}-{band[1]:g} MB")
    models = list(dict.fromkeys(model for model, _ in sizes))
    target_sets = list(dict.fromkeys(targets for _, targets in sizes))
    for (model, targets), (ranks, mb) in sizes.items():
        style = ["-", "--", ":", "-."][target_sets.index(targets) % 4]
        color = f"C{models.index(model)}"
        ax.loglog(ranks, mb, style, color=color, marker="o", label=f"{model} · {targets}")
    if highlight is not None:
        rank, mb, text = highlight
        ax.plot([rank], [mb], marker="*", ms=16, color="black", ls="none", label=text)
    _plain_log_ticks(ax, ranks)
    ax.set(xlabel="rank r", ylabel="adapter size (MB, log scale)", title="LoRA adapter size")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def scaling_vs_rank(ranks: list[int], curves: dict):
    """How big the LoRA update is for each rank, under different alpha rules (log-log)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    for label, values in curves.items():
        ax.loglog(ranks, values, marker="o", label=label)
    _plain_log_ticks(ax, ranks)
    ax.set(xlabel="rank r", ylabel="||ΔW x|| / ||x|| (log scale)", title="Size of the LoRA update")
    ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 02 · Data


def token_length_hist(before: list[int], after: list[int], bounds=None, unit: str = "answer"):
    """Token lengths before and after cleaning, log-scaled counts, with the kept range shaded."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    bins = range(0, max(before) + 10, 5)
    ax.hist(before, bins=bins, color="tab:red", alpha=0.5, label=f"before ({len(before)})")
    ax.hist(after, bins=bins, color="tab:blue", alpha=0.7, label=f"after ({len(after)})")
    if bounds:
        ax.axvspan(*bounds, color="tab:green", alpha=0.1, label="kept range (median / 4 to x 4)")
    ax.set(xlabel=f"tokens per {unit}", ylabel="records (log scale)", yscale="log")
    ax.set_title("Token lengths before and after the checklist")
    ax.legend()
    return fig


def loss_curves(histories: dict, title: str = "training loss"):
    """Train (and eval, when logged) loss against step, one line per run, from `trainer.state.log_history`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    for label, history in histories.items():
        train = [(h["step"], h["loss"]) for h in history if "loss" in h]
        evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
        line = ax.plot(*zip(*train), label=f"{label} (train)")[0] if train else None
        if evals:
            color = line.get_color() if line else None
            ax.plot(*zip(*evals), "o--", color=color, label=f"{label} (validation)")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy loss", title=title)
    ax.legend()
    return fig


def epoch_curves(
    rows: list[dict], best: int | None = None, title: str = "loss and accuracy per epoch"
):
    """Per epoch: training and validation loss (left), held-out accuracy (right); `best` marked.

    `rows` are dicts with `epoch`, `train_loss`, `eval_loss` and `accuracy` (0-1).
    """
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, [r["train_loss"] for r in rows], "o-", label="training")
    left.plot(epochs, [r["eval_loss"] for r in rows], "o--", label="validation")
    left.set(xlabel="epoch", ylabel="cross-entropy loss", xticks=epochs)
    right.plot(epochs, [100 * r["accuracy"] for r in rows], "o-", color="C2")
    right.set(xlabel="epoch", ylabel="held-out accuracy (%)", ylim=(0, 105), xticks=epochs)
    for ax in (left, right):
        if best is not None:
            ax.axvline(best, color="grey", ls=":", label=f"kept: epoch {best}")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_bars(
    rows: list[tuple[str, str, float]], title: str = "held-out accuracy", target=None
):
    """Grouped bars: one group per task, one bar per model; rows are (task, model, accuracy)."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r[0] for r in rows))
    models = list(dict.fromkeys(r[1] for r in rows))
    width = 0.8 / len(models)
    fig, ax = plt.subplots()
    for j, model in enumerate(models):
        values = [next((r[2] for r in rows if r[0] == t and r[1] == model), 0) for t in tasks]
        xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(tasks))]
        bars = ax.bar(xs, [v * 100 for v in values], width, label=model)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=8)
    if target is not None:
        ax.axhline(target * 100, color="grey", ls=":", label=f"target {target:.0%}")
    ax.set(
        xticks=range(len(tasks)), xticklabels=tasks, ylabel="% correct", ylim=(0, 110), title=title
    )
    ax.legend()
    return fig


# ---------------------------------------------------------------- 01 · Strategy and memory


def memory_stack(breakdowns: dict, gpus: dict | None = None, claims: dict | None = None, title=""):
    """Stacked bars of training memory by component (GB), one bar per entry of `breakdowns`.

    `gpus` maps a name to GB (lines across); `claims` maps a bar's label to a quoted (low, high)
    range in GB, drawn beside the bar and labelled (high None means "low and more").
    """
    import matplotlib.pyplot as plt

    labels = list(breakdowns)
    parts = [k for k in next(iter(breakdowns.values())).as_gb() if k != "total"]
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(labels) + 3), 4.5))
    bottom = [0.0] * len(labels)
    for j, part in enumerate(parts):
        values = [b.as_gb()[part] for b in breakdowns.values()]
        ax.bar(range(len(labels)), values, 0.6, bottom=bottom, label=part, color=f"C{j}")
        bottom = [lo + v for lo, v in zip(bottom, values, strict=True)]
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.3g}", ha="center", va="bottom", fontsize=8)
    for (name, gb), ls in zip((gpus or {}).items(), ["--", "-.", ":"] * 3, strict=False):
        ax.axhline(gb, color="grey", ls=ls, lw=1, label=f"GPU: {name}")
    for label, (low, high) in (claims or {}).items():
        x = labels.index(label) + 0.36
        if high is None:  # an open range: an arrow pointing up from its floor
            ax.plot([x], [low], marker="^", color="black", ms=7)
        else:
            ax.plot([x, x], [low, high], color="black", lw=3, solid_capstyle="butt")
        text = f"{low:g}+" if high is None else f"{low:g}-{high:g}"
        ax.text(x + 0.05, high or low, text, fontsize=7, va="bottom")
    if claims:
        ax.plot([], [], color="black", lw=3, label="quoted range (GB)")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set(ylabel="GB (10^9 bytes)", title=title)
    ax.set_ylim(top=max(bottom) * 1.08)  # room for the totals above the bars
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 05 · Inference and adapters


def sizes_on_disk(sizes: dict, computed: tuple = (), title: str = "Size on disk"):
    """Horizontal bars of bytes on a log axis, labelled in MB/GB; names in `computed` are hatched.

    `sizes` maps a label to bytes. Measured files and sizes computed from a config (an 8B model the
    course never downloads) sit on one axis, so a few MB next to many GB stays readable.
    """
    import matplotlib.pyplot as plt

    labels = list(sizes)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.2))
    for i, label in enumerate(labels):
        color, hatch = ("tab:orange", "//") if label in computed else ("tab:blue", None)
        ax.barh(i, sizes[label], color=color, hatch=hatch, alpha=0.8)
        n = sizes[label]
        text = f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"
        ax.text(n * 1.15, i, text, va="center", fontsize=9)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(sizes.values()) / 3, max(sizes.values()) * 20)
    ax.set(xlabel="bytes (log scale)", title=title)
    if computed:
        from matplotlib.patches import Patch

        handles = [
            Patch(color="tab:blue", label="measured file"),
            Patch(facecolor="tab:orange", hatch="//", label="computed from config"),
        ]
        ax.legend(handles=handles, loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 06 · Capstone


def strategy_comparison(rows, title: str = "Prompting, retrieval or fine-tuning: measured"):
    """One panel per measure, one bar per strategy: accuracy (and form), tokens, latency, cost.

    `rows` are `ftcourse.prompting.Measured`. The first panel pairs held-out accuracy with the share
    of answers in the task's form (lighter bar); each panel has its own scale and unit.
    """
    import matplotlib.pyplot as plt

    names = [r.name for r in rows]
    xs = range(len(names))
    colors = [f"C{i}" for i in xs]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
    acc = axes[0].bar([x - 0.2 for x in xs], [100 * r.accuracy for r in rows], 0.4, color=colors)
    form = axes[0].bar(
        [x + 0.2 for x in xs], [100 * r.form_rate for r in rows], 0.4, color=colors, alpha=0.35
    )
    for bars in (acc, form):
        axes[0].bar_label(bars, fmt="%.0f", fontsize=7)
    axes[0].set_title("% correct (dark), % in form (light)", fontsize=10)
    axes[0].set_ylim(0, 115)
    panels = [
        ("prompt tokens / request", [r.prompt_tokens for r in rows], "{:.0f}"),
        ("latency / request (ms)", [1000 * r.latency_s for r in rows], "{:.0f}"),
        ("one-off cost (s)", [r.one_off_seconds for r in rows], "{:.3g}"),
    ]
    for ax, (label, values, fmt) in zip(axes[1:], panels, strict=True):
        bars = ax.bar(xs, values, color=colors)
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.margins(y=0.15)
    for ax in axes:
        ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 08 · after SFT


def preference_curves(histories: dict):
    """DPO's logged reward margin, reward accuracy and chosen log-probability against step, per run."""
    import matplotlib.pyplot as plt

    panels = [
        ("rewards/margins", "reward margin (chosen - rejected)"),
        ("rewards/accuracies", "reward accuracy"),
        ("logps/chosen", "log-probability of the chosen answer (summed)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, label) in zip(axes, panels):
        for run, history in histories.items():
            points = [(h["step"], h[key]) for h in history if key in h]
            ax.plot(*zip(*points), label=run)
        ax.set(xlabel="optimizer step", title=label)
    axes[0].legend()
    fig.tight_layout()
    return fig


def reward_curve(history: list[dict], title: str = "mean reward per generated batch"):
    """GRPO's logged mean reward, and the share of groups whose answers all scored alike, per step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    logged = [h for h in history if "reward" in h]
    steps = [h["step"] for h in logged]
    ax.plot(steps, [h["reward"] for h in logged], "o-", label="mean reward")
    if all("frac_reward_zero_std" in h for h in logged):
        silent = [h["frac_reward_zero_std"] for h in logged]
        ax.plot(steps, silent, "s--", label="groups all alike (teach nothing)")
    ax.set(xlabel="optimizer step", ylabel="share", title=title, ylim=(-0.02, 1.02))
    ax.legend()
    return fig
