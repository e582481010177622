"""Shared test fixtures."""

import os
import tempfile
import types

import pytest

# trackio reads TRACKIO_DIR once, when first imported, and trl imports it in any run once it is
# installed: the tests' runs log to a folder of their own, set before anything imports trackio
os.environ["TRACKIO_DIR"] = TRACKIO_DIR = tempfile.mkdtemp(prefix="ftcourse-trackio-")


@pytest.fixture
def fake_cuda(monkeypatch):
    """Make torch.cuda look like a GPU (by default a Colab T4: compute capability 7.5, 15.8 GB).

    Its `is_bf16_supported()` says yes, as torch's does on a T4: by default it counts emulation.
    """

    def install(capability=(7, 5), name="Tesla T4", memory=15.8e9):
        props = types.SimpleNamespace(name=name, total_memory=memory)
        monkeypatch.setattr("torch.cuda.is_available", lambda: True)
        monkeypatch.setattr("torch.cuda.get_device_properties", lambda i=0: props)
        monkeypatch.setattr("torch.cuda.get_device_capability", lambda i=0: capability)
        monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda including_emulation=True: True)
        monkeypatch.setattr("torch.cuda.mem_get_info", lambda i=0: (memory * 0.9, memory))

    return install


def answer_with(monkeypatch, pick) -> None:
    """Replace generation (`ftcourse.evaluate.generate`) by answers chosen per held-out prompt.

    Each prompt of a `polite` or `bugfix` test record is answered with `pick(i, reference, model)`,
    a pair (answer, whether it stopped at EOS), where `i` is the record's place in its test split
    and `reference` its reference answer. A prompt that is not a test record's request (or that
    shows the reference answer) raises a KeyError. `monkeypatch` may be a module's or session's
    (`pytest.MonkeyPatch.context()`), for generation inside a shared training run.
    """
    from ftcourse.tasks import load_task

    where = {}
    for task in ("polite", "bugfix"):
        for i, r in enumerate(load_task(task, "test")):
            where[r["messages"][-2]["content"]] = (i, r["messages"][-1]["content"])

    def fake(
        model, tokenizer, prompts, max_new_tokens=128, batch_size=16, progress=True, stops=None
    ):
        picked = [pick(*where[p[-1]["content"]], model) for p in prompts]
        if stops is not None:
            stops += [stopped for _, stopped in picked]
        return [answer for answer, _ in picked]

    monkeypatch.setattr("ftcourse.evaluate.generate", fake)


@pytest.fixture
def fixed_answers(monkeypatch):
    """`answer_with` for one test: `install(pick)` replaces generation until the test ends."""
    return lambda pick: answer_with(monkeypatch, pick)


@pytest.fixture(scope="session")
def polite_adapter(tmp_path_factory):
    """A polite QLoRA adapter trained by the course for a few steps (moved enough to matter)."""
    from ftcourse.runfile import RunConfig
    from ftcourse.train import train

    folder = tmp_path_factory.mktemp("adapter") / "polite"
    run = RunConfig(
        task="polite",
        profile="cpu-tiny",
        output_dir=str(folder),
        eval_samples=0,
        train_samples=64,
        profile_overrides={"max_steps": 5, "learning_rate": 1e-2},
    )
    train(run)
    return folder


@pytest.fixture(scope="session")
def load_benchmark():
    """Import a script of benchmarks/ by its file name, e.g. load_benchmark("train_speed")."""
    import importlib.util
    import sys
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses in the script look their module up here
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def mode_model():
    """A stand-in model that only keeps its training flag, for code that calls eval() and train()."""

    class Model:
        training = True

        def eval(self):
            self.training = False

        def train(self, mode=True):
            self.training = mode

    return Model()
