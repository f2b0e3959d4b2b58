"""Regenerate the README's screenshots with the same headless Chromium the tests use:
    .venv/bin/python docs/screenshots.py
Trains the default variants with the default budget (or loads them from the cache)."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import PAGES, browser_page, open_page, serve_app, wait_idle  # noqa: E402

OUT = Path(__file__).resolve().parent
HEIGHT = {"build": 1150, "attention": 1250, "compare": 1300, "rope": 1900, "gqa": 2750,
          "performance": 1500}

with serve_app() as url:
    for name in PAGES:
        with browser_page(width=1280, height=HEIGHT.get(name, 1500)) as page:
            started = time.perf_counter()
            open_page(page, url, name, timeout_ms=600_000)
            print(f"{name}: ready {time.perf_counter() - started:.1f} s after the request")
            if name == "performance":  # measures by itself on a first visit
                page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=120_000)
                wait_idle(page)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(f"docs/{name}.png")
            if name == "performance":
                page.get_by_text("Generation vs context length").click()
                page.wait_for_timeout(500)
                wait_idle(page)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(OUT / "generation.png"))
                print("docs/generation.png")
