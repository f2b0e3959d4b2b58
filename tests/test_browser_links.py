"""A person changes the Attention page's own controls (drags the layer slider with the
keyboard, picks a head, clicks the log scale), copies the URL, and opens it in a new tab: the
new tab shows the same view (issue 24, item 7)."""
import pytest
from browser import choose, no_exception, open_page, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.trained_defaults]


def attention_controls(page):
    main = page.locator("[data-testid='stMain']")
    layer = main.locator("[data-testid='stSlider']").filter(has_text="Layer")
    return {"layer": layer.locator("[data-testid='stSliderThumbValue']").inner_text(),
            "head": main.get_by_role("combobox", name="Head").input_value(),
            "log": page.get_by_role("radio", name="log (0.001 to 1)").is_checked(),
            "prompt": main.get_by_label("Prompt").input_value()}


def test_a_copied_link_opens_the_same_attention_view(dashboard, chromium):
    url, page = dashboard
    open_page(page, url, "attention", "weights=random", trained=False)
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("slider").first.focus()  # the layer slider
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    choose(main, "Head", "3")
    main.get_by_text("log (0.001 to 1)").click()
    wait_idle(page)
    prompt = main.get_by_label("Prompt")
    prompt.fill("import os\nprint(os.getcwd())")
    prompt.press("Control+Enter")
    wait_idle(page)
    shown = attention_controls(page)
    assert shown == {"layer": "2", "head": "3", "log": True, "prompt": "import os\nprint(os.getcwd())"}
    link = page.url
    assert "attention_layer=2" in link and "attention_head=3" in link and "prompt=" in link

    other = chromium.new_page(viewport={"width": 1400, "height": 1000})
    try:
        other.goto(link)
        wait_idle(other)
        assert no_exception(other)
        assert attention_controls(other) == shown
    finally:
        other.close()
