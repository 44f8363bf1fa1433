"""The notebooks where learners use them: JupyterLab in headless Chromium (Playwright driving Debian's
``chromium``). 01 runs every cell, and its document browser and its page-knob widget redraw when a slider
moves; 03's λ slider redraws the losses and gradients; 04's live dashboard redraws while it trains; 07's image
picker redraws a run's caption and retrievals.
Screenshots are kept in ``runs/test-artifacts/browser/``."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lcl_core.notebooks import notebook_path

from training_helpers import REPO

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "runs" / "test-artifacts" / "browser"
CELL_TIMEOUT_MS = 300_000  # a notebook's run at smoke size on 2 cores, with margin

# JupyterLab's own objects (exposed with --LabApp.expose_app_in_browser): the open notebook and its cells
CURRENT = "window.jupyterapp.shell.currentWidget"
OPENED = f"(path) => {{ const w = window.jupyterapp && {CURRENT}; return !!(w && w.context && w.context.path === path " \
         "&& w.sessionContext.session && w.sessionContext.session.kernel && " \
         "w.sessionContext.session.kernel.status === 'idle'); }"
ALL_RUN = f"() => {{ const w = {CURRENT}; const cells = w.content.widgets.filter(c => c.model.type === 'code'); " \
          "return w.sessionContext.session.kernel.status === 'idle' && " \
          "cells.every(c => c.model.executionCount !== null); }"
ERRORS = f"() => {CURRENT}.content.widgets.filter(c => c.model.type === 'code').flatMap(c => " \
         "c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue))"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no chromium: apt-get install chromium (.ci/run does)")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parameterised(name: str, folder: Path, **parameters) -> str:
    """A copy of notebook ``name`` in ``folder`` with papermill's injected-parameters cell, as
    ``lcl notebooks run`` would run it, for JupyterLab to open."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = parameterize_notebook(load_notebook_node(str(notebook_path(name))), parameters)
    nbformat.write(notebook, folder / f"{name}.ipynb")
    return f"{name}.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``jupyter lab`` on a free port with a token, serving smoke-size copies of 01, 03, 04 and 07."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    executable = chromium()
    folder = tmp_path_factory.mktemp("lab")
    smoke = {"profile": "smoke", "out_dir": str(folder / "out")}
    notebooks = {"01": parameterised("01_interleaved_data", folder, **smoke, interactive=True),
                 "03": parameterised("03_objective", folder, **smoke, interactive=True),
                 "04": parameterised("04_pretrain", folder, **smoke),
                 "07": parameterised("07_transfer", folder, **smoke, interactive=True)}
    port, token = free_port(), secrets.token_hex(16)
    log = open(folder / "jupyter.log", "w")
    # a lab of its own: no saved workspace or user setting of this machine, no news pop-up over the notebook
    settings = folder / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               JUPYTER_CONFIG_DIR=str(folder / "jupyter-config"), JUPYTERLAB_SETTINGS_DIR=str(folder / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(folder / "lab-workspaces"))
    root = ["--allow-root"] if os.geteuid() == 0 else []  # CI runs as root
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", *root, "--ServerApp.ip=127.0.0.1",
                               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True"],
                              cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    with playwright.sync_playwright() as driver:
        browser = None
        try:
            deadline = time.monotonic() + 90
            while True:
                assert server.poll() is None, f"jupyter lab exited:\n{(folder / 'jupyter.log').read_text()}"
                try:
                    urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "jupyter lab did not answer in 90 s"
                    time.sleep(0.5)
            browser = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            yield {"browser": browser, "base": base, "token": token, "notebooks": notebooks, "folder": folder}
        finally:
            if browser is not None:
                browser.close()
            server.terminate()  # the server shuts its kernels down with it
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()


def open_notebook(lab, key: str):
    page = lab["browser"].new_page(viewport={"width": 1400, "height": 1000})
    notebook = lab["notebooks"][key]  # a workspace per page: the other page's open notebook stays out of it
    page.goto(f"{lab['base']}/lab/workspaces/nb{key}/tree/{notebook}?token={lab['token']}&reset")
    page.wait_for_function(OPENED, arg=notebook, timeout=120_000)
    return page


def run_all(page) -> None:
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def wait_until_run(page, name: str) -> None:
    page.wait_for_function(ALL_RUN, timeout=CELL_TIMEOUT_MS, polling=500)
    errors = page.evaluate(ERRORS)
    assert not errors, f"{name} raised in JupyterLab: {errors}"


def cell_index(page, text: str) -> int:
    index = page.evaluate(f"(text) => {CURRENT}.content.widgets.findIndex(c => "
                          "c.model.sharedModel.getSource().includes(text))", text)
    assert index >= 0, f"no cell holds {text!r}"
    return index


def show_cell(page, index: int):
    """Scroll cell ``index`` into view (JupyterLab renders cells lazily) and return its locator."""
    page.evaluate(f"async (i) => {{ const n = {CURRENT}.content; n.activeCellIndex = i; await n.scrollToItem(i); }}",
                  index)
    return page.locator(f".jp-Notebook .jp-Cell[data-windowed-list-index='{index}']")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def move_slider(page, cell, *, readout: str) -> str:
    """Press → on the cell's first slider; wait until its output has redrawn and the slider reads ``readout``.
    Returns the new output's text."""
    slider = cell.locator(".widget-slider, .widget-hslider").first
    slider.wait_for(timeout=30_000)
    shown = cell.locator(".widget-output, .jupyter-widgets-output-area").first
    shown.wait_for(timeout=30_000)
    before = shown.inner_text()
    assert before.strip(), "the widget shows nothing before it is moved"
    slider.locator(".noUi-handle, .slider-handle").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, before]) => el.innerText !== before && el.innerText.trim() !== ''",
                           arg=[shown.element_handle(), before], timeout=60_000)
    assert cell.locator(".widget-readout").first.inner_text().strip() == readout
    page.wait_for_function(f"() => {CURRENT}.sessionContext.session.kernel.status === 'idle'", timeout=60_000)
    assert shown.locator("img").count() >= 1, "the redrawn output has no figure"
    return shown.inner_text()


def test_01_runs_in_jupyterlab_and_its_sliders_redraw_the_page(lab):
    page = open_notebook(lab, "01")
    run_all(page)
    wait_until_run(page, "01_interleaved_data")
    move_slider(page, show_cell(page, cell_index(page, "explore(show_world_document")), readout="1")
    screenshot(page, "01_interleaved_data")
    # the knob widget: subject_focus 0.92 -> 0.5 draws other pages; their statistics (text) change with them
    redrawn = move_slider(page, show_cell(page, cell_index(page, "show_pages_statistics(")), readout="0.5")
    assert "30 pages" in redrawn
    screenshot(page, "01_knob_page")
    page.close()


def test_03_lambda_slider_redraws_the_losses_and_the_encoder_gradient(lab):
    page = open_notebook(lab, "03")
    run_all(page)
    wait_until_run(page, "03_objective")
    cell = show_cell(page, cell_index(page, "show_weighted_terms("))
    redrawn = move_slider(page, cell, readout="0.3")  # the slider starts at the paper's λ = 0.1
    assert "weight 0.3: the contrastive term gives" in redrawn
    screenshot(page, "03_objective_lambda")
    page.close()


def test_04_live_dashboard_redraws_while_training(lab):
    page = open_notebook(lab, "04")
    index = cell_index(page, "dashboard = LiveDashboard(")
    images = page.evaluate(f"(i) => {{ window.lclFrames = new Set(); const cell = {CURRENT}.content.widgets[i]; "
                           "cell.model.outputs.changed.connect(() => { for (const o of cell.model.outputs.toJSON()) "
                           "{ const png = o.data && o.data['image/png']; if (png) window.lclFrames.add(png); } }); "
                           "return true; }", index)
    assert images
    run_all(page)
    # while the training cell still runs, the dashboard must already have been redrawn
    page.wait_for_function(f"(i) => window.lclFrames.size >= 2 && {CURRENT}.content.widgets[i].model.executionCount "
                           "=== null", arg=index, timeout=CELL_TIMEOUT_MS, polling=200)
    show_cell(page, index)
    screenshot(page, "04_pretrain_training")
    wait_until_run(page, "04_pretrain")
    frames = page.evaluate("() => window.lclFrames.size")
    assert frames >= 3, f"the dashboard drew {frames} distinct frames"
    show_cell(page, index)
    screenshot(page, "04_pretrain")
    page.close()


def test_07_image_picker_redraws_a_runs_caption_and_retrievals(lab):
    page = open_notebook(lab, "07")
    run_all(page)
    wait_until_run(page, "07_transfer")
    cell = show_cell(page, cell_index(page, "explore(show_pick,"))
    redrawn = move_slider(page, cell, readout="1")  # the image slider: held-out image 0 -> 1
    assert "retrieved caption" in redrawn and "this image's own" in redrawn
    screenshot(page, "07_transfer_image_picker")
    page.close()
