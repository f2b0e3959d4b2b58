"""gpt2viz.viz.performance: fitted slopes where the curve is in its regime, and the dashed
analytic line at the series' mean rate."""
import math

import numpy as np
import pytest

from gpt2viz.analysis.bench import fit_slope
from gpt2viz.viz.performance import scaling_figure


def test_scaling_figure_reports_fitted_slopes():
    rows = [{"impl": "dense", "n": n, "median_s": 1e-6 * n ** 2, "peak_bytes": n * 10, "flops": n ** 2}
            for n in (512, 1024, 2048)]
    rows += [{"impl": "window", "n": n, "median_s": 1e-6 * n, "peak_bytes": n, "flops": n}
             for n in (512, 1024, 2048)]
    fig = scaling_figure(rows, "n", ["impl"], "t")
    names = [t.name for t in fig.data if t.name and "slope" in t.name]
    assert "dense (slope 2.00 over n=1024–2048)" in names and "window (slope 1.00 over n=1024–2048)" in names
    assert fit_slope([1, 10, 100], [3, 300, 30000]) == pytest.approx(2.0)


def test_slope_is_fitted_where_the_curve_is_in_its_regime():
    # n = 512 as slow as 1024 (fixed overhead), then x4 per doubling: dense attention.
    times = {512: 0.010, 1024: 0.010, 2048: 0.040, 4096: 0.160}
    rows = [{"impl": "sdpa (dense causal)", "n_kv_head": 12, "window": None, "n": n, "median_s": s,
             "min_s": s * 0.9, "max_s": s * 1.2, "peak_bytes": n, "flops": n * n} for n, s in times.items()]
    fig = scaling_figure(rows, "n", ["impl", "n_kv_head", "window"], "t")
    latency = fig.data[0]
    upper = math.log(times[4096] / times[1024]) / math.log(4096 / 1024)  # the upper half, by hand
    assert f"slope {upper:.2f}" in latency.name and upper == pytest.approx(2.0)
    assert "not monotonic" in latency.name  # 512 -> 1024 does not grow: said, not hidden
    assert "None" not in latency.name and "full causal" in latency.name
    assert np.allclose(latency.error_y.array, [(t * 1.2 - t) * 1e3 for t in times.values()])
    assert np.allclose(latency.error_y.arrayminus, [(t - t * 0.9) * 1e3 for t in times.values()])


def test_scaling_dashed_line_is_the_flops_at_the_mean_rate():
    rows = [{"variant": "m", "n": n, "median_s": s, "peak_bytes": None, "flops": f}
            for n, s, f in ((512, 0.01, 1e9), (1024, 0.03, 2e9))]
    dashed = [t for t in scaling_figure(rows, "n", ["variant"], "t").data if t.line.dash == "dash"][0]
    rate = math.sqrt((1e9 / 0.01) * (2e9 / 0.03))  # geometric mean of the two rates
    assert np.allclose(dashed.y, [1e9 / rate * 1e3, 2e9 / rate * 1e3])


def test_the_eleven_decode_series_each_have_their_own_colour():
    """Issue 31.4: evenly stepped hues gave two greens and two magentas among 11 series."""
    from gpt2viz.viz.performance import decode_figure

    analytic = {f"series {i}": [(256, 1000 * (i + 1)), (512, 2000 * (i + 1))] for i in range(11)}
    fig = decode_figure([], analytic)
    colours = [t.line.color for t in fig.data]
    assert len(colours) == 11 and len(set(colours)) == 11
