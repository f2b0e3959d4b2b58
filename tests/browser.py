"""Start the real dashboard (`streamlit run`) on a free local port and drive it with
Debian's Chromium through Playwright. Used by the browser tests and docs/screenshots.py."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PAGES = {"build": "", "attention": "attention", "compare": "compare", "rope": "rope", "gqa": "gqa",
         "performance": "performance", "experiments": "experiments", "heads": "heads",
         "tasks": "tasks"}


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float) -> None:
    """Until the Streamlit server on `port` answers its health check; RuntimeError (with the
    server's last output when it was captured) if it exits or takes longer than `timeout`."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            output = proc.stdout.read().decode()[-2000:] if proc.stdout else ""
            raise RuntimeError("streamlit did not start: " + output)
        if time.time() > deadline:
            raise RuntimeError("streamlit did not start in time")
        time.sleep(0.2)


@contextlib.contextmanager
def serve_app(env_overrides: dict | None = None, timeout: float = 60, root: Path = ROOT):
    """The dashboard of the checkout at `root` (default this one) on a free local port. Test
    workers run side by side (pytest-xdist): a port another server took between our probe and
    its bind makes streamlit exit, and we try another port."""
    env = {**os.environ, **(env_overrides or {})}
    if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # a server beside the other workers: their share
        workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    for attempt in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, proc, timeout)
            break
        except RuntimeError as err:
            _stop(proc)
            if attempt == 2 or "in use" not in str(err):
                raise
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def open_browser():
    """One Chromium; Playwright's sync API allows one at a time per thread, so a test module
    opens one and makes its pages from it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def browser_page(width=1400, height=1000):
    with open_browser() as browser:
        yield browser.new_page(viewport={"width": width, "height": height})


def wait_idle(page, timeout_ms=180_000):
    """Wait until the script has finished its run (and at least once started it)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_timeout(500)
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def open_page(page, base_url, name, query="", timeout_ms=180_000, trained=True):
    """Open a page; with trained=True also wait until background training (if any) is done
    and the trained models are drawn."""
    page.goto(f"{base_url}/{PAGES[name]}{'?' + query if query else ''}")
    wait_idle(page, timeout_ms)
    if trained:
        wait_trained(page, timeout_ms)


def wait_trained(page, timeout_ms=180_000):
    page.get_by_text("Training in the background").first.wait_for(state="detached", timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def wait_background(page, timeout_ms=180_000):
    """Until a page's background work (dashboard/background.py: its box's title ends "in the
    background") is done and the page has redrawn with its result."""
    page.get_by_text(re.compile(r" in the background$")).first.wait_for(state="detached", timeout=timeout_ms)
    wait_idle(page, timeout_ms)


# ------------------------------------------------------------------ acting like a user
def sidebar(page):
    return page.locator("[data-testid='stSidebar']")


def add_variant(page, label):
    """Open the sidebar's Compare multiselect and pick `label`, as a person would."""
    sidebar(page).locator("[data-testid='stMultiSelect'] input").click()
    page.get_by_role("option", name=label, exact=True).click()
    page.keyboard.press("Escape")
    _click_away(page)


def _click_away(page):
    """Leave the multiselect as a person does, by clicking elsewhere: while it has focus its
    tags take more room, so the first click after it lands on a control that has just moved."""
    sidebar(page).get_by_role("heading", name="Weights").click()
    wait_idle(page)


def remove_variant(page, label):
    sidebar(page).get_by_role("button", name=f"Remove {label}", exact=True).click()
    _click_away(page)


def custom_panel(page, title):
    """The sidebar expander of a custom slot ('Custom 1', 'Custom 2'); opened if closed."""
    panel = sidebar(page).locator("[data-testid='stExpander']").filter(has_text=title).first
    if not panel.locator("[data-testid='stNumberInputField']").first.is_visible():
        panel.locator("summary").click()
    return panel


def step_number(scope, label, up=True):
    field = scope.locator("[data-testid='stNumberInput']").filter(
        has=scope.page.get_by_label(label, exact=True)).first
    field.locator(f"[data-testid='stNumberInputStep{'Up' if up else 'Down'}']").click()
    wait_idle(scope.page)


def type_number(scope, label, value):
    field = scope.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    wait_idle(scope.page)


def choose(scope, label, option, tries=3):
    """A selectbox: open it by its label, click the option. A rerun (the training banner's
    timer) closes an open list, so, as a person would, open it again when it closed."""
    box = scope.locator("[data-testid='stSelectbox']").filter(has=scope.page.get_by_text(label, exact=True)).first
    for attempt in range(tries):
        box.click()
        try:
            scope.page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            break
        except Exception:  # playwright's TimeoutError: the list closed before the click
            if attempt == tries - 1:
                raise
    wait_idle(scope.page)


def variants_shown(page) -> list[str]:
    """The variant column of Build & train's table."""
    return [row["variant"] for row in table(page)]


def table(page, index=0) -> list[dict]:
    """The rows of the index-th st.dataframe as a user reads them (its accessible grid)."""
    grid = page.locator("[data-testid='stDataFrame']").nth(index)
    grid.locator("[role='gridcell']").first.wait_for(state="attached")
    headers = grid.locator("[role='columnheader']").all_text_contents()
    cells = grid.locator("[role='gridcell']").all_text_contents()
    return [dict(zip(headers, cells[i:i + len(headers)])) for i in range(0, len(cells), len(headers))]


def chart_texts(page) -> list[str]:
    """Titles and annotations of every plotly chart on the page."""
    return page.locator("[data-testid='stPlotlyChart'] .gtitle, [data-testid='stPlotlyChart'] "
                        ".annotation-text").evaluate_all(  # a wrapped title: its lines, spaced
        "els => els.map(e => [...e.querySelectorAll('tspan.line')].map(t => t.textContent).join(' ')"
        " || e.textContent)")


def no_exception(page) -> bool:
    return page.locator("[data-testid='stException']").count() == 0


@contextlib.contextmanager
def new_page(chromium):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})  # a context of its own
    try:
        yield page
    finally:
        page.close()


def page_text(page):
    return page.locator("[data-testid='stMain']").inner_text()
