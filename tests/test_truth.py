"""Every figure builder against an independent recomputation from its definition (own loops,
own complex rotations, own counts; never the helper that drew it), and one test for each
finding of issue 16 that the builders and the library own. Page numbers: test_truth_pages.py."""
import cmath
import math
import re

import numpy as np
import pytest
import torch

from gpt2viz import GPT2, PRESETS, ModelConfig
from gpt2viz.bench import bench_attention, bench_forward
from gpt2viz.train import History
from gpt2viz.viz.attention import attention_difference, attention_grid, attention_heatmap
from gpt2viz.viz.charts import loss_curves, next_token_bars
from gpt2viz.viz.gqa import (conversion_curve, cost_bars, head_similarity, similarity_heatmap,
                             within_vs_across)
from gpt2viz.viz.performance import scaling_figure
from gpt2viz.viz.rope import (absolute_position_similarity, rope_score_by_distance,
                              rotation_panels, score_decay, wavelength_bars)


def causal_allowed(t, window=None):
    """allowed[i][j] from the definition: j <= i and (no window or i - j < window)."""
    return np.array([[j <= i and (window is None or i - j < window) for j in range(t)]
                     for i in range(t)])


def random_attention(t, heads=1, seed=0, window=None):
    """Rows that are distributions over their allowed keys: (heads, t, t)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(heads, t, t)) * 2
    scores[:, ~causal_allowed(t, window)] = -np.inf
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def rgb(colour):
    return [int(c) for c in re.findall(r"\d+", colour)[:3]]


def colour_at(colorscale, fraction):
    """Linear interpolation in a plotly colorscale [(pos, 'rgb(..)'), ...]."""
    for (p0, c0), (p1, c1) in zip(colorscale, colorscale[1:]):
        if p0 <= fraction <= p1:
            w = (fraction - p0) / (p1 - p0) if p1 > p0 else 0.0
            return [a + w * (b - a) for a, b in zip(rgb(c0), rgb(c1))]
    raise ValueError(fraction)


# ----------------------------------------------------------------- attention heatmaps
def test_heatmap_draws_each_allowed_probability_and_nothing_else():
    t, window = 7, 3
    probs = random_attention(t, window=window)[0]
    for log in (False, True):
        fig = attention_heatmap(probs, list("abcdefg"), "t", window=window, log=log)
        z, shown = np.array(fig.data[0].z, float), np.array(fig.data[0].customdata, float)
        for i in range(t):
            for j in range(t):
                if j <= i and i - j < window:
                    assert shown[i, j] == pytest.approx(probs[i, j])  # the hover's p
                    expected = math.log10(max(probs[i, j], 1e-3)) if log else probs[i, j]
                    assert z[i, j] == pytest.approx(expected)
                else:
                    assert math.isnan(z[i, j])


def test_grid_cell_rc_holds_row_r_head_c():
    attn = [random_attention(5, heads=3, seed=s) for s in range(2)]
    fig = attention_grid(attn, list("abcde"), "g")
    for trace in fig.data:
        layer, head = (int(s[1:]) for s in trace.name.split())
        assert np.allclose(np.nan_to_num(np.array(trace.z, float)), attn[layer][head])
        axis_number = layer * 3 + head + 1  # make_subplots numbers axes row-major
        assert trace.xaxis == ("x" if axis_number == 1 else f"x{axis_number}")


def test_issue16_finding8_gqa_grid_hover_names_kv_head_and_query_head():
    n_head, n_kv = 8, 2
    group = n_head // n_kv
    probs = random_attention(4, heads=n_head)
    by_group = [probs[g * group:(g + 1) * group] for g in range(n_kv)]
    fig = attention_grid(by_group, list("abcd"), "t", row_titles=[f"KV{g}" for g in range(n_kv)],
                         cell_titles=[f"Q{h}" for h in range(n_head)])
    names = [t.name for t in fig.data]
    assert names == [f"KV{h * n_kv // n_head} Q{h}" for h in range(n_head)]  # query h reads kv h // group
    for h, trace in enumerate(fig.data):
        assert np.allclose(np.nan_to_num(np.array(trace.z, float)), probs[h])


def test_issue16_finding1_difference_is_red_where_a_attends_more():
    t = 6
    pa, pb = random_attention(t, seed=1)[0], random_attention(t, seed=2, window=2)[0]
    fig = attention_difference(pa, pb, list("abcdef"), "A", "B", None, 2)
    trace = fig.data[0]
    z = np.array(trace.z, float)
    assert np.allclose(z[causal_allowed(t)], (pa - pb)[causal_allowed(t)])
    assert np.isnan(z[~causal_allowed(t)]).all()  # blocked only where both block
    limit = np.abs(pa - pb)[causal_allowed(t)].max()
    assert trace.zmax == pytest.approx(limit) and trace.zmin == pytest.approx(-limit)
    # The cell where A attends most over B is drawn red, the one where B does most blue.
    scale = trace.colorscale
    i, j = np.unravel_index(np.nanargmax(z), z.shape)
    red, _, blue = colour_at(scale, (z[i, j] - trace.zmin) / (trace.zmax - trace.zmin))
    assert red > blue
    i, j = np.unravel_index(np.nanargmin(z), z.shape)
    red, _, blue = colour_at(scale, (z[i, j] - trace.zmin) / (trace.zmax - trace.zmin))
    assert blue > red
    assert "red: A attends more" in fig.layout.title.text


def test_issue16_finding9_difference_hover_names_a_difference_not_a_probability():
    pa, pb = random_attention(4, seed=1)[0], random_attention(4, seed=2)[0]
    hover = attention_difference(pa, pb, list("abcd"), "A", "B").data[0].hovertemplate
    assert "p =" not in hover and "A − B =" in hover


# ----------------------------------------------------------------- training and prediction charts
def test_loss_curves_draw_each_history_and_the_baseline():
    h = History(steps=[1, 2, 3], train_loss=[5.0, 4.5, 4.2], eval_steps=[3], val_loss=[4.4])
    fig = loss_curves({"m": h}, 5.4)
    train, val = fig.data
    assert list(train.x) == [1, 2, 3] and list(train.y) == [5.0, 4.5, 4.2]
    assert list(val.x) == [3] and list(val.y) == [4.4]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 5.4


def test_next_token_bars_put_the_most_likely_token_on_top_of_each_panel():
    fig = next_token_bars({"a": (["x", "y"], [0.7, 0.2]), "b": (["z"], [0.9])})
    a, b = fig.data
    assert list(a.x) == [0.2, 0.7] and list(a.y) == ["y ", "x "]  # plotly draws bottom-up
    assert list(b.x) == [0.9] and a.xaxis == "x" and b.xaxis == "x2"


# ----------------------------------------------------------------- GQA
def test_cost_bars_are_the_rows_in_their_units():
    rows = [{"n_kv_head": 8, "kind": "MHA", "kv_bytes_per_token": 8192, "kv_bytes_context": 2**25,
             "params": 1_500_000},
            {"n_kv_head": 1, "kind": "MQA", "kv_bytes_per_token": 1024, "kv_bytes_context": 2**22,
             "params": 1_400_000}]
    per_token, at_context, params = cost_bars(rows, 4096).data
    assert list(per_token.y) == [8.0, 1.0] and list(at_context.y) == [32.0, 4.0]
    assert list(params.y) == [1.5, 1.4] and list(per_token.x) == ["8 (MHA)", "1 (MQA)"]


def test_head_similarity_is_one_minus_mean_total_variation():
    probs = random_attention(5, heads=4, seed=3)
    sim = head_similarity(probs)
    for a in range(4):
        for b in range(4):
            tv = [0.5 * sum(abs(probs[a, i, j] - probs[b, i, j]) for j in range(5)) for i in range(5)]
            assert sim[a, b] == pytest.approx(1 - sum(tv) / 5)
    within, across = within_vs_across(sim, 2)
    assert within == pytest.approx((sim[0, 1] + sim[1, 0] + sim[2, 3] + sim[3, 2]) / 4)
    assert across == pytest.approx(np.mean([sim[a, b] for a in range(4) for b in range(4)
                                            if a // 2 != b // 2]))


def test_similarity_heatmap_outlines_each_group():
    fig = similarity_heatmap(np.eye(8), 4, "t")
    boxes = [(s.x0, s.x1, s.y0, s.y1) for s in fig.layout.shapes]
    assert boxes == [(-0.5, 3.5, -0.5, 3.5), (3.5, 7.5, 3.5, 7.5)]


def test_conversion_curve_draws_pooled_losses_and_the_reference_at_its_own_kv_heads():
    rows = [{"n_kv_head": k, "val_loss": 4 + 0.1 * i} for i, k in enumerate((8, 4, 2, 1))]
    fig = conversion_curve(rows, {"gqa trained from scratch": (2, 3.95)})
    pooled, ref = fig.data
    assert list(pooled.x) == ["8", "4", "2", "1"] and list(pooled.y) == [4.0, 4.1, 4.2, 4.3]
    assert list(ref.x) == ["2"] and list(ref.y) == [3.95]


# ----------------------------------------------------------------- RoPE
def test_rotation_panels_are_the_complex_rotation_of_each_pair():
    d, base, t = 8, 100.0, 12
    rng = np.random.default_rng(0)
    query = rng.normal(size=d)
    # the model's rotation, done here by complex numbers: pair i = x_i + i x_{i+d/2}
    trajectory = np.zeros((t, d))
    for m in range(t):
        for i in range(d // 2):
            z = complex(query[i], query[i + d // 2]) * cmath.exp(1j * m * base ** (-2 * i / d))
            trajectory[m, i], trajectory[m, i + d // 2] = z.real, z.imag
    fig = rotation_panels(trajectory, np.arange(t), base)
    panels = [tr for tr in fig.data if tr.name == "q rotated to each position"]
    titles = [a.text for a in fig.layout.annotations]
    for panel, title in zip(panels, titles):
        i = int(title.split(":")[0].split()[1])
        assert np.allclose(panel.x, trajectory[:, i]) and np.allclose(panel.y, trajectory[:, i + d // 2])
        assert f"{2 * math.pi * base ** (2 * i / d):,.0f} tokens/turn" in title


def test_issue16_finding10_a_pair_completes_a_turn_only_within_context_minus_one():
    head_dim, base, context = 128, 500.0, 128
    never = sum(1 for i in range(head_dim // 2)
                if (context - 1) * base ** (-2 * i / head_dim) < 2 * math.pi)  # farthest distance: T-1
    assert never == 33
    fig = wavelength_bars(head_dim, base, context)
    assert f"{never} of {head_dim // 2} pairs never complete a turn" in fig.layout.title.text


def test_rope_decay_is_roformers_sum_and_bound():
    d, base, context = 16, 10000.0, 64
    curves = rope_score_by_distance(d, base, context)
    thetas = [base ** (-2 * i / d) for i in range(d // 2)]
    for delta in (0, 1, 7, 63):
        ones = sum(2 * math.cos(delta * th) for th in thetas) / d  # q = k = ones, rotated
        assert curves["ones"][delta] == pytest.approx(ones)
        partial = [abs(sum(cmath.exp(1j * delta * th) for th in thetas[:j + 1])) for j in range(d // 2)]
        bound0 = sum(range(1, d // 2 + 1)) / (d // 2)
        assert curves["bound"][delta] == pytest.approx(np.mean(partial) / bound0)


def test_absolute_position_similarity_is_the_mean_dot_product_at_each_distance():
    table = np.random.default_rng(1).normal(size=(6, 4))
    x, y = absolute_position_similarity(table)
    mean_norm = np.mean([table[m] @ table[m] for m in range(6)])
    assert list(x) == list(range(6)) and y[0] == pytest.approx(1.0)
    for delta in range(1, 6):
        expected = np.mean([table[m] @ table[m + delta] for m in range(6 - delta)]) / mean_norm
        assert y[delta] == pytest.approx(expected)
    fig = score_decay({"s": (x, y)}, 4, 100.0)
    assert np.allclose(fig.data[0].y, y) and "head_dim 4, base 100" in fig.layout.title.text


# ----------------------------------------------------------------- latency and memory
def test_issue16_finding7_slope_is_fitted_where_the_curve_is_in_its_regime():
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


def brute_force_pairs(n, window):
    return int(causal_allowed(n, window).sum())


def test_issue16_finding5_forward_flops_count_every_matmul():
    cfg = ModelConfig(vocab_size=300, n_layer=2, n_head=4, n_kv_head=2, d_model=32, max_seq_len=64,
                      window=8)
    (row,) = bench_forward({"m": cfg}, [64], repeats=1)
    model = GPT2(cfg)
    n = 64
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    dense = 2 * n * sum(m.weight.numel() for m in linears)  # lm_head is one of them (tied to wte)
    attention = cfg.n_layer * 2 * 2 * cfg.n_head * cfg.head_dim * brute_force_pairs(n, cfg.window)
    assert row["flops"] == dense + attention
    assert row["attention_flops"] == attention


def test_issue16_finding11_rows_name_the_kernel_they_measured(monkeypatch):
    import gpt2viz.attention as attention_module

    calls = []
    original = attention_module.banded_attention
    monkeypatch.setattr(attention_module, "banded_attention",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    for window, expect_banded in ((1024, False), (64, True)):
        calls.clear()
        rows = bench_attention([512], [window], [4], ["banded"], n_head=4, head_dim=16, repeats=1)
        (row,) = [r for r in rows if r["impl"] == "banded"]
        assert bool(calls) == expect_banded
        assert row["ran"] == ("banded" if calls else "sdpa")


# ----------------------------------------------------------------- the comparison
def test_within_noise_lists_exactly_the_variants_closer_than_the_noise():
    from gpt2viz.workbench import within_noise

    losses = {"gpt2": 3.944, "gqa": 3.945, "swa": 3.812, "rope": 3.714}
    close = within_noise(losses, 0.05)
    for name, loss in losses.items():
        closer = [o for o, other in losses.items() if o != name and abs(other - loss) < 0.05]
        assert sorted(close[name]) == sorted(closer)
    assert close["gpt2"] == ["gqa"] and close["rope"] == []


def test_issue16_finding4_every_learned_position_row_gets_a_gradient():
    """A row no training batch reaches keeps its random init (weight decay only shrinks it)."""
    import torch.nn.functional as F

    from gpt2viz.corpus import Corpus
    from gpt2viz.config import TrainSettings
    from gpt2viz.train import sample_batch

    corpus = Corpus.default()
    settings = TrainSettings()  # the dashboard's batch and block
    torch.manual_seed(0)
    model = GPT2(PRESETS["gpt2"].replace(vocab_size=corpus.vocab.size))
    x, y = sample_batch(corpus.train, settings, torch.Generator().manual_seed(0))  # (B, block)
    F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    reached = model.wpe.weight.grad.abs().amax(1) > 0  # (max_seq_len,)
    assert reached.all(), f"rows no batch reaches: {(~reached).nonzero().flatten().tolist()[:3]}..."
