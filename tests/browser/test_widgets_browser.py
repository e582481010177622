"""The widget forms in a real browser: JupyterLab headless, driven by headless Chromium.

The unit tests drive `ftcourse.widgets.form` from Python; only a browser shows what a learner sees.
This test writes a small notebook with a form over `ftcourse.decision.recommend`, opens it in
JupyterLab, runs it, picks another value in the form's dropdown, and checks that the form's output
shows what the plain function returns for that value. The screenshot lands in
build/browser/widgets.png.

Chromium and ChromeDriver are Debian's packages (scripts/install_browser.sh installs them; the test
runs it when they are missing). The test skips only where they cannot be installed, never in CI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from ftcourse.decision import recommend

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = REPO / "build" / "browser" / "widgets.png"
NOTEBOOK = "widget_demo.ipynb"
# The flags this machine's closed network needs: no background connections to Google's services.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
# The notebook under test: the form exactly as a lesson writes it.
CELLS = [
    "from ftcourse.decision import recommend\nfrom ftcourse.widgets import form",
    'form(recommend, needs_fresh_facts=[("no", False), ("yes", True)])',
]
SERVER_START_S = 60  # JupyterLab up and answering
PAGE_S = 60  # the lab's page loaded and the notebook's kernel idle
OUTPUT_S = 30  # the form rendered, or its output updated


def _text(s: str) -> str:
    """Whitespace-insensitive text, as the browser's innerText and a Python string compare."""
    return " ".join(s.split())


@pytest.fixture(scope="module")
def browser_binaries() -> tuple[Path, Path]:
    """Paths of Chromium and ChromeDriver, installed with scripts/install_browser.sh if missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        run = subprocess.run(
            ["bash", str(REPO / "scripts" / "install_browser.sh")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if run.returncode != 0:
            why = f"Chromium could not be installed: {(run.stderr or run.stdout).strip()}"
            if os.environ.get("CI"):
                pytest.fail(why)  # CI must run the browser test, not skip it
            pytest.skip(why)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    """A folder holding only the test notebook, with the course's kernel named in its metadata."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    root = tmp_path / "notebooks"
    root.mkdir()
    nbformat.write(nb, root / NOTEBOOK)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a process we started; kill it if it does not exit within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def lab(notebook_dir: Path, tmp_path: Path):
    """A headless JupyterLab on 127.0.0.1 serving `notebook_dir`; yields the notebook's URL."""
    port, token = _free_port(), uuid.uuid4().hex
    state = tmp_path / "jupyter"  # settings, workspaces and runtime files: nothing in ~/.jupyter
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "HF_HUB_OFFLINE": "1",
    }
    # no "get Jupyter news?" toast over the form: this machine is offline anyway
    notification = state / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    log = (tmp_path / "jupyterlab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--port-retries=0",
            "--allow-root",  # CI runs as root
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={notebook_dir}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run the notebook
            "--LabApp.news_url=None",  # no news feed, no update check: this machine is offline
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=notebook_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (tmp_path / "jupyterlab.log").read_text()[-3000:]
                    why = "exited" if proc.poll() is not None else f"not up in {SERVER_START_S} s"
                    pytest.fail(f"JupyterLab {why}:\n{tail}")
                time.sleep(0.5)
        yield f"{base}/lab/tree/{NOTEBOOK}?reset&token={token}"
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def driver(browser_binaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Headless Chromium through Debian's ChromeDriver; never downloads a driver or a browser."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try the network
    chromium, chromedriver = browser_binaries
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    service = Service(executable_path=str(chromedriver), log_output=str(tmp_path / "driver.log"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(PAGE_S)
    browser.set_script_timeout(PAGE_S)  # running all cells waits for the kernel
    try:
        yield browser
    finally:
        try:
            browser.quit()
        finally:
            service.stop()


# The open notebook's panel, found by its path (the Launcher may hold the focus).
PANEL_JS = f"""
const app = window.jupyterapp;
if (!app) return null;
return Array.from(app.shell.widgets('main')).find(
    w => w.context && w.context.path === '{NOTEBOOK}') || null;
"""
KERNEL_IDLE_JS = f"""
const panel = (() => {{ {PANEL_JS} }})();
const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
return Boolean(kernel && kernel.status === 'idle' && panel.context.isReady);
"""
RUN_ALL_JS = f"""
const done = arguments[arguments.length - 1];
const panel = (() => {{ {PANEL_JS} }})();
window.jupyterapp.shell.activateById(panel.id);
window.jupyterapp.commands.execute('notebook:run-all-cells')
    .then(() => done('ok'), e => done('error: ' + e));
"""
FORM = ".widget-interact"


def _output_text(browser) -> str:
    from selenium.webdriver.common.by import By

    return _text(browser.find_element(By.CSS_SELECTOR, f"{FORM} .widget-output").text)


def test_widget_form_updates_in_the_browser(lab: str, driver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    before = _text(recommend(needs_fresh_facts=False).report())
    after = _text(recommend(needs_fresh_facts=True).report())
    assert before != after  # otherwise the test below proves nothing

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(lab)
        WebDriverWait(driver, PAGE_S).until(
            lambda d: d.execute_script(KERNEL_IDLE_JS),
            "the notebook did not open with an idle kernel",
        )
        assert driver.execute_async_script(RUN_ALL_JS) == "ok"
        wait = WebDriverWait(driver, OUTPUT_S)
        dropdown = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, f"{FORM} select")),
            "the form did not render: is jupyterlab_widgets installed in this environment?",
        )
        wait.until(
            lambda d: _output_text(d) == before,
            "the form shows no output for its first value",
        )

        Select(dropdown).select_by_visible_text("yes")  # what a learner's click does
        wait.until(
            lambda d: _output_text(d) == after,
            "the form's output did not follow the dropdown",
        )
        assert "RAG" in _output_text(driver)
    finally:
        driver.save_screenshot(str(SCREENSHOT))
