"""Background training as people meet it, in a real headless Chromium: the training settings
are edited freely and applied with one button; two sessions each see their own jobs and the
line ahead of them; a superseded request is dropped; a cancelled run leaves nothing on disk."""
import re

import pytest
from browser import (
    new_page,
    no_exception,
    open_page,
    page_text,
    serve_app,
    table,
    type_number,
    wait_idle,
)

pytestmark = pytest.mark.browser


def banner(page) -> str:
    found = page.get_by_text("Training in the background")
    return found.first.inner_text() if found.count() else ""


def test_settings_are_edited_freely_and_applied_once(tmp_path, chromium):
    with serve_app({"GPT2VIZ_TRAIN_STEPS": "6", "GPT2VIZ_CACHE": str(tmp_path)}) as url:
        with new_page(chromium) as page:
            open_page(page, url, "build", "variants=gqa")  # the quick default budget, trained
            before = set(tmp_path.iterdir())
            page.get_by_text("Training settings and your own text").click()
            main = page.locator("[data-testid='stMain']")
            type_number(main, "Steps", 400)
            type_number(main, "Batch size", 8)
            type_number(main, "Warm-up steps", 30)
            # Three edits, no run: nothing trains, the link is unchanged, the panel stays open
            assert banner(page) == "" and "steps=400" not in page.url
            assert main.get_by_label("Steps", exact=True).is_visible()
            main.get_by_role("button", name="Apply settings").click()
            page.get_by_text(re.compile(r"gqa: step \d+/400")).wait_for(timeout=120_000)
            assert "steps=400" in page.url and "batch_size=8" in page.url
            assert "400 steps · batch 8 × 128" in page_text(page)
            assert main.get_by_label("Steps", exact=True).is_visible()  # still open
            assert banner(page) == "Training in the background: gqa"  # one run
            page.get_by_role("button", name="Cancel training").click()
            page.get_by_text("gqa: training cancelled").wait_for(timeout=120_000)
            wait_idle(page)
            assert table(page)[0]["weights"] == "random init (not trained yet)"
            assert set(tmp_path.iterdir()) == before  # nothing half-written
            assert no_exception(page)


def test_two_sessions_see_their_own_jobs_and_the_line_ahead(tmp_path, chromium):
    with serve_app({"GPT2VIZ_TRAIN_STEPS": "4", "GPT2VIZ_CACHE": str(tmp_path)}) as url:
        with new_page(chromium) as first, new_page(chromium) as second:
            first.goto(f"{url}/?variants=rope&steps=2000&batch_size=2", wait_until="commit")
            first.get_by_text(re.compile(r"rope: step \d+/2000")).wait_for(timeout=120_000)
            open_page(second, url, "build", "variants=gqa&steps=5", trained=False)
            ahead = re.compile(r"1 job\(s\) of other sessions ahead of yours")
            second.get_by_text(ahead).wait_for(timeout=120_000)
            text = banner(second)
            assert text == "Training in the background: gqa" and "rope" not in text
            assert "rope: step" not in page_text(second)  # not its job's progress
            # B changes its mind: the request it superseded is dropped, not queued behind
            second.get_by_text("Training settings and your own text").click()
            type_number(second.locator("[data-testid='stMain']"), "Steps", 6)
            second.get_by_role("button", name="Apply settings").click()
            wait_idle(second)
            # the link follows the applied settings (written by the rerun: wait, do not race it)
            second.wait_for_function("() => location.search.includes('steps=6')", timeout=120_000)
            second.get_by_text(ahead).wait_for(timeout=120_000)
            assert banner(second) == "Training in the background: gqa"
            assert second.get_by_role("button", name="Cancel gqa").count() == 0  # one job, not two
            first.get_by_role("button", name="Cancel training").click()
            first.get_by_text("rope: training cancelled").wait_for(timeout=120_000)
            wait_idle(second)
            second.get_by_text("Training in the background").first.wait_for(state="detached",
                                                                           timeout=120_000)
            wait_idle(second)
            assert table(second)[0]["weights"] == "trained" and no_exception(second)
            assert no_exception(first)
