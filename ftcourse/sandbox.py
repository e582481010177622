"""Running untrusted Python (a model's answer) under limits, to score it by its unit tests.

Limits: time, memory, no network, no child processes, writes confined to a temporary directory,
output truncated.

This guards against accidents (an infinite loop, a fork bomb, a stray file write), not against a
determined attacker: run real untrusted code in a container or a VM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

# Runs inside the child before the untrusted code. An audit hook cannot be removed once added,
# and it sees every socket, process and file operation Python performs.
_GUARD = textwrap.dedent(
    """
    import os, sys
    _ROOT = os.path.realpath(os.getcwd())
    _DENY = ("socket.", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn",
             "subprocess.", "os.system", "os.kill", "ctypes.", "pty.")
    _WRITES = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.truncate", "shutil.")
    def _inside(path):
        try:
            path = os.fsdecode(path)
        except TypeError:
            return False
        return os.path.realpath(path).startswith(_ROOT + os.sep)
    def _hook(event, args):
        if event.startswith(_DENY):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            path, mode, flags = args[0], args[1] or "r", args[2] or 0
            if os.fsdecode(path).startswith("/proc"):
                raise PermissionError("sandbox: /proc is not readable")
            if (any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)) and not _inside(path):
                raise PermissionError(f"sandbox: writing {path} outside the sandbox")
        if event.startswith(_WRITES) and args and not _inside(args[0]):
            raise PermissionError(f"sandbox: {event} outside the sandbox")
    sys.addaudithook(_hook)
    """
)

_RUNNER = textwrap.dedent(
    """
    import json, sys
    _spec = json.loads(sys.stdin.read())
    del sys.argv[1:]
    _results = []
    _ns = {"__name__": "__sandbox__"}
    try:
        exec(compile(_spec["code"], "<answer>", "exec"), _ns)
        _error = None
    except BaseException as exc:
        _error = f"{type(exc).__name__}: {exc}"
    for _test in _spec["tests"]:
        if _error:
            _results.append(False)
            continue
        try:
            exec(compile(_test, "<test>", "exec"), dict(_ns))
            _results.append(True)
        except BaseException:
            _results.append(False)
    sys.stdout.flush()
    sys.__stdout__.write("\\n" + _spec["nonce"] + json.dumps({"results": _results, "error": _error}) + "\\n")
    """
)


@dataclass
class RunResult:
    """What happened when a piece of code was run against its tests."""

    passed: bool
    results: list[bool]
    error: str | None
    output: str
    timed_out: bool = False


def _limits(memory_mb: int, cpu_seconds: int, max_file_mb: int):
    def apply() -> None:
        import resource

        mem = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb * 2**20,) * 2)
        resource.setrlimit(
            resource.RLIMIT_NPROC, (64, 64)
        )  # ignored for root: the hook blocks fork

    return apply


def run_tests(
    code: str,
    tests: list[str],
    timeout: float = 5.0,
    memory_mb: int = 512,
    max_output: int = 2000,
) -> RunResult:
    """Run `code`, then each assert in `tests`, in a sandboxed subprocess; all must pass."""
    nonce = "RESULT-" + os.urandom(8).hex() + ":"
    spec = json.dumps({"code": code, "tests": tests, "nonce": nonce})
    with tempfile.TemporaryDirectory(prefix="ftcourse-sandbox-") as tmp:
        script = Path(tmp) / "run.py"
        script.write_text(_GUARD + _RUNNER)
        out_path = Path(tmp) / "stdout.txt"
        env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        with open(out_path, "wb") as out:
            try:
                subprocess.run(
                    [sys.executable, "-I", "-S", str(script)],
                    input=spec.encode(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=tmp,
                    env=env,
                    timeout=timeout,
                    preexec_fn=_limits(memory_mb, int(timeout) + 1, max_file_mb=8),
                )
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
        raw = out_path.read_bytes()
    text = raw.decode("utf-8", "replace")
    head, _, tail = text.rpartition(nonce)
    if timed_out or not tail:
        why = "timed out" if timed_out else "crashed or exited early"
        return RunResult(False, [False] * len(tests), why, _truncate(text, max_output), timed_out)
    report = json.loads(tail.splitlines()[0])
    results = report["results"]
    output = _truncate(head.strip(), max_output)
    return RunResult(bool(results) and all(results), results, report["error"], output)


def _truncate(text: str, limit: int) -> str:
    return (
        text
        if len(text) <= limit
        else text[:limit] + f"\n... [{len(text) - limit} more characters]"
    )
