"""GGUF export of notebook 04's polite adapter: size, agreement with transformers, accuracy, tokens/s.

Exports the polite adapter (`ftcourse.adapters.ensure_adapters`, trained if missing) with
`ftcourse.export`: the merged safetensors folder, then a GGUF file per weight type. Each held-out
polite prompt is answered greedily, one prompt at a time, by transformers (the merged folder) and
by llama.cpp (llama-cpp-python) on each file, in this process, with the same number of threads,
taking turns prompt by prompt (so a machine that slows down slows every runtime alike).
`same answer` is the share of prompts whose answer is identical to transformers'; accuracy is the
task's own rule (`ftcourse.tasks`); tokens/s counts the answers' tokens (EOS not counted) over the
time the answers took, prompt processing included. The batched row is the course's evaluation
(`ftcourse.evaluate.generate`, 16 prompts a batch), for its accuracy and throughput.

    python benchmarks/export_gguf.py                    # 250 held-out prompts, 2 and 1 threads, ~4 min
    python benchmarks/export_gguf.py --prompts 20       # a quick look
    python benchmarks/export_gguf.py --update-docs docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

# torch and llama.cpp each bring an OpenMP runtime whose idle threads spin, waiting for more work:
# taking turns in one process on 2 cores, each side's spinning threads took the cores from the
# other (measured: transformers 43 and llama.cpp 19 tokens/s, against 173 and 569 with PASSIVE).
# Set before torch or llama_cpp is imported, since OpenMP reads it once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TYPES = ("f32", "f16", "q8_0")


def hf_answer(model, tokenizer, conversation, budget: int) -> tuple[str, int]:
    """transformers' greedy answer to one prompt, and the tokens it took (EOS not counted)."""
    import torch

    from ftcourse.evaluate import GREEDY, stop_ids

    ends = stop_ids(model, tokenizer)
    enc = tokenizer.apply_chat_template(
        [conversation], add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(model.device)
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=budget,
            eos_token_id=ends,
            pad_token_id=tokenizer.pad_token_id,
            **GREEDY,
        )
    new = out[0, enc["input_ids"].shape[1] :].tolist()
    return tokenizer.decode(new, skip_special_tokens=True).strip(), len(
        [t for t in new if t not in ends]
    )


def llama_answer(llm, tokenizer, conversation, budget: int) -> tuple[str, int]:
    """llama.cpp's greedy answer to one prompt, and the tokens it took (EOS not counted)."""
    from ftcourse.export import llama_answers

    counts: list[int] = []
    return llama_answers(llm, tokenizer, [conversation], budget, counts)[0], counts[0]


def take_turns(runtimes: dict, tokenizer, conversations, budget: int) -> dict[str, dict]:
    """Each prompt answered by every runtime in turn, so a slowdown of the machine hits all alike.

    `runtimes` maps a name to (answer function, model); the result holds each one's answers,
    seconds and tokens.
    """
    done = {name: {"answers": [], "seconds": 0.0, "tokens": 0} for name in runtimes}
    for conversation in conversations:
        for name, (answer, model) in runtimes.items():
            start = time.perf_counter()
            text, tokens = answer(model, tokenizer, conversation, budget)
            done[name]["seconds"] += time.perf_counter() - start
            done[name]["answers"].append(text)
            done[name]["tokens"] += tokens
    return done


def row(label: str, weights: str, size: int | None, answers, reference, records, speed) -> dict:
    """One line of the table: agreement with transformers, held-out accuracy, speed."""
    from ftcourse.tasks import scored_task

    score = scored_task("polite").score
    same = sum(a == b for a, b in zip(answers, reference)) / len(reference)
    accuracy = sum(score(r, a) for r, a in zip(records, answers)) / len(records)
    return dict(label=label, weights=weights, size=size, same=same, accuracy=accuracy, tps=speed)


def with_threads(rows: list[dict], threads: int) -> list[dict]:
    """The rows, each marked with the thread count it ran with."""
    return [r | {"threads": threads} for r in rows]


def measure(adapter_dir: Path, out: Path, prompts: int | None, types=TYPES, threads: int = 2):
    """Export the adapter, answer the held-out prompts with each runtime; the table's rows."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftcourse.evaluate import generate, prompt_messages
    from ftcourse.export import export, load_gguf, write_gguf
    from ftcourse.tasks import load_task, scored_task

    torch.set_num_threads(threads)
    export(adapter_dir, out / "merged", out / f"{types[0]}.gguf", types[0])
    files = {t: write_gguf(out / "merged", out / f"{t}.gguf", t) for t in types[1:]}
    files[types[0]] = out / f"{types[0]}.gguf"
    records = list(load_task("polite", "test"))[:prompts]
    conversations = [prompt_messages(r["messages"]) for r in records]
    budget = scored_task("polite").max_new_tokens
    model = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "merged")
    llms = {t: load_gguf(files[t], n_threads=threads) for t in types}
    runtimes = {"hf": (hf_answer, model)} | {t: (llama_answer, llm) for t, llm in llms.items()}
    done = take_turns(runtimes, tokenizer, conversations, budget)
    for llm in llms.values():
        llm.close()
    reference = done["hf"]["answers"]
    size = sum(p.stat().st_size for p in (out / "merged").glob("*.safetensors"))
    rows = [
        row(
            "transformers", "f32 safetensors", size, reference, reference, records, _tps(done["hf"])
        )
    ]
    start = time.perf_counter()
    batched = generate(model, tokenizer, conversations, budget, progress=False)
    rows.append(
        row("transformers, batch 16", "f32 safetensors", size, batched, reference, records, None)
    )
    rows[-1]["answers_per_s"] = len(records) / (time.perf_counter() - start)
    for t in types:
        weights, size = f"{t} GGUF", files[t].stat().st_size
        answers = done[t]["answers"]
        rows.append(row("llama.cpp", weights, size, answers, reference, records, _tps(done[t])))
    return with_threads(rows, threads)


def _tps(done: dict) -> float:
    """Tokens per second of one runtime's answers."""
    return done["tokens"] / done["seconds"]


def markdown(rows: list[dict], prompts: int) -> str:
    """The table for docs/benchmarks.md, with how and when it was measured."""
    import importlib.metadata as md

    from ftcourse.adapters import format_bytes
    from ftcourse.docblocks import markdown_table

    body = [
        [
            r["label"],
            r["weights"],
            format_bytes(r["size"]),
            str(r["threads"]),
            f"{r['same']:.1%}",
            f"{r['accuracy']:.1%}",
            f"{r['tps']:.0f}" if r["tps"] else f"({r['answers_per_s']:.1f} answers/s)",
        ]
        for r in rows
    ]
    header = ["runtime", "weights", "file size", "threads", "same answer as transformers"]
    table = markdown_table(header + ["held-out polite", "tokens/s"], body, right_from=2)
    versions = ", ".join(
        f"{name} {md.version(name)}" for name in ("transformers", "llama_cpp_python", "gguf")
    )
    return (
        f"{table}\n\nMeasured by `python benchmarks/export_gguf.py` on "
        f"{datetime.date.today()}: {prompts} held-out polite prompts, greedy, one prompt at a "
        f"time, the runtimes taking turns with the same number of threads, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, profile cpu-tiny ({versions})."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=None, help="first N held-out prompts")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="each in turn")
    parser.add_argument("--out", type=Path, help="keep the exported files here")
    parser.add_argument("--update-docs", type=Path, help="write the table into this Markdown page")
    args = parser.parse_args(argv)

    from ftcourse.adapters import ensure_adapters
    from ftcourse.docblocks import replace_block
    from ftcourse.profiles import get_profile

    adapter = ensure_adapters(["polite"], get_profile("cpu-tiny"))["polite"]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = [r for n in args.threads for r in measure(adapter, out, args.prompts, threads=n)]
    text = markdown(rows, _count(args.prompts))
    print(text)
    if args.update_docs:
        replace_block(args.update_docs, "export-gguf", text)
    return 0


def _count(prompts: int | None) -> int:
    """How many held-out prompts were answered."""
    from ftcourse.tasks import load_task

    n = len(load_task("polite", "test"))
    return n if prompts is None else min(prompts, n)


if __name__ == "__main__":
    raise SystemExit(main())
