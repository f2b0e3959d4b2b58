"""Regenerate the README's screenshots with the same headless Chromium the tests use:
    .venv/bin/python docs/screenshots.py         # every page, the default variants
    .venv/bin/python docs/screenshots.py real [rope gqa performance experiments]
                                                 # the real model's views (docs/*_smollm2.png)
Trains the default variants with the default budget (or loads them from the cache); the real
model's views load smollm2-135m and press Run where a page waits for it (minutes on 2 cores)."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import PAGES, browser_page, open_page, serve_app, wait_idle  # noqa: E402

OUT = Path(__file__).resolve().parent
HEIGHT = {"build": 1150, "attention": 1250, "compare": 1300, "rope": 1900, "gqa": 2750,
          "performance": 1500}

REAL = "smollm2-135m"


def shoot(page, name):
    page.wait_for_timeout(1500)
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"docs/{name}.png", flush=True)


def real_model_pages(url, only=()):
    """RoPE geometry, GQA sharing, Latency & memory (generation) and StreamingLLM with the real
    model alone (`only`: some of them)."""
    for name, height in (("rope", 2900), ("gqa", 3000), ("performance", 1500), ("experiments", 1200)):
        if only and name not in only:
            continue
        with browser_page(width=1280, height=height) as page:
            started = time.perf_counter()
            open_page(page, url, name, query=f"variants={REAL}", timeout_ms=600_000)
            page.get_by_text("(pretrained) in the background").first.wait_for(state="detached", timeout=300_000)
            wait_idle(page, 600_000)
            if name == "performance":
                page.get_by_text("Generation vs context length").click()
                wait_idle(page)
            if name == "experiments":
                page.get_by_text("StreamingLLM", exact=True).click()
                wait_idle(page)
            if name in ("performance", "experiments") and page.get_by_role("button", name="Run").count():
                page.get_by_role("button", name="Run").click()
                page.wait_for_timeout(1000)
                wait_idle(page, 600_000)
                page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=120_000)
                wait_idle(page)
            print(f"{name}: drawn {time.perf_counter() - started:.1f} s after the request", flush=True)
            shoot(page, f"{'generation' if name == 'performance' else name}_smollm2")


with serve_app() as url:
    if sys.argv[1:2] == ["real"]:  # real [page ...]
        real_model_pages(url, sys.argv[2:])
        sys.exit()
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
