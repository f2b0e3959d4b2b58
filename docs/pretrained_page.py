"""Measure what selecting the real model (SmolLM2-135M) costs a user, in the same headless
Chromium the tests drive:
    .venv/bin/python docs/pretrained_page.py [--cold]
Starts the dashboard (the shared checkpoint cache, so the dequantized weights are on disk;
--cold: an empty cache, the GGUF read the very first time), opens Attention with gpt2 on random
weights, then reports seconds from picking smollm2-135m in the sidebar to its first heatmap, a
view-only change (head, colour scale) after that, the Head atlas the first time and again, and
the server's resident memory with the real model loaded and four sessions looking at it."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import (  # noqa: E402
    ROOT,
    add_variant,
    choose,
    free_port,
    open_browser,
    open_page,
    wait_healthy,
    wait_idle,
)

NAME = "smollm2-135m"


def chart_title(page, text, timeout_ms=600_000):
    page.wait_for_function(
        "t => [...document.querySelectorAll(\"[data-testid='stPlotlyChart'] .gtitle\")]"
        ".some(e => e.textContent.includes(t))", arg=text, timeout=timeout_ms)


def timed(action) -> float:
    go = time.perf_counter()
    action()
    return time.perf_counter() - go


port = free_port()
env = {**os.environ, "GPT2VIZ_TRAIN_STEPS": "10"}
cold_cache = tempfile.mkdtemp() if "--cold" in sys.argv else None
if cold_cache:
    env["GPT2VIZ_CACHE"] = cold_cache
server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                           "--server.port", str(port), "--server.address", "127.0.0.1",
                           "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}"
try:
    wait_healthy(port, server, timeout=300)
    with open_browser() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, url, "attention", "weights=random&variants=gpt2")
        rss_before = psutil.Process(server.pid).memory_info().rss

        def pick():
            add_variant(page, f"{NAME} (pretrained)")
            chart_title(page, f"{NAME} · layer 0")
            wait_idle(page)

        first = timed(pick)
        views = []
        for head in ["3", "mean over heads", "5", "mean over heads"]:  # the Head picker, as a user
            page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").filter(
                has=page.get_by_text("Head", exact=True)).first.click()
            option = page.get_by_role("option", name=head, exact=True)
            views.append(timed(lambda: (option.click(), chart_title(
                page, f"{NAME} · layer 0 · " + ("mean over heads" if head.startswith("mean") else f"head {head}")))))
            wait_idle(page)

        def atlas():
            page.locator("[data-testid='stSidebarNav']").get_by_text("Head atlas").click()
            wait_idle(page, 600_000)
            choose(page.locator("[data-testid='stMain']"), "Variant", NAME)
            chart_title(page, f"{NAME}: mass on the first token")
            wait_idle(page)

        atlas_first = timed(atlas)
        page.locator("[data-testid='stSidebarNav']").get_by_text("Attention", exact=True).click()
        wait_idle(page)
        atlas_again = timed(atlas)
        others = []
        for _ in range(4):  # four more sessions, each on the real model's Attention page
            other = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_page(other, url, "attention", f"weights=random&variants={NAME}")
            chart_title(other, f"{NAME} · layer 0")
            others.append(other)
        rss = psutil.Process(server.pid).memory_info().rss
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end "
          f"(shared with other work)")
    print(f"weights {'dequantized from the GGUF (cold cache)' if '--cold' in sys.argv else 'cached on disk'}")
    print(f"first heatmap of {NAME}: {first:.1f} s after picking it in the sidebar")
    print(f"view-only change (Head: from the click on the option to the redrawn title): median {sorted(views)[len(views) // 2]:.2f} s of "
          f"{[round(v, 2) for v in views]}")
    print(f"Head atlas of {NAME}: {atlas_first:.1f} s the first time, {atlas_again:.1f} s again (cached)")
    print(f"server resident memory: {rss_before / 2**20:.0f} MiB before, {rss / 2**20:.0f} MiB with "
          f"{NAME} loaded and 5 sessions (1 + 4) on its Attention page")
finally:
    server.terminate()
    server.wait(10)
    if cold_cache:
        shutil.rmtree(cold_cache)  # 540 MB of dequantized weights
