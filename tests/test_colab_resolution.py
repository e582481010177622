"""The `colab` extra resolved by pip against Colab's own package list (data/colab/).

pip resolves what the setup cell installs (pyproject's dependencies and `colab` extra) for Colab's
Python and platform, from the package registry this machine uses. Colab's installed packages are
modelled as pip treats them: a package Colab has is kept when every requirement in the result
accepts its version, and replaced otherwise. Those Colab must keep (torch, numpy, pandas, its Jupyter
kernel stack and what google-colab pins) are constraints, so a requirement they do not meet fails the
resolution. Then every Colab package whose requirements name a package the extra replaces must
still accept the replacement: otherwise pip prints "ERROR: pip's dependency resolver ..." on Colab.

pip evaluates environment markers for the Python that runs it, not for Colab's: a dependency marked
for older (or newer) Pythons only may be added (or left out) wrongly. The checks here evaluate
markers for Colab's Python. Needs the package registry (skipped with one reason when it cannot be
reached); nothing is kept in the repository, only in pip's own cache.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ftcourse.paths import REPO_ROOT

SNAPSHOT = REPO_ROOT / "data" / "colab" / "pip-freeze.gpu.txt"
OS_INFO = REPO_ROOT / "data" / "colab" / "os-info-gpu.txt"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# Ubuntu 22.04 has glibc 2.35: pip may take any manylinux wheel up to that.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 4, -1)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
# What the setup cell must not replace: Colab's CUDA torch, its numpy and pandas, its kernel stack,
# and what google-colab itself pins (its setup.py in github.com/googlecolab/colabtools names these;
# the versions are the snapshot's).
KEEP = ["torch", "numpy", "pandas", "ipykernel", "ipython", "tornado"]
KEEP += ["google-auth", "ipyparallel", "notebook", "portpicker", "requests"]
# Colab's packages whose requirements name a package of REPLACEABLE (found by
# test_dependents_list_is_complete, run with FTCOURSE_COLAB_RESCAN=1 when the snapshot changes).
REPLACEABLE = {"transformers", "tokenizers", "peft", "datasets", "accelerate", "huggingface-hub"}
REPLACEABLE |= {"pyarrow"}
DEPENDENTS = ["bigframes", "bigquery-magics", "cudf-cu12", "db-dtypes", "diffusers", "gradio"]
DEPENDENTS += ["gradio-client", "pandas-gbq", "sentence-transformers", "tensorflow-datasets"]
DEPENDENTS += ["timm", "torchtune"]


def snapshot() -> dict[str, str]:
    """Colab's installed packages, {normalised name: version}; URL-installed ones are left out."""
    pins = {}
    for line in SNAPSHOT.read_text().splitlines():
        if m := re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip()):
            pins[canonicalize_name(m[1])] = m[2]
    return pins


def colab_python(full: bool = False) -> str:
    """Colab's Python as major.minor (or in full), from the snapshot's os-info file."""
    version = re.search(r"^Python (\S+)", OS_INFO.read_text(), re.M)[1]
    return version if full else ".".join(version.split(".")[:2])


def marker_env(extra: str = "") -> dict[str, str]:
    """Marker variables of Colab's interpreter (CPython on Linux x86_64)."""
    py = colab_python()
    return {
        "python_version": py,
        "python_full_version": colab_python(full=True),
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "extra": extra,
    }


def requirements(item: dict) -> list[Requirement]:
    """A pip report item's requirements that apply on Colab, with the extras it was asked for."""
    extras = [""] + item.get("requested_extras", [])
    out = []
    for line in item["metadata"].get("requires_dist", []):
        req = Requirement(line)
        if not req.marker or any(req.marker.evaluate(marker_env(e)) for e in extras):
            out.append(req)
    return out


def fake_torch(folder: Path, version: str) -> Path:
    """A wheel that only names torch and Colab's version of it, so pip never downloads torch.

    Colab's torch is a CUDA build (a local version such as 2.11.0+cu128) that no registry serves
    under that version; its own requirements are already installed there, so it declares none.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")
    return folder


def pip_report(args: list[str], tmp: Path, name: str) -> list[dict]:
    """`pip install --dry-run --report` for Colab's Python and platform; the items it would install."""
    report = tmp / f"{name}.json"
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed"]
    cmd += ["--report", str(report), "--only-binary=:all:", "--python-version", colab_python()]
    done = subprocess.run(cmd + platforms + args, capture_output=True, text=True, timeout=300)
    errors = [x for x in done.stderr.splitlines() if not x.startswith("WARNING: Location")]
    assert done.returncode == 0, "pip could not resolve it:\n" + "\n".join(errors[-30:])
    return json.loads(report.read_text())["install"]


def registry_reachable() -> bool:
    """Whether pip reaches its package registry (one small index page)."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", "rank-bm25"]
    try:
        done = subprocess.run(
            cmd + ["--timeout", "10", "--retries", "0"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def resolve(requested: list[str], tmp: Path, keep: list[str], rounds: int = 6) -> dict[str, dict]:
    """Resolve `requested` as pip would on Colab: {name: report item}.

    KEEP-style packages (`keep`) are constraints; every other package of Colab's is kept as
    installed when all requirements in the result accept it, until nothing more can be kept
    (at most `rounds` resolutions; with 1, only `keep` is kept).
    """
    pins = snapshot()
    links = ["--find-links", str(fake_torch(tmp / "wheels", pins["torch"]))]
    kept = set(keep)
    for round_ in range(rounds):
        constraints = tmp / f"constraints-{round_}.txt"
        constraints.write_text("".join(f"{n}=={pins[n]}\n" for n in sorted(kept)))
        items = pip_report([*links, "-c", str(constraints), *requested], tmp, f"r{round_}")
        found = {canonicalize_name(i["metadata"]["name"]): i for i in items}
        specs: dict[str, list] = {}
        for req in [Requirement(r) for r in requested] + [
            r for i in items for r in requirements(i)
        ]:
            specs.setdefault(canonicalize_name(req.name), []).append(req.specifier)
        fits = {
            n
            for n in found.keys() & pins.keys()
            if all(s.contains(Version(pins[n]), prereleases=True) for s in specs.get(n, []))
        }
        if fits <= kept or rounds == 1:
            return found
        kept |= fits
    raise AssertionError(f"keeping Colab's packages did not settle in {rounds} resolutions")


def setup_cell_requirements(cap: bool = True) -> list[str]:
    """What the setup cell asks pip for: the course's dependencies and its `colab` extra."""
    project = PYPROJECT["project"]
    extra = project["optional-dependencies"]["colab"]
    if not cap:
        extra = [r for r in extra if Requirement(r).name != "huggingface-hub"]
    return project["dependencies"] + extra


@pytest.fixture(scope="module")
def registry():
    if not registry_reachable():
        pytest.skip("the package registry cannot be reached: this test resolves against it")


@pytest.fixture(scope="module")
def colab_install(registry, tmp_path_factory) -> dict[str, dict]:
    return resolve(setup_cell_requirements(), tmp_path_factory.mktemp("colab"), KEEP)


def replaced(found: dict[str, dict]) -> dict[str, tuple[str, str]]:
    """Colab's packages pip would replace: {name: (Colab's version, the new one)}."""
    pins = snapshot()
    return {
        n: (pins[n], i["metadata"]["version"])
        for n, i in found.items()
        if n in pins and i["metadata"]["version"] != pins[n]
    }


def dependents_requirements(tmp: Path) -> dict[str, list[Requirement]]:
    """DEPENDENTS' requirements at Colab's versions, read by pip from the registry."""
    pins = snapshot()
    asked = [f"{n}=={pins[n]}" for n in DEPENDENTS]
    items = pip_report(["--no-deps", *asked], tmp, "dependents")
    return {canonicalize_name(i["metadata"]["name"]): requirements(i) for i in items}


def test_the_snapshot_names_what_colab_keeps_and_the_readme_follows_it():
    pins = snapshot()
    assert len(pins) > 600, "the snapshot is a whole runtime's pip freeze"
    readme = (REPO_ROOT / "README.md").read_text().split("## Colab")[1].split("\n## ")[0]
    assert f"Python {colab_python()}" in readme and f"torch {pins['torch']}" in readme
    assert set(KEEP) | set(DEPENDENTS) <= pins.keys(), "a listed package is not in the snapshot"
    assert "+cu" in pins["torch"], "Colab's torch is a CUDA build"


def test_the_setup_cell_resolves_on_colab_without_replacing_what_colab_keeps(colab_install):
    # KEEP are constraints: had a requirement needed another version of one, resolve() would have
    # failed with pip's reason. These were in play, so their constraints were tested:
    assert {"torch", "numpy", "pandas", "ipython"} <= colab_install.keys()
    for name in ("transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate"):
        assert name in colab_install, name


def test_nothing_needs_a_newer_torch_than_colabs(colab_install):
    torch = Version(snapshot()["torch"])
    needs = {
        n: req.specifier
        for n, i in colab_install.items()
        for req in requirements(i)
        if req.name == "torch"
    }
    # torch is a constraint, so these requirements were checked by the resolution itself
    assert {"peft", "accelerate", "bitsandbytes"} <= needs.keys(), needs
    # transformers asks for torch only through its "torch" extra, and turns torch off below it
    meta = colab_install["transformers"]["metadata"]["requires_dist"]
    at_import = [Requirement(r) for r in meta if re.match(r"torch\s*>=", r)]
    assert at_import and all(torch in r.specifier for r in at_import), at_import


def test_colabs_packages_accept_every_version_the_setup_cell_replaces(colab_install, tmp_path):
    changes = replaced(colab_install)
    print("replaced on Colab:", ", ".join(f"{n} {a} -> {b}" for n, (a, b) in changes.items()))
    needed = {canonicalize_name(r.name) for i in colab_install.values() for r in requirements(i)}
    needed |= {canonicalize_name(Requirement(r).name) for r in setup_cell_requirements()}
    added = sorted(colab_install.keys() - snapshot().keys())
    print("added:", ", ".join(f"{n} {colab_install[n]['metadata']['version']}" for n in added))
    print("of which no requirement on Colab's Python needs:", sorted(set(added) - needed))
    assert changes.keys() <= REPLACEABLE, (
        f"the setup cell now replaces {sorted(changes.keys() - REPLACEABLE)} too: add them to "
        "REPLACEABLE and rerun with FTCOURSE_COLAB_RESCAN=1 to update DEPENDENTS"
    )
    broken = [
        f"{name} requires {req}, gets {changes[canonicalize_name(req.name)][1]}"
        for name, reqs in dependents_requirements(tmp_path).items()
        if name not in changes
        for req in reqs
        if canonicalize_name(req.name) in changes
        and Version(changes[canonicalize_name(req.name)][1]) not in req.specifier
    ]
    assert not broken, broken


def test_without_the_cap_colab_would_print_a_dependency_error(registry, tmp_path):
    # One resolution is enough here: only the course's pinned libraries require huggingface-hub,
    # so keeping more of Colab's packages could not change the version pip picks for it.
    found = resolve(setup_cell_requirements(cap=False), tmp_path, KEEP, rounds=1)
    hub = Version(found["huggingface-hub"]["metadata"]["version"])
    gradio = dependents_requirements(tmp_path)["gradio"]
    needs = [r for r in gradio if canonicalize_name(r.name) == "huggingface-hub"]
    assert needs and hub not in needs[0].specifier, f"gradio {needs} accepts {hub}: drop the cap"


def fetch(url: str, headers: dict[str, str]):
    """GET `url`: (body, headers), tried three times (a busy resolver drops some look-ups)."""
    for attempt in range(3):
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read(), response.headers
        except urllib.error.URLError:
            if attempt == 2:
                raise
            time.sleep(1 + attempt)


class HttpFile(io.RawIOBase):
    """A remote file read by HTTP range requests: enough for zipfile to read one member."""

    def __init__(self, url: str):
        tail, headers = self._get(url, "bytes=-65536")
        self.url, self.pos = url, 0
        self.size = int(headers["Content-Range"].split("/")[1])
        self.blocks = {self.size - len(tail): tail}

    @staticmethod
    def _get(url: str, byte_range: str):
        return fetch(url, {"Range": byte_range})

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = [offset, self.pos + offset, self.size + offset][whence]
        return self.pos

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.pos)
        if n <= 0:
            return 0
        for start, data in self.blocks.items():
            if start <= self.pos and self.pos + n <= start + len(data):
                buffer[:n] = data[self.pos - start : self.pos - start + n]
                self.pos += n
                return n
        end = min(self.size, self.pos + max(n, 65536)) - 1
        self.blocks[self.pos] = self._get(self.url, f"bytes={self.pos}-{end}")[0]
        return self.readinto(buffer)


def wheel_requirements(name: str, version: str) -> list[str] | None:
    """Requires-Dist of a wheel of `name`==`version` on PyPI; None when it has no wheel there."""
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    files = json.loads(fetch(f"https://pypi.org/simple/{name}/", accept)[0])["files"]
    wheels = []
    for f in files:
        try:
            _, v, _, tags = parse_wheel_filename(f["filename"])
        except ValueError:
            continue
        if v == Version(version):
            fits = any(t.platform == "any" or t.platform.endswith("x86_64") for t in tags)
            wheels.append((fits, f["url"]))
    if not wheels:
        return None
    archive = zipfile.ZipFile(HttpFile(max(wheels)[1]))
    member = next(m for m in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", m))
    return Parser().parsestr(archive.read(member).decode()).get_all("Requires-Dist") or []


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("FTCOURSE_COLAB_RESCAN"),
    reason="reads every snapshot package's metadata from PyPI (about a minute): "
    "set FTCOURSE_COLAB_RESCAN=1 after refreshing data/colab/",
)
def test_dependents_list_is_complete(registry):
    pins = snapshot()
    with ThreadPoolExecutor(32) as pool:
        found = dict(zip(pins, pool.map(lambda n: wheel_requirements(n, pins[n]), pins)))
    dependents = {
        name
        for name, reqs in found.items()
        if reqs and name not in REPLACEABLE
        for req in map(Requirement, reqs)
        if canonicalize_name(req.name) in REPLACEABLE
        and (not req.marker or req.marker.evaluate(marker_env()))
    }
    unread = sorted(n for n, r in found.items() if r is None)
    print(f"{len(found) - len(unread)} packages read; no wheel on PyPI for {unread}")
    assert dependents == set(DEPENDENTS), f"DEPENDENTS should be {sorted(dependents)}"
