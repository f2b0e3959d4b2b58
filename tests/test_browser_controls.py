"""A person at the controls, in a real headless Chromium: every kind of sidebar control is
clicked or typed, then the test reads what the page shows (tables, chart titles, messages) and
the URL; a reload and every page keep the choices. Then one real interaction with each page's
own controls. (test_browser_pages.py keeps the deep-link tests that start from a URL.)"""
import json
import re
import time

import numpy as np
import pandas as pd
import pytest
from browser import (
    ROOT,
    add_variant,
    chart_texts,
    choose,
    custom_panel,
    no_exception,
    open_page,
    page_text,
    remove_variant,
    sidebar,
    step_number,
    table,
    type_number,
    variants_shown,
    wait_idle,
)

from gpt2viz import PRESETS

pytestmark = [pytest.mark.browser, pytest.mark.trained_defaults]

ARTIFACTS = ROOT / "test-artifacts"


def go_to(page, title):
    """Switch pages through the sidebar's navigation, as a person does."""
    page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
    page.wait_for_function(f"() => [...document.querySelectorAll('h1')].some(h => h.textContent.includes({json.dumps(title.split(' ')[0])}))")
    wait_idle(page)


def test_every_sidebar_control_sticks_and_changes_the_page(dashboard):
    url, page = dashboard
    open_page(page, url, "build")  # the defaults, trained with a tiny budget
    assert variants_shown(page) == ["gpt2", "rope+gqa+swa"]
    assert all(r["weights"].startswith("trained") for r in table(page))

    # radio
    sidebar(page).get_by_text("Random init (instant)").click()
    wait_idle(page)
    assert page.get_by_role("radio", name="Random init (instant)").is_checked()
    assert [r["weights"] for r in table(page)] == ["random init"] * 2 and "weights=random" in page.url

    # multiselect: add, remove
    add_variant(page, "swa")
    assert variants_shown(page) == ["gpt2", "rope+gqa+swa", "swa"] and "variants=swa" in page.url
    remove_variant(page, "gpt2")
    assert variants_shown(page) == ["rope+gqa+swa", "swa"] and "variants=gpt2" not in page.url

    # the custom variant's fields: number +, typed numbers, a selectbox
    add_variant(page, "custom 1")
    assert variants_shown(page)[-1] == "custom 1: rope · GQA-2 · w=16"
    panel = custom_panel(page, "Custom 1")
    step_number(panel, "Layers")
    assert variants_shown(page)[-1] == "custom 1: rope · GQA-2 · w=16 · L=5" and "n_layer=5" in page.url
    type_number(panel, "Window (0 = full attention)", 4)
    type_number(panel, "Key/value heads", 1)
    type_number(panel, "Layers", 999)  # issue 31.7a: the message names what was typed
    said = page.get_by_text(re.compile(r"custom 1 cannot be built.*Layers 999 is outside 1–12"))
    assert said.count() == 2  # beside the fields and in the main area
    type_number(panel, "Layers", 5)
    assert variants_shown(page)[-1] == "custom 1: rope · MQA · w=4 · L=5" and "window=4" in page.url
    assert table(page)[-1]["attention"] == "MQA" and table(page)[-1]["window"] == "4"
    choose(panel, "Position encoding", "learned")
    assert table(page)[-1]["position"] == "learned" and "position=learned" in page.url
    choose(panel, "Position encoding", "rope")
    type_number(panel, "RoPE base", 500)
    assert variants_shown(page)[-1] == "custom 1: rope · base 500 · MQA · w=4 · L=5"

    # a custom variant that cannot be built says so in the main area, the others stay
    type_number(panel, "Query heads", 3)
    text = page_text(page)
    assert "custom 1 cannot be built" in text and "not divisible by n_head=3" in text
    assert "Pick at least one variant" not in text and variants_shown(page) == ["rope+gqa+swa", "swa"]
    type_number(panel, "Query heads", 8)

    # a second custom variant, side by side with the first
    add_variant(page, "custom 2")
    assert variants_shown(page)[-2:] == ["custom 1: rope · base 500 · MQA · w=4 · L=5",
                                         "custom 2: rope · MQA · w=16"]

    # the seed: + and typing, seen in what the random models predict
    go_to(page, "Compare & generate")
    losses = [r["loss on prompt (nats)"] for r in table(page)]
    step_number(sidebar(page), "Seed")
    assert "seed=1" in page.url
    type_number(sidebar(page), "Seed", 7)
    assert "seed=7" in page.url
    assert [r["loss on prompt (nats)"] for r in table(page)] != losses

    # a reload keeps every choice; so does every page
    link, shown = page.url, table(page)
    page.reload()
    wait_idle(page)
    assert page.url == link and table(page) == shown
    for title in ["Attention", "RoPE geometry", "GQA sharing", "Latency & memory", "Build & train"]:
        go_to(page, title)
        assert no_exception(page), title
        assert page.url.split("?")[1] == link.split("?")[1], title
    assert variants_shown(page) == [r["variant"] for r in shown]
    go_to(page, "Attention")
    titles = chart_texts(page)
    assert any(t.startswith("custom 2: rope · MQA · w=16") for t in titles), titles
    go_to(page, "RoPE geometry")
    choose(page.locator("[data-testid='stMain']"), "RoPE model", "custom 1: rope · base 500 · MQA · w=4 · L=5")
    assert "This model's base is 500" in page_text(page)
    base_slider = page.locator("[data-testid='stSlider']").filter(has_text="RoPE base")
    assert base_slider.locator("[data-testid='stSliderThumbValue']").inner_text() == "500"

    # the weights radio's third choice and its text field
    sidebar(page).get_by_text("Local checkpoint folder").click()
    wait_idle(page)
    folder = sidebar(page).get_by_label(re.compile("^Folder"))
    folder.fill("/no/such/folder")
    folder.press("Enter")
    wait_idle(page)
    assert "There is no folder '/no/such/folder'" in page_text(page)
    assert "checkpoint=%2Fno%2Fsuch%2Ffolder" in page.url
    assert no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "controls-sidebar.png"), full_page=True)


def test_a_link_that_cannot_be_shown_as_written_says_so(dashboard):
    url, page = dashboard
    open_page(page, url, "build", "weights=random&variants=nope&variants=custom&n_layer=99&window=300")
    text = page_text(page)
    assert "unknown variant(s) 'nope'" in text
    assert "n_layer=99 is outside 1–12; using the nearest valid value, 12" in text
    assert "window=300 is outside 0–256; using the nearest valid value, 256" in text
    assert variants_shown(page) == ["custom 1: rope · GQA-2 · w=256 · L=12"]
    assert "n_layer=12" in page.url and "window=256" in page.url


def test_each_page_control_redraws_what_it_names(dashboard):
    url, page = dashboard
    timings = {}
    open_page(page, url, "attention", "weights=random")
    assert all("mean" in t for t in chart_texts(page))
    choose(page.locator("[data-testid='stMain']"), "Head", "3")
    assert all("head 3" in t for t in chart_texts(page))

    started = time.perf_counter()
    page.get_by_text("log (0.001 to 1)").click()
    wait_idle(page)
    timings["attention: colour scale"] = time.perf_counter() - started - 0.8  # wait_idle's pauses
    page.get_by_text("All layers × heads").click()
    wait_idle(page)
    assert any("every layer and head" in t for t in chart_texts(page))

    page.get_by_text("One head").click()
    wait_idle(page)
    prompt = page.get_by_label("Prompt")
    prompt.fill("Zebras quietly graze")
    prompt.press("Control+Enter")
    wait_idle(page)
    ticks = page.locator("[data-testid='stPlotlyChart'] .xtick text").all_text_contents()
    assert "3:·quietly" in ticks and not any("statement" in t for t in ticks), ticks

    go_to(page, "Compare & generate")
    bars = page.locator("[data-testid='stPlotlyChart'] .bars .point").count()
    page.get_by_role("slider").first.focus()  # top-k
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    assert page.locator("[data-testid='stPlotlyChart'] .bars .point").count() == bars + 2  # 2 variants
    before = page.locator("[data-testid='stCode']").all_inner_texts()
    step_number(page.locator("[data-testid='stMain']"), "Sampling seed")
    assert page.locator("[data-testid='stCode']").all_inner_texts() != before

    go_to(page, "RoPE geometry")
    assert "layer 0" in page_text(page)
    page.get_by_role("slider").nth(3).focus()  # the rotation's layer slider
    page.keyboard.press("ArrowRight")
    wait_idle(page)
    assert "layer 1" in page_text(page)

    go_to(page, "GQA sharing")
    assert "GQA" in chart_texts(page)[0]
    page.get_by_role("slider").first.focus()  # key/value heads, starting at the model's 2
    page.keyboard.press("End")
    wait_idle(page)
    assert "MQA" in chart_texts(page)[0]

    go_to(page, "Latency & memory")
    page.get_by_role("button", name="Run").click()
    page.wait_for_timeout(500)
    wait_idle(page)
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 1 and no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "view-control-seconds.json").write_text(json.dumps(timings))
    print("view-only rerun seconds:", timings)


def test_a_downloaded_checkpoint_uploads_again_and_predicts_the_same(dashboard, tmp_path):
    url, page = dashboard
    open_page(page, url, "compare", "weights=random&variants=swa&seed=5")
    loss = table(page)[0]["loss on prompt (nats)"]
    go_to(page, "Build & train")
    with page.expect_download() as download:
        page.get_by_role("button", name="swa (.zip)").click()
    zipped = tmp_path / "swa.zip"
    download.value.save_as(zipped)
    sidebar(page).get_by_text("Upload a checkpoint (.zip)").click()
    wait_idle(page)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    sidebar(page).locator("input[type='file']").set_input_files(str(broken))
    wait_idle(page)
    assert "broken.zip does not load: That file is not a .zip archive." in page_text(page)
    sidebar(page).locator("input[type='file']").set_input_files(str(zipped))
    wait_idle(page)
    row = table(page)[0]
    assert download.value.suggested_filename == "gpt2viz-swa.zip"
    assert row["variant"] == "swa" and row["weights"] == "uploaded swa.zip" and row["window"] == "16"
    go_to(page, "Compare & generate")
    assert table(page)[0]["loss on prompt (nats)"] == loss
    go_to(page, "Experiments")  # uploaded weights are trained weights: measured, not refused
    assert "random weights" not in page_text(page)
    assert "Length generalization" in " ".join(chart_texts(page)) or page.locator(
        "[data-testid='stPlotlyChart']").count() >= 1
    assert no_exception(page)


def test_a_heatmap_downloads_as_html_that_opens_offline(dashboard, chromium, tmp_path):
    """Issue 31, figures to take away: the button saves one file; opened from disk (no server,
    no network) it draws the same heatmap, title and all."""
    url, page = dashboard
    open_page(page, url, "attention", "weights=random&variants=swa")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as HTML").first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("swa-layer-0") and saved.suffix == ".html"
    offline = chromium.new_page()
    offline.route("http*://**", lambda route: route.abort())  # nothing may come from a server
    offline.goto(saved.as_uri())
    offline.wait_for_selector(".main-svg .heatmaplayer", timeout=120_000)
    assert offline.locator(".gtitle").first.text_content().startswith("swa · layer 0")
    offline.close()
    # its data: one row per cell, row-major (query, key), and each is what attention allows
    with page.expect_download() as download:
        page.get_by_role("button", name="Data (CSV)").first.click()
    assert download.value.suggested_filename == saved.stem + ".csv"
    cells = pd.read_csv(download.value.path())
    t = int(len(cells) ** 0.5)
    probs = np.nan_to_num(cells["value"].to_numpy().reshape(t, t))
    queries, keys = np.indices((t, t))
    window = PRESETS["swa"].window
    assert t > window and np.allclose(probs.sum(1), 1.0)  # each query's probabilities
    assert (probs[(keys > queries) | (keys <= queries - window)] == 0).all()  # causal, window 16
    assert (probs[(keys <= queries) & (keys > queries - window)] > 0).all()
