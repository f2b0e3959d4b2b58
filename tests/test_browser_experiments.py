"""The Experiments page in a real headless Chromium: a person picks an experiment, a model, moves
the position slider, types an uptraining budget and presses the button; the page answers with
figures and tables, never an exception. Screenshots go to test-artifacts/."""
import pytest
from browser import (
    ROOT,
    chart_texts,
    choose,
    no_exception,
    open_page,
    table,
    type_number,
    wait_background,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.trained_defaults]

ARTIFACTS = ROOT / "test-artifacts"


def main(page):
    return page.locator("[data-testid='stMain']")


def pick(page, experiment):
    page.locator("[data-testid='stRadio']").get_by_text(experiment, exact=True).click()
    wait_idle(page)
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=120_000)


def shoot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"experiments-{name}.png"), full_page=True)


def test_length_generalization_marks_the_training_length(dashboard):
    url, page = dashboard
    open_page(page, url, "experiments")
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=120_000)
    texts = chart_texts(page)
    assert "training length 128" in texts and "gpt2: learned positions end at 128" in texts
    assert no_exception(page)
    shoot(page, "length")


def test_receptive_field_follows_the_model_and_the_slider(dashboard):
    url, page = dashboard
    open_page(page, url, "experiments")
    pick(page, "Receptive field")
    assert page.get_by_text("has no window").count() == 1  # gpt2, the first model
    choose(main(page), "Model", "rope+gqa+swa")
    assert page.get_by_text("Measured and theory agree at every layer").count() == 1
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    assert any("what reaches position 101" in t for t in chart_texts(page))
    assert [row["measured reach"] for row in table(page)] == ["15", "30", "45", "60"]
    assert no_exception(page)
    shoot(page, "receptive")


def test_uptraining_fills_the_frontier(dashboard):
    url, page = dashboard
    open_page(page, url, "experiments")
    pick(page, "GQA frontier")
    before = table(page)
    column = next(k for k in before[0] if k.startswith("uptrained"))  # 5 % of the budget
    assert all(row[column] in ("", "None") for row in before)
    type_number(main(page), "Uptraining steps", 3)
    page.get_by_role("button", name="Uptrain every pooled model for 3 steps").click()
    page.get_by_text("Uptraining 4 pooled models of gpt2 for 3 steps in the background").wait_for()
    wait_background(page)
    rows = table(page)
    assert [row["n_kv_head"] for row in rows] == ["8", "4", "2", "1"]
    assert all(float(row["uptrained (3 steps)"]) > 0 for row in rows)
    assert no_exception(page)
    shoot(page, "gqa")


def test_logit_lens_renders(dashboard):
    url, page = dashboard
    open_page(page, url, "experiments")
    pick(page, "Logit lens")
    assert any("Logit lens" in t for t in chart_texts(page)) and no_exception(page)
    shoot(page, "lens")


def test_window_view_adds_sinks_when_typed(dashboard):
    url, page = dashboard
    open_page(page, url, "experiments")
    pick(page, "Window & sinks")
    assert {row["sinks"] for row in table(page)} == {"0", "4"}
    type_number(main(page), "Sink tokens (compared with none)", 2)
    assert {row["sinks"] for row in table(page)} == {"0", "2"}
    assert no_exception(page)
    shoot(page, "window")
