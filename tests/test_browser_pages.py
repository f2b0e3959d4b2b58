"""The real dashboard in a real headless Chromium: every page renders charts with no
exception, and moving a control changes what is drawn. Screenshots go to test-artifacts/."""
import re

import pytest
from browser import (PAGES, ROOT, no_exception, open_page, serve_app, step_number, wait_background, wait_idle,
                     wait_trained)

pytestmark = [pytest.mark.browser, pytest.mark.trained_defaults]

ARTIFACTS = ROOT / "test-artifacts"


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_charts_without_exceptions(dashboard, name):
    url, page = dashboard
    open_page(page, url, name)
    if name == "tasks":  # a visit trains nothing: a person presses the button, then it draws
        assert page.locator("[data-testid='stPlotlyChart']").count() == 0
        page.get_by_role("button", name="Train 2 task models").click()
        wait_idle(page)
        wait_trained(page)
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=120_000)
    if name == "performance":  # a first visit measures by itself (or shows a stored run)
        wait_idle(page)
        assert page.get_by_text(re.compile(r"^Measured (just now|on .* UTC) on this machine")).count() == 1
        legend = " ".join(page.locator("[data-testid='stPlotlyChart'] .legendtext").all_text_contents())
        assert "sdpa (dense causal)" in legend and "–8192)" in legend  # the range reaches 8192
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def chart_titles(page):
    return page.locator("[data-testid='stPlotlyChart'] .gtitle").evaluate_all("els => els.map(e => e.textContent)")


def test_moving_the_layer_slider_redraws_the_heatmaps(dashboard):
    url, page = dashboard
    open_page(page, url, "attention")
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg")
    before = chart_titles(page)
    assert before and all("layer 0" in t for t in before)
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stPlotlyChart'] .gtitle\")]"
        ".some(e => e.textContent.includes('layer 1'))", timeout=120_000)
    after = chart_titles(page)
    assert after != before and all("layer 1" in t for t in after)
    assert page.locator("[data-testid='stException']").count() == 0


def test_a_shared_deep_link_works_on_a_fresh_server(dashboard, tmp_path):
    """A fresh server whose first request is /compare?... must route through app.py."""
    _, page = dashboard
    with serve_app({"GPT2VIZ_CACHE": str(tmp_path)}) as url:
        open_page(page, url, "compare", "weights=random&variants=swa&variants=gqa")
        page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=120_000)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_role("heading", name="Compare & generate").count() == 1
        assert page.locator("[data-testid='stSidebarNav']").inner_text().count("Attention") == 1
        titles = page.locator("[data-testid='stPlotlyChart'] .gtitle, "
                              "[data-testid='stPlotlyChart'] .annotation-text").evaluate_all(
            "els => els.map(e => e.textContent)")
        assert "swa" in titles and "gqa" in titles and "gpt2" not in titles


def test_generation_view_follows_its_controls(dashboard):
    url, page = dashboard
    open_page(page, url, "performance")
    main = page.locator("[data-testid='stMain']")
    main.locator("[data-testid='stRadio']").get_by_text("Generation vs context length").click()
    wait_idle(page)
    page.get_by_text(re.compile(r"^KV cache bytes = slots")).wait_for(timeout=120_000)

    def legend():
        return main.locator("[data-testid='stPlotlyChart'] .legendtext").all_text_contents()

    assert {"MHA · full", "MQA · window 256 + 4 sinks", "gpt2"} <= set(legend())
    main.get_by_text("Add the selected variants").click()  # the checkbox: family only
    wait_idle(page)
    assert "gpt2" not in legend() and "MHA · full" in legend()
    main.get_by_role("slider").nth(1).focus()  # window of the family: 256 -> 64
    page.keyboard.press("ArrowLeft")
    wait_idle(page)
    assert "MHA · window 64" in legend() and "MHA · window 256" not in legend()
    step_number(main, "Sinks")  # 4 -> 5
    wait_idle(page)
    assert "GQA 3 · window 64 + 5 sinks" in legend()
    main.get_by_role("button", name="Run").click()  # measured in the background, then drawn
    page.get_by_text(re.compile(r"^Measuring .* in the background$")).wait_for()
    wait_background(page)
    assert page.get_by_text(re.compile(r"^Measured just now on this machine")).count() == 1
    assert no_exception(page)
