"""The sandbox that runs a model's code: limits hold, and correct code still passes."""

import time

from ftcourse.sandbox import run_tests

ADD = "def add(a, b):\n    return a + b\n"


def test_correct_code_passes_and_wrong_code_fails():
    assert run_tests(ADD, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]).passed
    wrong = run_tests(ADD.replace("+", "-"), ["assert add(1, 2) == 3", "assert add(0, 0) == 0"])
    assert not wrong.passed and wrong.results == [False, True]


def test_infinite_loop_times_out():
    start = time.perf_counter()
    res = run_tests("while True:\n    pass\n", ["assert True"], timeout=1.5)
    assert res.timed_out and not res.passed
    assert time.perf_counter() - start < 5


def test_writing_outside_the_temp_directory_is_blocked(tmp_path):
    target = tmp_path / "escaped.txt"
    res = run_tests(f"open({str(target)!r}, 'w').write('x')\n", ["assert True"])
    assert not res.passed and "outside the sandbox" in res.error
    assert not target.exists()
    inside = run_tests(
        "open('scratch.txt', 'w').write('x')\ndef f():\n    return 1\n", ["assert f() == 1"]
    )
    assert inside.passed, "writing inside its own temp directory is allowed"


def test_network_and_processes_are_blocked():
    assert "socket" in run_tests("import socket\nsocket.socket()\n", ["assert True"]).error
    assert "fork" in run_tests("import os\nwhile True:\n    os.fork()\n", ["assert True"]).error
    assert (
        "subprocess"
        in run_tests("import subprocess\nsubprocess.run(['ls'])\n", ["assert True"]).error
    )


def test_huge_output_is_truncated_and_memory_is_capped():
    res = run_tests(
        "print('x' * 10**6)\ndef f():\n    return 1\n", ["assert f() == 1"], max_output=500
    )
    assert res.passed and len(res.output) < 600 and "more characters" in res.output
    assert "MemoryError" in run_tests("x = ' ' * 10**10\n", ["assert True"], memory_mb=256).error


def test_faking_success_by_exiting_early_fails():
    assert not run_tests("import os\nos._exit(0)\n", ["assert True"]).passed
    assert not run_tests("import sys\nsys.exit(0)\n", ["assert False"]).passed


def test_syntax_error_is_reported():
    res = run_tests("def f(:\n", ["assert f()"])
    assert not res.passed and res.error.startswith("SyntaxError")
