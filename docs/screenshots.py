"""Regenerate the README's screenshots with the same headless Chromium the tests use:
    .venv/bin/python docs/screenshots.py [NAME ...]
Trains the default variants with the default budget (or loads them from the cache). NAME: only
those shots (a page of PAGES, or one of REAL: the real model, SmolLM2-135M)."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import PAGES, browser_page, choose, open_page, serve_app, wait_idle, wait_trained  # noqa: E402

OUT = Path(__file__).resolve().parent
HEIGHT = {"build": 1150, "attention": 1250, "compare": 1300, "rope": 4250, "gqa": 2750,
          "experiments-extension": 1350, "tasks": 1750,
          "performance": 1500, "heads": 1300, "attention-smollm2": 1250, "heads-smollm2": 1900,
          "rope-smollm2": 2900, "gqa-smollm2": 3000, "generation-smollm2": 1500, "experiments-smollm2": 1600}
REAL = {"attention-smollm2": ("attention", "variants=smollm2-135m"),  # shot: (page, link)
        "heads-smollm2": ("heads", "variants=smollm2-135m"),
        "rope-smollm2": ("rope", "variants=smollm2-135m"),
        "gqa-smollm2": ("gqa", "variants=smollm2-135m"),
        "generation-smollm2": ("performance", "variants=smollm2-135m"),
        "experiments-smollm2": ("experiments", "variants=smollm2-135m")}
# shots of the small models with a view chosen through the link: shot -> (page, link)
VIEWS = {"experiments-extension": ("experiments", "experiment=Context+extension")}
CHOOSE = {"generation-smollm2": "Generation vs context length",  # shot: the view to pick, then Run
          "experiments-smollm2": "StreamingLLM"}
wanted = sys.argv[1:] or list(PAGES) + list(VIEWS) + list(REAL)

with serve_app() as url:
    for name in [n for n in REAL if n in wanted]:
        page_name, query = REAL[name]
        with browser_page(width=1280, height=HEIGHT[name]) as page:
            started = time.perf_counter()
            open_page(page, url, page_name, query, timeout_ms=600_000)
            page.get_by_text("(pretrained) in the background").first.wait_for(state="detached", timeout=600_000)
            wait_idle(page, 600_000)
            if name in CHOOSE:  # a view that measures on Run (minutes on 2 cores)
                page.get_by_text(CHOOSE[name], exact=True).click()
                wait_idle(page)
                if page.get_by_role("button", name="Run").count():
                    page.get_by_role("button", name="Run").click()
                    page.wait_for_timeout(1000)
                    wait_idle(page, 600_000)
            page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=600_000)
            wait_idle(page, 600_000)
            if page_name == "heads":  # open one head: a cell of the atlas clicked, as a user does
                box = page.locator("[data-testid='stPlotlyChart'] .scatterlayer .point").nth(18 * 9 + 7).bounding_box()
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                wait_idle(page, 600_000)
            print(f"{name}: ready {time.perf_counter() - started:.1f} s after the request")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(f"docs/{name}.png")
    for name in [n for n in list(PAGES) + list(VIEWS) if n in wanted]:
        with browser_page(width=1280, height=HEIGHT.get(name, 1500)) as page:
            started = time.perf_counter()
            open_page(page, url, *VIEWS.get(name, (name, "")), timeout_ms=600_000)
            if name == "tasks":  # the pass key, trained on its button as a person does
                choose(page.locator("[data-testid='stMain']"), "Task", "Pass key: a value, filler, then the question")
                wait_idle(page)
                if page.get_by_role("button", name="Train 2 task models").count():  # not cached yet
                    page.get_by_role("button", name="Train 2 task models").click()
                    wait_idle(page)
                    wait_trained(page, 600_000)
                page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=600_000)
                wait_idle(page)
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
