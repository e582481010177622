"""Running untrusted Python (a model's answer) to score it by its unit tests, isolated by the OS.

The answer runs in a child process, under layers that each apply where the machine allows it
(`layers()` says which; a missing one is reported once, never skipped silently):

- `session`: the child leads its own session; on timeout its whole process group is killed.
- `limits`: CPU time, address space, processes, file size and open files, which the child sets
  on itself before the answer runs (no `preexec_fn`, which is unsafe in a threaded parent).
- `namespaces` (Linux, `unshare`, as on Colab): a user namespace whose root has no power
  outside it, a network with no interface up, a PID space (every process the answer starts dies
  with it), private IPC, and a mount table in which everything but the temporary directory is
  read-only; then every capability is dropped, so the answer cannot undo any of it.
- `seccomp` (Linux): a system-call filter under which fork, vfork, clone and clone3 fail, so
  the answer starts no process or thread at all (root ignores the process limit).
- `hook`: an audit hook refusing sockets, processes and writes outside the temporary directory.
  It lives in the answer's own interpreter, so on its own it is no sandbox: an extra layer only.

The verdict is taken in the parent. A test of the form `assert EXPR == LITERAL` (every course
test) is split: the child only evaluates EXPR and reports its repr, and the parent compares it
with LITERAL, which never enters the child. An answer that prints a fake report, exits early or
reads the harness's memory still has to compute the right values. Other tests run in the child,
and their verdicts are marked as reported by it (`RunResult.child_verdicts`).
"""

from __future__ import annotations

import ast
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("session", "limits", "namespaces", "seccomp", "hook")
MAX_REPR = 10_000  # characters of a reported value the parent will parse

# The child's trusted prelude: it reads its orders, seals itself off, then runs the answer.
_CHILD = r"""
import ctypes, json, os, re, resource, sys
_spec = json.loads(sys.stdin.read())
_ROOT = os.path.realpath(_spec["root"])
_libc = ctypes.CDLL(None, use_errno=True)
_done = []

def _fail(what):
    sys.__stdout__.write("\n" + _spec["nonce"] + json.dumps({"setup_error": what}) + "\n")
    sys.__stdout__.flush()
    os._exit(3)

def _mount(src, dst, flags):
    if _libc.mount(src, dst.encode(), None, ctypes.c_ulong(flags), None) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()) + ": " + dst)

def _read_only_except(root):
    # MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOATIME, MS_NODIRATIME, MS_RELATIME
    bits = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024,
            "nodiratime": 2048, "relatime": 1 << 21}
    _mount(root.encode(), root, 4096)  # MS_BIND: the temporary directory stays writable
    os.chdir(root)  # into the new mount: the old working directory is the read-only one
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        point = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == root:
            continue
        keep = sum(bits[o] for o in fields[5].split(",") if o in bits)
        _mount(None, point, keep | 1 | 32 | 4096)  # | MS_RDONLY | MS_REMOUNT | MS_BIND

def _drop_capabilities():
    for cap in range(64):  # the bounding set, then effective, permitted and inheritable
        if _libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if _libc.syscall(126 if os.uname().machine == "x86_64" else 91, header, data) != 0:  # capset
        raise OSError(ctypes.get_errno(), "capset")
    _libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS

def _no_new_processes():
    # a seccomp filter: fork, vfork, clone and clone3 fail with EPERM (root ignores RLIMIT_NPROC)
    arch, calls = {"x86_64": (0xC000003E, (56, 57, 58, 435)), "aarch64": (0xC00000B7, (220, 435))}[
        os.uname().machine]
    code = [(0x20, 0, 0, 4), (0x15, 1, 0, arch), (0x06, 0, 0, 0x00050001), (0x20, 0, 0, 0)]
    for i, nr in enumerate(calls):  # jump to the EPERM return after the ALLOW one
        code.append((0x15, len(calls) - i, 0, nr))
    code += [(0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, 0x00050001)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    program = Program(len(code), (Filter * len(code))(*(Filter(*c) for c in code)))
    _libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, required for an unprivileged filter
    if _libc.prctl(22, 2, ctypes.byref(program), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "seccomp")

try:
    if _spec["namespaces"]:
        _read_only_except(_ROOT)
        _drop_capabilities()
        _done.append("namespaces")
    if _spec["seccomp"]:
        _no_new_processes()
        _done.append("seccomp")
    mem, cpu = _spec["memory_mb"] * 2**20, _spec["cpu_seconds"]
    for limit, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, cpu),
                         (resource.RLIMIT_FSIZE, _spec["max_file_mb"] * 2**20),
                         (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_NPROC, 0)):
        resource.setrlimit(limit, (value, value))
    _done.append("limits")
except OSError as exc:
    _fail(f"{type(exc).__name__}: {exc}")
os.closerange(3, 256)  # nothing inherited beyond stdin, stdout and stderr
"""

# Runs inside the child after the prelude. An audit hook cannot be removed once added, and it
# sees every socket, process and file operation Python performs; but it shares the answer's
# interpreter, which can rebind these globals. The layers above do not depend on it.
_HOOK = r"""
_DENY = ("socket.", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn",
         "subprocess.", "os.system", "os.kill", "ctypes.", "pty.")
_WRITES = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.truncate",
           "os.symlink", "os.link", "shutil.", "sqlite3.connect")

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
        writes = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writes and not _inside(path):
            raise PermissionError(f"sandbox: writing {path} outside the sandbox")
    if event.startswith(_WRITES) and args and not all(
        _inside(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))
    ):
        raise PermissionError(f"sandbox: {event} outside the sandbox")

sys.addaudithook(_hook)
_done.append("hook")
"""

_RUNNER = r"""
del sys.argv[1:]
_ns = {"__name__": "__sandbox__"}
try:
    exec(compile(_spec["code"], "<answer>", "exec"), _ns)
    _error = None
except BaseException as exc:
    _error = f"{type(exc).__name__}: {exc}"

def _value(source):
    try:
        return repr(eval(compile(source, "<test>", "eval"), dict(_ns)))[: _spec["max_repr"] + 1]
    except BaseException:
        return None

def _passes(source):
    try:
        exec(compile(source, "<test>", "exec"), dict(_ns))
        return True
    except BaseException:
        return False

_report = {"layers": _done, "error": _error,
           "values": [None if _error else _value(s) for s in _spec["probes"]],
           "asserts": [False if _error else _passes(s) for s in _spec["asserts"]]}
sys.stdout.flush()
sys.__stdout__.write("\n" + _spec["nonce"] + json.dumps(_report) + "\n")
sys.__stdout__.flush()
"""


@dataclass
class RunResult:
    """What happened when a piece of code was run against its tests."""

    passed: bool
    results: list[bool]
    error: str | None
    output: str
    timed_out: bool = False
    child_verdicts: int = 0  # tests whose verdict the child reported (not `assert X == literal`)


def split_test(test: str) -> tuple[str, object] | None:
    """`assert EXPR == LITERAL` as (EXPR source, the literal's value); None for any other test."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    check = tree.body[0].test
    if not (isinstance(check, ast.Compare) and len(check.ops) == 1):
        return None
    if not isinstance(check.ops[0], ast.Eq):
        return None
    try:
        expected = ast.literal_eval(check.comparators[0])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return ast.unparse(check.left), expected


def _matches(reported: str | None, expected: object) -> bool:
    """The parent's half of `EXPR == LITERAL`: the child's repr, parsed as a literal, compared."""
    if reported is None or len(reported) > MAX_REPR:
        return False
    try:
        value = ast.literal_eval(reported)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False  # not a plain literal: a custom object cannot vouch for itself
    return bool(value == expected)  # both are plain literals: Python's own `==`, as the test


def _unshare() -> list[str]:
    """The `unshare` command line that puts the child in fresh namespaces."""
    return [
        "unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork",
        "--kill-child", "--mount-proc", "--ipc", "--uts",
    ]  # fmt: skip


@functools.cache
def _namespaces_work() -> bool:
    """Whether this machine lets an unprivileged child enter the namespaces (probed once)."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(_unshare() + ["true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@functools.cache
def _probe() -> tuple[dict[str, bool], str | None]:
    """Run an empty answer once: the layers it reports, and why the namespaces failed if they did."""
    try:
        import resource  # noqa: F401  (POSIX only)
    except ImportError:
        return dict.fromkeys(LAYERS, False), "not a POSIX system"
    spaces, why = _namespaces_work(), "`unshare` is missing or not allowed here"
    filters = sys.platform == "linux" and os.uname().machine in ("x86_64", "aarch64")
    report = _run("", [], [], 10.0, 512, spaces, filters)[0]
    if report is None or "setup_error" in report:  # try again, one layer fewer at a time
        why = (report or {}).get("setup_error", "the sandboxed child did not start")
        for namespaces, seccomp in ((spaces, False), (False, filters), (False, False)):
            report = _run("", [], [], 10.0, 512, namespaces, seccomp)[0]
            if report and "setup_error" not in report:
                break
    active = set((report or {}).get("layers", []))
    found = {name: name == "session" or name in active for name in LAYERS}
    return found, None if all(found.values()) else why


def layers() -> dict[str, bool]:
    """Which isolation layers are active on this machine (probed once, by running an empty answer)."""
    return dict(_probe()[0])


@functools.cache
def _warn_missing() -> None:
    """Say once which layers this machine lacks."""
    found, why = _probe()
    missing = [name for name, on in found.items() if not on]
    if missing:
        warnings.warn(
            f"sandbox: running without {', '.join(missing)} on this machine ({why}; see "
            "ftcourse.sandbox.layers()); the other layers still apply",
            RuntimeWarning,
            stacklevel=3,
        )


def run_tests(
    code: str,
    tests: list[str],
    timeout: float = 5.0,
    memory_mb: int = 512,
    max_output: int = 2000,
) -> RunResult:
    """Run `code`, then each assert in `tests`, in a sandboxed child process; all must pass."""
    _warn_missing()
    split = [split_test(t) for t in tests]
    probes = [s[0] for s in split if s is not None]
    asserts = [t for t, s in zip(tests, split) if s is None]
    active = layers()
    report, text, timed_out = _run(
        code, probes, asserts, timeout, memory_mb, active["namespaces"], active["seccomp"]
    )
    if timed_out or report is None or "values" not in report:
        why = "timed out" if timed_out else "crashed or exited early"
        if report and "setup_error" in report:
            why = f"the sandbox could not start: {report['setup_error']}"
        return RunResult(False, [False] * len(tests), why, _truncate(text, max_output), timed_out)
    values, verdicts = iter(report["values"]), iter(report["asserts"])
    results = [
        _matches(next(values), s[1]) if s is not None else bool(next(verdicts)) for s in split
    ]
    output = _truncate(text.strip(), max_output)
    error = report["error"] if isinstance(report["error"], str) else None
    return RunResult(bool(results) and all(results), results, error, output, False, len(asserts))


def _run(
    code: str,
    probes: list[str],
    asserts: list[str],
    timeout: float,
    memory_mb: int,
    namespaces: bool,
    seccomp: bool,
) -> tuple[dict | None, str, bool]:
    """Start the child, feed it its orders, kill its group on timeout; (report, output, timed out)."""
    nonce = "RESULT-" + os.urandom(8).hex() + ":"
    with tempfile.TemporaryDirectory(prefix="ftcourse-sandbox-") as tmp:
        root = os.path.realpath(tmp)
        spec = {
            "code": code, "probes": probes, "asserts": asserts, "nonce": nonce, "root": root,
            "namespaces": namespaces, "seccomp": seccomp, "memory_mb": memory_mb, "cpu_seconds": int(timeout) + 1,
            "max_file_mb": 8, "max_repr": MAX_REPR,
        }  # fmt: skip
        script = Path(root) / "run.py"
        script.write_text(_CHILD + _HOOK + _RUNNER)
        command = [sys.executable, "-I", "-S", str(script)]
        if namespaces:
            command = _unshare() + command
        env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        with open(Path(root) / "stdout.txt", "w+b") as out:
            child = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
                env=env,
                start_new_session=True,  # its own process group, killed whole on timeout
            )
            timed_out = False
            try:
                child.communicate(json.dumps(spec).encode(), timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(child)
            out.seek(0)
            raw = out.read()
    text = raw.decode("utf-8", "replace")
    head, _, tail = text.rpartition(nonce)
    try:
        report = json.loads(tail.splitlines()[0]) if tail else None
    except (json.JSONDecodeError, IndexError):
        report = None
    if not isinstance(report, dict):
        report = None
    return report, head if report is not None else text, timed_out


def _kill_group(child: subprocess.Popen) -> None:
    """Kill the child's whole process group (a no-op once everything in it has exited)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()


def _truncate(text: str, limit: int) -> str:
    return (
        text
        if len(text) <= limit
        else text[:limit] + f"\n... [{len(text) - limit} more characters]"
    )
