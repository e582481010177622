"""The GPU comparison script runs end to end in its small CPU mode, so it cannot rot unseen."""

import importlib.util

import pytest

from ftcourse.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "memory_vs_measured.py"


def _script():
    spec = importlib.util.spec_from_file_location("memory_vs_measured", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_test_mode_compares_all_three_methods_within_tolerance(capsys):
    assert _script().main(["--cpu-test"]) == 0
    out = capsys.readouterr().out
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["full"], ["lora"], ["qlora"])
    ]
    assert [r[0] for r in rows] == ["full", "lora", "qlora"]
    for row in rows:  # method, estimate, counted, allocated ("-" on a CPU), ratio, seconds
        assert float(row[4]) == pytest.approx(1.0, abs=0.10)


def test_a_failed_tolerance_is_an_error_exit(capsys):
    assert _script().main(["--cpu-test", "--methods", "lora", "--tolerance", "-1"]) == 1


@pytest.mark.gpu
def test_gpu_mode_on_a_small_bundled_model():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    assert _script().main(["--model", "smollm2-360m-instruct", "--seq-len", "256"]) == 0
