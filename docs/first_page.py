"""Measure what a new user waits for, in the same headless Chromium the tests drive:
    .venv/bin/python docs/first_page.py [--quick]
Starts `./run.sh app` on a cold checkpoint cache, then reports seconds from the start to the
first page with its table (models drawn on random weights while the defaults train in the
background), to the trained models, and how long a view-only control takes to redraw while
training runs (--quick: stop there, without waiting for the trained models)."""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import ROOT, browser_page, free_port, wait_healthy, wait_trained  # noqa: E402

port = free_port()
env = {**os.environ, "GPT2VIZ_CACHE": tempfile.mkdtemp()}
started = time.perf_counter()
server = subprocess.Popen([str(ROOT / "run.sh"), "app", "--server.headless", "true",
                           "--server.port", str(port)], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    wait_healthy(port, server, timeout=600)
    served = time.perf_counter() - started
    with browser_page() as page:
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=600_000)
        first = time.perf_counter() - started
        go = time.perf_counter()
        page.locator("[data-testid='stSidebarNav']").get_by_text("Attention", exact=True).click()
        page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=600_000)
        attention = time.perf_counter() - go
        redraws = []
        for view in ["All layers × heads", "One head", "All layers × heads", "One head"]:
            go = time.perf_counter()
            page.get_by_text(view, exact=True).click()
            page.wait_for_function(
                "() => document.querySelector(\"[data-testid='stApp']\").dataset.testScriptState === 'notRunning'")
            redraws.append(time.perf_counter() - go)
        training = page.get_by_text("Training in the background").count() > 0
        if "--quick" not in sys.argv:
            wait_trained(page, timeout_ms=900_000)
        trained = time.perf_counter() - started
    print(f"server answering: {served:.1f} s after ./run.sh app")
    print(f"first page (table on random stand-ins): {first:.1f} s after ./run.sh app")
    print(f"Attention page with its heatmaps: {attention:.1f} s after the click")
    print(f"view-only control (View radio) while {'training runs' if training else 'idle'}: "
          f"median {sorted(redraws)[len(redraws) // 2]:.2f} s of {[round(r, 2) for r in redraws]}")
    if "--quick" not in sys.argv:
        print(f"trained defaults drawn: {trained:.1f} s after ./run.sh app")
finally:
    server.terminate()
    server.wait(10)
