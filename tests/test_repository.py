"""Repository hygiene: notebooks stripped and following the conventions, dependencies listed once."""

import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from repo_files import code_cell_sources, constraint_pins

from ftcourse.paths import NOTEBOOK_GLOB

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB))
ALL_NOTEBOOKS = NOTEBOOKS + sorted(ROOT.glob("notebooks/solutions/*.ipynb"))
SETUP_CELL = ROOT / "notebooks" / "00_setup.ipynb"


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_setup.ipynb"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], (
                f"{path.name}: run `make format` (nbstripout) before committing"
            )
            assert cell.get("execution_count") is None, f"{path.name}: stale execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    cs = cells(path)
    title = source(cs[0])
    assert re.match(r"# \d\d[a-z]? · ", title), (
        f"{path.name}: first cell must be the '# NN · Title' heading"
    )
    assert f"blob/main/notebooks/{path.name}" in title and "colab-badge" in title, "Colab badge"
    assert "You will learn" in title or "learn to" in title, "learning objectives"
    code = [source(c) for c in cs if c["cell_type"] == "code"]
    canonical = [source(c) for c in cells(SETUP_CELL) if c["cell_type"] == "code"][0]
    assert code[0] == canonical, f"{path.name}: the Colab setup cell must match notebook 00's"
    assert "ftcourse.setup_notebook()" in code[1], "the environment report opens every notebook"
    assert any(re.search(r"^assert ", c, re.M) for c in code), "claims are checked with asserts"
    assert any(source(c).startswith("## Summary") for c in cs), "a summary section"


# A learner reads a notebook in about half an hour: short cells, one idea each
MARKDOWN_CELL_CHARS = 1250


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_cells_are_short(path):
    long = [(c.get("id"), len(source(c))) for c in cells(path) if c["cell_type"] == "markdown"]
    long = [(cell, n) for cell, n in long if n > MARKDOWN_CELL_CHARS]
    assert not long, f"{path.name}: markdown cells over {MARKDOWN_CELL_CHARS} characters: {long}"


def test_environment_yml_delegates_to_pip():
    env = (ROOT / "environment.yml").read_text()
    assert "-e .[dev]" in env and "-c constraints.txt" in env
    # no conda package duplicates a pip dependency
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda_lines = [
        ln.strip()[2:] for ln in env.splitlines() if ln.strip().startswith("- ") and ":" not in ln
    ]
    names = {Requirement(d).name.lower() for d in deps}
    assert not names & {c.split("=")[0].lower() for c in conda_lines}


def test_constraints_pin_every_dependency():
    pins = constraint_pins(ROOT / "constraints.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(dep)
        if req.name == "torch":
            continue  # installed first by the Makefile (CPU build) or kept from Colab
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {req}"


@pytest.mark.parametrize("extra", ["export", "track"])
def test_each_optional_extra_is_pinned(extra):
    pins = constraint_pins(ROOT / "constraints.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["optional-dependencies"][extra]:
        req = Requirement(dep)
        name = req.name.lower().replace("_", "-")
        assert name in pins and req.specifier.contains(pins[name]), (name, pins.get(name))


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make course" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _code_cells(path):
    """The code cells of a notebook as Python syntax trees."""
    import ast

    return [ast.parse(text) for text in code_cell_sources(path)]


def _calls(tree):
    import ast

    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, parents


def _keyword(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def unmoved_batches(trees) -> list[int]:
    """Lines where a `return_tensors="pt"` batch is not moved on at once with `.to(...)`."""
    import ast

    lines = []
    for tree in trees:
        for call, parents in _calls(tree):
            value = _keyword(call, "return_tensors")
            if isinstance(value, ast.Constant) and value.value == "pt":
                parent = parents.get(call)
                if not (isinstance(parent, ast.Attribute) and parent.attr == "to"):
                    lines.append(call.lineno)
    return lines


def unplaced_4bit_models(trees) -> list[int]:
    """Lines where a model is loaded with a `quantization_config` but no `device_map`."""
    return [
        call.lineno
        for tree in trees
        for call, _ in _calls(tree)
        if _keyword(call, "quantization_config") is not None
        and _keyword(call, "device_map") is None
    ]


# the profile's loaders, which put the model on the GPU when there is one
GPU_LOADERS = {"load_model", "inference_base", "ensure_adapters", "load_adapter"}


def _placed_off_the_cpu(call) -> bool:
    """Whether a call may put a model on a GPU: a non-CPU `device_map`, `.cuda()`, `.to(device)`."""
    import ast

    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    device_map = _keyword(call, "device_map")
    if device_map is not None:
        return not (isinstance(device_map, ast.Constant) and device_map.value == "cpu")
    if name in GPU_LOADERS or name == "cuda":
        return True
    if name == "to" and call.args:  # a dtype (`torch.bfloat16`) or "cpu" keeps the device
        target = call.args[0]
        dtype = isinstance(target, ast.Attribute) and getattr(target.value, "id", "") == "torch"
        return not (dtype or (isinstance(target, ast.Constant) and target.value == "cpu"))
    return False


def gpu_placements(trees) -> list[int]:
    """Where a model may leave the CPU: a GPU device map, `.cuda()`, `.to(device)`, a loader."""
    return [call.lineno for tree in trees for call, _ in _calls(tree) if _placed_off_the_cpu(call)]


CPU_ONLY = {"03_lora_maths.ipynb"}  # builds every model itself, on the CPU, on every machine


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_inputs_follow_the_model_to_its_device(path):
    """bitsandbytes puts a 4-bit model on cuda:0: a batch left on the CPU fails on any GPU.

    A CPU-only notebook may leave its batches on the CPU, as long as none of its models leaves it.
    """
    trees = _code_cells(path)
    if path.name in CPU_ONLY:
        lines = gpu_placements(trees)
        assert not lines, f"{path.name}: lines {lines} may put a model on a GPU: keep it on the CPU"
    else:
        lines = unmoved_batches(trees)
        assert not lines, f"{path.name}: lines {lines} (of their cells): add .to(model.device)"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_every_4bit_model_is_placed_on_purpose(path):
    """A 4-bit model without `device_map` goes to the GPU when there is one, wanted or not."""
    lines = unplaced_4bit_models(_code_cells(path))
    assert not lines, f"{path.name}: lines {lines}: pass device_map (profile.device or 'cpu')"


def test_the_device_checks_find_what_they_look_for():
    """Each check flags the bad line of a snippet, and the notebooks hold the calls they check."""
    import ast

    batches = ast.parse(
        'a = tok("x", return_tensors="pt").to(model.device)\nb = tok("x", return_tensors="pt")\n'
    )
    assert unmoved_batches([batches]) == [2]
    models = ast.parse(
        'm = AutoModelForCausalLM.from_pretrained(p, quantization_config=q, device_map="cpu")\n'
        "m = AutoModelForCausalLM.from_pretrained(p, quantization_config=q)\n"
    )
    assert unplaced_4bit_models([models]) == [2]
    placed = ast.parse(
        'a = nn.Linear(2, 2).to(torch.bfloat16).to("cpu")\n'
        'b = AutoModelForCausalLM.from_pretrained(p, device_map="cpu")\n'
        'c = AutoModelForCausalLM.from_pretrained(p, device_map="auto")\n'
        "d = model.to(profile.device)\ne = model.cuda()\nf, t = load_model(profile)\n"
    )
    assert gpu_placements([placed]) == [3, 4, 5, 6]
    trees = [tree for path in ALL_NOTEBOOKS for tree in _code_cells(path)]
    assert sum(_keyword(c, "return_tensors") is not None for t in trees for c, _ in _calls(t))
    assert sum(_keyword(c, "quantization_config") is not None for t in trees for c, _ in _calls(t))
