"""A course notebook in a real browser: JupyterLab headless, driven by headless Chromium.

The unit tests drive `ftcourse.widgets.form` from Python; only a browser shows what a learner sees.
This test opens a copy of notebook 01 in JupyterLab, runs it with Run > Run All Cells, ticks a box in
its decision form and checks, on the page, that the form's advice follows and that its plots are
drawn. It also checks that no form label is cut short. Screenshots of the form and of a plot land in
build/browser/.

Chromium and ChromeDriver are Debian's packages (scripts/install_browser.sh installs them; the test
runs it when they are missing). The test skips only where they cannot be installed, never in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from ftcourse.decision import recommend

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "build" / "browser"
# The fastest course notebook with both a widget form and matplotlib plots (the README's times).
NOTEBOOK = "01_strategy_and_memory.ipynb"
# The form under test, found by a control's description: the argument name of `recommend` it sets.
TICKED = "needs_fresh_facts"
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
# Generous: the notebook runs training steps on the base model, and other jobs share the cores.
SERVER_START_S = 90  # JupyterLab up and answering
PAGE_S = 90  # the lab's page loaded and the notebook's kernel idle
RUN_S = 300  # every cell of the notebook run
OUTPUT_S = 60  # a control clicked, and the form's output updated


def _text(s: str) -> str:
    """Whitespace-insensitive text, as the browser's innerText and a Python string compare."""
    return " ".join(s.split())


def _lines(s: str) -> list[str]:
    """The non-empty lines of a text, each whitespace-insensitive."""
    return [_text(line) for line in s.splitlines() if line.strip()]


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
    """A folder holding a copy of the course notebook, so the run leaves the checkout untouched."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
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
        "FTCOURSE_OUTPUT_DIR": str(tmp_path / "outputs"),
        "HF_HUB_OFFLINE": "1",
    }
    # A learner's kernel draws plots inline: ipykernel picks that backend only when MPLBACKEND is
    # unset, and the Makefile exports Agg.
    env.pop("MPLBACKEND", None)
    # no "get Jupyter news?" toast over the form: this machine is offline anyway
    notification = state / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    log_path = tmp_path / "jupyterlab.log"
    log = log_path.open("w")
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
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to read the notebook's state
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
                    why = "exited" if proc.poll() is not None else f"not up in {SERVER_START_S} s"
                    pytest.fail(f"JupyterLab {why}:\n{log_path.read_text()[-3000:]}")
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
    browser.set_script_timeout(PAGE_S)
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
const panel = app && Array.from(app.shell.widgets('main')).find(
    w => w.context && w.context.path === '{NOTEBOOK}');
"""
KERNEL_IDLE_JS = f"""
{PANEL_JS}
const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
if (kernel && kernel.status === 'idle' && panel.context.isReady) {{
    app.shell.activateById(panel.id);  // what a learner's click on the notebook's tab does
    return true;
}}
return false;
"""
# Where Run All stands, from the notebook's model: cells run, errors, image outputs.
RUN_STATE_JS = f"""
{PANEL_JS}
const cells = Array.from(panel.content.model.cells).filter(c => c.type === 'code');
const outputs = cells.flatMap(c => Array.from({{length: c.outputs.length}},
    (_, i) => c.outputs.get(i).toJSON()));
return {{
    cells: cells.length,
    run: cells.filter(c => c.executionCount !== null).length,
    errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    images: outputs.filter(o => o.data && o.data['image/png']).length,
    idle: panel.sessionContext.session?.kernel?.status === 'idle',
}};
"""
# The form: the ipywidgets `interactive` box (its CSS class) holding a checkbox described as TICKED.
CHECKBOX_XPATH = (
    f".//label[contains(@class, 'widget-label-basic')][normalize-space() = '{TICKED}']/input"
)
FORM_XPATH = f"//div[contains(@class, 'widget-interact')][{CHECKBOX_XPATH}]"
# Every description in the widget forms whose text the page cuts (an ellipsis: "needs_fre...").
CUT_LABELS_JS = r"""
return Array.from(document.querySelectorAll(
        '.widget-interact .widget-label, .widget-interact .widget-label-basic span'))
    .filter(e => e.textContent.replace(/[\s\u200b]/g, '') && e.scrollWidth > e.clientWidth)
    .map(e => e.textContent.trim());
"""
# The images in the notebook's outputs (matplotlib's PNGs), each scrolled into view in turn.
PLOT = ".jp-OutputArea-output img"
IMAGES_JS = f"""
return Array.from(document.querySelectorAll('{PLOT}')).map(img => {{
    img.scrollIntoView({{block: 'center'}});
    return {{decoded: img.complete && img.naturalWidth > 0,
             width: img.getBoundingClientRect().width}};
}});
"""
IN_VIEW_JS = "arguments[0].scrollIntoView({block: 'center'})"


def _run_all(browser) -> None:
    """Run > Run All Cells, clicked in the menu bar as a learner does."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(browser, OUTPUT_S)
    menu = "//div[contains(@class, 'lm-MenuBar-itemLabel')][normalize-space() = 'Run']"
    wait.until(ec.element_to_be_clickable((By.XPATH, menu))).click()
    item = "//li[contains(@class, 'lm-Menu-item')][normalize-space() = 'Run All Cells']"
    wait.until(ec.element_to_be_clickable((By.XPATH, item))).click()


def _drawn(images: list[dict], expected: int) -> list[dict] | None:
    """The images, if there are `expected` of them, each decoded and drawn wider than 300px."""
    ok = len(images) == expected and all(i["decoded"] and i["width"] > 300 for i in images)
    return images if ok else None


def _finished(browser) -> dict | None:
    """The run's state once every code cell has run (or one failed) and the kernel is idle."""
    state = browser.execute_script(RUN_STATE_JS)
    done = state["errors"] or state["run"] == state["cells"]
    return state if done and state["idle"] else None


def test_course_notebook_runs_and_its_form_answers_in_the_browser(lab: str, driver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    # The advice's reason for fresh facts, from the plain function: the click must add it.
    fresh = _text(f"- {recommend(needs_fresh_facts=True).reasons[1]}")
    assert fresh not in _lines(recommend().report())  # otherwise the test below proves nothing

    shutil.rmtree(SCREENSHOTS, ignore_errors=True)  # no screenshot from an earlier run
    SCREENSHOTS.mkdir(parents=True)
    shot = SCREENSHOTS / "run.png"
    try:
        driver.get(lab)
        WebDriverWait(driver, PAGE_S).until(
            lambda d: d.execute_script(KERNEL_IDLE_JS),
            "the notebook did not open with an idle kernel",
        )
        _run_all(driver)
        state = WebDriverWait(driver, RUN_S).until(
            _finished, f"Run All did not finish in {RUN_S} s"
        )
        assert not state["errors"], f"the notebook failed in the browser: {state['errors']}"

        # The form, as a learner finds it below its cell: advice without retrieval, no cut label.
        shot = SCREENSHOTS / "form.png"
        wait = WebDriverWait(driver, OUTPUT_S)
        form = wait.until(
            ec.presence_of_element_located((By.XPATH, FORM_XPATH)),
            "the form did not render: is jupyterlab_widgets installed in this environment?",
        )
        driver.execute_script(IN_VIEW_JS, form)
        assert form.is_displayed()
        checkbox = form.find_element(By.XPATH, CHECKBOX_XPATH)
        assert not checkbox.is_selected(), f"the notebook's form must start with {TICKED}=False"
        output = form.find_element(By.CSS_SELECTOR, ".widget-output")
        before = wait.until(
            lambda d: _lines(output.text), "the form shows no output for its first values"
        )
        assert before[0].startswith("Recommendation:") and "RAG" not in before[0], before
        assert fresh not in before
        assert driver.execute_script(CUT_LABELS_JS) == [], "a form label is cut short"

        checkbox.click()  # what a learner's click does
        after = wait.until(
            lambda d: fresh in (lines := _lines(output.text)) and lines,
            "the form's advice did not follow the ticked box",
        )
        assert after[0].startswith("Recommendation: RAG"), after
        # the same advice otherwise: every reason given before is still given, and one is added
        assert set(before[1:]) <= set(after[1:]) and len(after) == len(before) + 1, after
        assert checkbox.is_selected()
        driver.execute_script(IN_VIEW_JS, form)
        driver.save_screenshot(str(shot))

        # The plots: every image output of the run is on the page, decoded and drawn at full size.
        shot = SCREENSHOTS / "plot.png"
        assert state["images"] > 0, "the notebook drew no plot: is MPLBACKEND set for the kernel?"
        wait.until(
            lambda d: _drawn(d.execute_script(IMAGES_JS), state["images"]),
            f"the page does not show the run's {state['images']} plots",
        )
        driver.execute_script(IN_VIEW_JS, driver.find_element(By.CSS_SELECTOR, PLOT))
    except BaseException:
        (SCREENSHOTS / "page.html").write_text(driver.page_source)  # the page's DOM, to debug
        raise
    finally:
        driver.save_screenshot(str(shot))
