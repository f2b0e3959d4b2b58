"""The command line's progress bar (gpt2viz.cli.progress): counts, the estimate from the pace so
far, one line per LINE_SECONDS in a log, and the last step always written."""
import io

from gpt2viz.cli import progress
from gpt2viz.cli.progress import ProgressBar


def test_a_bar_counts_estimates_and_ends(monkeypatch):
    clock = iter([0.0, 10.0, 20.0, 21.0, 40.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = ProgressBar("extend rope", out)  # started at 0 s
    bar(1, 4, "a")  # 10 s: written; 10 s a step, 3 left
    bar(2, 4, "b")  # 20 s: written (10 s since the last line)
    bar(3, 4, "c")  # 21 s: skipped in a log (1 s since the last)
    bar(4, 4, "d")  # 40 s: the end is always written
    lines = out.getvalue().splitlines()
    assert lines == ["extend rope [######..................] 1/4 (10 s, about 30 s left) a",
                     "extend rope [############............] 2/4 (20 s, about 20 s left) b",
                     "extend rope [########################] 4/4 (40 s) d"]
