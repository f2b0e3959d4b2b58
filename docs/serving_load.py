"""Serving while training: N sessions flip a view-only control for a while as the default
variants train in the background on a cold cache. In the same headless Chromium the tests drive:
    .venv/bin/python docs/serving_load.py [--sessions 8] [--seconds 60] [--repo PATH]
Reports page-load time of each session, the time from a click to the redrawn page (rerun), and
how long /_stcore/health takes to answer, while training runs. --repo measures another checkout
(e.g. a worktree of an older commit) with this script, so two versions compare in one run; the
browsers share the machine with the server, as a user's own browser does."""
import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import IDLE, ROOT, open_browser, serve_app  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--sessions", type=int, default=8)
parser.add_argument("--seconds", type=float, default=60)
parser.add_argument("--repo", type=Path, default=ROOT)
args = parser.parse_args()


def health_seconds(url) -> float:
    go = time.perf_counter()
    try:
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=30).read()
    except OSError:
        return float("inf")
    return time.perf_counter() - go


def summary(values) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return f"median {statistics.median(values):.2f} s, p90 {p90:.2f} s, max {values[-1]:.2f} s (n={len(values)})"


with serve_app({"GPT2VIZ_CACHE": tempfile.mkdtemp()}, timeout=120, root=args.repo) as url:  # cold cache
    with open_browser() as browser:
        loads, pages = [], []
        for _ in range(args.sessions):  # one after another, as people arrive
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            go = time.perf_counter()
            page.goto(f"{url}/attention", wait_until="commit", timeout=300_000)
            page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=300_000)
            page.wait_for_selector(IDLE, timeout=300_000)
            loads.append(time.perf_counter() - go)
            pages.append(page)
        training_at_start = pages[0].get_by_text("Training in the background").count() > 0
        reruns, health, views = [], [], ["All layers × heads", "One head"]
        end, flip = time.perf_counter() + args.seconds, 0
        while time.perf_counter() < end:
            for page in pages:
                go = time.perf_counter()
                page.get_by_text(views[flip % 2], exact=True).click()
                page.wait_for_timeout(100)
                page.wait_for_selector(IDLE, timeout=300_000)
                reruns.append(time.perf_counter() - go)
                health.append(health_seconds(url))
            flip += 1
        training_at_end = pages[0].get_by_text("Training in the background").count() > 0
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{args.repo}: {args.sessions} sessions on Attention, {args.seconds:.0f} s of View flips; "
          f"training {'running' if training_at_start else 'not running'} at the start, "
          f"{'still running' if training_at_end else 'finished'} at the end")
    print(f"page load (goto -> heatmap drawn, idle): {summary(loads)}")
    print(f"rerun (click -> idle; includes 0.1 s wait): {summary(reruns)}")
    print(f"/_stcore/health answer: {summary(health)}")
