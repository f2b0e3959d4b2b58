"""The StreamingLLM chart (viz.experiments.streaming_figure): running means and bucket steps
recomputed from the per-position losses it was given."""
import numpy as np

from gpt2viz.viz.experiments import streaming_figure

BUCKETS = {"0-255": (0, 255), "256-1023": (256, 1023), "1024-2047": (1024, 2047), "2048-4095": (2048, 4095)}


def result(tokens=1500):
    rng = np.random.default_rng(0)
    rows = []
    for window, sinks in ((None, 0), (256, 0), (256, 4)):
        per_token = rng.uniform(1, 5, tokens).tolist()
        buckets = {k: (float(np.mean(per_token[lo: hi + 1])) if lo < tokens else None)
                   for k, (lo, hi) in BUCKETS.items()}
        rows.append({"window": window, "sinks": sinks, "loss": float(np.mean(per_token)),
                     "ppl": float(np.exp(np.mean(per_token))), "buckets": buckets, "per_token": per_token})
    return {"variant": "smollm2-135m", "tokens": tokens, "text_sha256": "0" * 64, "rows": rows}


def test_lines_are_running_means_of_the_last_positions():
    r = result()
    fig = streaming_figure(r, smooth=64)
    lines = [t for t in fig.data if t.line.dash is None and t.yaxis == "y"]  # the top panel
    assert [t.name.split(" (")[0] for t in lines] == ["full attention", "window 256", "window 256 + 4 sinks"]
    for trace, row in zip(lines, r["rows"]):
        losses = row["per_token"]
        expected = [sum(losses[max(0, i - 63): i + 1]) / (i + 1 - max(0, i - 63)) for i in range(len(losses))]
        assert np.allclose(trace.y, expected) and list(trace.x) == list(range(len(losses)))


def test_bucket_steps_sit_at_the_bucket_means_over_their_positions():
    r = result()
    steps = [t for t in streaming_figure(r).data if t.line.dash == "dot"]
    assert len(steps) == 3 * 3  # the 2048-4095 bucket is empty at 1,500 tokens: not drawn
    for n, row in enumerate(r["rows"]):
        for trace, (key, (lo, hi)) in zip(steps[3 * n: 3 * n + 3], list(BUCKETS.items())[:3]):
            mean = np.mean(row["per_token"][lo: hi + 1])
            assert list(trace.x) == [lo, min(hi, 1499)] and np.allclose(trace.y, [mean, mean])
            assert f"{mean:.3f}" in trace.hovertemplate


def test_windows_and_context_are_marked():
    fig = streaming_figure(result(), context=1024, joins=[939, 1754])
    upright = [s for s in fig.layout.shapes if s.x0 == s.x1]  # vertical lines, in both panels
    assert sorted(s.x0 for s in upright) == [256, 256, 939, 939, 1024, 1024]  # 1754 is past the text
    texts = {a.text for a in fig.layout.annotations}
    assert {"window 256", "model context 1024", "pieces join"} <= texts and "new text" not in texts


def test_the_lower_panel_is_each_setting_minus_full_attention():
    """Issue 31.13: the sink line hid the full-attention line; the difference shows the gap."""
    r = result()
    fig = streaming_figure(r, smooth=16)
    lower = [t for t in fig.data if t.yaxis == "y2"]
    assert [t.legendgroup for t in lower] == ["window 256", "window 256 + 4 sinks"]
    full = np.asarray(r["rows"][0]["per_token"])
    for trace, row in zip(lower, r["rows"][1:]):
        gap = np.asarray(row["per_token"]) - full
        expected = [gap[max(0, i - 15): i + 1].mean() for i in range(len(gap))]
        assert np.allclose(trace.y, expected)


def test_buckets_alone_without_per_position_losses():
    r = result()
    for row in r["rows"]:
        del row["per_token"]
    fig = streaming_figure(r)
    assert all(t.line.dash == "dot" for t in fig.data)
    assert [t.name for t in fig.data if t.showlegend] == ["full attention", "window 256", "window 256 + 4 sinks"]
