"""Sessions in a real headless Chromium, each test on a server of its own: closing a tab
mid-training keeps the model, your own text trains and a new session's link finds it, four
sessions at once each see only their own. (Kept apart from test_browser_controls.py so the two
run on different test workers.)"""
import re
import time

import pytest
from browser import new_page, no_exception, open_page, page_text, serve_app, table, variants_shown, wait_idle, wait_trained

pytestmark = pytest.mark.browser


def test_closing_the_tab_mid_training_keeps_the_model(tmp_path, chromium):
    """Training runs in the server's training process, not in the tab's script run."""
    with serve_app({"GPT2VIZ_TRAIN_STEPS": "20", "GPT2VIZ_CACHE": str(tmp_path)}) as url:
        with new_page(chromium) as page:
            page.goto(f"{url}/?variants=gpt2&seed=3")
            page.get_by_text(re.compile(r"gpt2: step \d+/20")).wait_for(timeout=120_000)
            page.close()  # mid-training
        deadline = time.time() + 240
        while not any(tmp_path.iterdir()) and time.time() < deadline:
            time.sleep(0.5)
        assert len(list(tmp_path.iterdir())) == 1  # the checkpoint, written although nobody waited
        with new_page(chromium) as page:
            open_page(page, url, "build", "variants=gpt2&seed=3")
            # no retraining: from the store, or from the disk cache the training process wrote
            # just before it handed the weights back
            assert [r["weights"] for r in table(page)] in (["trained"], ["trained (cache)"])
            assert len(list(tmp_path.iterdir())) == 1


def test_your_own_text_trains_and_its_row_says_so(tmp_path, chromium):
    from gpt2viz.text.corpus import default_text

    text = tmp_path / "python-notes.txt"
    text.write_text(default_text()[:60_000], encoding="utf-8")
    with serve_app({"GPT2VIZ_TRAIN_STEPS": "4", "GPT2VIZ_CACHE": str(tmp_path / "cache")}) as url:
        with new_page(chromium) as page:
            open_page(page, url, "build", "variants=swa")
            page.get_by_text("Training settings and your own text").click()
            page.get_by_text("Train on your own text").click()
            main = page.locator("[data-testid='stMain']")
            main.get_by_role("button", name="Use this text").click()  # nothing given yet
            page.get_by_text("The pasted text is empty").wait_for(timeout=180_000)  # as a person waits
            wait_idle(page)
            assert "The pasted text is empty" in page_text(page)  # and it stays
            main.locator("input[type='file']").set_input_files(str(text))
            wait_idle(page)
            main.get_by_role("button", name="Use this text").click()
            wait_idle(page)
            wait_trained(page)
            assert re.search(r"python-notes.txt: [\d,]+ GPT-2 tokens, split", page_text(page))
            assert "corpus=python-notes.txt%40" in page.url
            assert table(page, 1)[0]["corpus"] == "python-notes.txt" and table(page)[0]["weights"] == "trained"
            link = page.url
        with new_page(chromium) as page:  # a new session on the same server: the link finds the text
            page.goto(link)
            wait_idle(page)
            wait_trained(page)
            assert table(page, 1)[0]["corpus"] == "python-notes.txt" and no_exception(page)


def test_four_sessions_at_once_each_see_only_their_own(tmp_path, chromium):
    asked = {"variants=gpt2&seed=1": ["gpt2"],
             "variants=swa&variants=gqa&steps=4": ["swa", "gqa"],
             "weights=random&variants=rope&variants=custom2": ["rope", "custom 2: rope · MQA · w=16"],
             "weights=random&variants=custom&window=4&seed=9": ["custom 1: rope · GQA-2 · w=4"]}
    with serve_app({"GPT2VIZ_TRAIN_STEPS": "3", "GPT2VIZ_CACHE": str(tmp_path)}) as url:
        with new_page(chromium) as first:
            pages = [first] + [chromium.new_page(viewport={"width": 1400, "height": 1000})
                               for _ in range(3)]
            for page, query in zip(pages, asked):  # all four asked before any is waited for
                page.goto(f"{url}/?{query}", wait_until="commit")
            for page, (query, names) in zip(pages, asked.items()):
                wait_idle(page)
                wait_trained(page)
                assert variants_shown(page) == names, query
                weights = [r["weights"] for r in table(page)]
                assert all(w.startswith("trained" if "random" not in query else "random init")
                           for w in weights), (query, weights)
                assert no_exception(page), query
