"""The sandbox that runs a model's code: each known escape is contained, and correct code passes.

The escapes are tried as an adversarial answer would: first rebinding the audit hook's globals
(the hook shares the answer's interpreter), so that what stops them is the operating system.
Every test is bounded: a regression makes it fail, never harms the machine (one fork at most).
"""

import os
import socket
import time
import warnings
from pathlib import Path

import pytest

from ftcourse import sandbox
from ftcourse.sandbox import LAYERS, layers, run_tests, split_test

ADD = "def add(a, b):\n    return a + b\n"
WRONG = ADD.replace("+", "-")
TESTS = ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]
# What an answer does to the audit hook first: it lives in the same interpreter, so it can
UNHOOK = (
    "import os\nimport __main__ as m\nm._DENY = ()\nm._WRITES = ()\nm._inside = lambda path: True\n"
)
needs_namespaces = pytest.mark.skipif(
    not layers()["namespaces"], reason=f"no namespaces here: {sandbox._probe()[1]}"
)


def attempts(*lines: str) -> str:
    """Answer code that tries each line after unhooking and prints what happened."""
    body = [UNHOOK]
    for line in lines:
        body.append(
            f"try:\n    {line}\n    print('ESCAPED', {line!r})\n"
            f"except Exception as exc:\n    print('stopped', {line!r}, repr(exc))\n"
        )
    return "".join(body)


def test_correct_code_passes_and_wrong_code_fails():
    assert run_tests(ADD, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]).passed
    wrong = run_tests(WRONG, TESTS)
    assert not wrong.passed and wrong.results == [False, True]


def test_course_tests_are_split_so_the_parent_compares():
    assert split_test("assert add(1, 2) == 3") == ("add(1, 2)", 3)
    assert split_test("assert f('a') == ['a', (1, 2.5)]") == ("f('a')", ["a", (1, 2.5)])
    for other in ("assert f()", "assert f() > 2", "assert f() == g()", "x = 1", "assert ("):
        assert split_test(other) is None, other
    # a mix keeps its order; only the unsplit test is the child's word
    res = run_tests(ADD, ["assert add(1, 2) == 3", "assert add(1, 1) > 5", "assert add(2, 2) == 4"])
    assert res.results == [True, False, True] and res.child_verdicts == 1


def test_every_layer_is_active_here_and_reported():
    found = layers()
    assert list(found) == list(LAYERS)
    assert found["session"] and found["limits"] and found["hook"]
    if sandbox._namespaces_work():
        assert found["namespaces"], sandbox._probe()[1]


def test_a_missing_layer_is_reported_once(monkeypatch):
    reduced = ({**dict.fromkeys(LAYERS, True), "namespaces": False}, "unshare not allowed")
    monkeypatch.setattr(sandbox, "_probe", lambda: reduced)
    sandbox._warn_missing.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="without namespaces.*unshare not allowed"):
            assert run_tests(ADD, TESTS).passed
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert run_tests(ADD, TESTS).passed  # said once, not at every answer
    finally:
        sandbox._warn_missing.cache_clear()


def test_a_forged_report_cannot_pass_a_wrong_function():
    forge = (
        WRONG + "import __main__ as m, json, os, sys\n"
        "fake = {'layers': [], 'error': None, 'values': ['3', '0'], 'asserts': []}\n"
        "sys.__stdout__.write('\\n' + m._spec['nonce'] + json.dumps(fake) + '\\n')\n"
        "print('child knows:', json.dumps(m._spec))\n"
    )
    sentinel = ["assert add(1, 2) == 987654321", "assert add(5, 5) == 123456789"]
    # printed then exited: the parent parses the report but takes the verdict itself
    res = run_tests(forge + "sys.__stdout__.flush()\nos._exit(0)\n", sentinel)
    assert not res.passed and res.results == [False, False]
    assert "987654321" not in res.output and "123456789" not in res.output, (
        "the expected values must never reach the child"
    )
    assert "add(1, 2)" in res.output  # what the child does know: the expressions it evaluates
    # and a value that says it equals anything is not a literal, so it cannot vouch for itself
    liar = "class Yes:\n    def __eq__(self, other):\n        return True\n"
    liar += "def add(a, b):\n    return Yes()\n"
    assert not run_tests(liar, TESTS).passed


@needs_namespaces
def test_writes_outside_the_temporary_directory_are_contained(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o777)  # writable by anyone: only the sandbox's read-only view stops a write
    target = str(outside)
    res = run_tests(
        attempts(
            f"open({target + '/plain.txt'!r}, 'w').write('x')",
            f"os.symlink('/etc/passwd', {target + '/link'!r})",
            "open('inside.txt', 'w').write('x')",  # allowed: its own directory
            f"os.link('inside.txt', {target + '/hard'!r})",
            f"os.rename('inside.txt', {target + '/moved'!r})",
            f"os.open('via_dir_fd', os.O_CREAT | os.O_WRONLY, dir_fd=os.open({target!r}, 0))",
            f"__import__('sqlite3').connect({target + '/db.sqlite'!r}).execute('create table t(x)')",
            f"os.mkdir({target + '/dir'!r})",
            # and undoing the read-only view: every capability was dropped
            "__import__('ctypes').CDLL(None).mount(None, b'/', None, 32 | 4096, None) == 0 or 1/0",
        )
        + "def f():\n    return 1\n",
        ["assert f() == 1"],
    )
    assert res.passed, res.output
    assert os.listdir(outside) == [], res.output
    assert res.output.count("ESCAPED") == 1 and "ESCAPED open('inside.txt'" in res.output


def test_the_hook_alone_names_a_write_outside(tmp_path):
    target = tmp_path / "escaped.txt"
    res = run_tests(f"open({str(target)!r}, 'w').write('x')\n", ["assert True"])
    assert not res.passed and "outside the sandbox" in res.error
    assert not target.exists()


@needs_namespaces
def test_no_network_even_to_this_machine():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    with server:
        res = run_tests(
            attempts(
                f"socket.create_connection(('127.0.0.1', {port}), timeout=2)",
                "socket.create_connection(('1.1.1.1', 53), timeout=2)",
            ).replace(UNHOOK, UNHOOK + "import socket\n"),
            ["assert True"],
        )
        with pytest.raises(TimeoutError):
            server.accept()  # nobody connected
    assert "ESCAPED" not in res.output and res.output.count("stopped") == 2, res.output


def _survivors(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (the sandbox's temporary directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


FORK_AND_HANG = (
    UNHOOK + "import os, sys, time\n"
    "print('ROOT', os.getcwd(), flush=True)\n"
    "try:\n"
    "    if os.fork() == 0:\n"  # one fork, never more
    "        os.setsid()\n"  # the child leaves the process group
    "        time.sleep(30)\n"
    "        os._exit(0)\n"
    "    print('forked', flush=True)\n"
    "except OSError as exc:\n"
    "    print('fork refused', type(exc).__name__, flush=True)\n"
    "while True:\n    pass\n"
)


@needs_namespaces
@pytest.mark.skipif(not layers()["seccomp"], reason="no seccomp filter here")
def test_a_fork_is_refused_and_nothing_outlives_the_time_limit():
    res = run_tests(FORK_AND_HANG, ["assert True"], timeout=1.5)
    assert res.timed_out and "fork refused" in res.output, res.output
    root = res.output.split("ROOT ", 1)[1].split()[0]
    time.sleep(0.3)
    assert _survivors(root) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a non-root user's process limit refuses the fork")
def test_without_namespaces_the_process_group_still_dies(monkeypatch):
    fallback = {**dict.fromkeys(LAYERS, True), "namespaces": False, "seccomp": False}
    monkeypatch.setattr(sandbox, "_probe", lambda: (fallback, "testing the fallback"))
    monkeypatch.setattr(sandbox, "_warn_missing", lambda: None)
    # root ignores the process limit: the fork succeeds, and the group is killed on timeout
    res = run_tests(FORK_AND_HANG.replace("        os.setsid()\n", ""), ["assert True"], 1.5)
    assert res.timed_out and "forked" in res.output, res.output
    root = res.output.split("ROOT ", 1)[1].split()[0]
    time.sleep(0.3)
    assert _survivors(root) == []


def test_the_hook_still_refuses_sockets_and_processes():
    assert "socket" in run_tests("import socket\nsocket.socket()\n", ["assert True"]).error
    assert "fork" in run_tests("import os\nos.fork()\n", ["assert True"]).error
    res = run_tests("import subprocess\nsubprocess.run(['ls'])\n", ["assert True"])
    assert "subprocess" in res.error


def test_infinite_loop_times_out():
    start = time.perf_counter()
    res = run_tests("while True:\n    pass\n", ["assert True"], timeout=1.5)
    assert res.timed_out and not res.passed
    assert time.perf_counter() - start < 5


def test_limits_on_output_memory_files_and_file_size():
    res = run_tests(
        "print('x' * 10**6)\ndef f():\n    return 1\n", ["assert f() == 1"], max_output=500
    )
    assert res.passed and len(res.output) < 600 and "more characters" in res.output
    assert "MemoryError" in run_tests("x = ' ' * 10**10\n", ["assert True"], memory_mb=256).error
    many = run_tests("fs = [open('f%d' % i, 'w') for i in range(100)]\n", ["assert True"])
    assert "Too many open files" in many.error
    big = run_tests("open('big', 'wb').write(b'x' * 20 * 2**20)\n", ["assert True"])
    assert not big.passed  # the file-size limit stops the write (and its signal ends the child)


def test_faking_success_by_exiting_early_fails():
    assert not run_tests("import os\nos._exit(0)\n", ["assert True"]).passed
    assert not run_tests("import sys\nsys.exit(0)\n", ["assert False"]).passed


def test_syntax_error_is_reported():
    res = run_tests("def f(:\n", ["assert f()"])
    assert not res.passed and res.error.startswith("SyntaxError")
